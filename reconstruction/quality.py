"""Quality of a 3D sequence without ground truth, as a plain dict ready for JSON.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` bones. Written next to every 3D output:

- bone-length standard deviation per bone (mm): a rigid bone's length should not change, so its
  spread measures noise and mislabelled frames;
- reprojection error (px) over the views used: mean, median, 95th percentile, per joint;
- jitter per joint: median magnitude of the acceleration ``(X[t-1] - 2 X[t] + X[t+1]) * fps^2`` (m/s^2)
  - high values flag noise, since real human joints rarely exceed ~10-20 m/s^2 for long;
- completeness (fraction of (frame, joint) with a position) overall and per joint.
"""
from __future__ import annotations

import warnings

import numpy as np

from reconstruction.skeleton import Skeleton


def _f(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _nan_stat(func, values, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(values, *args, **kwargs)


def sequence_quality(
    xyz: np.ndarray,
    skeleton: Skeleton,
    fps: float,
    reproj_error_px: np.ndarray | None = None,
    n_views: np.ndarray | None = None,
) -> dict:
    """Quality figures of a (T, J, 3) metre sequence; ``reproj_error_px`` and ``n_views`` are (T, J).

    Every number is a float or None (NaN), so ``json.dumps`` takes the result as it is.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    T, J, _ = xyz.shape
    if J != skeleton.num_joints:
        raise ValueError(f"xyz has {J} joints but skeleton {skeleton.name!r} has {skeleton.num_joints}")
    names = skeleton.joint_names
    finite = np.all(np.isfinite(xyz), axis=-1)
    out: dict = {
        "frames": int(T),
        "joints": int(J),
        "fps": float(fps),
        "completeness": _f(finite.mean()) if finite.size else None,
        "completeness_per_joint": {n: _f(finite[:, j].mean()) if T else None for j, n in enumerate(names)},
    }

    lengths = skeleton.bone_lengths(xyz)  # (T, B)
    std = _nan_stat(np.nanstd, lengths, axis=0) * 1000 if T else np.full(len(skeleton.bones), np.nan)
    mean = _nan_stat(np.nanmean, lengths, axis=0) * 1000 if T else np.full(len(skeleton.bones), np.nan)
    rigid = skeleton.rigid_mask
    out["bone_length_mm"] = {
        f"{a}-{b}": {"mean": _f(m), "std": _f(s), "rigid": bool(r)}
        for (a, b), m, s, r in zip(skeleton.bones, mean, std, rigid)
    }
    out["bone_length_std_mm"] = {
        "mean_rigid": _f(_nan_stat(np.nanmean, std[rigid])) if rigid.any() else None,
        "max_rigid": _f(_nan_stat(np.nanmax, std[rigid])) if rigid.any() and np.isfinite(std[rigid]).any() else None,
    }

    if reproj_error_px is not None:
        err = np.asarray(reproj_error_px, dtype=np.float64)
        valid = err[np.isfinite(err)]
        out["reprojection_error_px"] = {
            "mean": _f(valid.mean()) if valid.size else None,
            "median": _f(np.median(valid)) if valid.size else None,
            "p95": _f(np.percentile(valid, 95)) if valid.size else None,
            "per_joint_median": {n: _f(_nan_stat(np.nanmedian, err[:, j])) for j, n in enumerate(names)},
        }
    if n_views is not None:
        nv = np.asarray(n_views, dtype=np.float64)
        out["views_used_mean"] = _f(nv.mean()) if nv.size else None

    acc = np.linalg.norm(xyz[:-2] - 2 * xyz[1:-1] + xyz[2:], axis=-1) * fps * fps if T >= 3 else np.full((0, J), np.nan)
    per_joint = _nan_stat(np.nanmedian, acc, axis=0) if T >= 3 else np.full(J, np.nan)
    out["jitter_m_s2"] = {
        "median": _f(_nan_stat(np.nanmedian, acc)) if T >= 3 else None,
        "p95": _f(_nan_stat(np.nanpercentile, acc, 95)) if T >= 3 and np.isfinite(acc).any() else None,
        "per_joint_median": {n: _f(v) for n, v in zip(names, per_joint)},
    }
    return out
