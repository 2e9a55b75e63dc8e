"""``mocap triangulate``: 2D keypoints of a calibrated rig -> 3D joints, with a quality summary.

    mocap triangulate --calibration RIG --keypoints KP [--skeleton SKEL] [--min-views 2] [--refine] [--fps F] --output OUT

RIG: any rig file ``calibration.rig_io.load_rig`` reads. KP: our 2D ``.npz`` or an OpenPose JSON
root (one sub-folder per camera, named like the rig's cameras). OUT by extension: ``.npz`` (with the
quality arrays ``reproj_error_px``, ``n_views``, ``covariance``, ``uncertainty_m``), ``.trc`` or
``.c3d``. The summary (reprojection error per camera and per joint, how often each camera was
excluded, completeness, the configuration used) is printed and written to ``OUT.summary.json``,
with, when the skeleton is known, the ground-truth-free sequence quality of
``reconstruction.quality.sequence_quality`` (jitter, bone-length spread, ...) under ``sequence_quality``.

``--fps`` sets the frame rate (OpenPose folders carry none: 30 is assumed with a warning); the
refinement's smoothness, the sequence quality and the TRC/C3D output use it.

``--refine`` runs the sequence refinement (``reconstruction.refine.refine_sequence``: reprojection
+ bone lengths + smoothness) on the triangulation, which needs the skeleton.
"""
from __future__ import annotations

import re

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


def _loose(name: str) -> str:
    name = re.sub(r"_json$", "", str(name).strip(), flags=re.IGNORECASE)
    return re.sub(r"[^0-9a-z]", "", name.lower())


def match_cameras(keypoint_cameras, rig, keypoints_path, rig_path):
    """The rig restricted to the keypoints' views, in their order. Names match exactly, then loosely
    (case, separators, a trailing ``_json``) or by serial. A view with no camera is a FileFormatError."""
    from capture.errors import FileFormatError

    loose = [_loose(n) for n in rig.names]
    chosen, missing = [], []
    for name in keypoint_cameras:
        camera = rig.find(name)
        if camera is None and loose.count(_loose(name)) == 1:
            camera = rig[loose.index(_loose(name))]
        if camera is None:
            missing.append(name)
        else:
            chosen.append(camera.name)
    if missing:
        raise FileFormatError(
            f"{keypoints_path}: camera(s) {', '.join(missing)} of the keypoints are not in the rig {rig_path} "
            f"(rig cameras: {', '.join(rig.names)}); rename the views or use the matching calibration"
        )
    if len(set(chosen)) != len(chosen):
        raise FileFormatError(f"{keypoints_path}: several views match the same rig camera ({', '.join(chosen)})")
    return rig.subset(chosen)


def _skeleton_for(names, skeleton_arg, keypoints_path):
    """The skeleton given, or the built-in one whose joints are exactly ``names`` (None if none)."""
    from capture.errors import FileFormatError
    from reconstruction.skeleton import builtin_skeletons, load_skeleton

    if skeleton_arg:
        skeleton = load_skeleton(skeleton_arg)
        if skeleton.num_joints != len(names):
            raise FileFormatError(
                f"{keypoints_path}: the keypoints have {len(names)} joints but skeleton {skeleton.name!r} has "
                f"{skeleton.num_joints}; pass the skeleton the 2D model used (--skeleton)"
            )
        return skeleton
    for name in builtin_skeletons():
        skeleton = load_skeleton(name)
        if tuple(skeleton.joint_names) == tuple(names):
            return skeleton
    return None


def format_summary(summary: dict) -> str:
    """Human-readable lines of a :func:`reconstruction.triangulation.triangulation_summary`."""
    def px(value):
        return "   -  " if value is None else f"{value:6.2f}"

    total = summary["reprojection_error_px"]
    lines = [
        f"{summary['frames']} frames x {summary['joints']} joints: completeness {100 * summary['completeness']:.2f} % "
        f"({summary['missing_points']} missing), mean views used {summary['mean_views_used']}",
        f"reprojection error of the used views: median {px(total['median_px']).strip()} px, mean {px(total['mean_px']).strip()} px",
        "camera            median px  mean px  detections  excluded",
    ]
    for name, cam in summary["per_camera"].items():
        rate = "   -" if cam["exclusion_rate"] is None else f"{100 * cam['exclusion_rate']:5.1f} %"
        lines.append(f"  {name:<16}  {px(cam['median_px'])}   {px(cam['mean_px'])}  {cam['detections']:10d}  {rate}")
    lines.append("joint             median px  mean px  completeness")
    for name, joint in summary["per_joint"].items():
        comp = "   -" if joint["completeness"] is None else f"{100 * joint['completeness']:6.2f} %"
        lines.append(f"  {name:<16}  {px(joint['median_px'])}   {px(joint['mean_px'])}  {comp}")
    return "\n".join(lines)


def run(args) -> int:
    import dataclasses
    import json
    import logging
    from pathlib import Path

    import numpy as np

    from calibration.rig_io import load_rig
    from capture.atomic import atomic_write_text
    from capture.errors import ConfigError, FileFormatError
    from reconstruction.keypoints2d_io import read_keypoints2d
    from reconstruction.points3d_io import Points3D, write_points3d
    from reconstruction.triangulation import TriangulationConfig, triangulate, triangulation_summary

    log = logging.getLogger("mocap.triangulate")
    out = Path(args.output)
    if out.suffix.lower() not in (".npz", ".trc", ".c3d"):
        raise ConfigError(f"--output {out}: unknown 3D file type {out.suffix!r} (use .npz, .trc or .c3d)")
    fps = getattr(args, "fps", None)
    if fps is not None and not fps > 0:
        raise ConfigError(f"--fps {fps:g}: the frame rate must be positive")
    rig = load_rig(args.calibration)
    if len(rig) < 2:
        raise FileFormatError(
            f"{args.calibration}: the rig has a single camera ({rig.names[0]}); triangulation needs at least "
            "2 calibrated cameras that see the person"
        )
    skeleton_given = None
    if args.skeleton:
        from reconstruction.skeleton import load_skeleton

        skeleton_given = load_skeleton(args.skeleton)
    kp = read_keypoints2d(args.keypoints, skeleton=skeleton_given, fps=fps)
    skeleton = _skeleton_for(kp.joint_names, args.skeleton, args.keypoints)
    rig_used = match_cameras(kp.cameras, rig, args.keypoints, args.calibration)
    if len(rig_used) < 2:
        raise FileFormatError(f"{args.keypoints}: keypoints of a single view ({kp.cameras[0]}); triangulation needs 2 or more")

    overrides = {} if args.min_views is None else {"min_views": args.min_views}
    try:
        cfg = TriangulationConfig(**overrides)
    except ValueError as exc:
        raise ConfigError(f"--min-views: {exc}") from None
    result = triangulate(kp.keypoints, rig_used, cfg)
    refined = "no"
    if args.refine:
        if skeleton is None:
            raise ConfigError(
                f"{args.keypoints}: --refine needs the skeleton of these {kp.num_joints} joints; pass --skeleton NAME or YAML"
            )
        try:
            from reconstruction.refine import refine_sequence
        except ImportError:  # the sequence refinement is not installed: refine each point on its own
            log.warning("reconstruction.refine is not available; refining each point on its own instead")
            result = triangulate(kp.keypoints, rig_used, dataclasses.replace(cfg, refine=True))
            refined = "per point (Gauss-Newton, robust loss)"
        else:
            result = refine_sequence(kp.keypoints, rig_used, skeleton, result, fps=kp.fps)
            refined = "sequence (reconstruction.refine.refine_sequence)"

    quality = {
        "reproj_error_px": result.reproj_error_px,
        "n_views": result.n_views,
        "covariance": result.covariance,
        "uncertainty_m": np.sqrt(np.trace(result.covariance, axis1=-2, axis2=-1)),
    }
    write_points3d(out, Points3D(result.xyz, kp.joint_names, kp.fps, quality))
    summary = triangulation_summary(result, rig_used.names, kp.joint_names)
    summary.update({
        "calibration": str(args.calibration),
        "keypoints": str(args.keypoints),
        "output": str(out),
        "skeleton": skeleton.name if skeleton is not None else None,
        "refine": refined,
        "config": dataclasses.asdict(cfg),
    })
    if skeleton is not None:
        from reconstruction.quality import sequence_quality

        summary["sequence_quality"] = sequence_quality(result.xyz, skeleton, kp.fps, result.reproj_error_px,
                                                       result.n_views)
    summary_path = out.with_name(out.name + ".summary.json")
    atomic_write_text(summary_path, json.dumps(summary, indent=2))
    print(format_summary(summary))
    print(f"wrote {out} and {summary_path}")
    return 0
