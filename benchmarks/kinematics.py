"""Kinematics benchmark: our OpenSim scaling + IK and ISB angles against Pose2Sim's and the truth.

    python benchmarks/kinematics.py [--real-dir DIR] [--demo-dir DIR] [--long 10000] [--json OUT.json]

1. Pose2Sim's own 3D of its demo (``pose-3d/*_filt_butterworth.trc``, BODY_25B) with its model:
   ours (``mocap kinematics``) and Pose2Sim's kinematics step (``benchmarks/peers/run_pose2sim_kinematics.py``
   in ./.venv-peers, its functions called, ``use_simple_model``), side by side on the same file:
   marker RMS and max (every marker measured the same way for both: OpenSim posing each tool's scaled
   model at each tool's angles), the joint angles' RMS difference, seconds.
2. Our reconstruction of the same trial: OpenPose's 2D (what Pose2Sim triangulated) through
   ``mocap triangulate --refine`` (our constant bone lengths), BODY_25B -> the same marker set; and, with
   ``--real-dir`` (the output of ``mocap demo --real --out DIR``), MoveNet's COCO-17 reconstruction.
   Marker RMS and max, the scale factors' left/right differences and frame-to-frame spread.
3. ``mocap demo`` (simulated, ``--demo-dir``: its ``--out`` folder): knee and hip flexion, ISB and
   OpenSim, of the reconstruction against the same angles from the ground-truth 3D.
4. Speed: scaling + IK of 100 frames and of ``--long`` frames (the Pose2Sim TRC repeated).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconstruction.formats.mot import read_mot  # noqa: E402
from reconstruction.formats.points3d import Points3D, read_points3d, trc_to_world  # noqa: E402
from reconstruction.kinematics import opensim_tools  # noqa: E402
from reconstruction.kinematics.config import KinematicsConfig  # noqa: E402
from reconstruction.kinematics.stage import load_person, run_kinematics  # noqa: E402

SHARED = ROOT.parent / "shared"
SETUP = SHARED / "data" / "opensim" / "pose2sim_setup"
TRIAL = SHARED / "data/pose2sim_demo/S00_Demo_Session/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
TRC = TRIAL / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
CALIB = SHARED / "data/pose2sim_demo/S00_Demo_Session/S00_Calibration/Calib.qca.txt"
PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "run_pose2sim_kinematics.py"


def weights_dir(tmp: Path) -> str:
    (tmp / "w").mkdir(exist_ok=True)
    link = tmp / "w" / "opensim-pose2sim"
    if not link.exists():
        link.symlink_to(SETUP, target_is_directory=True)
    return str(tmp / "w")


def marker_errors(model: Path, mot: Path, points: Points3D, markers: list[str]) -> np.ndarray:
    """(T, M) distance of each marker of ``points`` from ``model`` posed at ``mot`` (OpenSim FK)."""
    from reconstruction.skeleton import canonical_joint_name

    s = read_mot(mot)
    T = points.num_frames
    coords = s.values[:T]
    model_xyz = trc_to_world(opensim_tools.marker_trajectories(model, coords, s.names, markers))
    idx = [points.joint_names.index(canonical_joint_name(m)) for m in markers]
    return np.linalg.norm(model_xyz - points.xyz[:len(coords)][:, idx], axis=-1)


def rms(e):
    return float(np.sqrt(np.nanmean(np.asarray(e) ** 2)))


def angle_rms(a: Path, b: Path) -> dict:
    ma, mb = read_mot(a), read_mot(b)
    out = {}
    for n in ma.names:
        if n in mb.names and not n.endswith(("_tx", "_ty", "_tz")):
            d = ma.column(n)[: len(mb.time)] - mb.column(n)[: len(ma.time)]
            out[n] = float(np.sqrt(np.nanmean(d**2)))
    return out


def pose2sim_case(tmp: Path, out: dict) -> None:
    from reconstruction.kinematics.markers import read_marker_set

    points = read_points3d(TRC)
    start = time.perf_counter()
    ours = run_kinematics(points, KinematicsConfig(height_m=1.72), tmp / "ours", TRC.stem, str(TRC), weights_dir(tmp))
    ours_s = time.perf_counter() - start
    markers = [m for m in read_marker_set(SETUP / "Markers_Body25b.xml")]
    row = {"ours_s": ours_s, "ours_summary_rms_m": ours.summary["opensim"]["marker_error_m"]["rms"]}
    e_ours = marker_errors(Path(ours.files["scaled_model"]), Path(ours.files["motion"]), points, markers)
    row.update(ours_rms_m=rms(e_ours), ours_max_m=float(np.nanmax(e_ours)))
    if PEER_PYTHON.is_file():
        peer = tmp / "pose2sim"
        res = subprocess.run([str(PEER_PYTHON), str(PEER_SCRIPT), str(TRC), str(peer), "BODY_25B", "1.72", "70"],
                             capture_output=True, text=True, check=True)
        info = json.loads(res.stdout.strip().splitlines()[-1])
        e_p2s = marker_errors(Path(info["osim"]), Path(info["mot"]), points, markers)
        diffs = angle_rms(Path(ours.files["motion"]), Path(info["mot"]))
        body = {k: v for k, v in diffs.items() if not k.startswith(("mtp", "pro_sup", "wrist"))}
        row.update(pose2sim_s=info["scaling_s"] + info["ik_s"], pose2sim_rms_m=rms(e_p2s),
                   pose2sim_max_m=float(np.nanmax(e_p2s)), rms_ratio=rms(e_ours) / rms(e_p2s),
                   angles_rms_deg=diffs, angles_pooled_rms_deg=float(np.sqrt(np.mean(np.square(list(diffs.values()))))),
                   angles_pooled_rms_without_toes_hands_deg=float(np.sqrt(np.mean(np.square(list(body.values()))))),
                   angles_worst=max(diffs, key=diffs.get))
    out["pose2sim_3d"] = row
    print(f"1. Pose2Sim's own 3D ({TRC.name}), model {SETUP.name}/Model_Pose2Sim_simple.osim, BODY_25B markers:")
    print(f"   ours:     marker RMS {row['ours_rms_m'] * 1000:.1f} mm, max {row['ours_max_m'] * 1000:.1f} mm, "
          f"{ours_s:.2f} s")
    if "pose2sim_rms_m" in row:
        print(f"   Pose2Sim: marker RMS {row['pose2sim_rms_m'] * 1000:.1f} mm, max {row['pose2sim_max_m'] * 1000:.1f} mm, "
              f"{row['pose2sim_s']:.2f} s  -> RMS ratio ours/Pose2Sim {row['rms_ratio']:.3f}")
        print(f"   joint angles, ours vs Pose2Sim: pooled RMS {row['angles_pooled_rms_deg']:.2f} deg over "
              f"{len(row['angles_rms_deg'])} rotational coordinates ({row['angles_pooled_rms_without_toes_hands_deg']:.2f}"
              f" deg without mtp/pro_sup/wrist); worst {row['angles_worst']} {row['angles_rms_deg'][row['angles_worst']]:.2f} deg")
        for k in ("hip_flexion_r", "hip_flexion_l", "knee_angle_r", "knee_angle_l", "ankle_angle_r", "ankle_angle_l",
                  "arm_flex_r", "arm_flex_l", "elbow_flex_r", "elbow_flex_l"):
            print(f"     {k:14s} {row['angles_rms_deg'][k]:.2f} deg")


def _report_ours(label: str, result, out: dict, key: str) -> None:
    o = result.summary["opensim"]
    seg = o["scaling"]["segments"]
    out[key] = {"rms_m": o["marker_error_m"]["rms"], "weighted_rms_m": o["marker_error_m"]["weighted_rms"],
                "max_m": o["marker_error_m"]["max"], "segments": seg,
                "per_marker": o["marker_error_m"]["per_marker"]}
    print(f"   {label}: marker RMS {o['marker_error_m']['rms'] * 1000:.1f} mm (IK-weighted "
          f"{o['marker_error_m']['weighted_rms'] * 1000:.1f} mm), max {o['marker_error_m']['max'] * 1000:.1f} mm")
    print("     scale factors (L-R difference, frame-to-frame spread): " + ", ".join(
        f"{n} {v['factor']:.3f}" + (f" ({v['left_minus_right_percent']:+.1f} %, {v['frame_spread_percent']:.2f} %)"
                                    if v["left_minus_right_percent"] is not None else
                                    f" (spread {v['frame_spread_percent']:.2f} %)" if v["frame_spread_percent"] is not None
                                    else "") for n, v in seg.items()))


def our_reconstruction_case(tmp: Path, real_dir: Path | None, out: dict) -> None:
    print("2. our reconstruction of the same trial:")
    npz = tmp / "op_refined.npz"
    subprocess.run([sys.executable, "-m", "reconstruction", "triangulate", "--calibration", str(CALIB), "--keypoints",
                    str(TRIAL / "pose-associated"), "--skeleton", "body25b", "--refine", "--fps", "60", "--output",
                    str(npz)], check=True, capture_output=True, cwd=ROOT)
    points, _ = load_person(npz)
    _report_ours("OpenPose 2D -> mocap triangulate --refine (BODY_25B)",
                 run_kinematics(points, KinematicsConfig(height_m=1.72), tmp / "op", "op", str(npz), weights_dir(tmp)),
                 out, "ours_openpose_refined")
    p2s = run_kinematics(read_points3d(TRC), KinematicsConfig(height_m=1.72), tmp / "p2s_again", "p2s", str(TRC),
                         weights_dir(tmp))
    _report_ours("Pose2Sim's own 3D, same kinematics (for the spread)", p2s, out, "pose2sim_3d_ours_kinematics")
    if real_dir is not None:
        npz = real_dir / "real" / "points3d.npz"
        points, _ = load_person(npz)
        _report_ours("mocap demo --real (MoveNet Thunder, COCO-17 markers)",
                     run_kinematics(points, KinematicsConfig(height_m=1.72), tmp / "real", "real", str(npz),
                                    weights_dir(tmp)), out, "ours_movenet")


def demo_case(tmp: Path, demo_dir: Path, out: dict) -> None:
    print(f"3. mocap demo (simulated; {demo_dir}): reconstruction vs ground truth, degrees RMS")
    gt = np.load(demo_dir / "session" / "ground_truth.npz", allow_pickle=False)
    truth = Points3D(gt["xyz"], tuple(gt["joint_names"].tolist()), float(gt["fps"]))
    recon, _ = load_person(demo_dir / "reconstruction" / "points3d.npz")
    a = run_kinematics(recon, KinematicsConfig(), tmp / "demo_recon", "recon", "recon", weights_dir(tmp))
    b = run_kinematics(truth, KinematicsConfig(), tmp / "demo_truth", "truth", "truth", weights_dir(tmp))
    row = {}
    for name in ("hip_flexion_r", "hip_flexion_l", "knee_flexion_r", "knee_flexion_l"):
        row[f"isb_{name}"] = rms(a.angles.column(name) - b.angles.column(name))
    names = a.opensim.coordinate_names
    for name in ("hip_flexion_r", "hip_flexion_l", "knee_angle_r", "knee_angle_l"):
        c = names.index(name)
        row[f"opensim_{name}"] = rms(a.opensim.coordinates[:, c] - b.opensim.coordinates[:, c])
    out["demo_vs_truth_deg"] = row
    print("   " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))


def speed_case(tmp: Path, frames: int, out: dict) -> None:
    points = read_points3d(TRC)
    reps = int(np.ceil(frames / points.num_frames))
    long = Points3D(np.concatenate([points.xyz] * reps)[:frames], points.joint_names, points.fps)
    start = time.perf_counter()
    r = run_kinematics(long, KinematicsConfig(), tmp / "long", "long", "long", weights_dir(tmp))
    total = time.perf_counter() - start
    out["speed"] = {"frames": frames, "seconds": total, "timings_s": r.summary["timings_s"]}
    print(f"4. speed: scaling + IK of {frames} frames: {total:.1f} s ({r.summary['timings_s']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-dir", type=Path, help="the --out folder of `mocap demo --real`")
    parser.add_argument("--demo-dir", type=Path, help="the --out folder of `mocap demo`")
    parser.add_argument("--long", type=int, default=10000, help="frames of the long speed case (0: skip)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if not TRC.is_file() or not SETUP.is_dir():
        print(f"needs ../shared (Pose2Sim demo and OpenSim set-up): {TRC}, {SETUP}")
        return 1
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="kinematics-bench-") as tmp:
        tmp = Path(tmp)
        pose2sim_case(tmp, out)
        our_reconstruction_case(tmp, args.real_dir, out)
        if args.demo_dir:
            demo_case(tmp, args.demo_dir, out)
        if args.long:
            speed_case(tmp, args.long, out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
