"""Live 3D speed: can the live view keep up with the cameras?

Two measurements, both on pre-rendered simulated frames (a ring of N cameras, 640x480 depth + color):

1. stage latency: the live stages (2D -> triangulate -> depth fusion -> one-euro filter) run back to
   back on frame sets as fast as they go; prints mean / p95 ms per stage and the fps they allow;
2. real time: simulated cameras at the camera rate feed capture.live.LiveView for ``--seconds``
   (nothing recorded); prints the achieved live fps, frame sets skipped, end-to-end latency.

2D comes from simulated detections (the truth plus noise and outliers) and, when its weights are
found (``mocap models fetch movenet-lightning`` or ../shared/weights), MoveNet Lightning on CPU (and
CUDA where present).

    python benchmarks/live.py --cameras 4 --seconds 5 [--models simulated movenet-lightning]

State the machine load (``uptime``) with the figures: this machine has 2 shared cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"


def _framesets(frames, num_sets: int):
    from capture.devices import CapturedFrame
    from capture.live import LiveFrameSet

    V, L = frames.color.shape[:2]
    out = []
    for k in range(num_sets):
        i = k % L
        views = tuple(CapturedFrame(str(v), k + 1, k * 1000 / 30, frames.color[v, i], frames.depth[v, i],
                                    time.monotonic(), i) for v in range(V))
        out.append(LiveFrameSet(k, k * 1000 / 30, views, time.monotonic()))
    return out


def stage_latency(stages, framesets, warmup: int = 10) -> dict:
    times = {name: [] for name, _ in stages}
    for fs in framesets[:warmup]:  # first calls build caches (torch kernels, imports)
        out = None
        for _, fn in stages:
            out = fn(fs, out)
    for fs in framesets[warmup:]:
        out = None
        for name, fn in stages:
            t = time.perf_counter()
            out = fn(fs, out)
            times[name].append((time.perf_counter() - t) * 1000)
    res = {k: (float(np.mean(v)), float(np.percentile(v, 95))) for k, v in times.items()}
    total = float(np.mean(np.sum([v for v in times.values()], axis=0)))
    return {"stages": res, "total_mean_ms": total, "max_fps": 1000.0 / total}


def realtime(stages, frames, rig, seconds: float, fps: int) -> dict:
    from capture.capture_config import CameraConfig, SyncConfig
    from capture.live import LiveView
    from capture.simulated_cameras import SimulatedBackend, realistic_timings

    backend = SimulatedBackend(frames.color, frames.depth, list(frames.intrinsics),
                               realistic_timings(len(rig)), serials=list(rig.names))
    cam_cfg = CameraConfig(resolution=(rig.cameras[0].width, rig.cameras[0].height), fps=fps)
    sources = [backend.open(i, cam_cfg, "none", SyncConfig()) for i in backend.devices()]
    live = LiveView(rig.names, stages, fps).start()
    import threading

    stop = threading.Event()

    def pump(src):
        while not stop.is_set():
            f = src.read(0.05)
            if f is not None:
                live.push(f)

    for s in sources:
        s.start()
    threads = [threading.Thread(target=pump, args=(s,), daemon=True) for s in sources]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return live.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["simulated", "movenet-lightning"])
    parser.add_argument("--no-depth", action="store_true", help="skip depth fusion")
    args = parser.parse_args(argv)

    from capture.capture_config import SimulatedCamerasConfig
    from reconstruction.pipeline.live import build_live_stages, model_detection_stage
    from reconstruction.simulation.live import render_loop, simulated_detection_stage
    from reconstruction.simulation.session import SimulationConfig, build_rig

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores")
    rig = build_rig(SimulationConfig(cameras=args.cameras, fps=args.fps))
    frames = render_loop(rig, args.fps, 1.0, SimulatedCamerasConfig().seed)
    framesets = _framesets(frames, 60)
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
    except ImportError:
        pass
    from dataclasses import replace

    from reconstruction.pipeline import ReconstructionConfig

    def detection(model: str, device: str):
        if model == "simulated":
            return simulated_detection_stage(frames.keypoints2d, rig)
        return model_detection_stage(model, replace(cfg, model2d=replace(cfg.model2d, device=device)))

    cfg = ReconstructionConfig()
    for model in args.models:
        for device in (devices if model != "simulated" else ["cpu"]):
            if model != "simulated":
                from reconstruction.models2d import registry

                weights = os.environ.get("MOCAP_WEIGHTS") or (str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_dir() else None)
                if registry.find_model(model, weights) is None:
                    print(f"{model}: weights not found, skipped (mocap models fetch {model})")
                    continue
                if weights:
                    os.environ.setdefault("MOCAP_WEIGHTS", weights)
            stages = build_live_stages(rig, args.fps, frames.skeleton, detection(model, device), cfg,
                                       depth=not args.no_depth)
            lat = stage_latency(stages, framesets)
            per = ", ".join(f"{k} {m:.1f} (p95 {p:.1f})" for k, (m, p) in lat["stages"].items())
            print(f"{model} [{device}] {args.cameras} views: stages ms {per}; total {lat['total_mean_ms']:.1f} ms "
                  f"-> up to {lat['max_fps']:.1f} fps")
            stages = build_live_stages(rig, args.fps, frames.skeleton, detection(model, device), cfg,
                                       depth=not args.no_depth)
            rep = realtime(stages, frames, rig, args.seconds, args.fps)
            tot = rep["latency_ms"].get("total", {})
            print(f"{model} [{device}] real time {args.seconds:g} s at {args.fps} fps: live {rep['achieved_fps']:.1f} fps, "
                  f"{rep['processed']} sets shown, {rep['skipped']} skipped, end-to-end latency mean "
                  f"{tot.get('mean', float('nan')):.1f} ms p95 {tot.get('p95', float('nan')):.1f} ms")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
