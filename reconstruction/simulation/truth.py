"""The ground truth of a simulated session: one file layout, one writer, one reader.

``ground_truth.npz`` (no pickled objects): ``xyz`` (T, J, 3) world metres, ``keypoints2d`` (T, V, J, 3)
true 2D (score 1 visible, 0 occluded), ``joint_names`` (J,), ``cameras`` (V,), ``timestamps_ms``
(T, V) as recorded (NaN where a camera has no frame), ``clock_offsets_ms`` (V,), ``frame_numbers``
(T,), ``fps``, ``depth_scale``; writers may add more arrays (``joint_radius_m``, the live loop's
``loop_xyz`` / ``loop_keypoints2d``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError

REQUIRED = ("xyz", "keypoints2d", "joint_names", "cameras", "timestamps_ms", "fps")


def write_ground_truth(path: str | Path, *, xyz: np.ndarray, keypoints2d: np.ndarray, joint_names, cameras,
                       timestamps_ms: np.ndarray, clock_offsets_ms: np.ndarray, frame_numbers: np.ndarray,
                       fps: float, depth_scale: float, **extra: np.ndarray) -> Path:
    """Write ``ground_truth.npz`` (compressed, temp file then rename); returns the path."""
    arrays = dict(xyz=np.asarray(xyz, dtype=np.float64), keypoints2d=np.asarray(keypoints2d, dtype=np.float64),
                  joint_names=np.array([str(j) for j in joint_names]), cameras=np.array([str(c) for c in cameras]),
                  timestamps_ms=np.asarray(timestamps_ms, dtype=np.float64),
                  clock_offsets_ms=np.asarray(clock_offsets_ms, dtype=np.float64),
                  frame_numbers=np.asarray(frame_numbers, dtype=np.int64), fps=np.float64(fps),
                  depth_scale=np.float64(depth_scale), **{k: np.asarray(v) for k, v in extra.items()})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return Path(path)


def is_ground_truth(files) -> bool:
    """True when the NPZ member names ``files`` are a simulator ground truth's."""
    return all(k in files for k in REQUIRED)


def load_ground_truth(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``ground_truth.npz``; FileFormatError naming the file and what is missing."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise FileFormatError(f"{path}: not a readable ground-truth NPZ ({exc})") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise FileFormatError(f"{path}: not a simulator ground truth (missing {', '.join(missing)})")
    return arrays
