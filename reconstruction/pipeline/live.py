"""The live driver: the offline stages on the newest frame set, causally, for ``mocap capture --live-3d``.

Shapes: ``V`` views, ``J`` joints. :class:`capture.live.LiveView` runs these ``(name, fn)`` stages
in its own thread (``fn(frameset, previous_output) -> output``; the last output is the (J, 3)
skeleton in world metres). What live shares with offline:

- 2D: :class:`~reconstruction.models2d.tracking.BoxTracker`, the offline box tracker (or a detection
  callable, e.g. the simulator's: :func:`reconstruction.simulation.live.simulated_detection_stage`);
- :func:`reconstruction.triangulation.triangulate` with the ``triangulation`` section;
- :func:`reconstruction.depth.reading.lift_keypoints_with_depth` and
  :func:`reconstruction.depth.fusion.fuse` with the ``depth_fusion`` section, on depth crops around
  the keypoints; one frame at a time, so the table offsets and no temporal gate;
- a causal filter instead of the refinement: :class:`reconstruction.filters.OneEuroFilter`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from calibration.camera import Rig
from reconstruction.pipeline.config import ReconstructionConfig
from reconstruction.skeleton import Skeleton

Detect = Callable[[object, object], np.ndarray]  # (frameset, previous) -> (1, V, J, 3) 2D


def model_detection_stage(model_name: str, cfg: ReconstructionConfig = ReconstructionConfig()) -> Detect:
    """The 2D model on each live frame set's colour images, its crops following the person
    (the offline :class:`~reconstruction.models2d.tracking.BoxTracker`)."""
    from reconstruction.models2d.tracking import BoxTracker
    from reconstruction.pipeline.detect2d import load_model2d

    # no extra refining passes when the person is lost: live latency comes first
    tracker = BoxTracker(load_model2d(model_name, cfg.model2d), box_cfg=cfg.boxes, refine_first=0)

    def detect(fs, _):
        images = [f.color if f is not None else None for f in fs.frames]  # an absent view: NaN keypoints
        return tracker.step(images)[None].copy()

    return detect


def build_live_stages(rig: Rig, fps: float, skeleton: Skeleton, detect: Detect,
                      cfg: ReconstructionConfig = ReconstructionConfig(), depth: bool = True,
                      depth_scale: float = 0.001) -> list:
    """The live stages ``[(name, fn)]``: ``detect`` -> triangulate -> depth lift + fusion (when the
    frames have depth) -> one-euro filter (see the module docstring)."""
    from reconstruction.depth.fusion import fuse
    from reconstruction.depth.offsets import joint_offsets
    from reconstruction.depth.reading import crop_depth_views, lift_keypoints_with_depth
    from reconstruction.filters import OneEuroFilter
    from reconstruction.triangulation import triangulate

    # live: one frame at a time, so no temporal median gate (it needs future frames) and table offsets
    fusion_cfg = replace(cfg.depth_fusion, estimate_offsets=False, temporal_window=0)
    fcfg = cfg.filters
    one_euro = OneEuroFilter(fps, fcfg.min_cutoff_hz, fcfg.beta, fcfg.d_cutoff_hz, fcfg.max_gap_frames)
    offsets = joint_offsets(skeleton.joint_names, fusion_cfg)

    def triangulate_stage(fs, kp):
        return kp, triangulate(kp, rig, cfg.triangulation)

    def fusion_stage(fs, prev):
        kp, tri = prev
        depths = [f.depth if f is not None else None for f in fs.frames]
        if not depth or all(d is None for d in depths):
            return tri.xyz[0]
        # depth crops around the keypoints: the lift reads a few thousand pixels, not whole images
        kp_crop, crops, crop_rig = crop_depth_views(kp[0], depths, rig, fusion_cfg.reach_px + 2)
        lift = lift_keypoints_with_depth(kp_crop[None], [crops], depth_scale, crop_rig, cfg=fusion_cfg,
                                         offsets_m=offsets)
        return fuse(tri, lift.points, lift.covariance, fusion_cfg).xyz[0]

    def filter_stage(fs, xyz):
        return one_euro(xyz, fs.timestamp_ms / 1000.0)

    return [("detect2d", detect), ("triangulate", triangulate_stage), ("depth_fusion", fusion_stage),
            ("filter", filter_stage)]
