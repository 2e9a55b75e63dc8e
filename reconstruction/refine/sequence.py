"""The sequence refinement as one function: :func:`refine_sequence` (see the package docstring).

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` bones, ``Br`` rigid bones with a length.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from calibration.camera import Rig
from reconstruction.depth.residuals import DepthObservations
from reconstruction.gaps import neighbour_frames
from reconstruction.refine.config import RefinementConfig
from reconstruction.refine.problem import Problem
from reconstruction.refine.solvers import solve_chunk
from reconstruction.refine.start import anchor_by_bones, bone_consistent, find_spikes, interpolate_gaps
from reconstruction.skeleton import Skeleton

if TYPE_CHECKING:
    from reconstruction.bone_lengths import BoneLengths
    from reconstruction.triangulation import Triangulation3D

log = logging.getLogger(__name__)


def _bone_length_array(bone_lengths, skeleton: Skeleton, initial: Triangulation3D) -> tuple[np.ndarray, np.ndarray]:
    """(B,) lengths and (B,) their uncertainty (0 for a plain array), metres."""
    from reconstruction.bone_lengths import BoneLengths, complete_bone_lengths, estimate_bone_lengths

    if bone_lengths is None:
        bone_lengths = complete_bone_lengths(estimate_bone_lengths(
            initial.xyz, skeleton, n_views=initial.n_views, reproj_error_px=initial.reproj_error_px,
            covariance=initial.covariance), skeleton)
    if isinstance(bone_lengths, BoneLengths):
        if tuple(bone_lengths.bones) != tuple(skeleton.bones):
            raise ValueError(f"bone_lengths are not for skeleton {skeleton.name!r}'s bones")
        sigma = np.where(np.isfinite(bone_lengths.sigma_m), bone_lengths.sigma_m, 0.0)
        return bone_lengths.lengths_m, sigma
    lengths = np.asarray(bone_lengths, dtype=np.float64)
    if lengths.shape != (len(skeleton.bones),):
        raise ValueError(f"bone_lengths must be ({len(skeleton.bones)},) metres, got {lengths.shape}")
    return lengths, np.zeros(len(lengths))


@dataclass(frozen=True, eq=False)
class _Bones:
    """The rigid bones the refinement holds: (Br, 2) joint indices, (Br,) lengths m, (Br,) weights."""

    indices: np.ndarray
    lengths: np.ndarray
    weights: np.ndarray


def _rigid_bones(bone_lengths, skeleton: Skeleton, initial: Triangulation3D, cfg: RefinementConfig) -> _Bones:
    lengths_all, length_sigma = _bone_length_array(bone_lengths, skeleton, initial)
    rigid = skeleton.rigid_mask & np.isfinite(lengths_all) & (lengths_all > 0)
    # A length known only roughly (from body height, 6 %) holds its bone loosely.
    w_bone = 1.0 / (cfg.bone_sigma_m**2 + length_sigma[rigid] ** 2)
    return _Bones(skeleton.bone_indices[rigid], lengths_all[rigid], w_bone)


def _gross_errors(x_init: np.ndarray, initial: Triangulation3D, bones: _Bones, rig: Rig, used0: np.ndarray,
                  depth: DepthObservations | None, cfg: RefinementConfig, fps: float) -> np.ndarray:
    """(T, J) triangulated joints taken for a wrong consensus: far from the temporal median of their
    neighbours, and vouched for by neither >= 3 agreeing views, nor their bones, nor their depth."""
    # The window spans ~0.1 s each side; at low frame rates joints move farther between frames.
    spikes = find_spikes(x_init, cfg.spike_gate_m * max(1.0, 30.0 / fps), int(np.clip(round(fps / 10), 1, 3)),
                         cfg.spike_speed_factor)
    # A joint that >= 3 views agree on (mean reprojection error within spike_consistent_px) is taken
    # as measured, however fast it moves: wrong consensus of outliers is (almost) always 2 views.
    n_views0 = np.asarray(initial.n_views)
    reproj0 = np.asarray(initial.reproj_error_px, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        consistent = (n_views0 >= 3) & (reproj0 <= cfg.spike_consistent_px)
    # ... and so is one whose rigid bones to its triangulated neighbours all keep the subject's
    # lengths: a wrong consensus (another joint's detections) breaks them, fast motion does not.
    spikes &= ~(consistent | bone_consistent(x_init, bones.indices, bones.lengths, cfg.spike_bone_gate_m))
    if depth is not None and np.shape(depth.depth_m) == used0.shape:
        # ... and so is one whose depth, read by >= 2 of its views at their own detections, agrees
        # with it: a 2-view triangulation with one outlier on the epipolar line has a small
        # reprojection error, but the outlier's depth (another body part, the background) disagrees.
        Xc_init = np.stack([cam.world_to_camera(x_init) for cam in rig], axis=1)  # (T, V, J, 3)
        z_init = Xc_init[..., 2] if depth.ray_cam is None else np.sum(Xc_init * depth.ray_cam, -1)
        with np.errstate(invalid="ignore"):
            agree = used0 & (np.abs(z_init - depth.depth_m) <= cfg.spike_depth_sigmas * depth.sigma_m)
        spikes &= ~(agree.sum(axis=1) >= 2)
    return spikes


def _start_and_views(kp: np.ndarray, x_init: np.ndarray, used0: np.ndarray, spikes: np.ndarray,
                     finite0: np.ndarray, rig: Rig, skeleton: Skeleton, cfg: RefinementConfig):
    """Which joint-frames are solved (T, J), where they start (T, J, 3), and which detections they
    use (T, V, J) (see the package docstring: gaps, sequence ends, single views, bones)."""
    T = kp.shape[0]
    score = np.nan_to_num(kp[..., 2], nan=0.0)
    detected = np.all(np.isfinite(kp[..., :2]), axis=-1)
    finite = np.all(np.isfinite(x_init), axis=-1)
    prev, nxt = neighbour_frames(finite)
    frames = np.arange(T)[:, None]
    interior = (prev >= 0) & (nxt < T) & (nxt - prev - 1 <= cfg.fill_max_gap)
    near = np.minimum(np.where(prev >= 0, frames - prev, T + 1), np.where(nxt < T, nxt - frames, T + 1))
    x_start = interpolate_gaps(x_init)
    used = used0 & detected
    suspect_used = used & spikes[:, None, :]
    used &= ~suspect_used
    candidate = suspect_used
    if cfg.admit_single_views:
        candidate = candidate | ((~finite0)[:, None, :] & detected & (score >= cfg.min_score))
    candidate &= np.isfinite(x_start[:, None, :, 0])
    if candidate.any():
        reproj = rig.project(x_start)  # (T, J, V, 2)
        dist = np.linalg.norm(np.moveaxis(reproj, 2, 1) - kp[..., :2], axis=-1)
        used = used | (candidate & (dist <= cfg.single_view_gate_px))
    has_view = used.any(axis=1)
    edge = ((prev < 0) & (nxt < T) & (nxt <= cfg.fill_edge_frames)) | (
        (nxt >= T) & (prev >= 0) & (T - 1 - prev <= cfg.fill_edge_frames))
    active = finite | ((~finite) & (interior | edge)) | ((~finite) & has_view & (near <= cfg.fill_max_gap))
    if cfg.fill_from_bones and len(skeleton.bones):
        # Every bone of the skeleton holds (trunk sides and bones of unknown length too): the start
        # keeps the limb's shape, and the rigid bones with a length then place it.
        x_start, active = anchor_by_bones(x_init, x_start, active, skeleton.bone_indices, cfg.fill_min_bones)
    return active, x_start, used & active[:, None, :]


def _depth_weights(depth: DepthObservations | None, used: np.ndarray, active: np.ndarray):
    """(T, V, J) weights 1 / sigma^2 of the joints' depth and (T, V, P) of the midpoints' depth
    (None without); a depth point counts only while its view's detection does, unless it was read
    independently of it."""
    if depth is None:
        return None, None
    if depth.depth_m.shape != used.shape:
        raise ValueError(f"depth_residuals.depth_m must be {used.shape}, got {depth.depth_m.shape}")
    with np.errstate(divide="ignore"):
        # sigma floored at 0.1 mm (a zero sigma would pin the joint); inf sigma = no observation
        w_depth = np.where(np.isfinite(depth.depth_m), 1.0 / np.square(np.maximum(depth.sigma_m, 1e-4)), 0.0)
    # A depth point is read at a view's 2D detection: it counts only while that detection does
    # (a detection dropped as an outlier, e.g. by the spike test, takes its depth along).
    keep = used if depth.independent is None else used | (np.asarray(depth.independent, dtype=bool) & active[:, None, :])
    w_depth = np.where(keep, w_depth, 0.0)
    w_mid = None
    if depth.midpoint_joints is not None:
        with np.errstate(divide="ignore"):
            w_mid = np.where(np.isfinite(depth.midpoint_depth_m),
                             1.0 / np.square(np.maximum(depth.midpoint_sigma_m, 1e-4)), 0.0)
    return w_depth, w_mid


def _chunk_problem(sl: slice, obs: np.ndarray, w_obs: np.ndarray, rig: Rig, active: np.ndarray, bones: _Bones,
                   depth: DepthObservations | None, w_depth, w_mid, cfg: RefinementConfig, fps: float) -> Problem:
    mids = depth is not None and depth.midpoint_joints is not None
    return Problem(
        obs=np.nan_to_num(obs[sl]), w_obs=w_obs[sl], R=np.stack([c.R for c in rig]), t=np.stack([c.t for c in rig]),
        K2=np.stack([c.K[:2, :2] for c in rig]), c=np.stack([c.K[:2, 2] for c in rig]), active=active[sl],
        bones=bones.indices, lengths=bones.lengths, w_bone=bones.weights,
        w_acc=(fps * fps / cfg.accel_sigma_m_s2) ** 2,
        depth=None if depth is None else depth.depth_m[sl], w_depth=None if depth is None else w_depth[sl],
        loss=cfg.loss, scale=cfg.loss_scale_px, accel_loss=cfg.accel_loss, depth_scale=cfg.depth_loss_scale,
        mid_pairs=depth.midpoint_joints if mids else None, mid_depth=depth.midpoint_depth_m[sl] if mids else None,
        w_mid=w_mid[sl] if mids else None,
        ray=None if depth is None or depth.ray_cam is None else np.nan_to_num(depth.ray_cam[sl]),
        mid_ray=np.nan_to_num(depth.midpoint_ray_cam[sl]) if mids and depth.midpoint_ray_cam is not None else None,
        mid_w=depth.midpoint_weights if mids else None,
    )


def _solve_in_chunks(T: int, J: int, make_problem, x_start: np.ndarray, cfg: RefinementConfig):
    """Solve overlapping chunks of ``chunk_frames`` (bounded memory) and cross-fade them linearly over
    the overlaps: (T, J, 3) joints and (T, J, 3, 3) information blocks."""
    weight_sum = np.zeros((T, 1, 1))
    x_acc = np.zeros((T, J, 3))
    block_acc = np.zeros((T, J, 3, 3))
    step = cfg.chunk_frames - cfg.overlap_frames
    for s in range(0, max(T - cfg.overlap_frames, 1), step):
        e = min(s + cfg.chunk_frames, T)
        sl = slice(s, e)
        x_chunk, hd = solve_chunk(make_problem(sl), np.nan_to_num(x_start[sl]), cfg)
        n = e - s
        ramp = np.ones(n)
        if s > 0 and cfg.overlap_frames:
            k = min(cfg.overlap_frames, n)
            ramp[:k] = np.minimum(ramp[:k], (np.arange(k) + 1) / (k + 1))
        if e < T and cfg.overlap_frames:
            k = min(cfg.overlap_frames, n)
            ramp[n - k:] = np.minimum(ramp[n - k:], (k - np.arange(k)) / (k + 1))
        x_acc[sl] += ramp[:, None, None] * x_chunk
        block_acc[sl] += ramp[:, None, None, None] * hd
        weight_sum[sl] += ramp[:, None, None]
        if e == T:
            break
    return x_acc / weight_sum, block_acc / weight_sum[..., None]


def _check_inputs(kp: np.ndarray, rig: Rig, skeleton: Skeleton, initial: Triangulation3D) -> None:
    T, V, J = kp.shape[:3]
    if kp.shape[3] != 3:
        raise ValueError(f"keypoints2d must be (T, V, J, 3), got {kp.shape}")
    if V != len(rig):
        raise ValueError(f"keypoints2d has {V} views but the rig has {len(rig)} cameras")
    if J != skeleton.num_joints:
        raise ValueError(f"keypoints2d has {J} joints but skeleton {skeleton.name!r} has {skeleton.num_joints}")
    if np.shape(initial.xyz) != (T, J, 3) or np.shape(initial.used) != (T, V, J):
        raise ValueError(f"initial xyz {np.shape(initial.xyz)} / used {np.shape(initial.used)} do not match "
                         f"keypoints {kp.shape}")


def refine_sequence(
    keypoints2d: np.ndarray,
    rig: Rig,
    skeleton: Skeleton,
    initial: Triangulation3D,
    cfg: RefinementConfig = RefinementConfig(),
    bone_lengths: BoneLengths | np.ndarray | None = None,
    depth_residuals: DepthObservations | None = None,
    fps: float | None = None,
) -> Triangulation3D:
    """Refine a triangulated sequence with reprojection, bone-length and smoothness terms.

    Args:
        keypoints2d: (T, V, J, 3) x, y, score in distorted pixels, NaN where missing.
        rig: the V cameras, in the view order of ``keypoints2d``.
        skeleton: J joints; its rigid bones get length residuals.
        initial: the robust triangulation (xyz, used, n_views, reproj_error_px, covariance).
        cfg: weights and solver settings.
        bone_lengths: ``BoneLengths``, a (B,) array in metres (NaN = free bone) or None to estimate them
            from ``initial`` (median of well-triangulated frames).
        depth_residuals: optional :class:`~reconstruction.depth.residuals.DepthObservations` (RGB-D).
        fps: frame rate of the sequence (default ``cfg.fps``).

    Returns:
        ``initial`` with refined ``xyz``, and ``used``, ``n_views``, ``residual_px`` (every finite
        detection, distorted pixels), ``reproj_error_px`` (mean over used views) and ``covariance``
        (conditional: inverse of each joint's own 3x3 information block) recomputed. Joints not
        filled (see the package docstring) stay NaN.
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    _check_inputs(kp, rig, skeleton, initial)
    T, V, J = kp.shape[:3]
    x_init = np.asarray(initial.xyz, dtype=np.float64)
    used0 = np.asarray(initial.used, dtype=bool)
    fps = float(fps or cfg.fps)
    bones = _rigid_bones(bone_lengths, skeleton, initial, cfg)
    obs = np.stack([cam.undistort_points(kp[:, v, :, :2]) for v, cam in enumerate(rig)], axis=1)
    score = np.nan_to_num(kp[..., 2], nan=0.0)
    base_w = (np.clip(score, 0.0, None) if cfg.use_scores else np.ones_like(score)) / cfg.reproj_sigma_px**2

    # Gross triangulation errors restart from interpolation and keep only the used views that agree with it.
    finite0 = np.all(np.isfinite(x_init), axis=-1)
    spikes = _gross_errors(x_init, initial, bones, rig, used0, depth_residuals, cfg, fps)
    x_init = np.where(spikes[..., None], np.nan, x_init)
    if spikes.any():
        log.info("refinement: %d joint-frames far from their temporal median restart from interpolation",
                 int(spikes.sum()))
    active, x_start, used = _start_and_views(kp, x_init, used0, spikes, finite0, rig, skeleton, cfg)
    w_obs = np.where(used, base_w, 0.0)
    w_depth, w_mid = _depth_weights(depth_residuals, used, active)

    def make_problem(sl: slice) -> Problem:
        return _chunk_problem(sl, obs, w_obs, rig, active, bones, depth_residuals, w_depth, w_mid, cfg, fps)

    x_out, blocks = _solve_in_chunks(T, J, make_problem, x_start, cfg)
    x_out[~active] = np.nan
    with np.errstate(all="ignore"):
        det = np.linalg.det(blocks)
        ok = active & np.isfinite(det) & (np.abs(det) > 0)
        cov = np.full((T, J, 3, 3), np.nan)
        cov[ok] = np.linalg.inv(blocks[ok])
    detected = np.all(np.isfinite(kp[..., :2]), axis=-1)
    reproj = np.moveaxis(rig.project(x_out), 2, 1)  # (T, V, J, 2)
    residual = np.where(detected, np.linalg.norm(reproj - kp[..., :2], axis=-1), np.nan)
    n_views = used.sum(axis=1)
    with np.errstate(all="ignore"):
        err = np.where(n_views > 0, np.nansum(np.where(used, residual, 0.0), axis=1) / n_views, np.nan)
    err = np.where(active, err, np.nan)
    filled = int(np.sum(active & ~finite0))
    if filled:
        log.info("refinement filled %d joint-frames the triangulation left NaN", filled)
    return replace(initial, xyz=x_out, used=used, n_views=n_views.astype(np.asarray(initial.n_views).dtype),
                   residual_px=residual, reproj_error_px=err, covariance=cov)
