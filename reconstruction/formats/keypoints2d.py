"""2D keypoint files: our NPZ and OpenPose JSON folders.

Shapes: ``T`` frames, ``V`` views, ``J`` joints. Keypoints are ``(T, V, J, 3)`` = x, y, score in
pixels of the distorted image. A missing joint is NaN in all three channels (x, y and score):
OpenPose writes ``0, 0, 0`` for a joint it did not find, and we turn that into NaN so that no
stage mistakes the image corner for a detection.

Our NPZ holds ``keypoints2d`` (T, V, J, 3) float, ``cameras`` (V,) str, ``joint_names`` (J,) str
and ``fps`` () float. An OpenPose root holds one sub-folder per camera (``cam01_json`` ->
camera ``cam01``), one JSON file per frame, several people per file.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError
from capture.names import match_names

log = logging.getLogger(__name__)

# Default skeleton for an OpenPose file by its joint count (25 is BODY_25B: Pose2Sim's default).
_DEFAULT_SKELETON_BY_COUNT = {25: "body25b", 17: "coco17", 26: "halpe26", 33: "blazepose33", 16: "mpii16"}


@dataclass(frozen=True, eq=False)
class Keypoints2D:
    """2D keypoints of one person in every view.

    Attributes:
        keypoints: (T, V, J, 3) float64 x, y, score; NaN where missing.
        cameras: (V,) camera names, the view order of ``keypoints`` (match them to the rig's names).
        joint_names: (J,) joint names of the skeleton.
        fps: frames per second (> 0).
    """

    keypoints: np.ndarray
    cameras: tuple[str, ...]
    joint_names: tuple[str, ...]
    fps: float

    def __post_init__(self):
        kp = np.asarray(self.keypoints, dtype=np.float64)
        if kp.ndim != 4 or kp.shape[-1] != 3:
            raise ValueError(f"keypoints must be (T, V, J, 3), got {kp.shape}")
        cameras = tuple(str(c) for c in self.cameras)
        joints = tuple(str(j) for j in self.joint_names)
        if len(cameras) != kp.shape[1]:
            raise ValueError(f"keypoints have {kp.shape[1]} views but {len(cameras)} camera names were given")
        if len(joints) != kp.shape[2]:
            raise ValueError(f"keypoints have {kp.shape[2]} joints but {len(joints)} joint names were given")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"camera names must be unique, got {list(cameras)}")
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "cameras", cameras)
        object.__setattr__(self, "joint_names", joints)
        object.__setattr__(self, "fps", fps)

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]

    @property
    def num_views(self) -> int:
        return self.keypoints.shape[1]

    @property
    def num_joints(self) -> int:
        return self.keypoints.shape[2]

    def select_cameras(self, names: Sequence[str]) -> "Keypoints2D":
        """Views reordered to ``names`` (e.g. a rig's order); names are matched exactly, then loosely
        (case, separators and a trailing ``_json`` ignored). FileFormatError lists what is missing."""
        order = _match_names(list(self.cameras), list(names), "keypoints")
        return replace(self, keypoints=self.keypoints[:, order], cameras=tuple(names))


class OpenPoseReadError(FileFormatError):
    """A JSON file in an OpenPose folder is unreadable. ``partial`` holds the frames before it
    (a Keypoints2D, or None when the very first frame is bad); ``path`` names the bad file."""

    def __init__(self, message: str, path: Path, partial: Keypoints2D | None):
        super().__init__(message)
        self.path = path
        self.partial = partial


def _match_names(have: list[str], want: list[str], what: str) -> list[int]:
    """Index into ``have`` of each name in ``want`` (:func:`capture.names.match_names`)."""
    order, missing = match_names(want, have)
    if missing:
        raise FileFormatError(
            f"{what}: no views for camera(s) {', '.join(missing)} (views found: {', '.join(have)}); "
            "rename the folders or pass the matching camera names"
        )
    return order


def _atomic_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def write_keypoints2d(path: str | Path, kp: Keypoints2D) -> Path:
    """Write our NPZ (temp file then rename); returns the path."""
    path = Path(path)
    _atomic_npz(
        path,
        {
            "keypoints2d": kp.keypoints,
            "cameras": np.array(kp.cameras, dtype=str),
            "joint_names": np.array(kp.joint_names, dtype=str),
            "fps": np.float64(kp.fps),
        },
    )
    return path


def _read_npz(path: Path) -> Keypoints2D:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable NPZ file ({exc})") from None
    with data:
        for key in ("keypoints2d", "cameras", "joint_names", "fps"):
            if key not in data.files:
                raise FileFormatError(f"{path}: missing array {key!r} (found: {', '.join(data.files)})")
        try:
            return Keypoints2D(
                data["keypoints2d"], tuple(data["cameras"].tolist()), tuple(data["joint_names"].tolist()),
                float(data["fps"]),
            )
        except ValueError as exc:
            raise FileFormatError(f"{path}: {exc}") from None


def _natural_key(path: Path):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def _camera_folders(root: Path) -> list[tuple[str, Path]]:
    subdirs = sorted((p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json"))), key=_natural_key)
    if subdirs:
        return [(re.sub(r"_json$", "", p.name, flags=re.IGNORECASE), p) for p in subdirs]
    if any(root.glob("*.json")):  # a single camera's folder
        return [(re.sub(r"_json$", "", root.name, flags=re.IGNORECASE), root)]
    raise FileFormatError(f"{root}: no OpenPose JSON files (expected one sub-folder of *.json per camera)")


def _read_openpose_file(path: Path, num_joints: int | None, person: int | None) -> np.ndarray:
    """One OpenPose JSON -> (J, 3) of the chosen person (NaN where missing); J from the file if None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        people = data["people"]
        # Pose2Sim's association writes an empty person ``{}`` where it kept nobody: no person.
        poses = [np.asarray(p["pose_keypoints_2d"], dtype=np.float64) for p in people if p.get("pose_keypoints_2d")]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FileFormatError(f"{path}: not a valid OpenPose JSON file ({what})") from None
    if not poses:
        return np.full((num_joints or 0, 3), np.nan)
    for pose in poses:
        if pose.ndim != 1 or pose.size % 3 or (num_joints is not None and pose.size != 3 * num_joints):
            expected = f"{3 * num_joints} values" if num_joints else "a multiple of 3 values"
            raise FileFormatError(f"{path}: pose_keypoints_2d has {pose.size} values, expected {expected}")
    poses_arr = np.stack([p.reshape(-1, 3) for p in poses])  # (P, J, 3)
    if person is not None:
        if person >= len(poses_arr):
            return np.full(poses_arr.shape[1:], np.nan)
        chosen = poses_arr[person]
    else:
        chosen = poses_arr[np.argmax(poses_arr[:, :, 2].mean(axis=1))]
    chosen = chosen.copy()
    chosen[chosen[:, 2] <= 0] = np.nan  # OpenPose writes 0, 0, 0 for a joint it did not find
    return chosen


def _read_view_files(files: list[list[Path]], num_joints: int | None, person: int | None):
    """(T, V, J, 3) keypoints of the views' JSON files, frame by frame, stopping at the first
    unreadable file: (keypoints or None when no file holds a person and none failed, the error or
    None, the bad file or None)."""
    frames: list[list] = []  # each V poses (J, 3) or None
    error: FileFormatError | None = None
    bad_path = None
    for t in range(max(len(f) for f in files)):
        views = []
        try:
            for view_files in files:
                if t < len(view_files):
                    pose = _read_openpose_file(view_files[t], num_joints, person)
                    if num_joints is None and pose.shape[0]:
                        num_joints = pose.shape[0]
                    views.append(pose)
                else:
                    views.append(None)
        except FileFormatError as exc:
            error, bad_path = exc, view_files[t]
            break
        frames.append(views)
    if num_joints is None:
        if error is None:
            return None, None, None
        num_joints = 0
    kp = np.full((len(frames), len(files), num_joints, 3), np.nan)
    for t, views in enumerate(frames):
        for v, pose in enumerate(views):
            if pose is not None and pose.shape[0] == num_joints:
                kp[t, v] = pose
    return kp, error, bad_path


def _default_joint_names(root: Path, num_joints: int) -> tuple[str, ...]:
    """The joint names of the built-in skeleton with ``num_joints`` joints (25 -> body25b)."""
    from reconstruction.skeleton import load_skeleton

    name = _DEFAULT_SKELETON_BY_COUNT.get(num_joints)
    if name is None and num_joints:
        raise FileFormatError(
            f"{root}: OpenPose files have {num_joints} joints and no built-in skeleton has that many; "
            "pass a skeleton (--skeleton NAME or a skeleton YAML)"
        )
    if name:
        log.info("%s: %d joints per person, read as skeleton %s", root, num_joints, name)
    return tuple(load_skeleton(name).joint_names) if name else ()


def read_openpose_folder(
    root: str | Path,
    skeleton=None,
    cameras: Sequence[str] | None = None,
    fps: float | None = None,
    person: int | None = None,
    on_error: Literal["raise", "stop"] = "raise",
) -> Keypoints2D:
    """Read an OpenPose JSON root (one sub-folder per camera, one file per frame).

    Frame ``f`` of a view is its ``f``-th file in natural name order; views with fewer files are
    padded with NaN. Per frame the person with the highest mean score is kept unless ``person``
    (an index into ``people``) is given. ``skeleton`` (a Skeleton or a name) gives the joint
    names; by default it follows the joint count (25 -> body25b). ``cameras`` reorders the views
    to those names (e.g. the rig's). ``fps`` defaults to 30 with a warning.

    A corrupt file: with ``on_error='raise'`` an :class:`OpenPoseReadError` naming the file, whose
    ``partial`` holds every frame before it; with ``'stop'`` those frames are returned (warning logged).
    """
    from reconstruction.skeleton import Skeleton, load_skeleton

    root = Path(root)
    if not root.is_dir():
        raise FileFormatError(f"{root}: not a folder of OpenPose JSON files")
    folders = _camera_folders(root)
    if isinstance(skeleton, (str, Path)):
        skeleton = load_skeleton(skeleton)
    num_joints = skeleton.num_joints if isinstance(skeleton, Skeleton) else None
    files = [sorted(folder.glob("*.json"), key=_natural_key) for _, folder in folders]
    if fps is None:
        log.warning("%s: OpenPose files carry no frame rate; assuming 30 fps (pass fps=...)", root)
        fps = 30.0
    kp, error, bad_path = _read_view_files(files, num_joints, person)
    if kp is None:
        raise FileFormatError(f"{root}: no person in any OpenPose file, cannot tell the joint count")
    num_joints = kp.shape[2]
    joint_names = skeleton.joint_names if skeleton is not None else _default_joint_names(root, num_joints)
    result = None
    if kp.shape[0] and num_joints:
        result = Keypoints2D(kp, tuple(name for name, _ in folders), joint_names, fps)
        if cameras is not None:
            result = result.select_cameras(list(cameras))
    if error is not None:
        kept = 0 if result is None else result.num_frames
        message = f"{error} (the {kept} frame(s) before it were read)"
        if on_error == "stop":
            log.warning("%s; stopping there", message)
            if result is None:
                raise OpenPoseReadError(message, bad_path, None)
            return result
        raise OpenPoseReadError(message, bad_path, result)
    return result


def read_keypoints2d(
    path: str | Path,
    skeleton=None,
    cameras: Sequence[str] | None = None,
    fps: float | None = None,
    person: int | None = None,
) -> Keypoints2D:
    """Read 2D keypoints from our NPZ or an OpenPose JSON root (a folder).

    ``cameras`` reorders the views to those names (the rig's); ``fps`` overrides the file's frame
    rate; ``skeleton`` and ``person`` apply to OpenPose folders (see :func:`read_openpose_folder`).
    """
    path = Path(path)
    if path.is_dir():
        return read_openpose_folder(path, skeleton=skeleton, cameras=cameras, fps=fps, person=person)
    if not path.exists():
        raise FileFormatError(f"{path}: file not found")
    if path.suffix.lower() != ".npz":
        raise FileFormatError(f"{path}: unknown 2D keypoint format (expected our .npz or an OpenPose JSON folder)")
    kp = _read_npz(path)
    if skeleton is not None:
        from reconstruction.skeleton import Skeleton, load_skeleton

        skel = skeleton if isinstance(skeleton, Skeleton) else load_skeleton(skeleton)
        if tuple(skel.joint_names) != kp.joint_names:
            raise FileFormatError(
                f"{path}: joint names do not match skeleton {skel.name!r} "
                f"(file: {len(kp.joint_names)} joints starting {', '.join(kp.joint_names[:3])})"
            )
    if cameras is not None:
        kp = kp.select_cameras(list(cameras))
    if fps is not None:
        kp = replace(kp, fps=fps)
    return kp
