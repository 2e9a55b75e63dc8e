"""The depth stage of a reconstruction: triangulation + the depth read at the keypoints -> fused
joints and the depth residuals of the sequence refinement.

Shapes: ``T`` frames, ``V`` views, ``J`` joints. Steps, each from its own module:

1. offsets behind the surface measured where the triangulation is reliable (:mod:`.offsets`);
2. the face points' own depth dropped where they are triangulated (``joints_without_depth``);
3. the depth noise measured from the data (:mod:`.noise`) and the depth re-weighted with it;
4. inverse-covariance fusion with gating (:mod:`.fusion`);
5. the accepted depth as ranges along the rays, plus the midpoints' depth (:mod:`.residuals`).

Live capture uses the same lifting and fusion frame by frame (``reconstruction.pipeline.live``),
with the table offsets and no temporal gate.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from calibration.camera import Rig
from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.fusion import FusionResult, fuse
from reconstruction.depth.lift import DepthLift, with_offsets, with_ray_variance, without_joints
from reconstruction.depth.noise import measure_depth_noise, variance_along_rays
from reconstruction.depth.offsets import estimate_joint_offsets
from reconstruction.depth.reading import ear_indices
from reconstruction.depth.residuals import DepthObservations, MidpointDepth, depth_residuals, midpoint_observations
from reconstruction.skeleton import Skeleton

if TYPE_CHECKING:
    from reconstruction.triangulation import Triangulation3D


@dataclass(frozen=True, eq=False)
class DepthNoise:
    """Depth noise measured from the data (:func:`~reconstruction.depth.noise.measure_depth_noise`).

    Attributes:
        white_scale: (J,) frame-to-frame noise over the sensor model; None when not measured.
        bias_sigma_m: (J,) slow offset variation, metres; None when not measured.
        midpoints: the depth of the head centre / limb middles, None without.
        head: True when the first midpoint is the head (the ears' midpoint).
    """

    white_scale: np.ndarray | None = None
    bias_sigma_m: np.ndarray | None = None
    midpoints: MidpointDepth | None = None
    head: bool = False

    def report(self, skeleton: Skeleton) -> dict | None:
        """The ``depth_noise`` section of quality.json (per-joint values by name), None when empty."""
        out: dict = {}
        names = skeleton.joint_names
        if self.white_scale is not None:
            out["white_scale"] = {n: round(float(x), 4) for n, x in zip(names, self.white_scale)}
            out["bias_sigma_m"] = {n: round(float(x), 4) for n, x in zip(names, self.bias_sigma_m)}
        mids = self.midpoints
        if mids is not None:
            if self.head:
                out.update(head_offset_m=round(float(mids.offsets_m[0]), 4),
                           head_white_scale=round(float(mids.white_scale[0]), 4),
                           head_bias_sigma_m=round(float(mids.bias_sigma_m[0]), 4),
                           head_points=round(float(np.isfinite(mids.range_m[..., 0]).sum()), 4))
            k = 1 if self.head else 0
            if len(mids.pairs) > k:
                out["segment_points"] = round(float(np.isfinite(mids.range_m[..., k:]).sum()), 4)
                out["segment_offsets_m"] = {
                    f"{names[p]}-{names[q]}@{wt:g}": round(float(o), 4)
                    for (p, q), wt, o in zip(mids.pairs[k:], mids.weights[k:], mids.offsets_m[k:])}
        return out or None


@dataclass(frozen=True, eq=False)
class DepthStageResult:
    """What the depth stage gives the refinement and the report.

    Attributes:
        fusion: the fused joints (:class:`~reconstruction.depth.fusion.FusionResult`).
        lift: the depth points as fused (offsets, dropped face points and measured noise applied).
        offsets_m: (J,) offsets behind the surface used.
        initial: the refinement's start: the triangulation with the fused ``xyz`` and ``covariance``,
            and the depth views of joints only depth reconstructed counted as used.
        observations: the depth residuals of the refinement.
        noise: what the noise measurement found.
    """

    fusion: FusionResult
    lift: DepthLift
    offsets_m: np.ndarray
    initial: Triangulation3D
    observations: DepthObservations
    noise: DepthNoise


def fuse_depth(tri: Triangulation3D, lift: DepthLift, skeleton: Skeleton, rig: Rig,
               cfg: DepthFusionConfig) -> DepthStageResult:
    """The depth stage (module docstring) on a whole sequence's triangulation ``tri`` and depth ``lift``."""
    reliable = (np.asarray(tri.n_views) >= 3) & (np.asarray(tri.reproj_error_px) <= 2 * cfg.pixel_sigma_px)
    offsets = lift.offsets_m
    if cfg.estimate_offsets:
        offsets = estimate_joint_offsets(lift.surface, tri.xyz, rig, reliable, lift.offsets_m, cfg)
        lift = with_offsets(lift, rig, offsets)
    if cfg.joints_without_depth:
        lift = without_joints(lift, skeleton, cfg.joints_without_depth, keep=~np.all(np.isfinite(tri.xyz), axis=-1))
    noise = DepthNoise()
    if cfg.measure_noise and lift.var_ray is not None:
        white_var = np.maximum(lift.var_ray - cfg.offset_sigma_m**2, 0.0)
        white_scale, bias_sigma = measure_depth_noise(
            lift.points, white_var, tri.xyz, variance_along_rays(tri.covariance, lift.surface, rig), reliable, rig,
            cfg.min_offset_samples, bias_floor_m=cfg.offset_sigma_m)
        lift = with_ray_variance(lift, rig, white_scale[None, None, :] ** 2 * white_var + bias_sigma[None, None, :] ** 2)
        noise = DepthNoise(white_scale, bias_sigma)
    fusion = fuse(tri, lift.points, lift.covariance, cfg, rig=rig, var_ray=lift.var_ray)
    tri_ok = np.all(np.isfinite(tri.xyz), axis=-1)
    # A joint only depth reconstructed: its depth views' detections join the refinement.
    used = np.asarray(tri.used, dtype=bool) | (fusion.depth_used & ~tri_ok[:, None, :])
    initial = replace(tri, xyz=fusion.xyz, covariance=fusion.covariance, used=used)
    observations = depth_residuals(lift, fusion, rig)
    mids = midpoint_observations(lift, tri, rig, cfg, reliable)
    if mids is not None:
        observations = replace(observations, midpoint_joints=mids.pairs, midpoint_depth_m=mids.range_m,
                               midpoint_sigma_m=mids.sigma_m, midpoint_ray_cam=mids.rays_cam,
                               midpoint_weights=mids.weights)
        ears = ear_indices(skeleton)
        head = ears is not None and cfg.head_depth and tuple(mids.pairs[0]) == tuple(ears)
        noise = replace(noise, midpoints=mids, head=head)
    return DepthStageResult(fusion, lift, offsets, initial, observations, noise)
