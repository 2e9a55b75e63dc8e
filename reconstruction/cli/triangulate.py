"""``mocap triangulate``: 2D keypoints of a calibrated rig -> 3D joints, with a quality summary.

    mocap triangulate --calibration RIG --keypoints KP [--skeleton SKEL] [--min-views 2] [--refine] [--fps F] --output OUT

See :mod:`reconstruction.pipeline.from_keypoints` for the files. ``--fps`` sets the frame rate
(OpenPose folders carry none: 30 is assumed with a warning); the refinement's smoothness, the
sequence quality and the TRC/C3D output use it.
"""
from __future__ import annotations

HELP = "triangulate 2D keypoints of a calibrated rig into 3D joints (robust, confidence-weighted)"


def add_arguments(parser) -> None:
    parser.add_argument("--calibration", required=True, metavar="RIG",
                        help="rig file (our .yaml, Pose2Sim/anipose .toml, OpenCV .yml, EasyMocap folder, Qualisys .qca.txt)")
    parser.add_argument("--keypoints", required=True, metavar="KP",
                        help="2D keypoints: our .npz, or an OpenPose JSON root with one sub-folder per camera")
    parser.add_argument("--skeleton", metavar="SKEL",
                        help="built-in skeleton name or skeleton YAML (needed when the joints are not a built-in set)")
    parser.add_argument("--min-views", type=int, default=None, metavar="N",
                        help="fewest consistent views a joint needs (default 2)")
    parser.add_argument("--refine", action="store_true",
                        help="refine the whole sequence (reprojection + bone lengths + smoothness) after triangulating")
    parser.add_argument("--fps", type=float, default=None, metavar="F",
                        help="frame rate of the keypoints (OpenPose folders carry none; default: the file's, else 30)")
    parser.add_argument("--output", required=True, metavar="OUT", help="3D output: .npz, .trc or .c3d")


def run(args) -> int:
    from reconstruction.pipeline.from_keypoints import TriangulateRequest, triangulate_file
    from reconstruction.triangulation import format_summary

    summary = triangulate_file(TriangulateRequest(
        calibration=args.calibration, keypoints=args.keypoints, output=args.output, skeleton=args.skeleton,
        min_views=args.min_views, refine=args.refine, fps=getattr(args, "fps", None)))
    print(format_summary(summary))
    print(f"wrote {summary['output']} and {summary['summary_path']}")
    return 0
