"""``mocap inspect RECORDING...``: what is in RealSense recordings or videos, and how they sync
(``capture.describe``)."""
from __future__ import annotations

HELP = "show streams, resolution, fps, frame counts, drops, skew, intrinsics and depth scale of recordings"


def add_arguments(parser) -> None:
    parser.add_argument("recordings", nargs="+", metavar="RECORDING", help=".bag, .db3 or video files, one per camera")
    parser.add_argument("--tolerance-ms", type=float, default=None,
                        help="most time between frames of one set (default: half a frame period)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of video files that do not state it")


def run(args) -> int:
    from capture.describe import describe_recording, describe_sync

    for path in args.recordings:
        print("\n".join(describe_recording(path, args.fps)))
    if len(args.recordings) > 1:
        print("\n".join(describe_sync(args.recordings, args.tolerance_ms, args.fps)))
    return 0
