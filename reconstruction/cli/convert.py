"""``mocap convert``: rig, 2D keypoint and 3D point files between our formats and other tools'."""
from __future__ import annotations

HELP = ("convert rig files (yaml/toml/opencv/easymocap/qca), 2D keypoints (OpenPose -> npz) or 3D points "
        "(npz/trc/c3d, and -> bvh)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    rig = sub.add_parser("rig", help="rig file -> rig file (format by extension or --format/--to-format)")
    rig.add_argument("input", help="rig file (.yaml, .toml, .qca.txt, OpenCV .yml) or EasyMocap folder")
    rig.add_argument("output", help="rig file to write (an EasyMocap folder for --to-format easymocap)")
    rig.add_argument("--format", dest="from_format", help="input format: yaml, toml, opencv, easymocap, qca")
    rig.add_argument("--to-format", dest="to_format", help="output format: yaml, toml, opencv, easymocap")
    rig.add_argument("--world", default="", help="text describing the world frame (our YAML only)")
    kp = sub.add_parser("keypoints", help="2D keypoints (OpenPose JSON root or our .npz) -> our .npz")
    kp.add_argument("input", help="OpenPose root (one camXX_json folder per camera) or .npz")
    kp.add_argument("output", help=".npz to write")
    kp.add_argument("--skeleton", help="skeleton name or YAML (default from the joint count: 25 -> body25b)")
    kp.add_argument("--fps", type=float, help="frame rate (OpenPose files carry none; default 30)")
    kp.add_argument("--person", type=int, help="person index in each file (default: highest mean score)")
    kp.add_argument("--rig", help="rig file: order and name the views like its cameras")
    pts = sub.add_parser("points", help="3D points between .npz, .trc and .c3d, or to a .bvh animation")
    pts.add_argument("input", help=".npz, .trc or .c3d")
    pts.add_argument("output", help=".npz, .trc, .c3d or .bvh (a skeleton rooted at the pelvis, Y up, metres)")
    pts.add_argument("--fps", type=float, help="override the frame rate")
    pts.add_argument("--skeleton", help="skeleton of the points for .bvh (default: from the joint names)")
    pts.add_argument("--person", help="the person to use when the NPZ holds several (its person_ids)")


def run(args) -> int:
    import logging

    log = logging.getLogger("mocap.convert")
    if args.kind == "rig":
        from calibration.rig_io import load_rig, save_rig

        rig = load_rig(args.input, args.from_format)
        save_rig(rig, args.output, args.to_format, world=args.world)
        print(f"{args.output}: {len(rig)} cameras ({', '.join(rig.names)})")
        return 0
    if args.kind == "keypoints":
        from reconstruction.formats.keypoints2d import read_keypoints2d, write_keypoints2d

        cameras = None
        if args.rig:
            from calibration.rig_io import load_rig

            cameras = load_rig(args.rig).names
        kp = read_keypoints2d(args.input, skeleton=args.skeleton, cameras=cameras, fps=args.fps, person=args.person)
        write_keypoints2d(args.output, kp)
        missing = float((~(kp.keypoints[..., 2] > 0)).mean()) if kp.keypoints.size else 0.0
        print(
            f"{args.output}: {kp.num_frames} frames, {kp.num_views} views ({', '.join(kp.cameras)}), "
            f"{kp.num_joints} joints, {kp.fps:g} fps, {100 * missing:.1f}% missing"
        )
        return 0
    from dataclasses import replace

    from reconstruction.formats.points3d import write_points3d
    from reconstruction.kinematics.stage import load_person

    points, _ = load_person(args.input, args.person)
    if args.fps:
        points = replace(points, fps=args.fps)
    if str(args.output).lower().endswith(".bvh"):
        from reconstruction.kinematics.bvh_export import skeleton_for_joints, write_points_bvh

        export = write_points_bvh(args.output, points, skeleton_for_joints(points.joint_names, args.skeleton))
        print(f"{args.output}: {points.num_frames} frames, {len(export.bvh.joint_names)} BVH joints for "
              f"{points.num_joints} points, {points.fps:g} fps")
        return 0
    if points.quality and not str(args.output).lower().endswith(".npz"):
        log.info("quality arrays (%s) are kept only in .npz", ", ".join(points.quality))
    write_points3d(args.output, points)
    print(f"{args.output}: {points.num_frames} frames, {points.num_joints} joints, {points.fps:g} fps")
    return 0
