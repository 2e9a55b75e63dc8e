"""What the depth stage hands to the sequence refinement: ranges along viewing rays with sigmas.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``P`` joint pairs. :class:`DepthObservations` is the
RGB-D slot of :func:`reconstruction.refine.refine_sequence`; :func:`depth_residuals` fills it with
the depth points the fusion accepted, :func:`midpoint_observations` adds the depth of points
between joints (the head's centre between the ears, the middle of each limb).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from calibration.camera import Rig
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.fusion import FusionResult
from reconstruction.depth.lift import DepthLift
from reconstruction.depth.noise import measure_depth_noise

if TYPE_CHECKING:
    from reconstruction.triangulation import Triangulation3D


@dataclass(frozen=True, eq=False)
class DepthObservations:
    """The RGB-D slot: measured camera-frame depth of joints.

    Attributes:
        depth_m: (T, V, J) depth ``z`` of the joint in camera ``v``'s frame, metres; NaN where none.
            The producer (depth fusion) corrects for the skin-to-joint-centre offset.
        sigma_m: (T, V, J) or scalar, one standard deviation of that depth, metres.
        midpoint_joints, midpoint_depth_m, midpoint_sigma_m: optional depth of the midpoint of joint
            pairs (P, 2): (T, V, P) camera-frame ``z`` of ``(X_a + X_b) / 2`` and its sigma (e.g. the
            head centre between the ears, measured on the head's surface: a big, well-measured
            sphere, where each face point alone sits on a steep, small feature).
        midpoint_weights: optional (P,) ``w``: the point is ``w X_a + (1 - w) X_b`` (default 0.5).
        ray_cam, midpoint_ray_cam: optional (T, V, J, 3) / (T, V, P, 3) unit viewing rays in the camera
            frame: ``depth_m`` / ``midpoint_depth_m`` are then ranges along these rays (what a depth
            pixel measures: the residual pulls along the ray, and the lateral position stays the 2D's).
        independent: optional (T, V, J) bool: depth read where the joint's 3D estimate reprojects, not
            at the view's 2D detection; it counts even when that detection is dropped as an outlier.
    """

    depth_m: np.ndarray
    sigma_m: np.ndarray | float = 0.02
    independent: np.ndarray | None = None
    midpoint_joints: np.ndarray | None = None
    midpoint_depth_m: np.ndarray | None = None
    midpoint_sigma_m: np.ndarray | None = None
    ray_cam: np.ndarray | None = None
    midpoint_ray_cam: np.ndarray | None = None
    midpoint_weights: np.ndarray | None = None

    def __post_init__(self):
        depth = np.asarray(self.depth_m, dtype=np.float64)
        if depth.ndim != 3:
            raise ValueError(f"depth_m must be (T, V, J), got {depth.shape}")
        sigma = np.broadcast_to(np.asarray(self.sigma_m, dtype=np.float64), depth.shape)
        object.__setattr__(self, "depth_m", depth)
        object.__setattr__(self, "sigma_m", sigma)
        if self.midpoint_joints is not None:
            pairs = np.asarray(self.midpoint_joints, dtype=np.int64).reshape(-1, 2)
            mid = np.asarray(self.midpoint_depth_m, dtype=np.float64)
            if mid.shape != depth.shape[:2] + (len(pairs),):
                raise ValueError(f"midpoint_depth_m must be {depth.shape[:2] + (len(pairs),)}, got {mid.shape}")
            object.__setattr__(self, "midpoint_joints", pairs)
            object.__setattr__(self, "midpoint_depth_m", mid)
            object.__setattr__(self, "midpoint_sigma_m",
                               np.broadcast_to(np.asarray(self.midpoint_sigma_m, dtype=np.float64), mid.shape))
            weights = np.full(len(pairs), 0.5) if self.midpoint_weights is None else np.asarray(
                self.midpoint_weights, dtype=np.float64).reshape(len(pairs))
            object.__setattr__(self, "midpoint_weights", weights)


@dataclass(frozen=True, eq=False)
class MidpointDepth:
    """Depth of points between joint pairs, as :func:`midpoint_observations` measured it.

    Attributes:
        pairs: (P, 2) joint indices; weights: (P,) ``w``, the point is ``w X_a + (1 - w) X_b``.
        range_m: (T, V, P) range along each view's ray, NaN where none; sigma_m: (T, V, P).
        rays_cam: (T, V, P, 3) unit rays in each camera's frame.
        offsets_m: (P,) how far the point lies behind the measured surface.
        white_scale: (P,) measured frame-to-frame noise over the sensor model; bias_sigma_m: (P,).
    """

    pairs: np.ndarray
    weights: np.ndarray
    range_m: np.ndarray
    sigma_m: np.ndarray
    rays_cam: np.ndarray
    offsets_m: np.ndarray
    white_scale: np.ndarray
    bias_sigma_m: np.ndarray


def depth_residuals(lift: DepthLift, fusion: FusionResult, rig: Rig) -> DepthObservations:
    """The RGB-D slot of ``refine_sequence``: the range (T, V, J) along its viewing ray of every depth
    point that passed the gate (joint centre, offset applied), with its sigma along that ray and the
    ray itself in the camera frame. Rejected or missing points are NaN."""
    T, V, J, _ = lift.points.shape
    depth = np.full((T, V, J), np.nan)
    sigma = np.full((T, V, J), np.inf)
    rays = np.full((T, V, J, 3), np.nan)
    for v, camera in enumerate(rig.cameras):  # per view: its own extrinsics
        X = camera.world_to_camera(lift.points[:, v])  # (T, J, 3)
        rng = np.linalg.norm(X, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = X / rng[..., None]  # unit ray, camera frame
        if lift.var_ray is not None:
            var = np.asarray(lift.var_ray[:, v], dtype=np.float64)
        else:  # the covariance along the ray (world covariance rotated into the camera frame)
            C_cam = camera.R @ np.nan_to_num(lift.covariance[:, v]) @ camera.R.T
            var = np.einsum("...i,...ij,...j->...", np.nan_to_num(d), C_cam, np.nan_to_num(d))
        ok = fusion.depth_used[:, v] & np.isfinite(rng) & np.isfinite(var) & (var > 0)
        depth[:, v] = np.where(ok, rng, np.nan)
        sigma[:, v] = np.where(ok, np.sqrt(np.where(var > 0, var, 1.0)), np.inf)
        rays[:, v] = np.where(ok[..., None], d, np.nan)
    independent = None if lift.at_estimate is None else lift.at_estimate & np.isfinite(depth)
    return DepthObservations(depth_m=depth, sigma_m=sigma, independent=independent, ray_cam=rays)


def midpoint_observations(lift: DepthLift, tri: Triangulation3D, rig: Rig, dcfg: DepthFusionConfig,
                          reliable: np.ndarray) -> MidpointDepth | None:
    """Midpoint depth observations from ``lift.mid_surface``, or None without any.

    Each midpoint lies ``offset`` behind the measured surface along each ray: the median, over
    frames where both joints triangulated reliably, of their midpoint's range minus the surface's
    (the body radius prior without such frames). Points farther than 3 sigmas (at least 5 cm) from
    a triangulated midpoint are dropped; the noise is measured like the joints' depth."""
    if lift.mid_pairs is None or not len(lift.mid_pairs) or not np.isfinite(lift.mid_surface).any():
        return None
    pairs = np.asarray(lift.mid_pairs)
    a, b = pairs[:, 0], pairs[:, 1]
    w = np.full(len(pairs), 0.5) if lift.mid_weights is None else np.asarray(lift.mid_weights)
    centers = rig.centers[None, :, None, :]  # (1, V, 1, 3)
    mid = w[None, :, None] * tri.xyz[:, a] + (1 - w)[None, :, None] * tri.xyz[:, b]  # (T, P, 3)
    surf = lift.mid_surface  # (T, V, P, 3)
    sin = lift.mid_sin if lift.mid_sin is not None else np.ones(surf.shape[:3])
    # a limb pointing within 30 degrees of the camera shows its end, not the side of its middle
    surf = np.where((sin >= 0.5)[..., None], surf, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (surf - centers) / np.linalg.norm(surf - centers, axis=-1, keepdims=True)
        r_mid = np.linalg.norm(mid[:, None] - centers, axis=-1)  # (T, V, P)
        r_surf = np.linalg.norm(surf - centers, axis=-1)
        both = reliable[:, a] & reliable[:, b]  # (T, P)
        # the radius: (range difference) * sin, one per pair
        diff = np.where(both[:, None] & (np.abs(r_mid - r_surf) < 0.3), (r_mid - r_surf) * sin, np.nan)
    flat = diff.reshape(-1, len(pairs))
    with quiet_nan_warnings():
        median = np.nanmedian(flat, axis=0)
    # A limb's offset must be measured (its prior, the thinner end's, is rough and two cameras
    # cannot measure it: those readings are left out); the head keeps its radius prior.
    prior = np.full(len(pairs), np.nan)
    if lift.mid_sin is not None:
        sphere = np.all(lift.mid_sin == 1.0, axis=(0, 1))
        prior = np.where(sphere, lift.mid_radius if lift.mid_radius is not None else dcfg.head_radius_m, np.nan)
    offsets = np.where(np.isfinite(flat).sum(axis=0) >= dcfg.min_offset_samples, median, prior)
    with np.errstate(invalid="ignore", divide="ignore"):
        points = surf + (offsets[None, None, :] / sin)[..., None] * u
    white_var = np.asarray(lift.mid_var, dtype=np.float64)
    tri_var = np.full(white_var.shape, np.nan)
    cov = tri.covariance
    if cov is not None:
        # independent ends: the variance of their weighted mean
        cmid = (w**2)[None, :, None, None] * np.asarray(cov)[:, a] + ((1 - w) ** 2)[None, :, None, None] * np.asarray(cov)[:, b]
        tri_var = np.einsum("tvpi,tpik,tvpk->tvp", np.nan_to_num(u), np.nan_to_num(cmid), np.nan_to_num(u))
    white, bias = measure_depth_noise(points, white_var, mid, tri_var, both, rig, dcfg.min_offset_samples,
                                      bias_floor_m=dcfg.offset_sigma_m)
    var = white[None, None, :] ** 2 * white_var + bias[None, None, :] ** 2
    with np.errstate(invalid="ignore"):
        r_pt = np.linalg.norm(points - centers, axis=-1)
        gate = np.maximum(0.05, 3.0 * np.sqrt(var + np.nan_to_num(tri_var)))
        bad = np.isfinite(r_mid) & (np.abs(r_pt - r_mid) > gate)
    rays = np.stack([(points[:, v] - camera.center) @ camera.R.T for v, camera in enumerate(rig.cameras)], axis=1)
    r = np.where(bad | ~np.isfinite(var), np.nan, np.linalg.norm(rays, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rays = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    sigma = np.sqrt(np.where(np.isfinite(r), var, np.inf))
    return MidpointDepth(pairs, w, r, sigma, rays, offsets, white, bias)
