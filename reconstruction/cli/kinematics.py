"""``mocap kinematics``: one person's 3D joints -> OpenSim scaling + inverse kinematics and ISB
joint angles (:mod:`reconstruction.kinematics.stage`)."""
from __future__ import annotations

HELP = "joint angles: OpenSim scaling + inverse kinematics (scaled .osim, .mot) and ISB angles from 3D points"


def add_arguments(parser) -> None:
    parser.add_argument("points", metavar="POINTS", help="our 3D .npz (mocap reconstruct/triangulate) or a .trc/.c3d")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--model", default="pose2sim-simple", metavar="NAME|FILE.osim",
                        help="OpenSim model: pose2sim-simple (default), pose2sim-muscles or your own .osim")
    parser.add_argument("--markers", default=None, metavar="NAME|FILE.xml",
                        help="marker set: coco17, body25b, body25, halpe26, blazepose or your own .xml "
                             "(default: the Pose2Sim set the points' joints fill best)")
    parser.add_argument("--height", type=float, default=None, metavar="M",
                        help="the person's height; scales the segments the points cannot measure")
    parser.add_argument("--mass", type=float, default=None, metavar="KG", help="the person's mass (default 70)")
    parser.add_argument("--person", default=None, metavar="ID",
                        help="the person to use when the NPZ holds several (its person_ids)")
    parser.add_argument("--scaling-setup", default=None, metavar="FILE.xml|none",
                        help="ScaleTool set-up (default: Pose2Sim's for the marker set; 'none': no scaling)")
    parser.add_argument("--ik-setup", default=None, metavar="FILE.xml",
                        help="InverseKinematicsTool set-up (default: Pose2Sim's for the marker set)")
    parser.add_argument("--no-opensim", action="store_true", help="only the ISB joint angles (no OpenSim needed)")
    parser.add_argument("--weights-dir", default=None, metavar="DIR",
                        help="where `mocap models fetch opensim-pose2sim` put the set-up (default: the user cache)")


def run(args) -> int:
    from reconstruction.kinematics.stage import KinematicsRequest, kinematics_files, summary_lines

    result = kinematics_files(KinematicsRequest(
        points=args.points, output=args.output, model=args.model, markers=args.markers, height_m=args.height,
        mass_kg=args.mass, person=args.person, scaling_setup=args.scaling_setup, ik_setup=args.ik_setup,
        opensim=not args.no_opensim, weights_dir=args.weights_dir))
    print("\n".join(summary_lines(result)))
    return 0
