"""`mocap demo`: the main job end to end on a built-in example (simulated RGB-D), or `--real` on the
Pose2Sim demo videos with the 2D model."""
from __future__ import annotations

import argparse

HELP = "run the whole reconstruction on a built-in simulated RGB-D example (or --real: Pose2Sim demo videos)"

DEFAULT_OUT = "mocap_demo_output"
POSE2SIM_WHEEL = "pose2sim==0.10.49"


def add_arguments(parser) -> None:
    parser.add_argument("--real", action="store_true",
                        help="the 4 real Pose2Sim demo videos with their calibration and MoveNet Thunder")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--seconds", type=float, default=3.0, help=argparse.SUPPRESS)  # shorter clips for tests


def run(args) -> int:
    if args.real:
        return run_real(args)
    return run_simulated(args)


def _shared_dir():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2].parent / "shared"
    return shared if shared.is_dir() else None


def run_simulated(args) -> int:
    import time
    from dataclasses import replace
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from reconstruction.keypoints2d_io import Keypoints2D
    from reconstruction.pipeline import (Detections2D, ReconstructionConfig, open_session, reconstruct_keypoints,
                                         reconstruct_session)
    from reconstruction.simulation.detections import simulate_detections
    from reconstruction.simulation.session import SimulationConfig, simulate_session

    started = time.perf_counter()
    out = Path(args.out)
    shared = _shared_dir()
    bvh = shared / "data" / "mocap" / "131_02.bvh" if shared else None
    motion = {"motion": "bvh", "bvh_path": str(bvh)} if bvh and bvh.is_file() else {}
    # Clocks in step (offsets 0): the demo's ground truth is per frame set.
    sim_cfg = SimulationConfig(cameras=4, seconds=args.seconds, fps=30, clock_offsets_ms=(0.0,) * 4, seed=0,
                               board=True, **motion)
    print(f"simulating 4 RealSense D435 cameras (640x480, 30 fps, {sim_cfg.num_frames} frames) of a person "
          + (f"moving as in real motion capture ({bvh.name}, CMU subject 131)" if motion else
             "walking (procedural motion; ../shared/data/mocap/131_02.bvh not found)")
          + f", then a ChArUco board turning to face each camera ({sim_cfg.num_board_frames} frames at "
            f"{sim_cfg.board_fps} fps) ...")
    with tqdm(total=2 * sim_cfg.num_frames, unit="frame", desc="simulate", leave=False) as bar:
        sim = simulate_session(out / "session", sim_cfg, progress=lambda done, total: bar.update(done - bar.n))
    rig, lines = calibrate_simulated(sim, out / "calibration")
    for line in lines:
        print(line)
    truth = np.load(sim.ground_truth, allow_pickle=False)
    xyz_true = truth["xyz"]
    true2d = truth["keypoints2d"]
    print("2D: the rendered person is no photograph (flat-shaded capsules), so a 2D model has nothing real to "
          "see; the 2D comes from simulated detections of the true joints: 3 px noise, 10 % confident outliers, "
          "occluded joints missing")
    det = simulate_detections(true2d, 3.0, 0.1, True, np.random.default_rng(1),
                              image_sizes=[c.image_size for c in sim.rig])
    kp = Keypoints2D(det, tuple(str(c) for c in truth["cameras"]), tuple(str(j) for j in truth["joint_names"]),
                     float(truth["fps"]))
    session = open_session(sim.recordings, rig)
    cfg = ReconstructionConfig()
    result = reconstruct_session(session, cfg, out / "reconstruction",
                                 detections=Detections2D(kp, truth["timestamps_ms"]), truth=xyz_true)
    # The same 2D without depth, for comparison (pure stages, no files).
    no_depth = reconstruct_keypoints(result.keypoints2d, result.rig, result.skeleton,
                                     replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False)), result.fps)
    # And with the simulator's true rig: what the calibration costs.
    true_rig = reconstruct_keypoints(result.keypoints2d, sim.rig.subset(result.rig.names), result.skeleton,
                                     replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False)), result.fps)
    n = min(len(xyz_true), len(result.result.xyz))
    err = np.linalg.norm(result.result.xyz[:n] - xyz_true[:n], axis=-1)
    err0 = np.linalg.norm(no_depth.xyz[:n] - xyz_true[:n], axis=-1)
    err_true = np.linalg.norm(true_rig.xyz[:n] - xyz_true[:n], axis=-1)
    q = result.quality
    print(f"accuracy against the ground truth ({n} frame sets, {result.skeleton.num_joints} joints):")
    print(f"  MPJPE with depth fusion:    {np.nanmean(err) * 1000:6.1f} mm  (median {np.nanmedian(err) * 1000:.1f} mm)")
    print(f"  MPJPE without depth fusion: {np.nanmean(err0) * 1000:6.1f} mm  (median {np.nanmedian(err0) * 1000:.1f} mm)"
          f"  -> ratio {np.nanmean(err) / np.nanmean(err0):.3f}")
    print(f"  MPJPE without depth fusion, with the simulator's true rig instead of the calibrated one: "
          f"{np.nanmean(err_true) * 1000:.1f} mm")
    print(f"  completeness {q['completeness']:.3f}, bone-length std (median rigid bone) "
          f"{q['bone_length_std_m']['median_rigid'] * 1000:.1f} mm, reprojection error median "
          f"{q['reprojection_error_px']['median']:.2f} px")
    print(f"outputs: {out / 'reconstruction'} (points3d.npz/.trc/.c3d, quality.json, overlay_*.mp4, plot3d.png, "
          f"reconstruction.yaml); the simulated session (recordings, rig, ground truth): {out / 'session'}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def calibrate_simulated(sim, report_dir):
    """Calibrate the simulated rig from its board recordings (``mocap calibrate --recordings``, factory
    colour intrinsics, every frame set), then place it in the simulator's world by the rigid
    transform that best maps its camera centres onto the true ones (the calibration's world is its
    first camera). Returns the placed rig and the lines to print (its accuracy against the truth)."""
    from calibration.calibrate import CalibrationConfig, calibrate

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
        "relative to another): camera position error " + ", ".join(f"{e * 1000:.1f}" for e in acc["position_m"])
        + " mm, rotation error " + ", ".join(f"{e:.2f}" for e in acc["rotation_deg"]) + " deg",
        "  the reconstruction below uses this calibrated rig (the 2D detections are simulated with the true one)",
    ]
    return rig, lines


def align_rig(rig, truth):
    """``rig`` (in ``truth``'s camera order) moved rigidly onto ``truth`` (cameras matched by name) by
    the rotation and translation that best map its camera centres onto the true ones (least squares,
    no scale), and the errors that remain: {"position_m": (V,), "rotation_deg": (V,), "R": (3, 3),
    "t": (3,)} (X_truth = R X_rig + t)."""
    from dataclasses import replace

    import numpy as np

    from calibration.camera import Rig

    cams = [rig.find(name) for name in truth.names]  # in the truth's order
    if any(c is None for c in cams):
        from calibration.errors import CalibrationError

        raise CalibrationError(f"calibrated cameras {rig.names} do not match the simulator's {truth.names}")
    true = list(truth.cameras)
    a = np.stack([c.center for c in cams])
    b = np.stack([t.center for t in true])
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    U, _, Vt = np.linalg.svd((b - mb).T @ (a - ma))
    Rw = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt  # X_true = Rw X_cal + tw
    tw = mb - Rw @ ma
    moved = [replace(c, R=c.R @ Rw.T, t=c.t - c.R @ Rw.T @ tw) for c in cams]
    placed = Rig(tuple(moved))
    position = np.linalg.norm(placed.centers - b, axis=1)
    rel = np.einsum("vij,vkj->vik", np.stack([c.R for c in moved]), np.stack([t.R for t in true]))
    rotation = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
    return placed, {"position_m": position, "rotation_deg": rotation, "R": Rw, "t": tw}


def _pose2sim_demo():
    """Videos (4) and Calib.qca.txt of the Pose2Sim demo: ../shared, else the pose2sim wheel fetched
    with pip into the user cache (the way a user would get them)."""
    shared = _shared_dir()
    if shared:
        root = shared / "data" / "pose2sim_demo"
        videos = sorted((root / "videos_BalancingTrial").glob("cam0*.mp4"))
        calib = root / "S00_Demo_Session" / "S00_Calibration" / "Calib.qca.txt"
        trc = root / "S00_Demo_Session" / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "pose-3d" / \
            "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
        if len(videos) == 4 and calib.is_file():
            return videos, calib, trc if trc.is_file() else None
    return _from_wheel()


def _from_wheel():
    import subprocess
    import sys
    import zipfile

    from capture.errors import MocapError
    from reconstruction.models2d.registry import user_cache_dir

    cache = user_cache_dir().parent / "pose2sim_demo"
    marker = cache / "Demo_SinglePerson"
    if not marker.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"fetching the Pose2Sim demo data: pip download {POSE2SIM_WHEEL} --no-deps -> {cache}")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", POSE2SIM_WHEEL, "--no-deps", "-d", str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wheels = sorted(cache.glob("pose2sim-0.10.49*.whl"))
        if proc.returncode != 0 or not wheels:
            raise MocapError(f"could not download {POSE2SIM_WHEEL} with pip ({proc.stderr.strip().splitlines()[-1:]});"
                             " connect to PyPI or put the Pose2Sim demo in ../shared/data/pose2sim_demo")
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in zf.namelist():
                if "Demo_SinglePerson/" in name and (name.endswith(".mp4") and "/videos/" in name
                                                     or name.endswith("Calib.qca.txt") or name.endswith(".trc")):
                    target = marker / name.split("Demo_SinglePerson/", 1)[1]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(name))
    videos = sorted(marker.rglob("videos/*.mp4"))
    calib = next(iter(sorted(marker.rglob("Calib.qca.txt"))), None)
    trc = next(iter(sorted(p for p in marker.rglob("*.trc") if "filt_butterworth.trc" in p.name)), None)
    if len(videos) < 2 or calib is None:
        raise MocapError(f"{marker}: the Pose2Sim wheel did not hold the demo videos and Calib.qca.txt")
    return videos, calib, trc


def run_real(args) -> int:
    import time
    from dataclasses import replace
    from pathlib import Path

    from calibration.rig_io import load_rig
    from reconstruction.pipeline import ReconstructionConfig, open_session, reconstruct_session

    started = time.perf_counter()
    out = Path(args.out) / "real"
    videos, calib, trc = _pose2sim_demo()
    rig = load_rig(calib)
    cfg = ReconstructionConfig()
    shared = _shared_dir()
    weights = shared / "weights" / "movenet" if shared and (shared / "weights" / "movenet").is_dir() else None
    model2d = replace(cfg.model2d, name="movenet-thunder", weights_dir=str(weights) if weights else "")
    cfg = replace(cfg, model2d=model2d)
    print(f"real data: {len(videos)} videos of the Pose2Sim demo ({videos[0].parent}), calibration {calib.name}; "
          f"2D model MoveNet Thunder on CPU (takes a minute or two)")
    session = open_session(videos, rig)
    for note in session.notes:
        print(f"note: {note}")
    result = reconstruct_session(session, cfg, out)
    q = result.quality
    rep = q["reprojection_error_px"]
    print(f"reprojection error over detections with score >= {rep['min_score']}: median {rep['median']:.2f} px, "
          f"mean {rep['mean']:.2f} px; per camera: " + ", ".join(
              f"{k} {v['median_px']:.1f}" for k, v in rep["per_camera"].items() if v["median_px"] is not None))
    print(f"completeness {q['completeness']:.3f}, bone-length std (median rigid bone) "
          f"{q['bone_length_std_m']['median_rigid'] * 1000:.1f} mm")
    if trc is not None:
        dist = distance_to_reference(result.result.xyz, result.skeleton, trc)
        if dist is not None:
            print(f"median distance to Pose2Sim's own 3D ({trc.name}, {dist['joints']} common joints, their frame = ours "
                  f"{dist['shift']:+d}): {dist['median_m'] * 1000:.0f} mm")
    print(f"outputs: {out} (points3d.npz/.trc/.c3d, quality.json, overlay_*.mp4, plot3d.png, reconstruction.yaml)")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def distance_to_reference(xyz, skeleton, trc_path, max_shift: int = 2):
    """Median distance (m) between our joints and a reference TRC's joints of the same canonical name,
    at the frame shift (within +-max_shift) where it is smallest; None without common joints.
    ``shift`` is the reference's frame index minus ours for the frames compared."""
    import warnings

    import numpy as np

    from reconstruction.points3d_io import read_points3d
    from reconstruction.skeleton import canonical_joint_name

    ref = read_points3d(trc_path)
    ref_names = [canonical_joint_name(n) for n in ref.joint_names]
    pairs = [(j, ref_names.index(n)) for j, n in enumerate(skeleton.joint_names) if n in ref_names]
    if not pairs:
        return None
    ours = xyz[:, [a for a, _ in pairs]]
    theirs = ref.xyz[:, [b for _, b in pairs]]
    best = None
    for shift in range(-max_shift, max_shift + 1):  # a handful of shifts
        a = ours[max(shift, 0):]
        b = theirs[max(-shift, 0):]
        n = min(len(a), len(b))
        d = np.linalg.norm(a[:n] - b[:n], axis=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = float(np.nanmedian(d)) if np.isfinite(d).any() else np.inf
        if best is None or med < best["median_m"]:
            best = {"median_m": med, "shift": -shift, "joints": len(pairs)}
    return best
