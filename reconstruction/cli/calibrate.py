"""``mocap calibrate``: calibrate a rig from views of a ChArUco board or a checkerboard."""
from __future__ import annotations

HELP = "calibrate cameras (intrinsics and extrinsics) from board images, videos or recordings"


def add_arguments(parser) -> None:
    parser.add_argument("--board", required=True, metavar="BOARD.yaml", help="board spec (see configs/boards/)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="ROOT",
                        help="ROOT/<camera>/<frame>.png|jpg; the same file name in two folders is the same instant")
    source.add_argument("--videos", metavar="DIR", help="one synchronized video per camera (camera = file name)")
    source.add_argument("--recordings", metavar="PATH", help="a RealSense recording (factory intrinsics by default)")
    parser.add_argument("--output", required=True, metavar="RIG",
                        help="rig file to write; format from the extension (.yaml ours, .toml, ...)")
    parser.add_argument("--format", default=None, help="rig file format when the extension is ambiguous")
    parser.add_argument("--intrinsics-only", action="store_true",
                        help="intrinsics per camera only (cameras need not see the board together)")
    parser.add_argument("--fix-intrinsics", metavar="RIG", help="take intrinsics from this rig file (cameras by name or serial)")
    parser.add_argument("--report", metavar="DIR", help="write the quality report (and the detection cache) here")
    parser.add_argument("--config", metavar="CALIBRATION.yaml",
                        help="calibration settings (calibration.calibrate.CalibrationConfig keys)")
    parser.add_argument("--world", choices=["first_camera", "board"], default=None,
                        help="world frame: the first camera, or the board (on the floor: Z up) in --world-frame")
    parser.add_argument("--world-frame", default=None, help="frame name (file stem) whose board pose defines the world")


def run(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from calibration.calibrate import CalibrationConfig, calibrate
    from calibration.rig_io import save_rig
    from capture.config import load_section

    config = load_section(CalibrationConfig, args.config) if args.config else CalibrationConfig()
    if args.world:
        config = replace(config, world=args.world)
    if args.world_frame:
        config = replace(config, world_frame=args.world_frame)
    result = calibrate(
        args.board, images=args.images, videos=args.videos, recordings=args.recordings,
        intrinsics_only=args.intrinsics_only, fix_intrinsics=args.fix_intrinsics, report_dir=args.report,
        config=config,
    )
    out = save_rig(result.rig, args.output, args.format)
    print(result.report.summary(), end="")
    print(f"rig written to {out}" + (f", report in {Path(args.report)}" if args.report else ""))
    return 0
