"""3D joint files: our NPZ, OpenSim TRC and C3D.

Shapes: ``T`` frames, ``J`` joints. Our 3D joints are ``(T, J, 3)`` metres in the rig's world
frame (Z up), NaN where missing.

- NPZ (ours): ``xyz`` (T, J, 3), ``joint_names`` (J,), ``fps`` (), and each quality array as
  ``quality_<name>`` (``reproj_error_px`` (T, J), ``n_views`` (T, J), ``covariance`` (T, J, 3, 3), ...).
- TRC (OpenSim, Y up): axes are permuted as Pose2Sim does, ``X_trc = Y_world``,
  ``Y_trc = Z_world``, ``Z_trc = X_world`` (a proper rotation, so handedness is kept); reading
  inverts it. Units ``m`` on write; ``mm``/``cm``/``m`` on read. Missing values are written ``NaN``
  (OpenSim's TRC reader rejects a row whose last fields are empty); empty fields are read as missing.
  Marker names are written as Pose2Sim's OpenSim marker sets name them (``LShoulder``:
  :func:`reconstruction.skeleton.marker_name`) and read back with
  :func:`reconstruction.skeleton.canonical_joint_name`.
- C3D (via ezc3d): world axes unchanged (C3D labs are Z up), millimetres, ``POINT:UNITS = mm``,
  a missing point has residual -1 (the C3D convention) and is NaN on read. Quality arrays are not stored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError

log = logging.getLogger(__name__)

# world (Z up) -> TRC (Y up): TRC axis i takes world axis _WORLD_TO_TRC[i]  (X_trc = Y_w, Y_trc = Z_w, Z_trc = X_w)
_WORLD_TO_TRC = np.array([1, 2, 0])
_TRC_TO_WORLD = np.argsort(_WORLD_TO_TRC)
_UNIT_SCALE = {"m": 1.0, "mm": 1e-3, "cm": 1e-2, "dm": 1e-1}


def world_to_trc(xyz: np.ndarray) -> np.ndarray:
    """World (Z up) coordinates (..., 3) -> TRC (Y up) coordinates (..., 3)."""
    return np.asarray(xyz)[..., _WORLD_TO_TRC]


def trc_to_world(xyz: np.ndarray) -> np.ndarray:
    """TRC (Y up) coordinates (..., 3) -> world (Z up) coordinates (..., 3)."""
    return np.asarray(xyz)[..., _TRC_TO_WORLD]


@dataclass(frozen=True, eq=False)
class Points3D:
    """3D joints of one person over time.

    Attributes:
        xyz: (T, J, 3) metres in the world frame, NaN where missing.
        joint_names: (J,) joint names.
        fps: frames per second (> 0).
        quality: optional per-joint arrays whose first two axes are (T, J), e.g.
            ``reproj_error_px`` (T, J), ``n_views`` (T, J), ``covariance`` (T, J, 3, 3).
    """

    xyz: np.ndarray
    joint_names: tuple[str, ...]
    fps: float
    quality: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        xyz = np.asarray(self.xyz, dtype=np.float64)
        if xyz.ndim != 3 or xyz.shape[-1] != 3:
            raise ValueError(f"xyz must be (T, J, 3), got {xyz.shape}")
        joints = tuple(str(j) for j in self.joint_names)
        if len(joints) != xyz.shape[1]:
            raise ValueError(f"xyz has {xyz.shape[1]} joints but {len(joints)} joint names were given")
        if len(set(joints)) != len(joints):
            raise ValueError(f"joint names must be unique, got {list(joints)}")
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        quality = {}
        for key, value in dict(self.quality or {}).items():
            array = np.asarray(value)
            if array.shape[:2] != xyz.shape[:2]:
                raise ValueError(f"quality {key!r} must start with (T, J) = {xyz.shape[:2]}, got {array.shape}")
            quality[str(key)] = array
        object.__setattr__(self, "xyz", xyz)
        object.__setattr__(self, "joint_names", joints)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "quality", quality)

    @property
    def num_frames(self) -> int:
        return self.xyz.shape[0]

    @property
    def num_joints(self) -> int:
        return self.xyz.shape[1]


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".npz", ".trc", ".c3d"):
        return suffix[1:]
    raise FileFormatError(f"{path}: unknown 3D file type {suffix!r} (expected .npz, .trc or .c3d)")


def write_points3d(path: str | Path, points: Points3D) -> Path:
    """Write 3D joints by extension (.npz, .trc, .c3d), temp file then rename; returns the path."""
    path = Path(path)
    writer = {"npz": _write_npz, "trc": _write_trc, "c3d": _write_c3d}[_format_of(path)]
    with atomic_path(path) as tmp:
        writer(tmp, points)
    return path


def read_points3d(path: str | Path) -> Points3D:
    """Read 3D joints by extension (.npz, .trc, .c3d) into metres in our world frame (Z up)."""
    path = Path(path)
    kind = _format_of(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    return {"npz": _read_npz, "trc": _read_trc, "c3d": _read_c3d}[kind](path)


# --- NPZ -------------------------------------------------------------------------------------------

def _write_npz(path: Path, points: Points3D) -> None:
    arrays = {"xyz": points.xyz, "joint_names": np.array(points.joint_names, dtype=str), "fps": np.float64(points.fps)}
    arrays.update({f"quality_{k}": v for k, v in points.quality.items()})
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _read_npz(path: Path) -> Points3D:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable NPZ file ({exc})") from None
    with data:
        for key in ("xyz", "joint_names", "fps"):
            if key not in data.files:
                raise FileFormatError(f"{path}: missing array {key!r} (found: {', '.join(data.files)})")
        quality = {k[len("quality_"):]: data[k] for k in data.files if k.startswith("quality_")}
        try:
            return Points3D(data["xyz"], tuple(data["joint_names"].tolist()), float(data["fps"]), quality)
        except ValueError as exc:
            raise FileFormatError(f"{path}: {exc}") from None


# --- TRC -------------------------------------------------------------------------------------------

def _write_trc(path: Path, points: Points3D) -> None:
    from reconstruction.skeleton import marker_name

    T, J = points.num_frames, points.num_joints
    xyz = world_to_trc(points.xyz).reshape(T, 3 * J)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{points.fps:g}\t{points.fps:g}\t{T}\t{J}\tm\t{points.fps:g}\t1\t{T}",
        "Frame#\tTime\t" + "\t\t\t".join(marker_name(n) for n in points.joint_names) + "\t\t",
        "\t\t" + "\t".join(f"X{j + 1}\tY{j + 1}\tZ{j + 1}" for j in range(J)),
        "",
    ]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
        for t in range(T):
            values = "\t".join("NaN" if not np.isfinite(v) else repr(float(v)) for v in xyz[t])
            f.write(f"{t + 1}\t{t / points.fps!r}\t{values}\n")


def _read_trc(path: Path) -> Points3D:
    from reconstruction.skeleton import canonical_joint_name

    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror})") from None
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise FileFormatError(f"{path}: not a TRC file (the first line must start with 'PathFileType')")
    keys = lines[1].split("\t")
    values = lines[2].split("\t")
    header = {k.strip(): v.strip() for k, v in zip(keys, values)}
    try:
        fps = float(header.get("DataRate") or header["CameraRate"])
    except (KeyError, ValueError):
        raise FileFormatError(f"{path}: header field 'DataRate' missing or not a number") from None
    units = header.get("Units", "m").lower()
    if units not in _UNIT_SCALE:
        raise FileFormatError(f"{path}: header field 'Units' is {units!r}, expected one of {', '.join(_UNIT_SCALE)}")
    names = [n.strip() for n in lines[3].split("\t")[2:] if n.strip()]
    if not names:
        raise FileFormatError(f"{path}: no marker names on line 4")
    J = len(names)
    rows = []
    for number, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")[2:2 + 3 * J]
        fields += [""] * (3 * J - len(fields))
        try:
            rows.append([float(v) if v.strip() else np.nan for v in fields])
        except ValueError:
            raise FileFormatError(f"{path}: line {number} holds a value that is not a number") from None
    xyz = np.array(rows, dtype=np.float64).reshape(len(rows), J, 3) * _UNIT_SCALE[units]
    canonical = [canonical_joint_name(n) for n in names]
    try:
        return Points3D(trc_to_world(xyz), tuple(canonical), fps)
    except ValueError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


# --- C3D -------------------------------------------------------------------------------------------

def _write_c3d(path: Path, points: Points3D) -> None:
    import ezc3d

    T, J = points.num_frames, points.num_joints
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [points.fps]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(points.joint_names)
    c3d["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    data = np.ones((4, J, T))
    mm = np.transpose(points.xyz, (2, 1, 0)) * 1000.0  # (3, J, T)
    missing = ~np.all(np.isfinite(mm), axis=0)
    data[:3] = np.where(missing, 0.0, mm)
    residuals = np.where(missing, -1.0, 0.0)[None]  # C3D: a negative residual marks an invalid point
    c3d["data"]["points"] = data
    c3d["data"]["meta_points"]["residuals"] = residuals
    c3d["data"]["meta_points"]["camera_masks"] = np.zeros((7, J, T), dtype=bool)
    c3d.write(str(path))


def _read_c3d(path: Path) -> Points3D:
    import ezc3d

    from reconstruction.skeleton import canonical_joint_name

    try:
        c3d = ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises plain RuntimeError/IOError on bad files
        raise FileFormatError(f"{path}: not a readable C3D file ({exc})") from None
    point = c3d["parameters"]["POINT"]
    units = (point["UNITS"]["value"] or ["mm"])[0].strip().lower() if "UNITS" in point else "mm"
    if units not in _UNIT_SCALE:
        raise FileFormatError(f"{path}: POINT:UNITS is {units!r}, expected one of {', '.join(_UNIT_SCALE)}")
    names = [str(n).strip() for n in point["LABELS"]["value"]]
    fps = float(np.ravel(point["RATE"]["value"])[0])
    data = np.asarray(c3d["data"]["points"], dtype=np.float64)[:3]  # (3, J, T)
    residuals = np.asarray(c3d["data"]["meta_points"]["residuals"], dtype=np.float64)[0]  # (J, T)
    data = np.where(residuals[None] < 0, np.nan, data)
    xyz = np.transpose(data, (2, 1, 0)) * _UNIT_SCALE[units]
    names = names[: xyz.shape[1]]
    try:
        return Points3D(xyz, tuple(canonical_joint_name(n) for n in names), fps)
    except ValueError as exc:
        raise FileFormatError(f"{path}: {exc}") from None
