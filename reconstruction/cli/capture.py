"""`mocap capture`: record a session from the cameras (or --simulate N), optionally with live 3D
(``reconstruction.pipeline.record``)."""
from __future__ import annotations

HELP = "record a multi-camera session (one file per camera + manifest), optionally with live 3D"


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", help="capture config YAML (default: configs/capture.yaml)")
    parser.add_argument("--calibration", metavar="RIG", help="rig file of these cameras (copied as rig.yaml)")
    parser.add_argument("--out", required=True, metavar="SESSION_DIR", help="session folder to write")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds to record (default: until Ctrl-C)")
    parser.add_argument("--simulate", type=int, metavar="N", help="N simulated cameras instead of real ones")
    parser.add_argument("--preview", action="store_true", help="show each camera's color image (OpenCV windows)")
    parser.add_argument("--live-3d", action="store_true", help="live 3D skeleton (rerun viewer or .rrd/.npz)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty session folder")


def run(args) -> int:
    from reconstruction.pipeline.record import RecordOptions, record_session, summary_lines

    options = RecordOptions(out=args.out, config=args.config, calibration=args.calibration, duration_s=args.duration,
                            simulate=args.simulate, preview=args.preview, live_3d=args.live_3d,
                            overwrite=args.overwrite)
    manifest = record_session(options, say=lambda line: print(line, flush=True))
    for line in summary_lines(manifest):
        print(line)
    return 0 if manifest["status"] in ("complete", "interrupted") else 1
