"""Benchmark: read a 4-camera 848x480 recording of 3,000 frame sets through FrameSetStream.

Writes the recordings once (cheap synthetic frames via capture.recording_writer.write_test_pattern,
cached in --folder or a temp folder), then reads them back and prints frame sets per second.
Run under ``/usr/bin/time -v`` to see the peak memory ("Maximum resident set size")::

    /usr/bin/time -v python benchmarks/recordings.py --folder /tmp/mocap_bench_recordings
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def write_rig(folder: Path, cameras: int, frames: int, fps: int, size: tuple[int, int]) -> list[Path]:
    from capture.simulated_cameras import write_test_pattern

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    period = 1000.0 / fps
    for v in range(cameras):
        path = folder / f"cam{v}_{frames}x{size[0]}x{size[1]}.db3"
        if not path.exists():
            t0 = time.perf_counter()
            n = np.arange(frames)
            stamps = 1.7e12 + n * period + rng.uniform(-0.3, 0.3, frames)  # global time, 0.3 ms jitter
            write_test_pattern(path, f"8000000000{v:02d}", stamps, n, size=size, fps=fps)
            print(f"wrote {path} in {time.perf_counter() - t0:.1f} s ({path.stat().st_size / 1e6:.1f} MB)")
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "mocap_bench_recordings")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--align", action="store_true", help="also align depth to color")
    args = parser.parse_args(argv)

    from capture.stream import FrameSetStream

    paths = write_rig(args.folder, args.cameras, args.frames, args.fps, (848, 480))
    t0 = time.perf_counter()
    stream = FrameSetStream(paths, align_depth=args.align)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    complete = 0
    for frameset in stream:
        complete += bool(frameset.present.all())
    t_read = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"opened (info + index + sync) in {t_open:.2f} s; {len(stream)} frame sets, {complete} complete")
    print(f"read {len(stream)} frame sets in {t_read:.1f} s: {len(stream) / t_read:.1f} frame sets/s "
          f"({len(stream) * args.cameras / t_read:.0f} camera frames/s); peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
