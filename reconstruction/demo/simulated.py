"""``mocap demo``: a simulated RGB-D session reconstructed through the normal path, against its truth.

4 simulated RealSense D435 cameras (640x480, 30 fps; real ``.db3`` recordings) film a person who
moves as in real motion capture (CMU subject 131 where ``../shared`` has it, procedural otherwise),
then a ChArUco board; the rig is calibrated from the board recordings (``mocap calibrate
--recordings``, factory intrinsics); the 2D comes from simulated detections of the true joints (the
rendered person is no photograph); the reconstruction is compared with the ground truth, with and
without depth fusion, and with the simulator's true rig.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from calibration.camera import Rig
from reconstruction.demo.data import shared_dir


def calibrate_simulated(sim, report_dir: Path) -> tuple[Rig, list[str]]:
    """Calibrate the simulated rig from its board recordings (factory colour intrinsics, every frame
    set), then place it in the simulator's world by the rigid transform that best maps its camera
    centres onto the true ones (the calibration's world is its first camera). Returns the placed rig
    and the lines to print (its accuracy against the truth)."""
    from calibration.calibrate import CalibrationConfig, calibrate
    from calibration.rig_alignment import align_rig

    board_dir = sim.out_dir / "board"
    result = calibrate(board_dir / "board.yaml", recordings=board_dir, report_dir=report_dir,
                       config=CalibrationConfig(video_step=1))
    rig, acc = align_rig(result.rig, sim.rig)
    report = result.report
    used = sum(c.used for c in report.cameras)
    lines = [
        f"calibration: from the simulated board ({used} board views over {len(rig)} cameras, factory intrinsics; "
        f"report in {report_dir}): reprojection RMS {report.rms:.2f} px",
        f"  against the simulator's rig, after a rigid alignment of the {len(rig)} camera centres (the calibration's "
        "world is its first camera; the alignment only places it in the simulator's world, it corrects no camera "
        "relative to another): camera position error " + ", ".join(f"{e * 1000:.1f}" for e in acc.position_m)
        + " mm, rotation error " + ", ".join(f"{e:.2f}" for e in acc.rotation_deg) + " deg",
        "  the reconstruction below uses this calibrated rig (the 2D detections are simulated with the true one)",
    ]
    return rig, lines


def _simulate(out: Path, seconds: float, say):
    from tqdm import tqdm

    from reconstruction.simulation.session import SimulationConfig, simulate_session

    shared = shared_dir()
    bvh = shared / "data" / "mocap" / "131_02.bvh" if shared else None
    motion = {"motion": "bvh", "bvh_path": str(bvh)} if bvh and bvh.is_file() else {}
    # Clocks in step (offsets 0): the demo's ground truth is per frame set.
    sim_cfg = SimulationConfig(cameras=4, seconds=seconds, fps=30, clock_offsets_ms=(0.0,) * 4, seed=0, board=True,
                               **motion)
    say(f"simulating 4 RealSense D435 cameras (640x480, 30 fps, {sim_cfg.num_frames} frames) of a person "
        + (f"moving as in real motion capture ({bvh.name}, CMU subject 131)" if motion else
           "walking (procedural motion; ../shared/data/mocap/131_02.bvh not found)")
        + f", then a ChArUco board turning to face each camera ({sim_cfg.num_board_frames} frames at "
          f"{sim_cfg.board_fps} fps) ...")
    with tqdm(total=2 * sim_cfg.num_frames, unit="frame", desc="simulate", leave=False) as bar:
        return simulate_session(out / "session", sim_cfg, progress=lambda done, total: bar.update(done - bar.n))


def run_simulated_demo(out_dir: str | Path, seconds: float, say: Callable[[str], None]) -> dict:
    """The demo (module docstring) into ``out_dir``; ``say`` gets the lines to print. Returns the
    figures: MPJPE with / without depth and with the true rig (m), the quality report."""
    from reconstruction.evaluation import position_error
    from reconstruction.formats.keypoints2d import Keypoints2D
    from reconstruction.pipeline import (Detections2D, ReconstructionConfig, open_session, reconstruct_keypoints,
                                         reconstruct_session)
    from reconstruction.simulation.detections import simulate_detections
    from reconstruction.simulation.truth import load_ground_truth

    started = time.perf_counter()
    out = Path(out_dir)
    sim = _simulate(out, seconds, say)
    rig, lines = calibrate_simulated(sim, out / "calibration")
    for line in lines:
        say(line)
    truth = load_ground_truth(sim.ground_truth)
    xyz_true = truth["xyz"]
    say("2D: the rendered person is no photograph (flat-shaded capsules), so a 2D model has nothing real to "
        "see; the 2D comes from simulated detections of the true joints: 3 px noise, 10 % confident outliers, "
        "occluded joints missing")
    det = simulate_detections(truth["keypoints2d"], 3.0, 0.1, True, np.random.default_rng(1),
                              image_sizes=[c.image_size for c in sim.rig])
    kp = Keypoints2D(det, tuple(str(c) for c in truth["cameras"]), tuple(str(j) for j in truth["joint_names"]),
                     float(truth["fps"]))
    session = open_session(sim.recordings, rig)
    cfg = ReconstructionConfig()
    result = reconstruct_session(session, cfg, out / "reconstruction",
                                 detections=Detections2D(kp, truth["timestamps_ms"]), truth=xyz_true)
    # The same 2D without depth, for comparison (pure stages, no files), and with the simulator's
    # true rig: what the calibration costs.
    no_depth_cfg = replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False))
    no_depth = reconstruct_keypoints(result.keypoints2d, result.rig, result.skeleton, no_depth_cfg, result.fps)
    true_rig = reconstruct_keypoints(result.keypoints2d, sim.rig.subset(result.rig.names), result.skeleton,
                                     no_depth_cfg, result.fps)
    err, err0 = position_error(result.result.xyz, xyz_true), position_error(no_depth.xyz, xyz_true)
    err_true = position_error(true_rig.xyz, xyz_true)
    q = result.quality
    say(f"accuracy against the ground truth ({len(err.errors_m)} frame sets, {result.skeleton.num_joints} joints):")
    say(f"  MPJPE with depth fusion:    {err.mean_m * 1000:6.1f} mm  (median {err.median_m * 1000:.1f} mm)")
    say(f"  MPJPE without depth fusion: {err0.mean_m * 1000:6.1f} mm  (median {err0.median_m * 1000:.1f} mm)"
        f"  -> ratio {err.mean_m / err0.mean_m:.3f}")
    say(f"  MPJPE without depth fusion, with the simulator's true rig instead of the calibrated one: "
        f"{err_true.mean_m * 1000:.1f} mm")
    say(f"  completeness {q['completeness']:.3f}, bone-length std (median rigid bone) "
        f"{q['bone_length_std_m']['median_rigid'] * 1000:.1f} mm, reprojection error median "
        f"{q['reprojection_error_px']['median']:.2f} px")
    say(f"outputs: {out / 'reconstruction'} (points3d.npz/.trc/.c3d, quality.json, overlay_*.mp4, plot3d.png, "
        f"reconstruction.yaml); the simulated session (recordings, rig, ground truth): {out / 'session'}")
    say(f"done in {time.perf_counter() - started:.0f} s")
    return {"mpjpe_m": err.mean_m, "mpjpe_without_depth_m": err0.mean_m, "mpjpe_true_rig_m": err_true.mean_m,
            "quality": q}
