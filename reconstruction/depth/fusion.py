"""Fusion of triangulated joints with depth-lifted joints: inverse covariance, with gating.

Shapes: ``T`` frames, ``V`` views, ``J`` joints. Each depth point is gated by its Mahalanobis distance
to the triangulated point (a depth sample on an occluder or the background is dropped); a joint
that no RGB pair triangulated but an RGB-D view lifted is still reconstructed, metric, with its
covariance; a triangulation that every depth point rejects while two depth points agree is
overruled.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from calibration.camera import Rig
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.depth.config import DepthFusionConfig

if TYPE_CHECKING:
    from reconstruction.triangulation import Triangulation3D

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class FusionResult:
    """Triangulation fused with depth.

    Attributes:
        xyz: (T, J, 3) fused joints, world metres; NaN where neither source has the joint.
        covariance: (T, J, 3, 3) m^2 of ``xyz``.
        disagreement_m: (T, J) distance between the depth-only estimate (all valid depth points)
            and the triangulated point; NaN where either is missing.
        depth_used: (T, V, J) bool, depth points that passed the gate and were fused.
        n_depth: (T, J) number of depth points fused.
        depth_only: (T, J, 3) inverse-covariance fusion of the accepted depth points alone.
        depth_only_covariance: (T, J, 3, 3).
        depth_only_joints: number of (frame, joint) reconstructed from depth without triangulation.
    """

    xyz: np.ndarray
    covariance: np.ndarray
    disagreement_m: np.ndarray
    depth_used: np.ndarray
    n_depth: np.ndarray
    depth_only: np.ndarray
    depth_only_covariance: np.ndarray
    depth_only_joints: int


def _safe_inv(cov: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse of (..., 3, 3) where ``valid``, zero elsewhere (NaN-safe, no exceptions)."""
    eye = np.eye(3)
    filled = np.where(valid[..., None, None], np.nan_to_num(cov), eye)
    info = np.linalg.inv(filled)
    return np.where(valid[..., None, None], info, 0.0)


def _info_fuse(points: np.ndarray, info: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-covariance fusion along ``axis``: points (..., K, ..., 3), info (..., K, ..., 3, 3)."""
    total = info.sum(axis=axis)
    weighted = (info @ np.nan_to_num(points)[..., None])[..., 0].sum(axis=axis)
    ok = np.abs(np.linalg.det(total)) > 0
    cov = _safe_inv(total, ok)
    xyz = (cov @ weighted[..., None])[..., 0]
    xyz = np.where(ok[..., None], xyz, np.nan)
    cov = np.where(ok[..., None, None], cov, np.nan)
    return xyz, cov


def _rolling_nanmedian(x: np.ndarray, half: int) -> np.ndarray:
    """NaN-aware median over frames ``t - half .. t + half`` of (T, ...) -> (T, ...)."""
    T = x.shape[0]
    pad = np.concatenate([np.full((half,) + x.shape[1:], np.nan), x, np.full((half,) + x.shape[1:], np.nan)])
    windows = np.stack([pad[k : k + T] for k in range(2 * half + 1)])  # (2h+1, T, ...)
    with quiet_nan_warnings():
        return np.nanmedian(windows, axis=0)


def fuse(
    triangulation: Triangulation3D | np.ndarray,
    depth_points: np.ndarray,
    depth_cov: np.ndarray,
    cfg: DepthFusionConfig = DepthFusionConfig(),
    rig: Rig | None = None,
    var_ray: np.ndarray | None = None,
) -> FusionResult:
    """Fuse triangulated joints with depth-lifted joints by inverse covariance, with gating.

    Args:
        triangulation: a ``Triangulation3D`` (its ``xyz`` (T, J, 3) and ``covariance`` (T, J, 3, 3)),
            or an array (T, J, 3) (covariance: ``triangulation_sigma_floor_m`` isotropic).
        depth_points: (T, V, J, 3) world metres, NaN where none.
        depth_cov: (T, V, J, 3, 3).
        rig, var_ray: with both, a depth point adds to a triangulated joint only its information
            *along its viewing ray* (``d d^T / var_ray``): its lateral position is that view's 2D
            detection, which the triangulation already used (counting it twice would drown the
            depth). Joints without a triangulated point use the full covariance.

    Returns:
        :class:`FusionResult`.
    """
    if isinstance(triangulation, np.ndarray):
        tri_xyz, tri_cov = triangulation, None
    else:
        tri_xyz, tri_cov = np.asarray(triangulation.xyz, dtype=np.float64), triangulation.covariance
    tri_cov = _triangulation_covariance(tri_cov, tri_xyz.shape[:2], cfg)
    tri_finite = np.all(np.isfinite(tri_xyz), axis=-1)
    depth_points = np.asarray(depth_points, dtype=np.float64)
    depth_cov = np.asarray(depth_cov, dtype=np.float64)
    d_ok = np.all(np.isfinite(depth_points), axis=-1) & np.all(np.isfinite(depth_cov), axis=(-1, -2))
    used, tri_ok, overruled = _gate(tri_xyz, tri_cov, depth_points, depth_cov, d_ok, cfg)
    d_info = _safe_inv(depth_cov, used)
    if rig is not None and var_ray is not None:
        ray = depth_points - rig.centers[None, :, None, :]
        ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            along = (ray[..., :, None] * ray[..., None, :]) / np.asarray(var_ray)[..., None, None]
        rank1 = used & tri_ok[:, None] & np.isfinite(np.asarray(var_ray)) & (np.asarray(var_ray) > 0)
        d_info = np.where(rank1[..., None, None], np.nan_to_num(along), d_info)
    t_info = _safe_inv(tri_cov, tri_ok)  # an overruled triangulation gets no weight
    all_points = np.concatenate([depth_points, tri_xyz[:, None]], axis=1)
    all_info = np.concatenate([d_info, t_info[:, None]], axis=1)
    xyz, cov = _info_fuse(all_points, all_info, axis=1)

    depth_only, depth_only_cov = _info_fuse(depth_points, _safe_inv(depth_cov, used), axis=1)
    raw_depth, _ = _info_fuse(depth_points, _safe_inv(depth_cov, d_ok), axis=1)
    disagreement = np.linalg.norm(raw_depth - tri_xyz, axis=-1)
    n_depth = used.sum(axis=1)
    depth_only_joints = int(np.sum(~tri_finite & (n_depth > 0)))
    if overruled.any():
        log.info("depth overruled %d triangulated joints (all depth points disagreed with them)", int(overruled.sum()))
    return FusionResult(
        xyz=xyz, covariance=cov, disagreement_m=disagreement, depth_used=used, n_depth=n_depth,
        depth_only=depth_only, depth_only_covariance=depth_only_cov, depth_only_joints=depth_only_joints,
    )


def _triangulation_covariance(tri_cov: np.ndarray | None, shape: tuple[int, int], cfg: DepthFusionConfig) -> np.ndarray:
    """(T, J, 3, 3) covariance of the triangulated points plus the floor; the floor alone where it
    is unknown, 25 times it where it is not finite (the point still counts, loosely)."""
    floor = cfg.triangulation_sigma_floor_m**2 * np.eye(3)
    if tri_cov is None:
        return np.broadcast_to(floor, shape + (3, 3)).copy()
    cov = np.asarray(tri_cov, dtype=np.float64) + floor
    bad = ~np.all(np.isfinite(cov), axis=(-1, -2))
    return np.where(bad[..., None, None], 25 * floor, cov)


def _gate(tri_xyz: np.ndarray, tri_cov: np.ndarray, depth_points: np.ndarray, depth_cov: np.ndarray,
          d_ok: np.ndarray, cfg: DepthFusionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which depth points are fused (T, V, J), which triangulated joints count (T, J), and which
    triangulations depth overruled (T, J)."""
    tri_ok = np.all(np.isfinite(tri_xyz), axis=-1)
    # Gate against the triangulated point (Mahalanobis with both covariances).
    diff = depth_points - tri_xyz[:, None]
    S = depth_cov + tri_cov[:, None]
    both = d_ok & tri_ok[:, None]
    S_inv = _safe_inv(S, both)
    m2 = np.einsum("...i,...ij,...j->...", np.nan_to_num(diff), S_inv, np.nan_to_num(diff))
    accept_tri = both & (m2 <= cfg.gate_chi2)
    # Without a triangulated point: gate against the median of the joint's depth points.
    with quiet_nan_warnings():
        med = np.nanmedian(np.where(d_ok[..., None], depth_points, np.nan), axis=1)  # (T, J, 3)
    dist = np.linalg.norm(depth_points - med[:, None], axis=-1)
    near_med = d_ok & (np.nan_to_num(dist, nan=np.inf) <= cfg.gate_distance_m)
    # A triangulated point that every depth point rejects while at least two depth points agree
    # with each other is a wrong triangulation (outliers in two views): depth replaces it.
    overruled = tri_ok & ~accept_tri.any(axis=1) & (near_med.sum(axis=1) >= 2) & (
        np.linalg.norm(np.nan_to_num(med) - tri_xyz, axis=-1) > cfg.gate_distance_m)
    tri_ok = tri_ok & ~overruled
    accept_tri &= tri_ok[:, None]
    accept_med = near_med & ~tri_ok[:, None]
    used = accept_tri | accept_med
    if cfg.temporal_window > 0 and cfg.temporal_gate_m > 0:
        # Temporal consistency for the joints depth alone reconstructs.
        rough, _ = _info_fuse(depth_points, _safe_inv(depth_cov, used), axis=1)
        rough = np.where(tri_ok[..., None], tri_xyz, rough)
        ref = _rolling_nanmedian(rough, cfg.temporal_window)
        far = np.linalg.norm(depth_points - ref[:, None], axis=-1) > cfg.temporal_gate_m
        used &= ~(far & ~tri_ok[:, None])  # NaN reference (no neighbours) keeps the point
    return used, tri_ok, overruled
