"""Joint-angle tables: CSV and NPZ, a read/write pair each.

Shapes: ``T`` frames, ``A`` angles. A table is ``degrees`` (T, A), NaN where an angle is undefined,
with its column ``names`` and ``fps``.

- CSV: a header ``frame,time_s,<name>,...`` then one row per frame; missing values are empty.
- NPZ: ``angles_deg`` (T, A), ``angle_names`` (A,), ``fps`` (); plus whatever other arrays the
  writer is given (e.g. the OpenSim coordinates), read back in ``extra``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError


@dataclass(frozen=True, eq=False)
class JointAngles:
    """A table of joint angles: ``degrees`` (T, A), NaN where undefined; ``names`` (A,); ``fps``;
    ``extra``: other arrays stored with it in the NPZ."""

    degrees: np.ndarray
    names: tuple[str, ...]
    fps: float
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        deg = np.asarray(self.degrees, dtype=np.float64)
        names = tuple(str(n) for n in self.names)
        if deg.ndim != 2 or deg.shape[1] != len(names):
            raise ValueError(f"degrees must be (T, {len(names)}), got {deg.shape}")
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        object.__setattr__(self, "degrees", deg)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "fps", fps)

    @property
    def num_frames(self) -> int:
        return self.degrees.shape[0]

    def column(self, name: str) -> np.ndarray:
        """(T,) one angle by name."""
        try:
            return self.degrees[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no angle {name!r} (angles: {', '.join(self.names)})") from None


def write_joint_angles(path: str | Path, angles: JointAngles) -> Path:
    """Write a table by extension (.csv, .npz): temporary file, then renamed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise FileFormatError(f"{path}: unknown joint-angle file type {suffix!r} (expected .csv or .npz)")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(("frame", "time_s") + angles.names)
                for t, row in enumerate(angles.degrees):
                    writer.writerow([t, f"{t / angles.fps:.9f}"] + ["" if not np.isfinite(v) else f"{v:.4f}" for v in row])
        else:
            arrays = {"angles_deg": angles.degrees, "angle_names": np.array(angles.names, dtype=str),
                      "fps": np.float64(angles.fps)}
            arrays.update({k: np.asarray(v) for k, v in angles.extra.items()})
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
    return path


def read_joint_angles(path: str | Path) -> JointAngles:
    """Read a table written by :func:`write_joint_angles`."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    if path.suffix.lower() == ".npz":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"{path}: not a readable NPZ file ({exc})") from None
        with data:
            for key in ("angles_deg", "angle_names", "fps"):
                if key not in data.files:
                    raise FileFormatError(f"{path}: missing array {key!r} (found: {', '.join(data.files)})")
            extra = {k: data[k] for k in data.files if k not in ("angles_deg", "angle_names", "fps")}
            return JointAngles(data["angles_deg"], tuple(data["angle_names"].tolist()), float(data["fps"]), extra)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:2] != ["frame", "time_s"]:
        raise FileFormatError(f"{path}: the header must start with 'frame,time_s'")
    names = tuple(rows[0][2:])
    try:
        values = np.array([[float(v) if v else np.nan for v in r[2:]] for r in rows[1:]], dtype=np.float64)
        times = np.array([float(r[1]) for r in rows[1:]])
    except ValueError:
        raise FileFormatError(f"{path}: a value is not a number") from None
    fps = (len(times) - 1) / float(times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 1.0
    return JointAngles(values.reshape(len(rows) - 1, len(names)), names, fps)
