"""What a reconstruction leaves in its output folder, and the settings of it (section ``output``).

Shapes: ``T`` frames, ``V`` views, ``J`` joints. Files (each written to a temporary name and renamed):

- ``points3d.npz`` / ``.trc`` / ``.c3d``: the final 3D (:mod:`reconstruction.formats.points3d`);
  ``points3d.bvh`` when ``bvh`` is among the formats (:mod:`reconstruction.kinematics.bvh_export`);
- ``kinematics/``: joint angles, with section ``kinematics`` enabled (:mod:`reconstruction.kinematics.stage`);
- ``keypoints2d/<camera>.npz``: the 2D of each view (our keypoints NPZ, one view each);
- ``quality.json``: :func:`reconstruction.quality.quality_report` plus the pipeline's figures;
- ``overlay_<camera>.mp4``: the skeleton reprojected on the colour image (:mod:`reconstruction.visual.overlay`);
- ``plot3d.png``: the skeleton over time (:mod:`reconstruction.visual.plot3d`);
- ``reconstruction.yaml``: the resolved configuration.

A new output format is a writer in :mod:`reconstruction.formats` and a name in ``OutputConfig.formats``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from calibration.camera import Rig
from capture.atomic import atomic_write_text
from capture.json_io import write_json
from capture.names import safe_file_name
from reconstruction.formats.keypoints2d import Keypoints2D
from reconstruction.skeleton import Skeleton

if TYPE_CHECKING:
    from reconstruction.pipeline.config import ReconstructionConfig
    from reconstruction.pipeline.sequence import SequenceResult
    from reconstruction.pipeline.sources import Session

POINT_FORMATS = ("npz", "trc", "c3d")
OUTPUT_FORMATS = POINT_FORMATS + ("bvh",)


@dataclass(frozen=True)
class OutputConfig:
    """What is written to the output folder (section ``output``).

    Attributes:
        formats: 3D file types among ``npz``, ``trc``, ``c3d`` and ``bvh`` (an animation).
        keypoints2d: write the 2D of each view (``keypoints2d/<camera>.npz``).
        overlay_video: write ``overlay_<camera>.mp4`` (skeleton on the colour image).
        overlay_max_width: overlay frames wider than this are scaled down.
        plot3d: write ``plot3d.png``.
        quality_min_score: detections below this score are left out of the reprojection error.
        sequence_quality: add the ground-truth-free figures of :func:`reconstruction.quality.sequence_quality`
            (jitter, bone-length spread, ...) to quality.json.
    """

    formats: tuple[str, ...] = POINT_FORMATS
    keypoints2d: bool = True
    overlay_video: bool = True
    overlay_max_width: int = 960
    plot3d: bool = True
    quality_min_score: float = 0.3
    sequence_quality: bool = True

    def __post_init__(self):
        bad = [f for f in self.formats if f not in OUTPUT_FORMATS]
        if bad:
            raise ValueError(f"formats: {bad[0]!r} is not one of {', '.join(OUTPUT_FORMATS)}")


def write_points(out_dir: Path, xyz: np.ndarray, joint_names: Sequence[str], fps: float, quality: dict,
                 formats: Sequence[str] = POINT_FORMATS, stem: str = "points3d",
                 skeleton: Skeleton | None = None) -> list[Path]:
    """The final 3D as ``<stem>.npz|.trc|.c3d|.bvh`` in ``out_dir``."""
    from reconstruction.formats.points3d import Points3D, write_points3d

    points = Points3D(xyz=xyz, joint_names=tuple(joint_names), fps=fps, quality=quality)
    paths = [write_points3d(Path(out_dir) / f"{stem}.{ext}", points) for ext in formats if ext != "bvh"]
    if "bvh" in formats:
        from reconstruction.kinematics.bvh_export import write_points_bvh

        write_points_bvh(Path(out_dir) / f"{stem}.bvh", points, skeleton)
        paths.append(Path(out_dir) / f"{stem}.bvh")
    return paths


def write_keypoints_per_view(out_dir: Path, kp: Keypoints2D) -> list[Path]:
    """One keypoints NPZ per view ``out_dir/<camera>.npz`` from a (T, V, J, 3) ``Keypoints2D``."""
    from reconstruction.formats.keypoints2d import write_keypoints2d

    paths = []
    for v, name in enumerate(kp.cameras):
        single = replace(kp, keypoints=kp.keypoints[:, v : v + 1], cameras=(name,))
        paths.append(write_keypoints2d(Path(out_dir) / f"{safe_file_name(name)}.npz", single))
    return paths


def _quality_arrays(result: SequenceResult) -> dict:
    """Per-joint quality arrays stored with the 3D (reprojection error, views, covariance, depth)."""
    tri = result.triangulation
    arrays = {"reproj_error_px": np.asarray(tri.reproj_error_px), "n_views": np.asarray(tri.n_views)}
    cov = result.fusion.covariance if result.fusion is not None else tri.covariance
    if cov is not None:
        arrays["covariance"] = np.asarray(cov)
    if result.fusion is not None:
        arrays["depth_disagreement_m"] = result.fusion.disagreement_m
        arrays["n_depth"] = result.fusion.n_depth
    return arrays


def _pipeline_figures(result: SequenceResult, kp: np.ndarray, rig: Rig, skeleton: Skeleton,
                      cfg: ReconstructionConfig, fps: float, notes: Sequence[str]) -> dict:
    """quality.json's figures beyond :func:`~reconstruction.quality.quality_report`: cameras,
    triangulation completeness, timings, notes, swaps, sequence quality, depth offsets and noise,
    joints placed without any camera."""
    tri = result.triangulation
    extra = {
        "cameras": list(rig.names),
        "depth_fusion": result.fusion is not None,
        "triangulation_completeness": float(np.all(np.isfinite(tri.xyz), axis=-1).mean()) if tri.xyz.size else 0.0,
        "timings_s": {k: round(v, 4) for k, v in result.timings_s.items()},
        "notes": list(notes),
        "swaps": {
            "views_corrected": int(result.swapped.sum()),
            "frames_flipped_in_every_view": int(result.flipped_3d.sum()),
            "per_camera": {n: int(c) for n, c in zip(rig.names, result.swapped.sum(axis=0))},
        },
    }
    if cfg.output.sequence_quality:
        from reconstruction.quality import sequence_quality

        extra["sequence_quality"] = sequence_quality(result.xyz, skeleton, fps, np.asarray(tri.reproj_error_px),
                                                     np.asarray(tri.n_views))
    if result.offsets_m is not None:
        extra["joint_offsets_m"] = {n: round(float(o), 4) for n, o in zip(skeleton.joint_names, result.offsets_m)}
    noise = result.depth_noise.report(skeleton) if result.depth_noise is not None else None
    if noise:
        extra["depth_noise"] = noise
    # joint-frames no camera detected that the bones (or smoothness over a short gap) placed
    extra["joints_seen_by_no_camera"] = int((~np.isfinite(np.asarray(kp[..., 0])).any(axis=1)
                                             & np.all(np.isfinite(result.xyz), axis=-1)).sum())
    return extra


def write_outputs(out_dir: Path, result: SequenceResult, detected2d: np.ndarray, rig: Rig, skeleton: Skeleton,
                  cfg: ReconstructionConfig, fps: float, session: Session | None, notes: Sequence[str],
                  truth: np.ndarray | None = None) -> dict:
    """3D files, quality JSON, 3D plot, the 2D per view as detected (``detected2d`` (T, V, J, 3)),
    overlay videos (a second pass over the colour frames) and the resolved config, into
    ``out_dir``; returns {kind: path(s)}."""
    from reconstruction.pipeline.config import config_to_yaml
    from reconstruction.quality import quality_report

    kp = result.keypoints2d  # after the swap correction
    files: dict = {"points3d": [str(p) for p in write_points(out_dir, result.xyz, skeleton.joint_names, fps,
                                                              _quality_arrays(result), cfg.output.formats,
                                                              skeleton=skeleton)]}
    fusion = result.fusion
    report = quality_report(
        result.xyz, kp, rig, skeleton, fps, disagreement_m=fusion.disagreement_m if fusion is not None else None,
        depth_only_joints=fusion.depth_only_joints if fusion is not None else 0,
        min_score=cfg.output.quality_min_score, extra=_pipeline_figures(result, kp, rig, skeleton, cfg, fps, notes))
    files["quality"] = str(write_json(out_dir / "quality.json", report))
    if cfg.output.plot3d:
        from reconstruction.visual.plot3d import plot3d_image

        files["plot3d"] = str(plot3d_image(result.xyz, skeleton, out_dir / "plot3d.png",
                                           title=f"{skeleton.name}, {len(result.xyz)} frames at {fps:g} fps",
                                           truth=truth))
    files["config"] = str(atomic_write_text(out_dir / "reconstruction.yaml", config_to_yaml(cfg)))
    if cfg.output.keypoints2d:
        files["keypoints2d"] = [str(p) for p in write_keypoints_per_view(
            out_dir / "keypoints2d", Keypoints2D(detected2d, tuple(rig.names), tuple(skeleton.joint_names), fps))]
    if cfg.output.overlay_video and session is not None:
        files["overlays"] = [str(p) for p in write_overlays(out_dir, result.xyz, kp, rig, skeleton, fps, session,
                                                            cfg.output.overlay_max_width)]
    if cfg.kinematics.enabled:  # last: everything above is on disk if the joint angles fail
        from reconstruction.kinematics.stage import run_kinematics
        from reconstruction.formats.points3d import Points3D

        files["kinematics"] = run_kinematics(Points3D(result.xyz, tuple(skeleton.joint_names), fps), cfg.kinematics,
                                             out_dir / "kinematics", "points3d", str(out_dir / "points3d"),
                                             cfg.model2d.weights_dir or None).files
    return files


def write_overlays(out_dir: Path, xyz: np.ndarray, kp: np.ndarray, rig: Rig, skeleton: Skeleton, fps: float,
                   session: Session, max_width: int) -> list[Path]:
    """``overlay_<camera>.mp4`` of every view: a second pass over the session's colour frames."""
    from reconstruction.visual.overlay import OverlayWriter

    writers = [OverlayWriter(out_dir / f"overlay_{safe_file_name(c.name)}.mp4", c, skeleton.bone_indices, fps,
                             max_width) for c in rig.cameras]
    try:
        with session.frame_sets(depth=False) as stream:
            for t, frames in enumerate(stream):
                if t >= len(xyz):
                    break
                for v, w in enumerate(writers):
                    w.write(frames.color[v], xyz[t], kp[t, v])
        return [p for p in (w.close() for w in writers) if p is not None]
    except BaseException:
        for w in writers:
            w.abort()
        raise
