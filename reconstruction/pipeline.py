"""Offline reconstruction: recordings (or precomputed 2D) in, a metric 3D skeleton and its quality out.

Shapes: ``T`` frames, ``V`` views (the rig's order), ``J`` joints, ``H``/``W`` image size.

The stages are the library's plain functions, each with its own config section; this module only
wires them, chunk by chunk (bounded memory on long recordings):

    frame sets --(boxes + 2D model per view, batched; cached per view and chunk)--> 2D (T, V, J, 3)
    2D + depth of the chunk --(depth_fusion.lift_keypoints_with_depth)--> depth points per view
    -- after the last chunk, on the small per-joint arrays --
    2D --(swaps.correct_swaps_2d: left/right swaps per view)--> 2D
    --(triangulation.triangulate; swaps.correct_swaps_3d: frames whose labels all flipped)--> 3D
    --(depth_fusion.fuse)--> fused 3D
    --(refine.refine_sequence, with the depth residuals)--> --(filters)--> final 3D --(outputs)

:func:`reconstruct_keypoints` is the pure part (arrays in, arrays out) used by the CLI, the demo,
the benchmark and the tests; :func:`reconstruct_session` is the driver over frame sets.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from capture.config import load_yaml, section_from_mapping, to_plain
from capture.errors import ConfigError
from reconstruction.nan_warnings import quiet_nan_warnings
from reconstruction.depth_fusion import (
    DepthFusionConfig,
    DepthLift,
    apply_offsets,
    depth_residuals,
    estimate_joint_offsets,
    measure_depth_noise,
    fuse,
    with_offsets,
    with_ray_variance,
    joint_offsets,
    lift_midpoints_with_depth,
    lift_keypoints_with_depth,
)
from reconstruction.filters import FilterConfig
from reconstruction.models2d.boxes import BoxConfig
from reconstruction.refine import RefinementConfig
from reconstruction.swaps import SwapConfig
from reconstruction.triangulation import TriangulationConfig

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "reconstruction.yaml"


@dataclass(frozen=True)
class Model2DConfig:
    """The 2D model (section ``model2d``).

    Attributes:
        name: a registered model name (``mocap models list``; ``--model`` overrides it).
        weights_dir: folder with the weights ("" = ``$MOCAP_WEIGHTS``, then the user cache).
        device: ``cpu`` or ``cuda``.
        batch_size: crops per forward pass.
        flip_test: average with the horizontally mirrored crop (slower, a little more precise).
        detector: person boxes where tracking has none (first frame, person lost): ``multipose``
            (MoveNet MultiPose on the whole frame; the whole frame where its weights are absent)
            or ``full`` (the whole frame).
    """

    name: str = "movenet-thunder"
    weights_dir: str = ""
    device: str = "cpu"
    batch_size: int = 16
    flip_test: bool = False
    detector: str = "multipose"

    def __post_init__(self):
        if self.detector not in ("multipose", "full"):
            raise ValueError(f"detector must be multipose or full, got {self.detector!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class OutputConfig:
    """What is written to the output folder (section ``output``).

    Attributes:
        formats: 3D file types among ``npz``, ``trc``, ``c3d``.
        keypoints2d: write the 2D of each view (``keypoints2d/<camera>.npz``).
        overlay_video: write ``overlay_<camera>.mp4`` (skeleton on the colour image).
        overlay_max_width: overlay frames wider than this are scaled down.
        plot3d: write ``plot3d.png``.
        quality_min_score: detections below this score are left out of the reprojection error.
    """

    formats: tuple[str, ...] = ("npz", "trc", "c3d")
    keypoints2d: bool = True
    overlay_video: bool = True
    overlay_max_width: int = 960
    plot3d: bool = True
    quality_min_score: float = 0.3

    def __post_init__(self):
        bad = [f for f in self.formats if f not in ("npz", "trc", "c3d")]
        if bad:
            raise ValueError(f"formats: {bad[0]!r} is not one of npz, trc, c3d")


@dataclass(frozen=True)
class ReconstructionConfig:
    """The whole offline reconstruction; each stage gets only its own section.

    Attributes:
        skeleton: skeleton of the 2D model's output (built-in name or YAML file).
        chunk_frames: frame sets held in memory at once (depth of a chunk, 2D cache granularity).
        refine: run the sequence refinement (bone lengths, smoothness, reprojection).
        filter: run the temporal filter after the refinement.
        swaps_2d: undo left/right swaps of single views before triangulation (settings: ``swaps``;
            needs 3 or more views).
        swaps_3d: undo frames whose left/right labels flipped in every view at once (``swaps``; needs 3
            or more views: two triangulate too few left/right pairs to judge, and a wrong call
            flips every later frame).
        sequence_quality: add the ground-truth-free figures of reconstruction.quality (jitter,
            bone-length spread, ...) to quality.json.
    """

    skeleton: str = "coco17"
    chunk_frames: int = 60
    refine: bool = True
    filter: bool = False
    swaps_2d: bool = True
    swaps_3d: bool = True
    sequence_quality: bool = True
    model2d: Model2DConfig = field(default_factory=Model2DConfig)
    boxes: BoxConfig = field(default_factory=BoxConfig)
    triangulation: TriangulationConfig = field(default_factory=TriangulationConfig)
    depth_fusion: DepthFusionConfig = field(default_factory=DepthFusionConfig)
    swaps: SwapConfig = field(default_factory=SwapConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self):
        if self.chunk_frames < 2:
            raise ValueError(f"chunk_frames must be >= 2, got {self.chunk_frames}")


def load_reconstruction_config(path: str | Path | None = None) -> ReconstructionConfig:
    """The config from a YAML file (unknown keys rejected, naming the file and the key); the
    defaults when ``path`` is None."""
    if path is None:
        return ReconstructionConfig()
    return section_from_mapping(ReconstructionConfig, load_yaml(path), str(path))


def config_to_yaml(cfg: ReconstructionConfig) -> str:
    import yaml

    return yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=None)


_DEFAULTS_HEADER = """\
# Offline reconstruction (`mocap reconstruct --config FILE`): the documented defaults.
#
# Every stage reads only its own section; a key left out keeps the default of that stage's
# dataclass, and an unknown key is an error naming this file and the key. The resolved config is
# written next to every output as reconstruction.yaml. See docs/pipeline.md.
# Regenerate after a stage's defaults change: python -m reconstruction.pipeline
#
# skeleton        output skeleton of the 2D model (coco17 for MoveNet)
# chunk_frames    frame sets in memory at once (depth of a chunk; 2D cache granularity)
# refine, filter  run the sequence refinement / the temporal filter
# swaps_2d/_3d    undo left/right swaps per view (2D) / per frame (3D); settings in swaps
# sequence_quality  ground-truth-free quality figures (reconstruction/quality.py) in quality.json
# model2d         reconstruction/pipeline.py Model2DConfig (name: `mocap models list`)
# boxes           reconstruction/models2d/boxes.py BoxConfig
# triangulation   reconstruction/triangulation.py TriangulationConfig
# depth_fusion    reconstruction/depth_fusion.py DepthFusionConfig (RGB-D views only)
# swaps           reconstruction/swaps.py SwapConfig
# refinement      reconstruction/refine.py RefinementConfig
# filters         reconstruction/filters.py FilterConfig
# output          reconstruction/pipeline.py OutputConfig
"""


def write_default_config(path: str | Path = DEFAULT_CONFIG) -> Path:
    """Write every default of :class:`ReconstructionConfig` as YAML (configs/reconstruction.yaml)."""
    from reconstruction.outputs import atomic_write_text

    return atomic_write_text(Path(path), _DEFAULTS_HEADER + config_to_yaml(ReconstructionConfig()))


# --- the pure part ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SequenceResult:
    """Arrays of one reconstruction.

    Attributes:
        xyz: (T, J, 3) final 3D, world metres, NaN where missing.
        triangulation: the robust triangulation (``Triangulation3D``).
        fused: (T, J, 3) after depth fusion (= triangulated xyz when no depth).
        fusion: the :class:`~reconstruction.depth_fusion.FusionResult`, or None without depth.
        refined: the refinement's ``Triangulation3D`` (None when off).
        offsets_m: (J,) joint offsets behind the surface used for depth (None without depth).
        timings_s: seconds per stage.
        keypoints2d: (T, V, J, 3) the 2D used (after the swap correction).
        swapped: (T, V) views whose left/right labels were swapped back (2D and 3D corrections).
        flipped_3d: (T,) frames whose labels had flipped in every view (the 3D correction).
        depth_noise: measured depth noise per joint (``measure_noise``): ``white_scale`` (J,) the
            frame-to-frame noise over the sensor model, ``bias_sigma_m`` (J,) the slow offset
            variation; with ``head_depth`` also ``head_offset_m`` (head centre behind its surface),
            ``head_white_scale``, ``head_bias_sigma_m`` and ``head_points``; None when not measured.
    """

    xyz: np.ndarray
    triangulation: object
    fused: np.ndarray
    fusion: object
    refined: object
    offsets_m: np.ndarray | None
    timings_s: dict
    keypoints2d: np.ndarray | None = None
    swapped: np.ndarray | None = None
    flipped_3d: np.ndarray | None = None
    depth_noise: dict | None = None


def _variance_along_rays(tri, surface: np.ndarray, rig) -> np.ndarray:
    """(T, V, J) variance of the triangulated point along each view's ray to the surface point."""
    cov = np.asarray(getattr(tri, "covariance", np.full(surface.shape[:1] + surface.shape[2:] + (3,), np.nan)))
    ray = surface - rig.centers[None, :, None, :]
    d = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    return np.einsum("tvji,tjik,tvjk->tvj", d, np.nan_to_num(cov), d)


def _apply_filter(xyz: np.ndarray, fps: float, cfg: FilterConfig) -> np.ndarray:
    from reconstruction import filters

    return filters.filter_sequence(xyz, fps, cfg)


def _flip_lift(lift: DepthLift, swapped: np.ndarray, skeleton) -> DepthLift:
    """The depth points of the (T, V) ``swapped`` views relabelled left <-> right, like their 2D.

    Points read where a 3D estimate reprojects (``lift.at_estimate``) already carry the estimate's
    (corrected) label and stay; a point read at a detection whose mirror joint was read at the
    estimate has no partner to take and is dropped."""
    perm = skeleton.flip_permutation
    sel = np.asarray(swapped, dtype=bool)[:, :, None]
    at_est = lift.at_estimate if lift.at_estimate is not None else np.zeros(lift.points.shape[:3], dtype=bool)
    take_flipped = sel & ~at_est & ~at_est[:, :, perm]
    drop = sel & ~at_est & at_est[:, :, perm]

    def flip(a):
        if a is None:
            return None
        shape = take_flipped.shape + (1,) * (a.ndim - 3)
        out = np.where(take_flipped.reshape(shape), a[:, :, perm], a)
        return np.where(drop.reshape(shape), np.nan, out)

    return replace(lift, points=flip(lift.points), covariance=flip(lift.covariance), surface=flip(lift.surface),
                   var_ray=flip(lift.var_ray))


def _drop_depth(lift: DepthLift, skeleton, joint_names, keep: np.ndarray | None = None) -> DepthLift:
    """The lift without depth points for ``joint_names`` (canonical names; unknown ones ignored),
    except in the (T, J) frames ``keep`` (e.g. where no triangulation exists: depth alone places it)."""
    from reconstruction.skeleton import canonical_joint_name

    drop = {canonical_joint_name(n) for n in joint_names}
    mask = np.array([canonical_joint_name(n) in drop for n in skeleton.joint_names])
    if not mask.any():
        return lift
    gone = np.broadcast_to(mask[None, :], lift.points.shape[:1] + mask.shape)
    if keep is not None:
        gone = gone & ~np.asarray(keep, dtype=bool)
    gone = np.broadcast_to(gone[:, None, :], lift.points.shape[:3])

    def blank(a):
        if a is None:
            return None
        shape = gone.shape + (1,) * (a.ndim - 3)
        return np.where(gone.reshape(shape), np.nan, a)

    return replace(lift, points=blank(lift.points), covariance=blank(lift.covariance), surface=blank(lift.surface),
                   var_ray=blank(lift.var_ray))


def reconstruct_keypoints(
    keypoints2d: np.ndarray,
    rig,
    skeleton,
    cfg: ReconstructionConfig,
    fps: float,
    lift: DepthLift | None = None,
) -> SequenceResult:
    """Triangulate, fuse depth, refine and filter 2D keypoints ``(T, V, J, 3)`` of ``rig``'s views.

    ``lift`` holds the depth points of the views with depth (from
    :func:`~reconstruction.depth_fusion.lift_keypoints_with_depth`, any offsets); the offsets are
    re-estimated from the data when ``depth_fusion.estimate_offsets`` is set. With one camera and
    depth, the result is depth-only 3D. Left/right swaps are undone first (``swaps_2d``: single views, ``swaps_3d``:
    frames swapped in every view); the depth points of a swapped view are relabelled with its 2D.
    """
    from reconstruction.refine import refine_sequence
    from reconstruction.swaps import correct_swaps_2d, correct_swaps_3d, flip_views
    from reconstruction.triangulation import triangulate

    kp = np.asarray(keypoints2d, dtype=np.float64)
    T, V = kp.shape[:2]
    timings = {}
    swapped = np.zeros((T, V), dtype=bool)
    flipped = np.zeros(T, dtype=bool)
    if cfg.swaps_2d and V >= 3:  # the multi-view test needs a pair of other views
        t0 = time.perf_counter()
        kp, swapped = correct_swaps_2d(kp, rig, skeleton, cfg.swaps)
        timings["swaps"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tri = triangulate(kp, rig, cfg.triangulation)
    timings["triangulate"] = time.perf_counter() - t0
    if cfg.swaps_3d and T >= 2 and V >= 3:  # two views triangulate too few left/right pairs to judge
        t0 = time.perf_counter()
        _, flipped = correct_swaps_3d(tri.xyz, skeleton, cfg.swaps)
        if flipped.any():
            every = np.repeat(flipped[:, None], V, axis=1)
            kp = flip_views(kp, every, skeleton)
            swapped = swapped ^ every
            tri = triangulate(kp, rig, cfg.triangulation)
        timings["swaps"] = timings.get("swaps", 0.0) + time.perf_counter() - t0
    if lift is not None and swapped.any():
        lift = _flip_lift(lift, swapped, skeleton)
    fused_xyz = tri.xyz
    fusion = None
    offsets = None
    initial = tri
    depth_obs = None
    depth_noise = None
    if lift is not None and cfg.depth_fusion.enabled and np.isfinite(lift.surface).any():
        t0 = time.perf_counter()
        dcfg = cfg.depth_fusion
        offsets = lift.offsets_m
        reliable = (np.asarray(tri.n_views) >= 3) & (np.asarray(tri.reproj_error_px) <= 2 * dcfg.pixel_sigma_px)
        if dcfg.estimate_offsets:
            offsets = estimate_joint_offsets(lift.surface, tri.xyz, rig, reliable, lift.offsets_m, dcfg)
            lift = with_offsets(lift, rig, offsets)
        if dcfg.joints_without_depth:
            lift = _drop_depth(lift, skeleton, dcfg.joints_without_depth, keep=~np.all(np.isfinite(tri.xyz), axis=-1))
        if dcfg.measure_noise and lift.var_ray is not None:
            white_var = np.maximum(lift.var_ray - dcfg.offset_sigma_m**2, 0.0)
            white_scale, bias_sigma = measure_depth_noise(
                lift.points, white_var, tri.xyz, _variance_along_rays(tri, lift.surface, rig), reliable, rig,
                dcfg.min_offset_samples, bias_floor_m=dcfg.offset_sigma_m)
            lift = with_ray_variance(lift, rig, white_scale[None, None, :] ** 2 * white_var + bias_sigma[None, None, :] ** 2)
            depth_noise = {"white_scale": white_scale, "bias_sigma_m": bias_sigma}
        points = lift.points
        fusion = fuse(tri, points, lift.covariance, dcfg, rig=rig, var_ray=lift.var_ray)
        fused_xyz = fusion.xyz
        tri_ok = np.all(np.isfinite(tri.xyz), axis=-1)
        # A joint only depth reconstructed: its depth views' detections join the refinement.
        used = np.asarray(tri.used, dtype=bool) | (fusion.depth_used & ~tri_ok[:, None, :])
        initial = replace(tri, xyz=fusion.xyz, covariance=fusion.covariance, used=used)
        depth_obs = depth_residuals(lift, fusion, rig)
        mids = _midpoint_depth(lift, tri, rig, dcfg, reliable)
        if mids is not None:
            pairs, weights, r_mid, sigma_mid, ray_mid, mid_offsets, mid_white, mid_bias = mids
            depth_obs = replace(depth_obs, midpoint_joints=pairs, midpoint_depth_m=r_mid, midpoint_sigma_m=sigma_mid,
                                midpoint_ray_cam=ray_mid, midpoint_weights=weights)
            depth_noise = dict(depth_noise or {})
            ears = _ear_indices(skeleton)
            head = ears is not None and dcfg.head_depth and tuple(pairs[0]) == tuple(ears)
            if head:
                depth_noise.update(head_offset_m=float(mid_offsets[0]), head_white_scale=float(mid_white[0]),
                                   head_bias_sigma_m=float(mid_bias[0]), head_points=int(np.isfinite(r_mid[..., 0]).sum()))
            k = 1 if head else 0
            if len(pairs) > k:
                depth_noise.update(segment_points=int(np.isfinite(r_mid[..., k:]).sum()), segment_offsets_m={
                    f"{skeleton.joint_names[p]}-{skeleton.joint_names[q]}@{wt:g}": float(o)
                    for (p, q), wt, o in zip(pairs[k:], weights[k:], mid_offsets[k:])})
        timings["depth_fusion"] = time.perf_counter() - t0
    refined = None
    xyz = fused_xyz
    if cfg.refine and kp.shape[0] >= 3:
        t0 = time.perf_counter()
        lengths = None
        if fusion is not None:
            # Depth readings count as observations for measuring bones (a joint one camera sees
            # and depth places is measured); the covariance removes the noise's lengthening.
            from reconstruction.bone_lengths import complete_bone_lengths, estimate_bone_lengths

            lengths = complete_bone_lengths(estimate_bone_lengths(
                fusion.xyz, skeleton, n_views=np.asarray(tri.n_views) + fusion.n_depth,
                reproj_error_px=np.where(np.isfinite(tri.reproj_error_px), tri.reproj_error_px, 0.0),
                covariance=fusion.covariance), skeleton)
        refined = refine_sequence(kp, rig, skeleton, initial, cfg.refinement, depth_residuals=depth_obs, fps=fps,
                                  bone_lengths=lengths)
        xyz = refined.xyz
        timings["refine"] = time.perf_counter() - t0
    if cfg.filter and kp.shape[0] >= 3:
        t0 = time.perf_counter()
        xyz = _apply_filter(xyz, fps, cfg.filters)
        timings["filter"] = time.perf_counter() - t0
    return SequenceResult(xyz=xyz, triangulation=tri, fused=fused_xyz, fusion=fusion, refined=refined,
                          offsets_m=offsets, timings_s=timings, keypoints2d=kp, swapped=swapped, flipped_3d=flipped,
                          depth_noise=depth_noise)


def lift_depth(
    keypoints2d: np.ndarray,
    depth,
    depth_scale,
    rig,
    skeleton,
    cfg: ReconstructionConfig,
    fps: float,
    offsets_m: np.ndarray,
) -> DepthLift:
    """Depth points (T, V, J) of a chunk of 2D keypoints ``(T, V, J, 3)`` and its depth images (see
    :func:`~reconstruction.depth_fusion.lift_keypoints_with_depth`).

    With ``depth_fusion.sample_at_estimate`` and >= 2 views the depth is read where a first 3D
    estimate of the chunk (triangulation + refinement, no depth, no filter) reprojects, when that
    lies within ``sample_gate_px`` of the detection: a more precise spot than one view's detection.
    """
    dcfg = cfg.depth_fusion
    kp = np.asarray(keypoints2d, dtype=np.float64)
    pairs, radii, fractions, weights = _midpoint_pairs(skeleton, dcfg, offsets_m)
    lift = lift_keypoints_with_depth(kp, depth, depth_scale, rig, cfg=dcfg, offsets_m=offsets_m)
    if not (dcfg.sample_at_estimate and len(rig) >= 2 and kp.shape[0] >= 3):
        return lift
    first = replace(cfg, filter=False)
    for k in range(max(dcfg.sample_passes, 1)):
        # Pass 1: the estimate without depth; later passes: with the depth read by the previous one.
        result = reconstruct_keypoints(kp, rig, skeleton, first, fps, lift=lift if k else None)
        estimate = result.xyz  # (T, J, 3)
        # How well the estimate knows each joint's depth: the per-frame triangulation's covariance
        # (two opposite views leave it open along their axis); unknown where nothing triangulated.
        expected_cov = np.asarray(getattr(result.triangulation, "covariance", np.full(estimate.shape + (3,), np.nan)))
        uv = np.moveaxis(rig.project(estimate), -2, 1)  # (T, V, J, 2)
        # Only where >= 2 views triangulated the joint: a joint one camera sees has no better
        # position than that camera's detection (the estimate there is interpolated or bone-held).
        measured = np.all(np.isfinite(result.triangulation.xyz), axis=-1)[:, None, :]
        with np.errstate(invalid="ignore"):
            close = (np.linalg.norm(uv - kp[..., :2], axis=-1) <= dcfg.sample_gate_px) & measured
        sample = np.where(close[..., None], uv, np.nan)
        lift = lift_keypoints_with_depth(kp, depth, depth_scale, rig, cfg=dcfg, offsets_m=offsets_m, sample_uv=sample,
                                         expected_xyz=estimate, expected_cov=expected_cov)
        if len(pairs):
            w = weights[None, :, None]
            mids = w * estimate[:, pairs[:, 0]] + (1.0 - w) * estimate[:, pairs[:, 1]]  # (T, P, 3)
            surface, var = lift_midpoints_with_depth(depth, depth_scale, rig, mids, radii, fractions, dcfg)
            # A limb is a cylinder: seen at an angle, its axis lies radius / sin(angle) behind its
            # surface along the ray. The head (a sphere) keeps sin = 1.
            axis = estimate[:, pairs[:, 1]] - estimate[:, pairs[:, 0]]
            with np.errstate(invalid="ignore", divide="ignore"):
                axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
                ray = mids[:, None] - rig.centers[None, :, None, :]
                ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
                sin = np.sqrt(np.clip(1.0 - np.einsum("tvpi,tpi->tvp", ray, axis) ** 2, 0.0, 1.0))
            sphere = np.zeros(len(pairs), dtype=bool)
            if dcfg.head_depth and _ear_indices(skeleton) is not None:
                sphere[0] = True
            sin = np.where(sphere[None, None, :], 1.0, sin)
            lift = replace(lift, mid_pairs=pairs, mid_surface=surface, mid_var=var, mid_radius=radii, mid_sin=sin,
                           mid_weights=weights)
    return lift


def _midpoint_pairs(skeleton, dcfg, offsets_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Joint pairs (P, 2) between which depth is read, their body radius (P,) m, disc fraction (P,)
    and the point's weight (P,) (``w X_a + (1 - w) X_b``):
    the ears (the head, ``head_depth``) first, then the rigid limb bones (``segment_depth``; not
    between a left and a right joint, not the face's or those of ``joints_without_depth``)."""
    from reconstruction.skeleton import canonical_joint_name

    pairs, radii, fractions, weights = [], [], [], []
    ears = _ear_indices(skeleton)
    if dcfg.head_depth and ears is not None:
        pairs.append(ears)
        radii.append(dcfg.head_radius_m)
        fractions.append(dcfg.head_window_fraction)
        weights.append(0.5)
    if dcfg.segment_depth:
        skip = {canonical_joint_name(n) for n in dcfg.joints_without_depth}
        names = [canonical_joint_name(n) for n in skeleton.joint_names]
        mirror = skeleton.flip_permutation
        for (a, b), rigid in zip(skeleton.bone_indices, skeleton.rigid_mask):
            # limbs only: the middle of shoulder to shoulder is in front of the chest or behind
            # the back depending on the view, no cylinder's axis
            if rigid and names[a] not in skip and names[b] not in skip and mirror[a] != b:
                for w in dcfg.segment_points:
                    pairs.append((int(a), int(b)))
                    radii.append(float(min(offsets_m[a], offsets_m[b])))
                    fractions.append(dcfg.window_fraction)
                    weights.append(float(w))
    return (np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(radii, dtype=np.float64),
            np.array(fractions, dtype=np.float64), np.array(weights, dtype=np.float64))


def _ear_indices(skeleton) -> tuple[int, int] | None:
    """Indices of the left and right ear in ``skeleton`` (canonical names), or None."""
    from reconstruction.skeleton import canonical_joint_name

    names = [canonical_joint_name(n) for n in skeleton.joint_names]
    if "left_ear" in names and "right_ear" in names:
        return names.index("left_ear"), names.index("right_ear")
    return None


def _midpoint_depth(lift: DepthLift, tri, rig, dcfg, reliable: np.ndarray):
    """Midpoint depth observations from ``lift.mid_surface``: (pairs (P, 2), range along the ray
    (T, V, P), sigma (T, V, P), camera-frame rays (T, V, P, 3), offsets (P,) m, white scales (P,),
    bias sigmas (P,) m), or None.

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
    cov = getattr(tri, "covariance", None)
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
    return pairs, w, r, sigma, rays, offsets, white, bias


# --- the session: which file feeds which camera


# --- the session: which file feeds which camera ------------------------------------------------------

RECORDING_EXTENSIONS = (".bag", ".db3")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True, eq=False)
class ViewSource:
    """One view of a session: ``camera`` of the rig fed by ``path`` (a RealSense recording or a video)."""

    camera: object
    path: Path
    kind: str  # "recording" | "video"
    num_frames: int = 0


@dataclass(frozen=True, eq=False)
class Session:
    """The files of a session matched to rig cameras, in rig order (cameras without a file dropped).

    Attributes:
        rig: the matched cameras (a subset of the calibration's rig, its order).
        views: (V,) the file feeding each camera.
        fps: frame rate (the first recording's, else the first video's).
        notes: what the user should know (cameras without a file, a single camera, ...).
    """

    rig: object
    views: tuple[ViewSource, ...]
    fps: float
    notes: tuple[str, ...] = ()

    @property
    def has_depth(self) -> bool:
        return any(v.kind == "recording" for v in self.views)


def _loose(name: str) -> str:
    import re

    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    from capture.errors import RecordingError

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in RECORDING_EXTENSIONS + VIDEO_EXTENSIONS)
            if not found:
                raise RecordingError(
                    f"{p}: no recordings (.bag, .db3) or videos ({', '.join(VIDEO_EXTENSIONS)}) in this folder")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in RECORDING_EXTENSIONS + VIDEO_EXTENSIONS:
                raise RecordingError(f"{p}: not a recording (.bag, .db3) or a video ({', '.join(VIDEO_EXTENSIONS)})")
            files.append(p)
        else:
            raise RecordingError(f"{p}: no such file or folder")
    return files


def _video_info(path: Path) -> tuple[int, float, tuple[int, int]]:
    import cv2

    from capture.errors import RecordingError

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise RecordingError(f"{path}: OpenCV cannot open this video")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    return n, fps, size


def open_session(paths: Sequence[str | Path], rig) -> Session:
    """Match the session's files to ``rig``'s cameras.

    Recordings are matched by the serial they carry (then by file name), videos by file name
    (``cam01.mp4`` -> camera ``cam01``; case and separators ignored). A file that matches no camera
    is an error naming it and the rig's cameras; a rig camera without a file is left out (noted).
    """
    from calibration.camera import Rig
    from capture.errors import RecordingError

    files = _expand(paths)
    matched: dict[str, ViewSource] = {}
    fps_rec, fps_vid = None, None
    for f in files:
        if f.suffix.lower() in RECORDING_EXTENSIONS:
            info = _recording_info(f)
            camera = rig.find(str(info["serial"])) if info["serial"] else None
            camera = camera or _find_by_name(rig, f.stem)
            if camera is None:
                known = ", ".join(f"{c.name} (serial {c.serial or '?'})" for c in rig.cameras)
                raise RecordingError(
                    f"{f}: recording of camera serial {info['serial'] or '?'} which is not in the calibration "
                    f"(rig cameras: {known}); calibrate that camera or leave the file out")
            source = ViewSource(camera, f, "recording", info["num_frames"])
            fps_rec = fps_rec or info["fps"]
        else:
            camera = _find_by_name(rig, f.stem)
            if camera is None:
                raise RecordingError(
                    f"{f}: video whose name matches no camera of the calibration (cameras: "
                    f"{', '.join(rig.names)}); name each video after its camera, e.g. {rig.names[0]}.mp4")
            n, fps, size = _video_info(f)
            if tuple(size) != tuple(camera.image_size) and max(
                    abs(a - b) / b for a, b in zip(size, camera.image_size)) > 0.02:
                raise RecordingError(
                    f"{f}: video is {size[0]}x{size[1]} but camera {camera.name} is calibrated at "
                    f"{camera.width}x{camera.height}")
            source = ViewSource(camera, f, "video", n)
            fps_vid = fps_vid or fps
        if camera.name in matched:
            raise RecordingError(f"{f} and {matched[camera.name].path} both feed camera {camera.name}; keep one")
        matched[camera.name] = source
    views = tuple(matched[n] for n in rig.names if n in matched)
    notes = []
    missing = [n for n in rig.names if n not in matched]
    if missing:
        notes.append(f"no file for camera(s) {', '.join(missing)}: reconstructed without them")
    if len(views) == 1:
        what = "depth-only 3D (one RGB-D camera)" if views[0].kind == "recording" else "no 3D possible"
        notes.append(f"a single camera ({views[0].camera.name}): {what}")
        if views[0].kind != "recording":
            raise RecordingError(
                f"{views[0].path}: a single video gives no 3D; add the other cameras' files or use an RGB-D recording")
    longest = max(v.num_frames for v in views)
    for v in views:
        if v.num_frames and v.num_frames < 0.8 * longest:
            notes.append(f"{v.path.name} ({v.camera.name}) has {v.num_frames} frames, the longest {longest}: "
                         f"that view is missing after its end")
    sub = Rig(tuple(v.camera for v in views))
    return Session(rig=sub, views=views, fps=float(fps_rec or fps_vid or 30.0), notes=tuple(notes))


def _find_by_name(rig, stem: str):
    exact = rig.find(stem)
    if exact is not None:
        return exact
    loose = [c for c in rig.cameras if _loose(c.name) == _loose(stem) or (c.serial and _loose(c.serial) == _loose(stem))]
    return loose[0] if len(loose) == 1 else None


def _recording_info(path: Path) -> dict:
    """Serial, frame count and fps of a RealSense recording (capture.recording)."""
    from capture.recording import index_recording, read_recording_info

    info = read_recording_info(path)
    fps = float(info.fps or 0) or None
    if path.suffix.lower() == ".bag":  # indexing a .bag means playing it: estimate from the duration
        num = int(round(float(info.duration_ms or 0) * (fps or 0) / 1000.0)) if np.isfinite(info.duration_ms or 0) else 0
        return {"serial": str(info.serial or ""), "num_frames": num, "fps": fps}
    try:
        index = index_recording(path)
        primary = index.get(info.primary) if hasattr(index, "get") else None
        num = len(primary) if primary is not None else max((len(v) for v in index.values()), default=0)
    except Exception as exc:  # an index is a nicety (frame counts for the notes), never a reason to fail
        log.debug("%s: no index (%s)", path, exc)
        num = 0
    return {"serial": str(info.serial or ""), "num_frames": int(num), "fps": fps}


# --- frames ------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Frames:
    """One frame set as the pipeline sees it: per view colour (H, W, 3) RGB or None, depth (H, W)
    uint16 or None, depth scale (V,), present (V,), timestamps (V,) ms."""

    color: tuple
    depth: tuple
    depth_scale: np.ndarray
    present: np.ndarray
    timestamps_ms: np.ndarray


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def iterate_frames(session: Session, keep_color: bool = True) -> Iterator[Frames]:
    """Frame sets of the session in time order: the recordings synchronized by capture.stream, the
    videos by frame index alongside (a video's frame ``i`` = the ``i``-th frame set); a view whose
    file has ended is absent (None) for the rest of the session. ``keep_color=False`` drops the
    colour images (depth-only consumers keep less in memory)."""
    rec_idx = [i for i, v in enumerate(session.views) if v.kind == "recording"]
    vid_idx = [i for i, v in enumerate(session.views) if v.kind == "video"]
    V = len(session.views)
    rec_iter = _recording_frames([session.views[i] for i in rec_idx]) if rec_idx else None
    vid_iters = [_video_frames(session.views[i].path) for i in vid_idx]
    k = 0
    while True:
        color = [None] * V
        depth = [None] * V
        scale = np.full(V, np.nan)
        present = np.zeros(V, bool)
        stamps = np.full(V, np.nan)
        alive = False
        if rec_iter is not None:
            fs = next(rec_iter, None)
            if fs is not None:
                alive = True
                for j, i in enumerate(rec_idx):
                    color[i], depth[i] = fs.color[j], fs.depth[j]
                    scale[i] = fs.depth_scale[j]
                    present[i] = bool(fs.present[j])
                    stamps[i] = fs.timestamps_ms[j]
            else:
                rec_iter = None
        for j, i in enumerate(vid_idx):
            if vid_iters[j] is None:
                continue
            img = next(vid_iters[j], None)
            if img is None:
                vid_iters[j] = None
                continue
            alive = True
            color[i] = img
            present[i] = True
            stamps[i] = k * 1000.0 / session.fps
        if not alive:
            return
        if not keep_color:
            color = [None] * V
        yield Frames(tuple(color), tuple(depth), scale, present, stamps)
        k += 1


def _recording_frames(views: Sequence[ViewSource]) -> Iterator:
    """FrameSets of synchronized recordings (capture.stream.FrameSetStream), depth aligned to color
    where the recording's depth camera is not already the color camera."""
    from capture.stream import FrameSetStream

    paths = [v.path for v in views]
    stream = FrameSetStream(paths, names=[v.camera.name for v in views], align_depth=False)
    if any(_needs_alignment(info) for info in stream.infos):
        stream.close()
        stream = FrameSetStream(paths, names=[v.camera.name for v in views], align_depth=True)
    try:
        yield from stream
    finally:
        stream.close()


def _needs_alignment(info) -> bool:
    """True unless depth already has the color stream's intrinsics and an identity depth-to-color."""
    if not getattr(info, "has_depth", False) or info.color_intrinsics is None or info.depth_intrinsics is None:
        return False
    same = info.color_intrinsics == info.depth_intrinsics
    if info.depth_to_color is not None:
        R, t = info.depth_to_color
        same = same and np.allclose(R, np.eye(3), atol=1e-9) and np.allclose(t, 0.0, atol=1e-9)
    return not same


def _chunks(it: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in it:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- the driver ----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Detections2D:
    """Precomputed 2D instead of the model: ``keypoints`` a Keypoints2D (views named after cameras),
    ``timestamps_ms`` (T, V) optional (frame sets are matched to its rows by time, else by order)."""

    keypoints: object
    timestamps_ms: np.ndarray | None = None


def load_detections(path: str | Path) -> Detections2D:
    """Our keypoints NPZ, a simulator ``ground_truth.npz`` (its true 2D: pass it through
    :func:`~reconstruction.simulation.detections.simulate_detections` first for realistic input),
    or an OpenPose JSON folder (one sub-folder per camera)."""
    from capture.errors import FileFormatError
    from reconstruction.keypoints2d_io import Keypoints2D, read_keypoints2d

    path = Path(path)
    if path.is_dir():
        return Detections2D(read_keypoints2d(path))
    if not path.is_file():
        raise FileFormatError(f"{path}: detections file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable NPZ file ({exc})") from None
    with data:
        if "keypoints2d" in data.files and "cameras" in data.files and "joint_names" in data.files:
            fps = float(data["fps"]) if "fps" in data.files else 30.0
            try:
                kp = Keypoints2D(data["keypoints2d"], tuple(data["cameras"].tolist()),
                                 tuple(data["joint_names"].tolist()), fps)
            except ValueError as exc:
                raise FileFormatError(f"{path}: {exc}") from None
            stamps = np.asarray(data["timestamps_ms"], dtype=np.float64) if "timestamps_ms" in data.files else None
            if stamps is not None and stamps.shape != kp.keypoints.shape[:2]:
                stamps = None
            return Detections2D(kp, stamps)
    return Detections2D(read_keypoints2d(path))


@dataclass(frozen=True, eq=False)
class ReconstructionOutput:
    """What :func:`reconstruct_session` produced: the arrays, the quality report and the files."""

    result: SequenceResult
    keypoints2d: np.ndarray
    rig: object
    skeleton: object
    fps: float
    quality: dict
    files: dict
    notes: tuple[str, ...]


def _cache_key(cfg: ReconstructionConfig, model_name: str) -> str:
    text = json.dumps({"model": model_name, "cfg": to_plain(cfg.model2d), "boxes": to_plain(cfg.boxes),
                       "chunk": cfg.chunk_frames}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _cache_paths(cache_dir: Path, key: str, cameras: Sequence[str], chunk: int) -> list[Path]:
    from reconstruction.outputs import _safe

    return [cache_dir / f"2d_{key}_{_safe(c)}_{chunk:05d}.npz" for c in cameras]


def _read_cache(paths: list[Path], num_frames: int) -> np.ndarray | None:
    if not all(p.is_file() for p in paths):
        return None
    try:
        views = [np.load(p, allow_pickle=False)["keypoints"] for p in paths]
    except (OSError, ValueError, KeyError):
        return None
    if any(v.shape[0] != num_frames for v in views):
        return None
    return np.stack(views, axis=1)


def _write_cache(paths: list[Path], kp: np.ndarray) -> None:
    from capture.atomic import atomic_path

    for v, path in enumerate(paths):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, keypoints=kp[:, v])


class _Detector2D:
    """The 2D model with its person detector, tracking boxes across chunks."""

    def __init__(self, model, cfg: ReconstructionConfig, rig):
        self.model = model
        self.cfg = cfg
        self.rig = rig
        self.prev = None
        self.detector = None
        if cfg.model2d.detector == "multipose":
            from reconstruction.models2d import registry

            self.detector = registry.load_person_detector(cfg.model2d.weights_dir or None, device=cfg.model2d.device)
            if self.detector is None:
                log.warning("MoveNet MultiPose weights not found: first boxes are the whole frame")

    def run(self, chunk: list[Frames], progress=None) -> np.ndarray:
        from reconstruction.models2d.boxes import boxes_from_keypoints
        from reconstruction.models2d.interface import detect_sequence

        blank = [np.zeros((c.height, c.width, 3), np.uint8) for c in self.rig.cameras]
        frames = ([img if img is not None else blank[v] for v, img in enumerate(f.color)] for f in chunk)
        init = boxes_from_keypoints(self.prev, self.cfg.boxes) if self.prev is not None else None
        detector = self.detector.detect if self.detector is not None else None
        kp = detect_sequence(self.model, frames, init_boxes=init, detector=detector, box_cfg=self.cfg.boxes,
                             flip_test=self.cfg.model2d.flip_test, progress=progress)
        present = np.stack([f.present & np.array([c is not None for c in f.color]) for f in chunk])
        kp[~present] = np.nan
        self.prev = kp[-1]
        return kp


def load_model2d(name: str, cfg: Model2DConfig):
    """A registered 2D model by name; an unknown name is a ConfigError listing the known ones."""
    from reconstruction.models2d import registry

    return registry.load_model(name, device=cfg.device, weights_dir=cfg.weights_dir or None,
                               batch_size=cfg.batch_size)


def check_model_name(name: str) -> None:
    """ConfigError-like message listing the known models when ``name`` is not one of them."""
    from reconstruction.models2d import registry

    registry.get_spec(name)


def _select_detections(det: Detections2D, rig, skeleton) -> tuple[np.ndarray, np.ndarray | None]:
    from capture.errors import FileFormatError

    kp = det.keypoints
    try:
        kp = kp.select_cameras(rig.names)
    except FileFormatError:
        # Recordings are named by serial: let a detection view named after the serial match too.
        serial_names = [c.serial or c.name for c in rig.cameras]
        kp = kp.select_cameras(serial_names)
    if tuple(kp.joint_names) != tuple(skeleton.joint_names):
        raise FileFormatError(
            f"detections have joints {', '.join(kp.joint_names[:4])}, ... ({kp.num_joints}) but the skeleton "
            f"{skeleton.name!r} expects {skeleton.num_joints}; set 'skeleton' in the config to match")
    stamps = None
    if det.timestamps_ms is not None:
        order = [list(det.keypoints.cameras).index(c) for c in kp.cameras] if set(kp.cameras) <= set(
            det.keypoints.cameras) else None
        stamps = det.timestamps_ms[:, order] if order is not None else None
    return kp.keypoints, stamps


def _rows_for(chunk: list[Frames], stamps: np.ndarray | None, start: int, T: int) -> np.ndarray:
    """(Tc, V) row of the precomputed 2D for each view of each frame set of ``chunk`` (-1 where
    none): by each view's own timestamp when the detections carry timestamps, else by order."""
    V = len(chunk[0].present)
    if stamps is None:
        rows = np.arange(start, start + len(chunk))
        return np.repeat(np.where(rows < T, rows, -1)[:, None], V, axis=1)
    fs = np.stack([f.timestamps_ms for f in chunk])  # (Tc, V)
    d = np.abs(fs[:, None, :] - stamps[None, :, :])  # (Tc, T, V)
    d = np.where(np.isfinite(d), d, np.inf)
    rows = np.argmin(d, axis=1)  # (Tc, V)
    best = np.take_along_axis(d, rows[:, None, :], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        steps = np.diff(stamps, axis=0)
    period = float(np.nanmedian(steps)) if np.isfinite(steps).any() else np.inf
    return np.where(best <= 0.5 * period, rows, -1)


def reconstruct_session(
    session: Session | None,
    cfg: ReconstructionConfig,
    out_dir: str | Path,
    model_name: str | None = None,
    detections: Detections2D | None = None,
    rig=None,
    progress: bool = True,
    truth: np.ndarray | None = None,
) -> ReconstructionOutput:
    """Run the whole reconstruction and write the outputs into ``out_dir``.

    Either ``session`` (recordings / videos matched to cameras) with the 2D model (``model_name``
    overrides ``cfg.model2d.name``) or with precomputed ``detections``, or ``detections`` and a
    ``rig`` without any session (no depth, no overlay videos). ``truth`` (T, J, 3) is drawn in the
    3D plot when given.
    """
    from tqdm import tqdm

    from reconstruction.outputs import write_keypoints_per_view
    from reconstruction.skeleton import load_skeleton

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skeleton = load_skeleton(cfg.skeleton)
    notes = list(session.notes) if session is not None else []
    rig = session.rig if session is not None else rig
    if rig is None:
        raise ValueError("reconstruct_session needs a session or a rig")
    V, J = len(rig), skeleton.num_joints
    fps = session.fps if session is not None else float(detections.keypoints.fps)
    model_name = model_name or cfg.model2d.name
    timings: dict[str, float] = {"read": 0.0, "model2d": 0.0, "depth_lift": 0.0}
    pre_kp, pre_stamps = (None, None)
    if detections is not None:
        pre_kp, pre_stamps = _select_detections(detections, rig, skeleton)
    prior_offsets = joint_offsets(skeleton.joint_names, cfg.depth_fusion)

    kp_chunks, surf_chunks, cov_chunks, var_chunks, est_chunks, stamp_chunks = [], [], [], [], [], []
    head_chunks: list = []
    mid_radius = mid_weights = None
    if session is None:
        kp_all = pre_kp
        lift = None
    else:
        detector = None
        if pre_kp is None:
            model = load_model2d(model_name, cfg.model2d)
            if tuple(model.joint_names) != tuple(skeleton.joint_names):
                skeleton = _skeleton_for(model, skeleton)
                J = skeleton.num_joints
                prior_offsets = joint_offsets(skeleton.joint_names, cfg.depth_fusion)
            detector = _Detector2D(model, cfg, rig)
        key = _cache_key(cfg, model_name)
        total = max((v.num_frames for v in session.views), default=0) or None
        bar = tqdm(total=total, desc="frame sets", unit="set", disable=not progress, leave=False)
        start = 0
        frames_iter = iterate_frames(session, keep_color=pre_kp is None)
        any_depth = False
        t_read = time.perf_counter()
        for ci, chunk in enumerate(_chunks(frames_iter, cfg.chunk_frames)):
            timings["read"] += time.perf_counter() - t_read
            Tc = len(chunk)
            t0 = time.perf_counter()
            if pre_kp is not None:
                rows = _rows_for(chunk, pre_stamps, start, pre_kp.shape[0])  # (Tc, V)
                kp_c = pre_kp[np.maximum(rows, 0), np.arange(V)[None, :]]  # (Tc, V, J, 3)
                kp_c[rows < 0] = np.nan
                present = np.stack([f.present for f in chunk])
                kp_c[~present] = np.nan
                bar.update(Tc)
            else:
                paths = _cache_paths(out_dir / "cache", key, rig.names, ci)
                kp_c = _read_cache(paths, Tc)
                if kp_c is None:
                    kp_c = detector.run(chunk, progress=bar.update)
                    _write_cache(paths, kp_c)
                else:
                    detector.prev = kp_c[-1]
                    bar.update(Tc)
            timings["model2d"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if any(d is not None for f in chunk for d in f.depth) and cfg.depth_fusion.enabled:
                any_depth = True
                scale = np.nanmedian(np.stack([f.depth_scale for f in chunk]), axis=0)
                lifted = lift_depth(kp_c, [f.depth for f in chunk], np.nan_to_num(scale, nan=0.0), rig, skeleton,
                                    cfg, fps, prior_offsets)
                surf_chunks.append(lifted.surface)
                cov_chunks.append(lifted.covariance)
                var_chunks.append(lifted.var_ray)
                est_chunks.append(lifted.at_estimate)
                head_chunks.append((lifted.mid_pairs, lifted.mid_surface, lifted.mid_var, lifted.mid_sin))
                mid_radius, mid_weights = lifted.mid_radius, lifted.mid_weights
            else:
                surf_chunks.append(np.full((Tc, V, J, 3), np.nan))
                cov_chunks.append(np.full((Tc, V, J, 3, 3), np.nan))
                var_chunks.append(np.full((Tc, V, J), np.nan))
                est_chunks.append(np.zeros((Tc, V, J), dtype=bool))
                head_chunks.append((None, None, None, None))
            timings["depth_lift"] += time.perf_counter() - t0
            kp_chunks.append(kp_c)
            stamp_chunks.append(np.stack([f.timestamps_ms for f in chunk]))
            start += Tc
            t_read = time.perf_counter()
        bar.close()
        if not kp_chunks:
            from capture.errors import RecordingError

            raise RecordingError(f"{session.views[0].path}: no frames could be read from the session")
        kp_all = np.concatenate(kp_chunks)
        lift = None
        if any_depth:
            surface = np.concatenate(surf_chunks)
            lift = DepthLift(points=apply_offsets(surface, rig, prior_offsets), covariance=np.concatenate(cov_chunks),
                             surface=surface, offsets_m=prior_offsets, var_ray=np.concatenate(var_chunks),
                             at_estimate=np.concatenate(est_chunks))
            pairs = next((h[0] for h in head_chunks if h[0] is not None), None)
            if pairs is not None:
                P = len(pairs)

                def joined(slot, tail, fill):
                    return np.concatenate([h[slot] if h[slot] is not None else np.full((len(k), V, P) + tail, fill)
                                           for h, k in zip(head_chunks, kp_chunks)])

                lift = replace(lift, mid_pairs=pairs, mid_radius=mid_radius, mid_weights=mid_weights,
                               mid_surface=joined(1, (3,), np.nan),
                               mid_var=joined(2, (), np.nan), mid_sin=joined(3, (), 1.0))
        del surf_chunks, cov_chunks, var_chunks, est_chunks, head_chunks
    if V == 1 and lift is None:
        from capture.errors import RecordingError

        raise RecordingError("a single camera without depth gives no 3D: add cameras or use an RGB-D recording")
    result = reconstruct_keypoints(kp_all, rig, skeleton, cfg, fps, lift=lift)
    result.timings_s.update(timings)
    files = write_outputs(out_dir, result, kp_all, rig, skeleton, cfg, fps, session, notes, truth=truth)
    if cfg.output.keypoints2d:
        from reconstruction.keypoints2d_io import Keypoints2D

        files["keypoints2d"] = [str(p) for p in write_keypoints_per_view(
            out_dir / "keypoints2d", Keypoints2D(kp_all, tuple(rig.names), tuple(skeleton.joint_names), fps))]
    quality = json.loads((out_dir / "quality.json").read_text())
    return ReconstructionOutput(result=result, keypoints2d=kp_all, rig=rig, skeleton=skeleton, fps=fps,
                                quality=quality, files=files, notes=tuple(notes))


def _skeleton_for(model, skeleton):
    from reconstruction.skeleton import builtin_skeletons, load_skeleton

    for name in builtin_skeletons():
        candidate = load_skeleton(name)
        if tuple(candidate.joint_names) == tuple(model.joint_names):
            log.info("the 2D model outputs skeleton %s (config said %s)", name, skeleton.name)
            return candidate
    raise ConfigError(f"model {model.name!r} outputs joints no built-in skeleton has; set 'skeleton' to its YAML")


def write_outputs(out_dir: Path, result: SequenceResult, kp: np.ndarray, rig, skeleton, cfg: ReconstructionConfig,
                  fps: float, session: Session | None, notes: list, truth: np.ndarray | None = None) -> dict:
    """3D files, quality JSON, 3D plot, overlay videos (second pass over the colour frames) and the
    resolved config, into ``out_dir``."""
    from reconstruction.outputs import OverlayWriter, atomic_write_text, plot3d_image, quality_report, write_points
    from reconstruction.outputs import write_quality

    files: dict = {}
    tri = result.triangulation
    if result.keypoints2d is not None:
        kp = result.keypoints2d  # after the swap correction
    quality_arrays = {"reproj_error_px": np.asarray(tri.reproj_error_px), "n_views": np.asarray(tri.n_views)}
    cov = result.fusion.covariance if result.fusion is not None else getattr(tri, "covariance", None)
    if cov is not None:
        quality_arrays["covariance"] = np.asarray(cov)
    if result.fusion is not None:
        quality_arrays["depth_disagreement_m"] = result.fusion.disagreement_m
        quality_arrays["n_depth"] = result.fusion.n_depth
    files["points3d"] = [str(p) for p in write_points(out_dir, result.xyz, skeleton.joint_names, fps, quality_arrays,
                                                      cfg.output.formats)]
    extra = {
        "cameras": list(rig.names),
        "depth_fusion": result.fusion is not None,
        "triangulation_completeness": float(np.all(np.isfinite(tri.xyz), axis=-1).mean()) if tri.xyz.size else 0.0,
        "timings_s": {k: round(v, 4) for k, v in result.timings_s.items()},
        "notes": list(notes),
    }
    if result.swapped is not None:
        extra["swaps"] = {
            "views_corrected": int(result.swapped.sum()),
            "frames_flipped_in_every_view": int(result.flipped_3d.sum()) if result.flipped_3d is not None else 0,
            "per_camera": {n: int(c) for n, c in zip(rig.names, result.swapped.sum(axis=0))},
        }
    if cfg.sequence_quality:
        from reconstruction.quality import sequence_quality

        extra["sequence_quality"] = sequence_quality(result.xyz, skeleton, fps, np.asarray(tri.reproj_error_px),
                                                     np.asarray(tri.n_views))
    if result.offsets_m is not None:
        extra["joint_offsets_m"] = {n: round(float(o), 4) for n, o in zip(skeleton.joint_names, result.offsets_m)}
    if result.depth_noise:
        noise = result.depth_noise
        def plain(value):
            if isinstance(value, np.ndarray):
                return {n: round(float(x), 4) for n, x in zip(skeleton.joint_names, value)}
            if isinstance(value, dict):
                return {k: round(float(x), 4) for k, x in value.items()}
            return round(float(value), 4)

        extra["depth_noise"] = {key: plain(value) for key, value in noise.items()}
    # joint-frames no camera detected that the bones (or smoothness over a short gap) placed
    extra["joints_seen_by_no_camera"] = int((~np.isfinite(np.asarray(kp[..., 0])).any(axis=1)
                                             & np.all(np.isfinite(result.xyz), axis=-1)).sum())
    report = quality_report(
        result.xyz, kp, rig, skeleton, fps,
        disagreement_m=result.fusion.disagreement_m if result.fusion is not None else None,
        depth_only_joints=result.fusion.depth_only_joints if result.fusion is not None else 0,
        min_score=cfg.output.quality_min_score, extra=extra)
    files["quality"] = str(write_quality(out_dir / "quality.json", report))
    if cfg.output.plot3d:
        files["plot3d"] = str(plot3d_image(result.xyz, skeleton, out_dir / "plot3d.png",
                                           title=f"{skeleton.name}, {len(result.xyz)} frames at {fps:g} fps",
                                           truth=truth))
    files["config"] = str(atomic_write_text(out_dir / "reconstruction.yaml", config_to_yaml(cfg)))
    if cfg.output.overlay_video and session is not None:
        from reconstruction.outputs import _safe

        writers = [OverlayWriter(out_dir / f"overlay_{_safe(c.name)}.mp4", c, skeleton.bone_indices, fps,
                                 cfg.output.overlay_max_width) for c in rig.cameras]
        try:
            for t, frames in enumerate(iterate_frames(session)):
                if t >= len(result.xyz):
                    break
                for v, w in enumerate(writers):
                    w.write(frames.color[v], result.xyz[t], kp[t, v])
            files["overlays"] = [str(p) for p in (w.close() for w in writers) if p is not None]
        except BaseException:
            for w in writers:
                w.abort()
            raise
    return files


if __name__ == "__main__":  # python -m reconstruction.pipeline: regenerate configs/reconstruction.yaml
    print(write_default_config())
