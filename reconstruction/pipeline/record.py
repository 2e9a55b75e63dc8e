"""Recording a session as ``mocap capture`` does: real or simulated cameras, the rig, the live 3D.

The folder written is what ``mocap reconstruct SESSION --calibration RIG`` reads: ``<serial>.db3``
per camera, ``session.json`` and ``rig.yaml`` (the calibration given, or the simulated rig); a
simulated session adds ``ground_truth.npz``. Recording is :class:`capture.session.CaptureSession`;
the live view is :class:`capture.live.LiveView` running the stages of :mod:`.live`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from calibration.camera import Rig
from capture.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordOptions:
    """What ``mocap capture`` was asked for (see its ``--help``)."""

    out: str
    config: str | None = None
    calibration: str | None = None
    duration_s: float | None = None
    simulate: int | None = None
    preview: bool = False
    live_3d: bool = False
    overwrite: bool = False


def rig_for_serials(rig: Rig, serials) -> Rig:
    """The rig's cameras in the order of ``serials`` (matched by serial, then by name)."""
    cams = []
    for s in serials:
        match = [c for c in rig if (c.serial and str(c.serial) == s)] or [c for c in rig if c.name == s]
        if not match:
            raise ConfigError(f"the calibration has no camera with serial {s} (its cameras: {', '.join(rig.names)}); "
                              "calibrate these cameras or pass the right --calibration")
        cams.append(match[0])
    return Rig(tuple(cams))


def _live_view(opts: RecordOptions, rig: Rig | None, loop, sources, out: Path, session, say):
    """The live view (preview and/or live 3D) hooked into ``session``, or None."""
    from capture.live import LiveView, make_sink
    from reconstruction.pipeline.live import build_live_stages, model_detection_stage

    stages, sink = [], None
    serials = [s.serial for s in sources]
    if opts.live_3d:
        if rig is None:
            raise ConfigError("--live-3d needs the cameras' calibration: pass --calibration RIG")
        live_rig = rig_for_serials(rig, serials)
        if loop is not None:
            from reconstruction.simulation.live import simulated_detection_stage

            skeleton = loop.skeleton
            order = [list(rig.names).index(c.name) for c in live_rig]
            detect = simulated_detection_stage(loop.keypoints2d[:, order], live_rig)
        else:
            from reconstruction.skeleton import load_skeleton

            skeleton = load_skeleton("coco17")
            detect = model_detection_stage("movenet-lightning")
        stages = build_live_stages(live_rig, sources[0].fps, skeleton, detect, depth_scale=sources[0].depth_scale)
        sink, message = make_sink(out, skeleton.joint_names, skeleton.bone_indices)
        say(message)
    # the live view backs off while any writer queue is over a quarter full: recording first
    live = LiveView(serials, stages, sources[0].fps, sink, preview=opts.preview,
                    yield_when=lambda: session.backlog() > 0.25).start()
    session.on_frame = live.push
    return live


def record_session(opts: RecordOptions, say: Callable[[str], None]) -> dict:
    """Record a session into ``opts.out`` (see the module docstring); ``say`` gets the progress
    lines. Returns the manifest (with the live view's report under ``live``)."""
    from calibration.rig_io import load_rig, save_rig
    from capture.capture_config import load_capture_config
    from capture.config import to_plain
    from capture.devices import plan_capture
    from capture.json_io import write_json
    from capture.session import CaptureSession, stop_on_signals
    from capture.session_folder import prepare_output_dir

    config = load_capture_config(opts.config)
    if opts.duration_s is not None and opts.duration_s <= 0:
        raise ConfigError(f"--duration must be positive, got {opts.duration_s}")
    prepare_output_dir(opts.out, opts.overwrite, create=False)  # refuse early; create once checked
    rig = loop = timings = None
    extra = {}
    if opts.simulate is not None:
        from reconstruction.simulation.live import simulated_backend

        say(f"rendering {config.simulation.loop_seconds:g} s of frames for {opts.simulate} simulated cameras ...")
        backend, rig, loop, timings = simulated_backend(opts.simulate, config)
        extra["simulation"] = {"cameras": opts.simulate, **to_plain(config.simulation),
                               "clock_offsets_ms": {s: t.clock_offset_ms for s, t in zip(backend.serials, timings)},
                               "ground_truth": "ground_truth.npz"}
    else:
        from capture.devices import RealSenseBackend

        backend = RealSenseBackend()
    calibration = "rig.yaml (simulated)" if opts.simulate is not None else None
    if opts.calibration:
        rig = load_rig(opts.calibration)
        calibration = str(Path(opts.calibration).resolve())
    plan = plan_capture(backend, config)
    out = prepare_output_dir(opts.out, opts.overwrite)
    if rig is not None:
        save_rig(rig, out / "rig.yaml", "yaml", world="" if opts.calibration else "simulated: metres, Z up, floor at Z = 0")
    for w in plan.warnings:
        say(f"warning: {w}")
    sources = [backend.open(p.info, p.config, p.role, config.sync) for p in plan.cameras]
    for p in plan.cameras:
        say(f"camera {p.info.serial} ({p.info.name}, USB {p.info.usb_type or '?'}, {p.role}): "
            f"{'+'.join(p.config.streams)} {p.config.width}x{p.config.height}@{p.config.fps}")
    session = CaptureSession(sources, out, config, duration_s=opts.duration_s, calibration=calibration, extra=extra)
    live = _live_view(opts, rig, loop, sources, out, session, say) if opts.live_3d or opts.preview else None

    def progress(s):
        parts = [f"{h.serial[-4:]}: {h.frames_written}/{h.frames_acquired}" + (" STOPPED" if h.stalled else "")
                 + (f" drops {h.software_drops}" if h.software_drops else "") for h in s.health]
        live_part = ""
        if live is not None and live.latency_ms.get("total"):
            live_part = f" | live {live.processed} sets, {live.latency_ms['total'][-1]:.0f} ms"
        say(f"{s.elapsed_s():6.1f} s  " + "  ".join(parts) + live_part)

    say(f"recording into {out} " + (f"for {opts.duration_s:g} s" if opts.duration_s else "until Ctrl-C"))
    try:
        with stop_on_signals(session):
            result = session.run(progress)
    finally:
        live_report = live.stop() if live is not None else None
    manifest = result.manifest
    if live_report is not None:
        manifest["live"] = live_report
    if loop is not None:
        from reconstruction.simulation.live import write_live_truth

        write_live_truth(out / "ground_truth.npz", loop, rig, timings, session.health, sources[0].fps)
    if live_report is not None or loop is not None:
        write_json(result.manifest_path, manifest)
    log.info("manifest: %s", result.manifest_path)
    return manifest


def summary_lines(manifest: dict) -> list[str]:
    """The lines ``mocap capture`` prints at the end: the session's status, each camera's health,
    the frame sets' skew and clock offsets, the live view's rate and latency."""
    lines = [f"session {manifest['status']} ({manifest['reason']}), {manifest['duration_s']:.2f} s"]
    for cam in manifest["cameras"]:
        gaps = cam["frame_number_gaps"]
        line = (f"  {cam['serial']}: {cam['frames_written']} frames written of {cam['frames_acquired']} acquired, "
                f"software drops {cam['software_drops']['total']}, frame-number gaps {gaps['count']} "
                f"({gaps['frames_missing']} frames)")
        if cam["measured_fps"]:
            line += f", {cam['measured_fps']:.2f} fps, jitter {cam['timestamp_jitter_ms']:.2f} ms"
        for stop in cam["stopped"]:
            line += f"; STOPPED at {stop['at_s']:.2f} s" + (f", resumed after {stop['gap_s']:.2f} s"
                                                             if stop["resumed_at_s"] is not None else "")
        if cam["error"]:
            line += f"; error: {cam['error']}"
        lines.append(line)
    sync = manifest.get("sync") or {}
    if sync.get("skew_ms", {}).get("count"):
        sk, rs = sync["skew_ms"], sync["residual_skew_ms"]
        lines.append(f"  frame sets {sync['frame_sets']} ({sync['complete_sets']} complete); skew ms mean {sk['mean']:.2f} "
                     f"p95 {sk['p95']:.2f} max {sk['max']:.2f}; after offsets: mean {rs['mean']:.2f} max {rs['max']:.2f}")
        offsets = ", ".join(f"{s[-4:]} {o:+.2f}" for s, o in sync["offset_to_reference_ms"].items() if o is not None)
        lines.append(f"  clock offsets to {sync['reference']} (ms): {offsets}")
    live = manifest.get("live")
    if live is not None:
        lat = ", ".join(f"{k} {v['mean']:.1f}" for k, v in live["latency_ms"].items())
        lines.append(f"  live 3D: {live['achieved_fps']:.1f} fps of {live['camera_fps']:g}, "
                     f"{live['processed']} sets shown, {live['skipped']} skipped; latency ms (mean): {lat}")
    return lines
