"""`mocap capture`: record a session from the cameras (or --simulate N), optionally with live 3D.

The folder written is what ``mocap reconstruct SESSION --calibration RIG`` reads: ``<serial>.db3`` per
camera, ``session.json`` and ``rig.yaml`` (the calibration given, or the simulated rig). This module
also wires the live view's stages from the reconstruction library (:func:`build_live_stages`) and
renders the simulated cameras' frames (:func:`render_simulated_frames`).
"""
from __future__ import annotations

HELP = "record a multi-camera session (one file per camera + manifest), optionally with live 3D"


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", help="capture config YAML (default: configs/capture.yaml)")
    parser.add_argument("--calibration", metavar="RIG", help="rig file of these cameras (copied as rig.yaml)")
    parser.add_argument("--out", required=True, metavar="SESSION_DIR", help="session folder to write")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds to record (default: until Ctrl-C)")
    parser.add_argument("--simulate", type=int, metavar="N", help="N simulated cameras instead of real ones")
    parser.add_argument("--preview", action="store_true", help="show each camera's color image (OpenCV windows)")
    parser.add_argument("--live-3d", action="store_true", help="live 3D skeleton (rerun viewer or .rrd/.npz)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty session folder")


# --------------------------------------------------------------------------------------------- simulation


def render_simulated_frames(rig, fps: int, loop_seconds: float, seed: int = 0, skeleton: str = "coco17"):
    """Pre-render a loop of a moving person for every camera of ``rig``.

    Returns a dict: ``color`` (V, L, H, W, 3) uint8, ``depth`` (V, L, H, W) uint16 (mm), ``xyz``
    (L, J, 3) world metres, ``keypoints2d`` (L, V, J, 3) true 2D (score 1 visible, 0 occluded),
    ``intrinsics`` (V,) StreamIntrinsics, ``skeleton``, ``depth_scale``.
    """
    import numpy as np

    from capture.recording_writer import StreamIntrinsics
    from reconstruction.simulation.motion import procedural_motion
    from reconstruction.simulation.render import CameraRenderer, RenderSettings, body_model
    from reconstruction.skeleton import load_skeleton

    sk = load_skeleton(skeleton)
    L = max(int(round(loop_seconds * fps)), 1)
    rng = np.random.default_rng(seed)
    xyz = procedural_motion(sk, L, fps, rng)
    settings = RenderSettings()
    body = body_model(sk)
    V = len(rig)
    H, W = rig.cameras[0].height, rig.cameras[0].width
    color = np.empty((V, L, H, W, 3), np.uint8)
    depth = np.empty((V, L, H, W), np.uint16)
    kp = np.full((L, V, sk.num_joints, 3), np.nan)
    intrinsics = []
    for v, cam in enumerate(rig):
        renderer = CameraRenderer(cam, body, settings)
        for k in range(L):
            frame = renderer.render(xyz[k], rng)
            color[v, k], depth[v, k], kp[k, v] = frame.color, frame.depth, frame.keypoints2d
        coeffs = np.zeros(5)
        coeffs[: min(cam.dist.size, 5)] = cam.dist[:5]
        intrinsics.append(StreamIntrinsics(cam.width, cam.height, cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2],
                                           "brown_conrady", tuple(float(c) for c in coeffs)))
    return {"color": color, "depth": depth, "xyz": xyz, "keypoints2d": kp, "intrinsics": intrinsics,
            "skeleton": sk, "depth_scale": settings.depth_scale}


def simulated_backend(num_cameras: int, config):
    """A SimulatedBackend of ``num_cameras`` cameras on a ring (config.defaults sets resolution and
    fps; config.simulation the clocks and faults), its rig, the rendered loop (see above) and the
    cameras' timings."""
    from capture.errors import ConfigError
    from capture.simulated_cameras import SimulatedBackend, realistic_timings
    from reconstruction.simulation.session import SimulationConfig, build_rig

    if num_cameras < 1:
        raise ConfigError(f"--simulate needs at least 1 camera, got {num_cameras}")
    cam, sim = config.defaults, config.simulation
    if sim.stop_camera is not None and not 0 <= sim.stop_camera < num_cameras:
        raise ConfigError(f"{config.source}: simulation.stop_camera {sim.stop_camera} is not a camera index "
                          f"(0..{num_cameras - 1})")
    rig = build_rig(SimulationConfig(cameras=num_cameras, fps=cam.fps, resolution=tuple(cam.resolution), seed=sim.seed))
    frames = render_simulated_frames(rig, cam.fps, sim.loop_seconds, sim.seed)
    stop = {sim.stop_camera: sim.stop_at_s} if sim.stop_camera is not None else None
    timings = realistic_timings(num_cameras, sim.seed, sim.max_clock_offset_ms, sim.jitter_ms, sim.drop_rate, stop)
    backend = SimulatedBackend(frames["color"], frames["depth"], frames["intrinsics"], timings,
                               serials=[c.serial for c in rig], depth_scale=frames["depth_scale"])
    return backend, rig, frames, timings


def write_simulated_truth(path, frames, rig, timings, health, fps: float):
    """``ground_truth.npz`` of a simulated session, in the simulator's layout (see
    reconstruction.simulation.session): one row per frame number 1..max recorded, ``xyz`` (T, J, 3),
    ``keypoints2d`` (T, V, J, 3) true 2D, ``timestamps_ms`` (T, V) as recorded (NaN where a camera has
    no frame), ``clock_offsets_ms`` (V,), ``frame_numbers`` (T,), ``fps``, ``depth_scale``; plus the
    loop (``loop_xyz``, ``loop_keypoints2d``): frame number n shows loop frame (n - 1) % L."""
    import os
    from pathlib import Path

    import numpy as np

    path = Path(path)
    numbers = [np.asarray(h.frame_numbers, dtype=np.int64) for h in health]
    T = int(max((n.max() for n in numbers if n.size), default=0))
    L = frames["xyz"].shape[0]
    loop = (np.arange(T) % L)
    stamps = np.full((T, len(health)), np.nan)
    for v, h in enumerate(health):
        n = numbers[v]
        if n.size:
            stamps[n - 1, v] = np.asarray(h.timestamps_ms, dtype=np.float64)
    # view order of the recording = the session's cameras; the rendered truth is in rig order
    order = [list(rig.names).index(h.serial) for h in health]
    partial = path.with_name(f".{path.stem}.partial.npz")
    np.savez_compressed(
        partial, xyz=frames["xyz"][loop], keypoints2d=frames["keypoints2d"][loop][:, order],
        joint_names=np.array(frames["skeleton"].joint_names), cameras=np.array([h.serial for h in health]),
        timestamps_ms=stamps, clock_offsets_ms=np.array([timings[i].clock_offset_ms for i in order]),
        frame_numbers=np.arange(1, T + 1), fps=np.float64(fps), depth_scale=np.float64(frames["depth_scale"]),
        loop_xyz=frames["xyz"], loop_keypoints2d=frames["keypoints2d"][:, order])
    os.replace(partial, path)
    return path


# -------------------------------------------------------------------------------------------- live stages


def build_live_stages(rig, fps: float, skeleton, detector: str = "simulated", truth2d=None, depth: bool = True,
                      noise_px: float = 2.0, outlier_rate: float = 0.02, seed: int = 0, model_device: str = "cpu",
                      depth_scale: float = 0.001):
    """The live pipeline as ``(name, fn)`` stages for capture.live.LiveView, from the library's own
    stage functions: 2D (``simulated`` detections from the truth ``truth2d`` (L, V, J, 3) indexed by
    each frame's ``sim_index``, or ``movenet-lightning`` / ``movenet-thunder`` on the color images)
    -> triangulation.triangulate -> depth_fusion (lift + fuse, when the frames have depth) ->
    filters.OneEuroFilter (causal)."""
    import numpy as np

    from reconstruction.depth_fusion import DepthFusionConfig, fuse, joint_offsets, lift_keypoints_with_depth
    from reconstruction.filters import FilterConfig, OneEuroFilter
    from reconstruction.triangulation import TriangulationConfig, triangulate

    V, J = len(rig), skeleton.num_joints
    rng = np.random.default_rng(seed)
    tri_cfg = TriangulationConfig()
    # live: one frame at a time, so no temporal median gate (it needs future frames) and table offsets
    fusion_cfg = DepthFusionConfig(estimate_offsets=False, temporal_window=0)
    fcfg = FilterConfig(kind="one_euro")
    one_euro = OneEuroFilter(fps, fcfg.min_cutoff_hz, fcfg.beta, fcfg.d_cutoff_hz, fcfg.max_gap_frames)
    sizes = np.array([c.image_size for c in rig], dtype=np.float64)
    offsets = joint_offsets(skeleton.joint_names, fusion_cfg)

    if detector == "simulated":
        from reconstruction.simulation.detections import simulate_detections

        if truth2d is None:
            raise ValueError("simulated detections need the true 2D keypoints (truth2d)")

        def detect(fs, _):
            true = np.full((1, V, J, 3), np.nan)
            for v, frame in enumerate(fs.frames):
                if frame is not None and frame.sim_index >= 0:
                    true[0, v] = truth2d[frame.sim_index, v]
            return simulate_detections(true, noise_px, outlier_rate, True, rng, sizes)
    else:
        from reconstruction.models2d.boxes import BoxConfig, boxes_from_keypoints
        from reconstruction.models2d.movenet import load_movenet
        from reconstruction.models2d.registry import require_model

        model = load_movenet(require_model(detector), device=model_device)
        state = {"boxes": None}
        box_cfg = BoxConfig()

        def detect(fs, _):
            images = [f.color if f is not None and f.color is not None else
                      np.zeros((rig.cameras[v].height, rig.cameras[v].width, 3), np.uint8)
                      for v, f in enumerate(fs.frames)]
            out = model.predict(images, state["boxes"])
            kp = out.keypoints[None].copy()
            absent = np.array([f is None or f.color is None for f in fs.frames])
            kp[0, absent] = np.nan
            boxes = boxes_from_keypoints(kp, box_cfg)[0]  # track the person: next crops around it
            state["boxes"] = np.where(np.isfinite(boxes).all(axis=1, keepdims=True), boxes, np.nan) \
                if np.isfinite(boxes).any() else None
            if state["boxes"] is not None and not np.isfinite(state["boxes"]).all():
                state["boxes"] = None
            return kp

    def triangulate_stage(fs, kp):
        return kp, triangulate(kp, rig, tri_cfg)

    def fusion_stage(fs, prev):
        kp, tri = prev
        depths = [f.depth if f is not None else None for f in fs.frames]
        if not depth or all(d is None for d in depths):
            return tri.xyz[0]
        # One (1, V, H, W) uint16 array: the lift then reads views without per-frame copies; an absent
        # view is all zeros (no depth).
        kp_crop, crops, crop_rig = crop_depth_views(kp[0], depths, rig, fusion_cfg.reach_px + 2)
        lift = lift_keypoints_with_depth(kp_crop[None], [crops], depth_scale, crop_rig, cfg=fusion_cfg,
                                         offsets_m=offsets)
        return fuse(tri, lift.points, lift.covariance, fusion_cfg).xyz[0]

    def filter_stage(fs, xyz):
        return one_euro(xyz, fs.timestamp_ms / 1000.0)

    stages = [("detect2d", detect), ("triangulate", triangulate_stage)]
    stages.append(("depth_fusion", fusion_stage) if depth else ("depth_fusion", lambda fs, p: p[1].xyz[0]))
    stages.append(("filter", filter_stage))
    return stages


def crop_depth_views(kp, depths, rig, margin: int):
    """Crop each view's depth image to its keypoints' box (+ ``margin`` px): the live depth lift then
    reads a few thousand pixels instead of whole images. A crop is a camera whose principal point is
    shifted by the crop's corner (distortion acts on normalized coordinates, so it is unchanged).

    ``kp`` (V, J, 3), ``depths`` V images (H, W) or None. Returns the keypoints in crop pixels
    (V, J, 3), the V crops (None where no depth or no keypoint) and the rig of cropped cameras.
    """
    from dataclasses import replace

    import numpy as np

    from calibration.camera import Rig

    kp = np.array(kp, dtype=np.float64)
    crops, cams = [], []
    for v, (cam, d) in enumerate(zip(rig.cameras, depths)):
        xy = kp[v, :, :2]
        ok = np.all(np.isfinite(xy), axis=1)
        if d is None or not ok.any():
            crops.append(None)
            cams.append(cam)
            continue
        h, w = d.shape
        x0 = int(np.clip(np.floor(xy[ok, 0].min()) - margin, 0, w - 1))
        x1 = int(np.clip(np.ceil(xy[ok, 0].max()) + margin + 1, x0 + 1, w))
        y0 = int(np.clip(np.floor(xy[ok, 1].min()) - margin, 0, h - 1))
        y1 = int(np.clip(np.ceil(xy[ok, 1].max()) + margin + 1, y0 + 1, h))
        crops.append(d[y0:y1, x0:x1])
        K = cam.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        cams.append(replace(cam, K=K, image_size=(x1 - x0, y1 - y0)))
        kp[v, :, 0] -= x0
        kp[v, :, 1] -= y0
    return kp, crops, Rig(tuple(cams))


def _rig_for(rig, serials):
    """The rig's cameras in the order of ``serials`` (matched by serial, then by name)."""
    from calibration.camera import Rig
    from capture.errors import ConfigError

    cams = []
    for s in serials:
        match = [c for c in rig if (c.serial and str(c.serial) == s)] or [c for c in rig if c.name == s]
        if not match:
            raise ConfigError(f"the calibration has no camera with serial {s} (its cameras: {', '.join(rig.names)}); "
                              "calibrate these cameras or pass the right --calibration")
        cams.append(match[0])
    return Rig(tuple(cams))


# -------------------------------------------------------------------------------------------------- run


def run(args) -> int:
    import logging
    from pathlib import Path

    from capture.capture_config import load_capture_config
    from capture.config import to_plain
    from capture.devices import plan_capture
    from capture.errors import ConfigError
    from capture.session import CaptureSession, prepare_output_dir, stop_on_signals, write_json_atomic

    log = logging.getLogger("mocap.capture")
    config = load_capture_config(args.config)
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration must be positive, got {args.duration}")
    out = prepare_output_dir(args.out, args.overwrite, create=False)  # refuse early; create once checked

    rig = None
    frames = None
    extra = {}
    if args.simulate is not None:
        print(f"rendering {config.simulation.loop_seconds:g} s of frames for {args.simulate} simulated cameras ...",
              flush=True)
        backend, rig, frames, timings = simulated_backend(args.simulate, config)
        extra["simulation"] = {"cameras": args.simulate, **to_plain(config.simulation),
                               "clock_offsets_ms": {s: t.clock_offset_ms for s, t in zip(backend.serials, timings)},
                               "ground_truth": "ground_truth.npz"}
    else:
        from capture.devices import RealSenseBackend

        backend = RealSenseBackend()
    from calibration.rig_io import load_rig, save_rig

    calibration = None
    if args.calibration:
        rig = load_rig(args.calibration)
        calibration = str(Path(args.calibration).resolve())
    elif args.simulate is not None:
        calibration = "rig.yaml (simulated)"

    plan = plan_capture(backend, config)
    out = prepare_output_dir(args.out, args.overwrite)
    if rig is not None:
        world = "simulated: metres, Z up, floor at Z = 0" if args.calibration is None else ""
        save_rig(rig, out / "rig.yaml", "yaml", world=world)
    for w in plan.warnings:
        print(f"warning: {w}")
    sources = [backend.open(p.info, p.config, p.role, config.sync) for p in plan.cameras]
    serials = [s.serial for s in sources]
    for p in plan.cameras:
        print(f"camera {p.info.serial} ({p.info.name}, USB {p.info.usb_type or '?'}, {p.role}): "
              f"{'+'.join(p.config.streams)} {p.config.width}x{p.config.height}@{p.config.fps}")

    live = None
    if args.live_3d or args.preview:
        from capture.live import LiveView, make_sink

        stages, sink = [], None
        if args.live_3d:
            if rig is None:
                raise ConfigError("--live-3d needs the cameras' calibration: pass --calibration RIG")
            live_rig = _rig_for(rig, serials)
            if frames is not None:
                skeleton = frames["skeleton"]
                order = [list(rig.names).index(c.name) for c in live_rig]
                stages = build_live_stages(live_rig, sources[0].fps, skeleton, "simulated",
                                           frames["keypoints2d"][:, order], depth_scale=sources[0].depth_scale)
            else:
                from reconstruction.skeleton import load_skeleton

                skeleton = load_skeleton("coco17")
                stages = build_live_stages(live_rig, sources[0].fps, skeleton, "movenet-lightning",
                                           depth_scale=sources[0].depth_scale)
            sink, message = make_sink(out, skeleton.joint_names, skeleton.bone_indices)
            print(message)
    session = CaptureSession(sources, out, config, duration_s=args.duration, calibration=calibration, extra=extra)
    if args.live_3d or args.preview:
        # the live view backs off while any writer queue is over a quarter full: recording first
        live = LiveView(serials, stages, sources[0].fps, sink, preview=args.preview,
                        yield_when=lambda: session.backlog() > 0.25).start()
        session.on_frame = live.push

    def progress(s):
        parts = [f"{h.serial[-4:]}: {h.frames_written}/{h.frames_acquired}" + (" STOPPED" if h.stalled else "")
                 + (f" drops {h.software_drops}" if h.software_drops else "") for h in s.health]
        live_part = ""
        if live is not None and live.latency_ms.get("total"):
            live_part = f" | live {live.processed} sets, {live.latency_ms['total'][-1]:.0f} ms"
        print(f"{s.elapsed_s():6.1f} s  " + "  ".join(parts) + live_part, flush=True)

    print(f"recording into {out} " + (f"for {args.duration:g} s" if args.duration else "until Ctrl-C"), flush=True)
    try:
        with stop_on_signals(session):
            result = session.run(progress)
    finally:
        live_report = live.stop() if live is not None else None
    manifest = result.manifest
    if live_report is not None:
        manifest["live"] = live_report
    if frames is not None:
        write_simulated_truth(out / "ground_truth.npz", frames, rig, timings, session.health, sources[0].fps)
    if live_report is not None or frames is not None:
        write_json_atomic(result.manifest_path, manifest)
    _print_summary(manifest, live_report)
    log.info("manifest: %s", result.manifest_path)
    return 0 if manifest["status"] in ("complete", "interrupted") else 1


def _print_summary(manifest: dict, live_report: dict | None) -> None:
    print(f"session {manifest['status']} ({manifest['reason']}), {manifest['duration_s']:.2f} s")
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
        print(line)
    sync = manifest.get("sync") or {}
    if sync.get("skew_ms", {}).get("count"):
        sk, rs = sync["skew_ms"], sync["residual_skew_ms"]
        print(f"  frame sets {sync['frame_sets']} ({sync['complete_sets']} complete); skew ms mean {sk['mean']:.2f} "
              f"p95 {sk['p95']:.2f} max {sk['max']:.2f}; after offsets: mean {rs['mean']:.2f} max {rs['max']:.2f}")
        offsets = ", ".join(f"{s[-4:]} {o:+.2f}" for s, o in sync["offset_to_reference_ms"].items() if o is not None)
        print(f"  clock offsets to {sync['reference']} (ms): {offsets}")
    if live_report is not None:
        lat = ", ".join(f"{k} {v['mean']:.1f}" for k, v in live_report["latency_ms"].items())
        print(f"  live 3D: {live_report['achieved_fps']:.1f} fps of {live_report['camera_fps']:g}, "
              f"{live_report['processed']} sets shown, {live_report['skipped']} skipped; latency ms (mean): {lat}")
