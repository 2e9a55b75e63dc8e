"""Crops per second of the 2D models, batch sizes 1..32, on CPU (and CUDA where present).

    python benchmarks/models2d.py [--threads 2] [--batches 1 2 4 8 16 32] [--models ...] [--device cpu cuda]

Times the network and its decoding on random crops (no cropping or video decoding), after a
warm-up. MoveNet weights from --weights-dir / $MOCAP_WEIGHTS / the user cache / ../shared/weights;
the top-down architectures run with random weights (speed does not depend on them).
Note the machine load (``uptime``) with the figures: other processes slow CPU numbers down.
(Process CPU time is no help under load: OpenMP threads spin while they wait for the cores.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, min_time: float = 1.5, min_iters: int = 3) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call, after a warm-up."""
    fn()  # warm-up
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while n < min_iters or time.perf_counter() - t0 < min_time:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--models", nargs="+", default=["movenet-lightning", "movenet-thunder"],
                    help="movenet-lightning movenet-thunder hrnet-w32 hrnet-w48 simplebaseline-res50 ...")
    ap.add_argument("--device", nargs="+", default=None, help="cpu and/or cuda (default: cpu, and cuda if present)")
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--min-time", type=float, default=1.5, help="seconds per measurement")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measurements per cell; the best is printed (on a shared machine it is the least disturbed)")
    args = ap.parse_args(argv)
    import torch

    from reconstruction.models2d import registry
    from reconstruction.models2d.topdown import TopDownHeatmapModel, build_topdown

    torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    wdir = args.weights_dir
    if wdir is None and registry.find_model("movenet-lightning") is None and (ROOT.parent / "shared" / "weights").is_dir():
        wdir = ROOT.parent / "shared" / "weights"
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, load average {load[0]:.2f}"
          + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    print(f"{'model':22s} {'device':5s} " + " ".join(f"{'b=' + str(b):>8s}" for b in args.batches)
          + "   (crops/s, wall clock)")
    for name in args.models:
        for dev in devices:
            try:
                if name.startswith("movenet"):
                    model = registry.load_model(name, device=dev, weights_dir=wdir, batch_size=max(args.batches))
                else:
                    model = TopDownHeatmapModel(build_topdown(name), name, device=dev, batch_size=max(args.batches))
            except Exception as exc:  # a missing model should not stop the others
                print(f"{name:22s} {dev:5s} skipped: {exc}")
                continue
            size = model.input_size
            w, h = (size, size) if np.isscalar(size) else size
            rates = []
            for b in args.batches:
                crops = np.random.default_rng(0).integers(0, 255, (b, h, w, 3), dtype=np.uint8)

                def step():
                    model.predict_crops(crops)
                    if dev == "cuda":
                        torch.cuda.synchronize()

                walls = [_time(step, args.min_time)[0] for _ in range(args.repeat)]
                rates.append(b / min(walls))
            print(f"{name:22s} {dev:5s} " + " ".join(f"{r:8.1f}" for r in rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
