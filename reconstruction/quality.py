"""Quality of a 3D sequence without ground truth, as plain dicts ready for JSON.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` bones. :func:`quality_report` is the body of a
reconstruction's ``quality.json`` (completeness, reprojection error per camera against the 2D,
bone-length spread, depth vs triangulation); :func:`sequence_quality` adds, under
``sequence_quality``, figures of the motion itself:

- bone-length standard deviation per bone (mm): a rigid bone's length should not change, so its
  spread measures noise and mislabelled frames;
- reprojection error (px) over the views used: mean, median, 95th percentile, per joint;
- jitter per joint: median magnitude of the acceleration ``(X[t-1] - 2 X[t] + X[t+1]) * fps^2`` (m/s^2)
  - high values flag noise, since real human joints rarely exceed ~10-20 m/s^2 for long;
- completeness (fraction of (frame, joint) with a position) overall and per joint.
"""
from __future__ import annotations

import numpy as np

from calibration.camera import Rig
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.skeleton import Skeleton


def _f(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _nan_stat(func, values, *args, **kwargs):
    """``func(values, ...)`` (a NaN-aware statistic) without the all-NaN warnings."""
    with quiet_nan_warnings():
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


def _r6(x) -> float | None:
    x = float(x)
    return round(x, 6) if np.isfinite(x) else None


def reprojection_errors(xyz: np.ndarray, keypoints2d: np.ndarray, rig: Rig, min_score: float = 0.3) -> np.ndarray:
    """(T, V, J) pixel distance between each 2D detection with score >= ``min_score`` and the 3D
    joint reprojected into that view; NaN where either is missing."""
    uv = np.moveaxis(rig.project(xyz), -2, 1)  # (T, V, J, 2)
    err = np.linalg.norm(uv - keypoints2d[..., :2], axis=-1)
    with np.errstate(invalid="ignore"):
        return np.where(keypoints2d[..., 2] >= min_score, err, np.nan)


def quality_report(
    xyz: np.ndarray,
    keypoints2d: np.ndarray,
    rig: Rig,
    skeleton: Skeleton,
    fps: float,
    disagreement_m: np.ndarray | None = None,
    depth_only_joints: int = 0,
    min_score: float = 0.3,
    extra: dict | None = None,
) -> dict:
    """Quality figures of a reconstruction, as a JSON-ready dict.

    - completeness: fraction of (frame, joint) with a 3D point, overall and per joint;
    - reprojection error (px) per camera: median and mean over detections with score >= ``min_score``;
    - bone-length standard deviation (m) per rigid bone and its median;
    - depth vs triangulation disagreement (m) per joint: median over frames (when depth was fused).
    """
    T, J, _ = xyz.shape
    finite = np.all(np.isfinite(xyz), axis=-1)
    err = reprojection_errors(xyz, keypoints2d, rig, min_score)
    per_camera = {
        cam.name: {
            "median_px": _r6(_nan_stat(np.nanmedian, err[:, v])) if np.isfinite(err[:, v]).any() else None,
            "mean_px": _r6(_nan_stat(np.nanmean, err[:, v])) if np.isfinite(err[:, v]).any() else None,
            "detections": int(np.isfinite(err[:, v]).sum()),
        }
        for v, cam in enumerate(rig.cameras)
    }
    lengths = skeleton.bone_lengths(xyz)  # (T, B)
    std = _nan_stat(np.nanstd, lengths, axis=0) if T else np.full(len(skeleton.bones), np.nan)
    rigid = skeleton.rigid_mask
    report = {
        "frames": int(T),
        "fps": float(fps),
        "joints": list(skeleton.joint_names),
        "completeness": _r6(finite.mean()) if finite.size else 0.0,
        "completeness_per_joint": {n: _r6(finite[:, j].mean()) for j, n in enumerate(skeleton.joint_names)}
        if T else {},
        "reprojection_error_px": {
            "median": _r6(_nan_stat(np.nanmedian, err)) if np.isfinite(err).any() else None,
            "mean": _r6(_nan_stat(np.nanmean, err)) if np.isfinite(err).any() else None,
            "min_score": min_score,
            "per_camera": per_camera,
        },
        "bone_length_std_m": {
            "median_rigid": _r6(_nan_stat(np.nanmedian, std[rigid])) if rigid.any() else None,
            "per_bone": {f"{a}-{b}": _r6(s) for (a, b), s in zip(skeleton.bones, std)},
        },
    }
    if disagreement_m is not None:
        report["depth_vs_triangulation_m"] = {
            "median": _r6(_nan_stat(np.nanmedian, disagreement_m)) if np.isfinite(disagreement_m).any() else None,
            "per_joint": {n: _r6(_nan_stat(np.nanmedian, disagreement_m[:, j])) if np.isfinite(
                disagreement_m[:, j]).any() else None for j, n in enumerate(skeleton.joint_names)},
            "depth_only_joint_frames": int(depth_only_joints),
        }
    if extra:
        report.update(extra)
    return report
