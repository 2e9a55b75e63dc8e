"""``mocap demo --real``: the 4 real Pose2Sim demo videos, their Qualisys calibration, MoveNet Thunder."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from reconstruction.demo.data import pose2sim_demo, shared_dir


def run_real_demo(out_dir: str | Path, say: Callable[[str], None]) -> dict:
    """Reconstruct the Pose2Sim demo into ``out_dir/real``; ``say`` gets the lines to print.
    Returns the quality report."""
    from calibration.rig_io import load_rig
    from reconstruction.evaluation import distance_to_reference
    from reconstruction.pipeline import ReconstructionConfig, open_session, reconstruct_session

    started = time.perf_counter()
    out = Path(out_dir) / "real"
    videos, calib, trc = pose2sim_demo(say)
    rig = load_rig(calib)
    cfg = ReconstructionConfig()
    shared = shared_dir()
    weights = shared / "weights" / "movenet" if shared and (shared / "weights" / "movenet").is_dir() else None
    cfg = replace(cfg, model2d=replace(cfg.model2d, name="movenet-thunder", weights_dir=str(weights) if weights else ""))
    say(f"real data: {len(videos)} videos of the Pose2Sim demo ({videos[0].parent}), calibration {calib.name}; "
        f"2D model MoveNet Thunder on CPU (takes a minute or two)")
    session = open_session(videos, rig)
    for note in session.notes:
        say(f"note: {note}")
    result = reconstruct_session(session, cfg, out)
    q = result.quality
    rep = q["reprojection_error_px"]
    say(f"reprojection error over detections with score >= {rep['min_score']}: median {rep['median']:.2f} px, "
        f"mean {rep['mean']:.2f} px; per camera: " + ", ".join(
            f"{k} {v['median_px']:.1f}" for k, v in rep["per_camera"].items() if v["median_px"] is not None))
    say(f"completeness {q['completeness']:.3f}, bone-length std (median rigid bone) "
        f"{q['bone_length_std_m']['median_rigid'] * 1000:.1f} mm")
    if trc is not None:
        dist = distance_to_reference(result.result.xyz, result.skeleton, trc)
        if dist is not None:
            say(f"median distance to Pose2Sim's own 3D ({trc.name}, {dist['joints']} common joints, their frame = ours "
                f"{dist['shift']:+d}): {dist['median_m'] * 1000:.0f} mm")
    say(f"outputs: {out} (points3d.npz/.trc/.c3d, quality.json, overlay_*.mp4, plot3d.png, reconstruction.yaml)")
    say(f"done in {time.perf_counter() - started:.0f} s")
    return q
