"""`mocap detect2d`: run a 2D keypoint model on every view of videos or recordings -> our 2D NPZ
(``reconstruction.pipeline.detect2d.detect_files``)."""
from __future__ import annotations

HELP = "2D keypoints per view with a named model (MoveNet) -> 2D keypoint NPZ"


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="movenet-thunder", help="model name (`mocap models list`)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", nargs="+", metavar="V", help="one video per view, same frame rate")
    src.add_argument("--recording", nargs="+", metavar="R",
                     help="one recording per camera (.bag/.db3, or videos), synchronized into frame sets")
    parser.add_argument("--output", required=True, metavar="KP.npz", help="2D keypoint NPZ to write")
    parser.add_argument("--cameras", nargs="+", help="camera names of the views (default: the video file stems)")
    parser.add_argument("--weights-dir", help="folder with the weights (default: $MOCAP_WEIGHTS, then the user cache)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (float16 on cuda)")
    parser.add_argument("--batch-size", type=int, default=16, help="crops per model call")
    parser.add_argument("--flip-test", action="store_true", help="average with the mirrored crop (2x slower)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default: the videos')")


def run(args) -> int:
    from reconstruction.pipeline.detect2d import DetectRequest, detect_files

    out, (frames, views) = detect_files(DetectRequest(
        sources=tuple(args.video or args.recording), output=args.output, model=args.model, cameras=tuple(args.cameras) if args.cameras else None,
        weights_dir=args.weights_dir, device=args.device, batch_size=args.batch_size, flip_test=args.flip_test,
        max_frames=args.max_frames, fps=args.fps))
    print(f"{frames} frames x {views} views -> {out}")
    return 0
