"""`mocap demo`: the main job end to end on a built-in example (simulated RGB-D), or `--real` on the
Pose2Sim demo videos with the 2D model (``reconstruction.demo``)."""
from __future__ import annotations

import argparse

HELP = "run the whole reconstruction on a built-in simulated RGB-D example (or --real: Pose2Sim demo videos)"

DEFAULT_OUT = "mocap_demo_output"


def add_arguments(parser) -> None:
    parser.add_argument("--real", action="store_true",
                        help="the 4 real Pose2Sim demo videos with their calibration and MoveNet Thunder")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--seconds", type=float, default=3.0, help=argparse.SUPPRESS)  # shorter clips for tests


def run(args) -> int:
    if args.real:
        from reconstruction.demo.real import run_real_demo

        run_real_demo(args.out, say=lambda line: print(line, flush=True))
    else:
        from reconstruction.demo.simulated import run_simulated_demo

        run_simulated_demo(args.out, args.seconds, say=lambda line: print(line, flush=True))
    return 0
