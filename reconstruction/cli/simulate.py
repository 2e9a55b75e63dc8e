"""`mocap simulate`: write simulated RealSense recordings of a moving person, with the rig and ground truth."""
from __future__ import annotations

HELP = "simulate RGB-D RealSense recordings of a moving person, with the rig and ground truth"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--cameras", type=int, default=None, help="cameras on the ring (default 4)")
    parser.add_argument("--seconds", type=float, default=None, help="duration in seconds (default 3)")
    parser.add_argument("--fps", type=int, default=None, help="frame rate (default 30)")
    parser.add_argument("--preset", default=None, help="intrinsics preset: D435 (default) or D455")
    parser.add_argument("--resolution", default=None, metavar="WxH", help="image size, e.g. 848x480 (default 640x480)")
    parser.add_argument("--rig", default=None, metavar="FILE", help="a rig file to use instead of the ring")
    parser.add_argument("--bvh", default=None, metavar="FILE", help="drive the person with this BVH clip")
    parser.add_argument("--bvh-unit", type=float, default=None, metavar="M", help="metres per BVH unit (CMU: 0.056444)")
    parser.add_argument("--skeleton", default=None, help="skeleton of the ground truth (default coco17)")
    parser.add_argument("--drop-rate", type=float, default=None, help="probability of a dropped frame per camera")
    parser.add_argument("--depth-noise", type=float, default=None, help="scale of the depth noise model (0: none)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--config", default=None, metavar="YAML", help="a SimulationConfig YAML file (flags override it)")
    parser.add_argument("--board", action="store_true", help="also write board/: recordings of a ChArUco board "
                        "moving through the volume, with its spec and true corners (for calibration)")
    parser.add_argument("--board-file", default=None, metavar="YAML", help="the board of --board (default: 7x5 "
                        "ChArUco, 10 cm squares)")


def run(args) -> int:
    import dataclasses

    from tqdm import tqdm

    from capture.config import load_section, section_from_mapping
    from capture.errors import ConfigError
    from reconstruction.simulation.session import SimulationConfig, simulate_session

    base = load_section(SimulationConfig, args.config) if args.config else SimulationConfig()
    overrides = {
        "cameras": args.cameras, "seconds": args.seconds, "fps": args.fps, "preset": args.preset,
        "rig_file": args.rig, "skeleton": args.skeleton, "drop_rate": args.drop_rate,
        "depth_noise": args.depth_noise, "seed": args.seed, "bvh_unit_m": args.bvh_unit,
        "board_file": args.board_file, "board": True if args.board else None,
    }
    if args.bvh:
        overrides.update(motion="bvh", bvh_path=args.bvh)
    if args.resolution:
        try:
            width, height = (int(v) for v in args.resolution.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--resolution {args.resolution!r}: expected WIDTHxHEIGHT, e.g. 848x480") from None
        overrides["resolution"] = [width, height]
    data = dataclasses.asdict(base)
    data.update({k: v for k, v in overrides.items() if v is not None})
    cfg = section_from_mapping(SimulationConfig, data, "mocap simulate")

    with tqdm(total=cfg.num_frames * (2 if cfg.board else 1), unit="frame", desc="simulate") as bar:
        result = simulate_session(args.out, cfg, progress=lambda done, total: bar.update(done - bar.n))
    dropped = int(result.dropped.sum())
    print(
        f"wrote {len(result.recordings)} recordings of {cfg.num_frames} frames ({dropped} dropped) in "
        f"{result.seconds:.1f} s to {result.out_dir}: rig {result.rig_yaml.name}, {result.rig_toml.name}, "
        f"{result.ground_truth.name}" + (", board/" if cfg.board else "")
    )
    return 0
