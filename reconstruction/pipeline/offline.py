"""The offline driver: a session's files (or 2D computed before) in, the output folder out.

Shapes: ``T`` frame sets, ``V`` views (the rig's order), ``J`` joints, ``H``/``W`` image size.

    frame sets (capture.stream.FrameSetStream, one at a time)
      --(detect2d.Detector2D: boxes + 2D model per view; cached per view and chunk)--> 2D (V, J, 3)
      -- per chunk of ``chunk_frames`` sets: only its depth images are kept --
      --(sequence.reconstruct_keypoints without depth: a first 3D estimate of the chunk)
      --(depth.read_depth where that estimate reprojects)--> depth points of the chunk
    -- after the last chunk, on the small per-joint arrays --
    2D + depth points --(sequence.reconstruct_keypoints)--> 3D --(outputs.write_outputs)--> files

Memory stays bounded on long recordings: colour images are dropped as soon as the 2D model has
seen them, depth images after their chunk; what grows is per joint (T * V * J numbers).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calibration.camera import Rig
from capture.errors import ConfigError, RecordingError
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.depth.lift import DepthEstimate, DepthLift
from reconstruction.depth.offsets import apply_offsets, joint_offsets
from reconstruction.depth.reading import read_depth
from reconstruction.pipeline.config import ReconstructionConfig
from reconstruction.pipeline.detect2d import Detector2D, cache_key, cache_paths, load_model2d, read_cache, write_cache
from reconstruction.pipeline.outputs import write_outputs
from reconstruction.pipeline.sequence import SequenceResult, reconstruct_keypoints
from reconstruction.pipeline.sources import Detections2D, Session, rows_for, select_detections
from reconstruction.skeleton import Skeleton

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ReconstructionOutput:
    """What :func:`reconstruct_session` produced: the arrays, the quality report and the files;
    ``keypoints2d`` (T, V, J, 3) is the 2D as detected (``result.keypoints2d``: after the swap
    correction)."""

    result: SequenceResult
    keypoints2d: np.ndarray
    rig: Rig
    skeleton: Skeleton
    fps: float
    quality: dict
    files: dict
    notes: tuple[str, ...]


def lift_chunk_depth(kp: np.ndarray, depth: list, depth_scale: np.ndarray, rig: Rig, skeleton: Skeleton,
                     cfg: ReconstructionConfig, fps: float, offsets_m: np.ndarray) -> DepthLift:
    """Depth points of a chunk of 2D keypoints ``(T, V, J, 3)`` and its depth images (T lists of V
    images or None).

    With ``depth_fusion.sample_at_estimate`` and >= 2 views the depth is read where a first 3D
    estimate of the chunk (triangulation + refinement, no depth, no filter) reprojects
    (:func:`~reconstruction.depth.reading.read_depth`); each further ``sample_passes`` pass reads it
    again at the estimate made with the depth the previous pass read.
    """
    dcfg = cfg.depth_fusion
    if not (dcfg.sample_at_estimate and len(rig) >= 2 and kp.shape[0] >= 3):
        return read_depth(kp, depth, depth_scale, rig, skeleton, dcfg, offsets_m)
    first = replace(cfg, filters=replace(cfg.filters, enabled=False))
    lift = None
    for _ in range(max(dcfg.sample_passes, 1)):
        result = reconstruct_keypoints(kp, rig, skeleton, first, fps, lift=lift)
        estimate = DepthEstimate(xyz=result.xyz, covariance=np.asarray(result.triangulation.covariance),
                                 measured=np.all(np.isfinite(result.triangulation.xyz), axis=-1))
        lift = read_depth(kp, depth, depth_scale, rig, skeleton, dcfg, offsets_m, estimate=estimate)
    return lift


@dataclass(eq=False)
class _Gathered:
    """What the pass over the frame sets keeps: per chunk 2D and depth points, and the timings."""

    kp: list = field(default_factory=list)
    lifts: list = field(default_factory=list)
    any_depth: bool = False
    timings: dict = field(default_factory=lambda: {"read": 0.0, "model2d": 0.0, "depth_lift": 0.0})


def _chunk_lift(kp: np.ndarray, depth: list, scale: np.ndarray, rig: Rig, skeleton: Skeleton,
                cfg: ReconstructionConfig, fps: float, offsets: np.ndarray) -> DepthLift | None:
    if not (cfg.depth_fusion.enabled and any(d is not None for frame in depth for d in frame)):
        return None
    with quiet_nan_warnings():  # views without depth: NaN -> 0 (no depth)
        s = np.nanmedian(scale, axis=0)
    return lift_chunk_depth(kp, depth, np.nan_to_num(s, nan=0.0), rig, skeleton, cfg, fps, offsets)


def _join_lifts(lifts: list, kp_chunks: list, rig: Rig, offsets: np.ndarray) -> DepthLift:
    """One lift over the whole sequence from the chunks' (a chunk without depth: NaN)."""
    V = len(rig)

    def part(lift, name, shape, fill):
        value = None if lift is None else getattr(lift, name)
        return value if value is not None else np.full(shape, fill)

    surface = np.concatenate([part(l, "surface", k.shape[:3] + (3,), np.nan) for l, k in zip(lifts, kp_chunks)])
    joined = DepthLift(points=apply_offsets(surface, rig, offsets), surface=surface, offsets_m=offsets,
                       covariance=np.concatenate([part(l, "covariance", k.shape[:3] + (3, 3), np.nan)
                                                  for l, k in zip(lifts, kp_chunks)]),
                       var_ray=np.concatenate([part(l, "var_ray", k.shape[:3], np.nan) for l, k in zip(lifts, kp_chunks)]),
                       at_estimate=np.concatenate([part(l, "at_estimate", k.shape[:3], False)
                                                   for l, k in zip(lifts, kp_chunks)]))
    first = next((l for l in lifts if l is not None and l.mid_pairs is not None), None)
    if first is None:
        return joined
    P = len(first.mid_pairs)
    shape = lambda k, tail: (len(k), V, P) + tail  # noqa: E731
    return replace(joined, mid_pairs=first.mid_pairs, mid_radius=first.mid_radius, mid_weights=first.mid_weights,
                   mid_surface=np.concatenate([part(l, "mid_surface", shape(k, (3,)), np.nan) for l, k in zip(lifts, kp_chunks)]),
                   mid_var=np.concatenate([part(l, "mid_var", shape(k, ()), np.nan) for l, k in zip(lifts, kp_chunks)]),
                   mid_sin=np.concatenate([part(l, "mid_sin", shape(k, ()), 1.0) for l, k in zip(lifts, kp_chunks)]))


def _gather(session: Session, cfg: ReconstructionConfig, out_dir: Path, model_name: str, skeleton: Skeleton,
            pre: tuple | None, progress: bool) -> tuple[np.ndarray, DepthLift | None, dict, Skeleton]:
    """One pass over the session's frame sets: 2D per set (the model, the cache or ``pre``
    (keypoints, timestamps)), depth points per chunk. Returns (2D (T, V, J, 3), lift or None,
    timings, skeleton)."""
    from tqdm import tqdm

    rig, fps, T_chunk = session.rig, session.fps, cfg.chunk_frames
    detector = key = None
    if pre is None:
        model = load_model2d(model_name, cfg.model2d)
        skeleton = _skeleton_for(model, skeleton)
        detector = Detector2D(model, cfg.model2d, cfg.boxes, rig)
        key = cache_key(model_name, cfg.model2d, cfg.boxes, T_chunk)
    offsets = joint_offsets(skeleton.joint_names, cfg.depth_fusion)
    stream = session.frame_sets(color=pre is None, depth=cfg.depth_fusion.enabled)
    total = len(stream)
    g = _Gathered()
    bar = tqdm(total=total, desc="frame sets", unit="set", disable=not progress, leave=False)
    with stream:
        frames = iter(stream)
        for ci, start in enumerate(range(0, total, T_chunk)):
            n = min(T_chunk, total - start)
            cached = read_cache(cache_paths(out_dir / "cache", key, rig.names, ci), n) if key else None
            if detector is not None and cached is None:
                detector.start_chunk(detector.last)
            kp_c, depth_c, scale_c, stamps_c, present_c = [], [], [], [], []
            t_read = time.perf_counter()
            for i in range(n):
                fs = next(frames, None)
                if fs is None:
                    break
                g.timings["read"] += time.perf_counter() - t_read
                t0 = time.perf_counter()
                if pre is None:
                    kp_c.append(cached[i] if cached is not None else detector.run(fs))
                depth_c.append(fs.depth)
                scale_c.append(fs.depth_scale)
                stamps_c.append(fs.timestamps_ms)
                present_c.append(fs.present)
                g.timings["model2d"] += time.perf_counter() - t0
                bar.update(1)
                t_read = time.perf_counter()
            if not stamps_c:
                break
            kp = np.stack(kp_c) if pre is None else _precomputed_rows(pre, np.stack(stamps_c), np.stack(present_c),
                                                                       start)
            if pre is None:
                if cached is None:
                    write_cache(cache_paths(out_dir / "cache", key, rig.names, ci), kp)
                detector.last = kp[-1]
            t0 = time.perf_counter()
            lift = _chunk_lift(kp, depth_c, np.stack(scale_c), rig, skeleton, cfg, fps, offsets)
            g.timings["depth_lift"] += time.perf_counter() - t0
            g.any_depth = g.any_depth or lift is not None
            g.kp.append(kp)
            g.lifts.append(lift)
    bar.close()
    if not g.kp:
        raise RecordingError(f"{session.views[0].path}: no frames could be read from the session")
    lift = _join_lifts(g.lifts, g.kp, rig, offsets) if g.any_depth else None
    return np.concatenate(g.kp), lift, g.timings, skeleton


def _precomputed_rows(pre: tuple, stamps: np.ndarray, present: np.ndarray, start: int) -> np.ndarray:
    """(Tc, V, J, 3) of the precomputed 2D for a chunk of frame sets (NaN where a view has none)."""
    pre_kp, pre_stamps = pre
    V = stamps.shape[1]
    rows = rows_for(stamps, pre_stamps, start, pre_kp.shape[0])  # (Tc, V)
    kp = pre_kp[np.maximum(rows, 0), np.arange(V)[None, :]]  # (Tc, V, J, 3)
    kp[rows < 0] = np.nan
    kp[~present] = np.nan
    return kp


def _skeleton_for(model, skeleton: Skeleton) -> Skeleton:
    """The built-in skeleton whose joints are the model's output (``skeleton`` when it is)."""
    from reconstruction.skeleton import builtin_skeletons, load_skeleton

    if tuple(model.joint_names) == tuple(skeleton.joint_names):
        return skeleton
    for name in builtin_skeletons():
        candidate = load_skeleton(name)
        if tuple(candidate.joint_names) == tuple(model.joint_names):
            log.info("the 2D model outputs skeleton %s (config said %s)", name, skeleton.name)
            return candidate
    raise ConfigError(f"model {model.name!r} outputs joints no built-in skeleton has; set 'skeleton' to its YAML")


def reconstruct_session(
    session: Session | None,
    cfg: ReconstructionConfig,
    out_dir: str | Path,
    model_name: str | None = None,
    detections: Detections2D | None = None,
    rig: Rig | None = None,
    progress: bool = True,
    truth: np.ndarray | None = None,
) -> ReconstructionOutput:
    """Run the whole reconstruction and write the outputs into ``out_dir``.

    Either ``session`` (recordings / videos matched to cameras) with the 2D model (``model_name``
    overrides ``cfg.model2d.name``) or with precomputed ``detections``, or ``detections`` and a
    ``rig`` without any session (no depth, no overlay videos). ``truth`` (T, J, 3) is drawn in the
    3D plot when given.
    """
    from reconstruction.skeleton import load_skeleton

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skeleton = load_skeleton(cfg.skeleton)
    rig = session.rig if session is not None else rig
    if rig is None:
        raise ValueError("reconstruct_session needs a session or a rig")
    notes = list(session.notes) if session is not None else []
    fps = session.fps if session is not None else float(detections.keypoints.fps)
    pre = select_detections(detections, rig, skeleton) if detections is not None else None
    timings: dict = {}
    lift = None
    if session is None:
        kp_all = pre[0]
    else:
        kp_all, lift, timings, skeleton = _gather(session, cfg, out_dir, model_name or cfg.model2d.name, skeleton, pre,
                                                  progress)
    if len(rig) == 1 and lift is None:
        raise RecordingError("a single camera without depth gives no 3D: add cameras or use an RGB-D recording")
    result = reconstruct_keypoints(kp_all, rig, skeleton, cfg, fps, lift=lift)
    result.timings_s.update(timings)
    files = write_outputs(out_dir, result, kp_all, rig, skeleton, cfg, fps, session, notes, truth=truth)
    quality = json.loads((out_dir / "quality.json").read_text())
    return ReconstructionOutput(result=result, keypoints2d=kp_all, rig=rig, skeleton=skeleton, fps=fps,
                                quality=quality, files=files, notes=tuple(notes))


@dataclass(frozen=True)
class ReconstructRequest:
    """What ``mocap reconstruct`` was asked for."""

    session: tuple[str, ...]
    calibration: str
    output: str
    config: str | None = None
    model: str | None = None
    detections: str | None = None


def reconstruct_files(req: ReconstructRequest, say=lambda line: None) -> ReconstructionOutput:
    """``mocap reconstruct``: load the config, the rig, the session's files (and the 2D given), then
    :func:`reconstruct_session`; ``say`` gets the session's notes."""
    from calibration.rig_io import load_rig
    from reconstruction.pipeline.config import load_reconstruction_config
    from reconstruction.pipeline.detect2d import check_model_name
    from reconstruction.pipeline.sources import load_detections, open_session

    cfg = load_reconstruction_config(req.config)
    if cfg.kinematics.enabled and cfg.kinematics.opensim:  # before hours of work, not after
        from reconstruction.kinematics.opensim_tools import import_opensim

        import_opensim()
    if req.model:
        check_model_name(req.model)
        cfg = replace(cfg, model2d=replace(cfg.model2d, name=req.model))
    detections = load_detections(req.detections) if req.detections else None
    if detections is None:
        check_model_name(cfg.model2d.name)
    session = open_session(req.session, load_rig(req.calibration))
    for note in session.notes:
        say(f"note: {note}")
    log.info("cameras: %s", ", ".join(session.rig.names))
    return reconstruct_session(session, cfg, req.output, detections=detections)


def summary_lines(out: ReconstructionOutput) -> list[str]:
    """A few lines: what was reconstructed, how well, and where the files are."""
    q = out.quality
    rep = q["reprojection_error_px"]
    lines = [f"{q['frames']} frame sets, {len(out.rig)} camera(s) ({', '.join(out.rig.names)}), skeleton "
             f"{out.skeleton.name}: completeness {q['completeness']:.3f}"]
    if len(out.rig) == 1:
        lines.append("single camera: depth-only 3D (every joint from the depth of one view)")
    if rep["median"] is not None:
        lines.append(f"reprojection error: median {rep['median']:.2f} px, mean {rep['mean']:.2f} px "
                     f"(detections with score >= {rep['min_score']})")
    if q.get("depth_fusion"):
        med = q["depth_vs_triangulation_m"]["median"]
        lines.append(f"depth fusion: depth vs triangulation median {med * 1000:.1f} mm" if med is not None else
                     "depth fusion: on (no joint both triangulated and depth-lifted)")
    bone = q["bone_length_std_m"]["median_rigid"]
    if bone is not None:
        lines.append(f"bone-length std (median over rigid bones): {bone * 1000:.1f} mm")
    files = out.files
    names = files["points3d"] + [files["quality"]] + files.get("overlays", []) + (
        [files["plot3d"]] if "plot3d" in files else []) + [files["config"]]
    lines.append(f"outputs in {Path(files['quality']).parent}: " + ", ".join(Path(p).name for p in names))
    return lines
