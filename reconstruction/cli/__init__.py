"""The ``mocap`` command: one thin subcommand module each, imported only when used.

Each module named in ``SUBCOMMANDS`` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; it imports its heavy dependencies inside ``run``. Known errors
(:class:`capture.errors.MocapError`) become one message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> module; the order is the order of `mocap --help`.
SUBCOMMANDS = {
    "demo": "reconstruction.cli.demo",
    "calibrate": "reconstruction.cli.calibrate",
    "board": "reconstruction.cli.board",
    "capture": "reconstruction.cli.capture",
    "devices": "reconstruction.cli.devices",
    "simulate": "reconstruction.cli.simulate",
    "inspect": "reconstruction.cli.inspect",
    "detect2d": "reconstruction.cli.detect2d",
    "models": "reconstruction.cli.models",
    "triangulate": "reconstruction.cli.triangulate",
    "reconstruct": "reconstruction.cli.reconstruct",
    "kinematics": "reconstruction.cli.kinematics",
    "convert": "reconstruction.cli.convert",
}


def _available() -> dict:
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mocap",
        description="Markerless multi-camera 3D motion capture (RealSense RGB-D first).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available().items():
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from capture.errors import MocapError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except MocapError as exc:
        print(f"mocap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mocap {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went into a pipe that closed (`| head`): nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
