"""Comparing a reconstruction with a reference: ground truth (the simulator's) or another tool's 3D.

Shapes: ``T`` frames, ``J`` joints. Only for evaluation (the demo, benchmarks, tests): a
reconstruction's own report needs no reference (:mod:`reconstruction.quality`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.nan_warnings import quiet_nan_warnings
from reconstruction.skeleton import Skeleton, canonical_joint_name


@dataclass(frozen=True, eq=False)
class PositionError:
    """Per-joint position errors of a (T, J, 3) reconstruction against a reference (metres).

    Attributes:
        errors_m: (T, J) distances, NaN where either is missing.
    """

    errors_m: np.ndarray

    @property
    def mean_m(self) -> float:
        """MPJPE: the mean over every (frame, joint) both have."""
        with quiet_nan_warnings():
            return float(np.nanmean(self.errors_m))

    @property
    def median_m(self) -> float:
        with quiet_nan_warnings():
            return float(np.nanmedian(self.errors_m))


def position_error(xyz: np.ndarray, reference: np.ndarray) -> PositionError:
    """Distances between ``xyz`` and ``reference`` (both (T, J, 3) metres) over their common frames."""
    n = min(len(xyz), len(reference))
    return PositionError(np.linalg.norm(np.asarray(xyz)[:n] - np.asarray(reference)[:n], axis=-1))


def distance_to_reference(xyz: np.ndarray, skeleton: Skeleton, trc_path: str | Path, max_shift: int = 2) -> dict | None:
    """Median distance (m) between our joints and a reference TRC's joints of the same canonical name,
    at the frame shift (within +-max_shift) where it is smallest; None without common joints.
    Returns {"median_m", "shift" (the reference's frame index minus ours), "joints" (how many)}."""
    from reconstruction.formats.points3d import read_points3d

    ref = read_points3d(trc_path)
    ref_names = [canonical_joint_name(n) for n in ref.joint_names]
    pairs = [(j, ref_names.index(n)) for j, n in enumerate(skeleton.joint_names) if n in ref_names]
    if not pairs:
        return None
    ours = xyz[:, [a for a, _ in pairs]]
    theirs = ref.xyz[:, [b for _, b in pairs]]
    best = None
    for shift in range(-max_shift, max_shift + 1):  # a handful of shifts
        a = ours[max(shift, 0):]
        b = theirs[max(-shift, 0):]
        n = min(len(a), len(b))
        d = np.linalg.norm(a[:n] - b[:n], axis=-1)
        with quiet_nan_warnings():
            med = float(np.nanmedian(d)) if np.isfinite(d).any() else np.inf
        if best is None or med < best["median_m"]:
            best = {"median_m": med, "shift": -shift, "joints": len(pairs)}
    return best
