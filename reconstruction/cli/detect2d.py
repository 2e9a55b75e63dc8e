"""`mocap detect2d`: run a 2D keypoint model on every view of videos or a recording -> our 2D NPZ."""
from __future__ import annotations

HELP = "2D keypoints per view with a named model (MoveNet) -> 2D keypoint NPZ"


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="movenet-thunder", help="model name (`mocap models list`)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", nargs="+", metavar="V", help="one video per view, same frame count and rate")
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


def _video_frames(paths, max_frames):
    import cv2
    import numpy as np

    caps = [cv2.VideoCapture(str(p)) for p in paths]
    n = 0
    try:
        while max_frames is None or n < max_frames:
            frames = []
            for cap in caps:
                ok, f = cap.read()
                if not ok:
                    return
                frames.append(np.ascontiguousarray(f[:, :, ::-1]))  # BGR -> RGB
            n += 1
            yield frames
    finally:
        for cap in caps:
            cap.release()


def run(args) -> int:
    import logging
    from pathlib import Path

    import cv2
    from tqdm import tqdm

    from capture.errors import ConfigError, FileFormatError
    from reconstruction.keypoints2d_io import Keypoints2D, write_keypoints2d
    from reconstruction.models2d import registry
    from reconstruction.models2d.interface import detect_sequence

    log = logging.getLogger(__name__)

    if args.recording:
        from capture.stream import FrameSetStream

        stream = FrameSetStream(args.recording, names=args.cameras)
        cameras, fps = list(stream.cameras), args.fps or (stream.infos[0].fps or 30.0)
        total = len(stream) if args.max_frames is None else min(len(stream), args.max_frames)

        def frames():
            with stream:
                for n, fs in enumerate(stream):
                    if args.max_frames is not None and n >= args.max_frames:
                        return
                    yield [c if present else None for c, present in zip(fs.color, fs.present)]
    else:
        videos = [Path(v) for v in args.video]
        counts, rates = [], []
        for v in videos:
            cap = cv2.VideoCapture(str(v))
            if not v.is_file() or not cap.isOpened():
                raise FileFormatError(f"{v}: cannot open the video (missing file or unsupported codec)")
            counts.append(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            rates.append(float(cap.get(cv2.CAP_PROP_FPS)) or 30.0)
            cap.release()
        cameras = args.cameras or [v.stem for v in videos]
        if len(cameras) != len(videos):
            raise ConfigError(f"--cameras names {len(cameras)} views but --video gives {len(videos)}")
        if len(set(counts)) > 1:
            log.warning("videos have different frame counts %s: stopping at the shortest", counts)
        fps = args.fps or rates[0]
        total = min(counts) if args.max_frames is None else min(min(counts), args.max_frames)

        def frames():
            return _video_frames(videos, args.max_frames)

    model = registry.load_model(args.model, device=args.device, weights_dir=args.weights_dir,
                                batch_size=args.batch_size)
    detector = registry.load_person_detector(args.weights_dir, device=args.device)
    with tqdm(total=total, unit="frame", desc=f"{args.model} x {len(cameras)} views") as bar:
        kp = detect_sequence(model, frames(),
                             detector=detector.detect if detector else None, flip_test=args.flip_test,
                             progress=bar.update)
    if len(kp) == 0:
        raise FileFormatError(f"{(args.video or args.recording)[0]}: no frame could be read")
    out = write_keypoints2d(args.output, Keypoints2D(kp, cameras, model.joint_names, fps=fps))
    print(f"{len(kp)} frames x {len(cameras)} views -> {out}")
    return 0
