"""`mocap reconstruct`: recordings (RGB-D) and/or videos + a calibration -> 3D skeleton, quality, overlays
(``reconstruction.pipeline.offline``)."""
from __future__ import annotations

HELP = "reconstruct 3D motion from a session's recordings/videos and a calibration"


def add_arguments(parser) -> None:
    parser.add_argument("session", nargs="+", metavar="SESSION",
                        help="a folder with one recording (.bag/.db3) or video per camera, or a list of files")
    parser.add_argument("--calibration", required=True, metavar="RIG", help="the rig file (mocap calibrate)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="2D model (`mocap models list`; default from the config: movenet-thunder)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="reconstruction YAML (defaults: configs/reconstruction.yaml)")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created; resumes its cache)")
    parser.add_argument("--detections", default=None, metavar="KP.npz|GT.npz|DIR",
                        help="precomputed 2D (our keypoints NPZ, a simulator ground_truth.npz or an OpenPose "
                             "folder) instead of the 2D model")


def run(args) -> int:
    from reconstruction.pipeline.offline import ReconstructRequest, reconstruct_files, summary_lines

    out = reconstruct_files(ReconstructRequest(session=tuple(args.session), calibration=args.calibration,
                                               output=args.output, config=args.config, model=args.model,
                                               detections=args.detections), say=print)
    print("\n".join(summary_lines(out)))
    return 0
