"""How far a joint centre lies behind the skin a depth camera sees, per joint.

Shapes: ``T`` frames, ``V`` views, ``J`` joints. A depth pixel measures the visible surface; the
joint centre is inside the limb, about half its thickness further along the viewing ray. The
anthropometric table is the prior; :func:`estimate_joint_offsets` measures each joint's offset from
the data where the triangulation is reliable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from capture.nan_warnings import quiet_nan_warnings
from reconstruction.depth.config import DepthFusionConfig

# Distance (m) from the visible skin to the joint centre, seen from the front, for adults: about
# half the limb's thickness at the joint (hip and trunk joints are deep, wrists and face shallow).
ANTHROPOMETRIC_OFFSETS_M = {
    "nose": 0.01,
    "left_eye": 0.01,
    "right_eye": 0.01,
    "left_ear": 0.01,
    "right_ear": 0.01,
    "head": 0.08,
    "head_top": 0.02,
    "neck": 0.05,
    "left_shoulder": 0.05,
    "right_shoulder": 0.05,
    "left_elbow": 0.035,
    "right_elbow": 0.035,
    "left_wrist": 0.025,
    "right_wrist": 0.025,
    "mid_hip": 0.10,
    "hip": 0.10,
    "left_hip": 0.08,
    "right_hip": 0.08,
    "left_knee": 0.05,
    "right_knee": 0.05,
    "left_ankle": 0.035,
    "right_ankle": 0.035,
    "left_heel": 0.02,
    "right_heel": 0.02,
    "left_big_toe": 0.015,
    "right_big_toe": 0.015,
    "left_small_toe": 0.015,
    "right_small_toe": 0.015,
}


def joint_offsets(joint_names: Sequence[str], cfg: DepthFusionConfig) -> np.ndarray:
    """(J,) offsets in metres for ``joint_names`` (canonicalized) from the config or the table."""
    from reconstruction.skeleton import canonical_joint_name

    table = dict(cfg.joint_offsets_m) if cfg.joint_offsets_m else ANTHROPOMETRIC_OFFSETS_M
    table = {canonical_joint_name(k): float(v) for k, v in table.items()}
    return np.array([table.get(canonical_joint_name(n), cfg.default_offset_m) for n in joint_names])


def estimate_joint_offsets(
    surface: np.ndarray,
    triangulated: np.ndarray,
    rig,
    reliable: np.ndarray,
    prior_m: np.ndarray,
    cfg: DepthFusionConfig = DepthFusionConfig(),
) -> np.ndarray:
    """Per-joint offsets (J,) behind the surface from data: median over frames and views of the
    triangulated point's range minus the surface range, using (T, J) ``reliable`` triangulations
    only; joints with fewer than ``min_offset_samples`` samples keep ``prior_m`` (J,). Clipped to
    [-0.05, 0.2] m (a negative offset absorbs a bias of the depth sensor). How much the offset
    varies is measured by :func:`measure_depth_noise`.
    """
    centers = rig.centers  # (V, 3)
    r_surf = np.linalg.norm(surface - centers[None, :, None, :], axis=-1)  # (T, V, J)
    r_tri = np.linalg.norm(triangulated[:, None] - centers[None, :, None, :], axis=-1)
    diff = np.where(reliable[:, None, :], r_tri - r_surf, np.nan)
    with np.errstate(invalid="ignore"):
        # Gross mismatches (occluder in front, background) are not the offset.
        diff = np.where(np.abs(diff) < 0.3, diff, np.nan)
    flat = diff.reshape(-1, diff.shape[-1])
    enough = np.isfinite(flat).sum(axis=0) >= cfg.min_offset_samples
    with np.errstate(invalid="ignore"), quiet_nan_warnings():
        median = np.nanmedian(flat, axis=0)
    return np.where(enough, np.clip(median, -0.05, 0.2), prior_m)


def apply_offsets(surface: np.ndarray, rig, offsets_m: np.ndarray) -> np.ndarray:
    """Surface points (T, V, J, 3) moved by ``offsets_m`` (J,) along each view's ray -> (T, V, J, 3)."""
    centers = rig.centers[None, :, None, :]
    ray = surface - centers
    unit = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    return surface + offsets_m[None, None, :, None] * unit
