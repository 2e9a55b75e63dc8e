"""``mocap inspect RECORDING...``: what is in RealSense recordings or videos, and how they sync."""
from __future__ import annotations

HELP = "show streams, resolution, fps, frame counts, drops, skew, intrinsics and depth scale of recordings"


def add_arguments(parser) -> None:
    parser.add_argument("recordings", nargs="+", metavar="RECORDING", help=".bag, .db3 or video files, one per camera")
    parser.add_argument("--tolerance-ms", type=float, default=None,
                        help="most time between frames of one set (default: half a frame period)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of video files that do not state it")


def _intrinsics(intr) -> str:
    if intr is None:
        return "none"
    coeffs = ", ".join(f"{c:.4g}" for c in intr.coeffs)
    return (f"fx {intr.fx:.2f} fy {intr.fy:.2f} ppx {intr.ppx:.2f} ppy {intr.ppy:.2f} "
            f"{intr.model} [{coeffs}]")


def run(args) -> int:
    import numpy as np

    from capture.recording import index_recording, read_recording_info
    from capture.sync import find_drops

    infos = []
    for path in args.recordings:
        info = read_recording_info(path, args.fps)
        index = index_recording(path, fps=args.fps)
        infos.append(info)
        print(f"{info.path}")
        print(f"  camera: {info.name}  serial {info.serial}  ({info.kind}, {info.duration_ms / 1000:.2f} s)")
        for stream in info.streams:
            idx = index.get(stream.key)
            n = len(idx) if idx is not None else 0
            line = f"  {stream.key:<9} {stream.width}x{stream.height} {stream.format:<6} {stream.fps:g} fps  {n} frames"
            if idx is not None and n > 1:
                dropped, duplicates = find_drops(idx.frame_numbers, idx.timestamps_ms, 1000.0 / stream.fps)
                gaps = np.diff(idx.timestamps_ms)
                line += (f"  dropped {dropped.size}  duplicates {duplicates.size}  "
                         f"interval {np.median(gaps):.2f} ms (max {gaps.max():.2f})  clock {idx.domain}")
            print(line)
            if stream.intrinsics is not None:
                print(f"            intrinsics: {_intrinsics(stream.intrinsics)}")
        if info.has_depth:
            print(f"  depth scale: {info.depth_scale:g} m/unit")
        if info.depth_to_color is not None:
            R, t = info.depth_to_color
            angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
            print(f"  depth->color: t [{t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}] m, rotation {angle:.3f} deg")
    if len(args.recordings) > 1:
        from capture.stream import FrameSetStream

        stream = FrameSetStream(args.recordings, tolerance_ms=args.tolerance_ms,
                                video_fps=[args.fps] * len(args.recordings))
        sync = stream.sync
        complete = int(sync.complete.sum())
        print(f"frame sets: {sync.num_sets} ({complete} complete) with tolerance {sync.tolerance_ms:.2f} ms")
        if sync.num_sets:
            print(f"  skew: median {np.median(sync.skew_ms):.3f} ms, max {sync.skew_ms.max():.3f} ms")
        for name, off, dropped, unmatched in zip(stream.cameras, sync.offsets_ms, sync.dropped, sync.unmatched):
            print(f"  {name}: offset {off:.3f} ms, dropped {dropped.size}, unmatched {unmatched.size}")
    return 0
