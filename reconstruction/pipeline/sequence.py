"""The pure part of a reconstruction: 2D keypoints (and depth points) in, 3D out, no files.

Shapes: ``T`` frames, ``V`` views (the rig's order), ``J`` joints.

    2D --(swaps.correct_swaps_2d: left/right swaps of single views)--> 2D
       --(triangulation.triangulate; swaps.correct_swaps_3d: frames flipped in every view)--> 3D
       --(depth.fuse_depth, RGB-D views only)--> fused 3D + depth residuals
       --(refine.refine_sequence: bones, smoothness, reprojection, depth)--> --(filters)--> final 3D

Used by the offline driver (:mod:`.offline`), the demo, the benchmarks and the tests.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from calibration.camera import Rig
from reconstruction.depth.fusion import FusionResult
from reconstruction.depth.lift import DepthLift, flip_lift
from reconstruction.depth.stage import DepthNoise, DepthStageResult, fuse_depth
from reconstruction.pipeline.config import ReconstructionConfig
from reconstruction.skeleton import Skeleton
from reconstruction.triangulation import Triangulation3D


@dataclass(frozen=True, eq=False)
class SequenceResult:
    """Arrays of one reconstruction.

    Attributes:
        xyz: (T, J, 3) final 3D, world metres, NaN where missing.
        triangulation: the robust per-frame triangulation (after the swap corrections).
        fused: (T, J, 3) after depth fusion (= triangulated xyz when no depth).
        fusion: the depth fusion, or None without depth.
        refined: the refinement's result (None when off).
        offsets_m: (J,) joint offsets behind the surface used for depth (None without depth).
        timings_s: seconds per stage.
        keypoints2d: (T, V, J, 3) the 2D used (after the swap correction).
        swapped: (T, V) views whose left/right labels were swapped back (2D and 3D corrections).
        flipped_3d: (T,) frames whose labels had flipped in every view (the 3D correction).
        depth_noise: the depth noise measured from the data (None without depth).
    """

    xyz: np.ndarray
    triangulation: Triangulation3D
    fused: np.ndarray
    fusion: FusionResult | None
    refined: Triangulation3D | None
    offsets_m: np.ndarray | None
    timings_s: dict
    keypoints2d: np.ndarray
    swapped: np.ndarray
    flipped_3d: np.ndarray
    depth_noise: DepthNoise | None = None


def _correct_swaps(kp: np.ndarray, rig: Rig, skeleton: Skeleton, cfg: ReconstructionConfig, timings: dict):
    """(2D, its triangulation, (T, V) swapped views, (T,) frames flipped in every view)."""
    from reconstruction.swaps import correct_swaps_2d, correct_swaps_3d, flip_views
    from reconstruction.triangulation import triangulate

    T, V = kp.shape[:2]
    swapped = np.zeros((T, V), dtype=bool)
    flipped = np.zeros(T, dtype=bool)
    if cfg.swaps.per_view and V >= 3:  # the multi-view test needs a pair of other views
        t0 = time.perf_counter()
        kp, swapped = correct_swaps_2d(kp, rig, skeleton, cfg.swaps)
        timings["swaps"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tri = triangulate(kp, rig, cfg.triangulation)
    timings["triangulate"] = time.perf_counter() - t0
    if cfg.swaps.per_frame and T >= 2 and V >= 3:  # two views triangulate too few left/right pairs to judge
        t0 = time.perf_counter()
        _, flipped = correct_swaps_3d(tri.xyz, skeleton, cfg.swaps)
        if flipped.any():
            every = np.repeat(flipped[:, None], V, axis=1)
            kp = flip_views(kp, every, skeleton)
            swapped = swapped ^ every
            tri = triangulate(kp, rig, cfg.triangulation)
        timings["swaps"] = timings.get("swaps", 0.0) + time.perf_counter() - t0
    return kp, tri, swapped, flipped


def _refine(kp: np.ndarray, rig: Rig, skeleton: Skeleton, tri: Triangulation3D, depth: DepthStageResult | None,
            cfg: ReconstructionConfig, fps: float) -> Triangulation3D:
    from reconstruction.refine import refine_sequence

    lengths = None
    if depth is not None:
        # Depth readings count as observations for measuring bones (a joint one camera sees
        # and depth places is measured); the covariance removes the noise's lengthening.
        from reconstruction.bone_lengths import complete_bone_lengths, estimate_bone_lengths

        fusion = depth.fusion
        lengths = complete_bone_lengths(estimate_bone_lengths(
            fusion.xyz, skeleton, n_views=np.asarray(tri.n_views) + fusion.n_depth,
            reproj_error_px=np.where(np.isfinite(tri.reproj_error_px), tri.reproj_error_px, 0.0),
            covariance=fusion.covariance), skeleton)
    initial = depth.initial if depth is not None else tri
    observations = depth.observations if depth is not None else None
    return refine_sequence(kp, rig, skeleton, initial, cfg.refinement, depth_residuals=observations, fps=fps,
                           bone_lengths=lengths)


def reconstruct_keypoints(
    keypoints2d: np.ndarray,
    rig: Rig,
    skeleton: Skeleton,
    cfg: ReconstructionConfig,
    fps: float,
    lift: DepthLift | None = None,
) -> SequenceResult:
    """Triangulate, fuse depth, refine and filter 2D keypoints ``(T, V, J, 3)`` of ``rig``'s views.

    ``lift`` holds the depth points of the views with depth (from
    :func:`~reconstruction.depth.reading.read_depth`). With one camera and depth, the result is
    depth-only 3D. Left/right swaps are undone first (``swaps.per_view``: single views,
    ``swaps.per_frame``: frames swapped in every view); the depth points of a swapped view are
    relabelled with its 2D.
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    timings: dict[str, float] = {}
    kp, tri, swapped, flipped = _correct_swaps(kp, rig, skeleton, cfg, timings)
    if lift is not None and swapped.any():
        lift = flip_lift(lift, swapped, skeleton)
    depth = None
    if lift is not None and cfg.depth_fusion.enabled and np.isfinite(lift.surface).any():
        t0 = time.perf_counter()
        depth = fuse_depth(tri, lift, skeleton, rig, cfg.depth_fusion)
        timings["depth_fusion"] = time.perf_counter() - t0
    fused_xyz = depth.fusion.xyz if depth is not None else tri.xyz
    refined = None
    xyz = fused_xyz
    if cfg.refinement.enabled and kp.shape[0] >= 3:
        t0 = time.perf_counter()
        refined = _refine(kp, rig, skeleton, tri, depth, cfg, fps)
        xyz = refined.xyz
        timings["refine"] = time.perf_counter() - t0
    if cfg.filters.enabled and kp.shape[0] >= 3:
        from reconstruction.filters import filter_sequence

        t0 = time.perf_counter()
        xyz = filter_sequence(xyz, fps, cfg.filters)
        timings["filter"] = time.perf_counter() - t0
    return SequenceResult(
        xyz=xyz, triangulation=tri, fused=fused_xyz, fusion=depth.fusion if depth is not None else None,
        refined=refined, offsets_m=depth.offsets_m if depth is not None else None, timings_s=timings,
        keypoints2d=kp, swapped=swapped, flipped_3d=flipped, depth_noise=depth.noise if depth is not None else None)
