"""`mocap reconstruct`: recordings (RGB-D) and/or videos + a calibration -> 3D skeleton, quality, overlays."""
from __future__ import annotations

HELP = "reconstruct 3D motion from a session's recordings/videos and a calibration"


def add_arguments(parser) -> None:
    parser.add_argument("session", nargs="+", metavar="SESSION",
                        help="a folder with one recording (.bag/.db3) or video per camera, or a list of files")
    parser.add_argument("--calibration", required=True, metavar="RIG", help="the rig file (mocap calibrate)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="2D model (`mocap models list`; default from the config: movenet-thunder)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="reconstruction YAML (defaults: configs/reconstruction.yaml)")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created; resumes its cache)")
    parser.add_argument("--detections", default=None, metavar="KP.npz|GT.npz|DIR",
                        help="precomputed 2D (our keypoints NPZ, a simulator ground_truth.npz or an OpenPose "
                             "folder) instead of the 2D model")


def run(args) -> int:
    import logging
    from dataclasses import replace

    from calibration.rig_io import load_rig
    from reconstruction.pipeline import (
        check_model_name,
        load_detections,
        load_reconstruction_config,
        open_session,
        reconstruct_session,
    )

    cfg = load_reconstruction_config(args.config)
    if args.model:
        check_model_name(args.model)
        cfg = replace(cfg, model2d=replace(cfg.model2d, name=args.model))
    detections = load_detections(args.detections) if args.detections else None
    if detections is None:
        check_model_name(cfg.model2d.name)
    rig = load_rig(args.calibration)
    session = open_session(args.session, rig)
    for note in session.notes:
        print(f"note: {note}")
    logging.getLogger(__name__).info("cameras: %s", ", ".join(session.rig.names))
    out = reconstruct_session(session, cfg, args.output, detections=detections)
    print(summary_text(out))
    return 0


def summary_text(out) -> str:
    """A few lines: what was reconstructed, how well, and where the files are."""
    q = out.quality
    rep = q["reprojection_error_px"]
    lines = [
        f"{q['frames']} frame sets, {len(out.rig)} camera(s) ({', '.join(out.rig.names)}), skeleton "
        f"{out.skeleton.name}: completeness {q['completeness']:.3f}",
    ]
    if len(out.rig) == 1:
        lines.append("single camera: depth-only 3D (every joint from the depth of one view)")
    if rep["median"] is not None:
        lines.append(f"reprojection error: median {rep['median']:.2f} px, mean {rep['mean']:.2f} px "
                     f"(detections with score >= {rep['min_score']})")
    if q.get("depth_fusion"):
        d = q["depth_vs_triangulation_m"]
        med = d["median"]
        lines.append(f"depth fusion: depth vs triangulation median {med * 1000:.1f} mm" if med is not None else
                     "depth fusion: on (no joint both triangulated and depth-lifted)")
    bone = q["bone_length_std_m"]["median_rigid"]
    if bone is not None:
        lines.append(f"bone-length std (median over rigid bones): {bone * 1000:.1f} mm")
    files = out.files
    lines.append(f"outputs in {files['quality'].rsplit('/', 1)[0]}: " + ", ".join(
        p.rsplit("/", 1)[-1] for p in files["points3d"] + [files["quality"]] + files.get("overlays", [])
        + ([files["plot3d"]] if "plot3d" in files else []) + [files["config"]]))
    return "\n".join(lines)
