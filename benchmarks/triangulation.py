"""Triangulation benchmark: ours against aniposelib and Pose2Sim on the same synthetic arrays.

    python benchmarks/triangulation.py [--frames 600] [--no-peers] [--json OUT.json]

Each case: a walking, arm-swinging person (``procedural_motion``, COCO-17, rigid bones) seen by a
ring of D435-like cameras (``ring_rig``: 3 m radius, 640x480, no distortion so that every tool sees
the same pinhole geometry), projected with self-occlusion (body capsules, far side of the head) plus
5 % random occlusion, then ``simulate_detections``: Gaussian pixel noise, 10 % confident wrong
detections (score 0.6-1), and occluded joints either detected badly with a low score (0.05-0.3, as
models that always output every joint do; "low-score" cases) or missing (NaN; "missing" case).

Peers run in their own venv (``bash benchmarks/setup_peers.sh`` creates ./.venv-peers) through
``benchmarks/peers/run_peers.py``, on the same arrays, exchanging .npz files; detections scored
below 0.3 (Pose2Sim's default likelihood threshold) are NaN for them. Slow peers run on the first
frames of a case only (the ``frames`` column); times are per frame; the ratio columns compare ours
on exactly the same frames. Without ./.venv-peers only ours runs.

MPJPE is over the joints a method outputs; completeness is the fraction of (frame, joint) with an
output.
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

from reconstruction.simulation.rigs import ring_rig  # noqa: E402
from reconstruction.simulation import procedural_motion, project_truth, simulate_detections  # noqa: E402
from reconstruction.triangulation import TriangulationConfig, triangulate  # noqa: E402

PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "run_peers.py"
PEER_SCORE_THRESHOLD = 0.3  # Pose2Sim's likelihood_threshold_triangulation default

# name, cameras, noise px, outlier rate, occluded joints missing (NaN) instead of low-score,
# frames per peer method (None = all, 0 = skipped).
CASES = [
    ("4 cams, 1 px", 4, 1.0, 0.1, False, {"aniposelib_dlt": None, "pose2sim": None, "aniposelib_ransac": 5}),
    ("4 cams, 3 px", 4, 3.0, 0.1, False, {"aniposelib_dlt": None, "pose2sim": None, "aniposelib_ransac": 5}),
    ("4 cams, 5 px", 4, 5.0, 0.1, False, {"aniposelib_dlt": None, "pose2sim": None, "aniposelib_ransac": 5}),
    ("4 cams, 3 px, occluded missing", 4, 3.0, 0.1, True, {"aniposelib_dlt": None, "pose2sim": None, "aniposelib_ransac": 5}),
    ("8 cams, 3 px", 8, 3.0, 0.1, False, {"aniposelib_dlt": None, "pose2sim": 40, "aniposelib_ransac": 1}),
    ("16 cams, 3 px", 16, 3.0, 0.1, False, {"aniposelib_dlt": None, "pose2sim": 15, "aniposelib_ransac": 0}),
]
PEER_LABELS = {"aniposelib_dlt": "aniposelib triangulate", "aniposelib_ransac": "aniposelib triangulate_ransac",
               "pose2sim": "Pose2Sim triangulation_from_best_cameras"}


def make_case(num_cameras, noise_px, outlier_rate, missing, frames, seed, skeleton="coco17"):
    rig = ring_rig(num_cameras)
    xyz = procedural_motion(skeleton, frames, rng=np.random.default_rng(seed))
    truth2d = project_truth(xyz, rig, occlusion_rate=0.05, rng=np.random.default_rng(seed + 1), skeleton=skeleton)
    det = simulate_detections(truth2d, noise_px=noise_px, outlier_rate=outlier_rate, miss_occluded=missing,
                              rng=np.random.default_rng(seed + 2),
                              image_sizes=[c.image_size for c in rig])
    return rig, xyz, det


def errors(est, truth):
    e = np.linalg.norm(est - truth, axis=-1)
    finite = np.isfinite(e)
    return {
        "mpjpe_mm": float(np.mean(e[finite]) * 1000) if finite.any() else float("nan"),
        "median_mm": float(np.median(e[finite]) * 1000) if finite.any() else float("nan"),
        "completeness": float(finite.mean()),
    }


def time_ours(det, rig, cfg, repeats=5):
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = triangulate(det, rig, cfg)
        best = min(best, time.perf_counter() - start)
    return result, best


def run_peers(rig, det, specs, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, keypoints=det, K=np.stack([c.K for c in rig]), dist=np.stack([np.zeros(5) for _ in rig]),
                 R=np.stack([c.R for c in rig]), t=np.stack([c.t for c in rig]),
                 image_size=np.array([c.image_size for c in rig]), score_threshold=PEER_SCORE_THRESHOLD)
        cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), str(src), str(dst)] + specs
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"peer run failed: {proc.stderr.strip()[-2000:]}")
        return dict(np.load(dst))


def pose2sim_demo(shared: Path) -> dict | None:
    """Real data: the Pose2Sim demo (OpenPose BODY_25B after its person association, Qualisys
    calibration). Median reprojection error over every view scored >= 0.3, used or not, for ours
    and for Pose2Sim's own 3D (its TRC) measured the same way; median 3D distance between the two."""
    from calibration.rig_io import load_rig
    from reconstruction.formats.keypoints2d import read_keypoints2d
    from reconstruction.formats.points3d import read_points3d

    session = shared / "data" / "pose2sim_demo" / "S00_Demo_Session"
    trial = session / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
    if not trial.is_dir():
        return None
    rig = load_rig(session / "S00_Calibration" / "Calib.qca.txt")
    kp = read_keypoints2d(trial / "pose-associated", skeleton="body25b", cameras=rig.names, fps=60.0)
    start = time.perf_counter()
    result = triangulate(kp.keypoints, rig)
    seconds = time.perf_counter() - start
    confident = kp.keypoints[..., 2] >= 0.3
    theirs = read_points3d(trial / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    index = [kp.joint_names.index(n) for n in theirs.joint_names]
    T = theirs.num_frames
    their_xyz = np.full((T, kp.num_joints, 3), np.nan)
    their_xyz[:, index] = theirs.xyz
    their_uv = np.moveaxis(rig.project(their_xyz), -2, 1)
    their_res = np.linalg.norm(their_uv - kp.keypoints[:T, ..., :2], axis=-1)
    conf_t = confident[:T][:, :, index]
    distance = np.linalg.norm(result.xyz[:T, index] - theirs.xyz, axis=-1)
    return {
        "ours_median_reproj_px": float(np.nanmedian(result.residual_px[confident])),
        "ours_median_reproj_px_their_joints": float(np.nanmedian(result.residual_px[:T][:, :, index][conf_t])),
        "pose2sim_median_reproj_px": float(np.nanmedian(their_res[:, :, index][conf_t])),
        "median_3d_distance_mm": float(np.nanmedian(distance) * 1000),
        "p90_3d_distance_mm": float(np.nanpercentile(distance, 90) * 1000),
        "ours_completeness": result.completeness,
        "pose2sim_completeness": float(np.isfinite(theirs.xyz[..., 0]).mean()),
        "ours_ms_per_frame": 1000 * seconds / kp.num_frames,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames per case (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peers", action="store_true", help="run only ours")
    parser.add_argument("--repeats", type=int, default=7, help="timing runs of ours per case; the best counts")
    parser.add_argument("--peer-timeout", type=float, default=300.0, help="seconds per peer run")
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    peers = not args.no_peers and PEER_PYTHON.exists()
    if not args.no_peers and not peers:
        print(f"note: {PEER_PYTHON} not found; running ours only (create it with: bash benchmarks/setup_peers.sh)\n")
    cfg = TriangulationConfig()
    rows, ours_ms, timing_inputs = [], {}, {}
    start_all = time.perf_counter()
    for i, (name, V, noise, outliers, missing, peer_frames) in enumerate(CASES):
        rig, xyz, det = make_case(V, noise, outliers, missing, args.frames, args.seed + 10 * i)
        T = det.shape[0]
        result, dlt = triangulate(det, rig, cfg), triangulate(det, rig, TriangulationConfig(method="dlt"))
        # Timing: best of `repeats` runs, interleaved over the cases (the machine may be shared).
        seconds, dlt_seconds = np.inf, np.inf
        for _ in range(args.repeats):
            seconds = min(seconds, time_ours(det, rig, cfg, 1)[1])
            dlt_seconds = min(dlt_seconds, time_ours(det, rig, TriangulationConfig(method="dlt"), 1)[1])
            if V == 16 and "4 cams, 3 px" in timing_inputs:  # the 16/4 ratio: time both back to back
                four = timing_inputs["4 cams, 3 px"]
                ours_ms["4 cams, 3 px"] = min(ours_ms["4 cams, 3 px"], 1000 * time_ours(*four, cfg, 1)[1] / T)
        ours_ms[name] = 1000 * seconds / T
        timing_inputs[name] = (det, rig)
        rows.append({"case": name, "method": "ours (robust)", "frames": T, **errors(result.xyz, xyz), "ms_per_frame": ours_ms[name]})
        rows.append({"case": name, "method": "ours (dlt, no selection)", "frames": T, **errors(dlt.xyz, xyz),
                     "ms_per_frame": 1000 * dlt_seconds / T})
        if not peers:
            continue
        specs = [f"{m}:{min(n or T, T)}" for m, n in peer_frames.items() if n != 0]
        try:
            out = run_peers(rig, det, specs, args.peer_timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{name}: peers failed or timed out: {exc}")
            continue
        for spec in specs:
            method, frames = spec.split(":")
            frames = int(frames)
            est = out[f"{method}_xyz"]
            peer = errors(est, xyz[:frames])
            ours_same = errors(result.xyz[:frames], xyz[:frames])
            common = np.isfinite(est[..., 0]) & np.isfinite(result.xyz[:frames, :, 0])
            e_ours = np.linalg.norm(result.xyz[:frames] - xyz[:frames], axis=-1)[common]
            e_peer = np.linalg.norm(est - xyz[:frames], axis=-1)[common]
            timings = [(PEER_LABELS[method], float(out[f"{method}_seconds"]))]
            if np.isfinite(out[f"{method}_warm_seconds"]):
                timings = [(PEER_LABELS[method] + " (1st call, incl. JAX compile)", float(out[f"{method}_seconds"])),
                           (PEER_LABELS[method] + " (2nd call, same shape)", float(out[f"{method}_warm_seconds"]))]
            for label, seconds in timings:
                peer_ms = 1000 * seconds / frames
                rows.append({
                    "case": name, "method": label, "frames": frames, **peer, "ms_per_frame": peer_ms,
                    "mpjpe_ratio_ours_over_peer": ours_same["mpjpe_mm"] / peer["mpjpe_mm"],
                    "mpjpe_ratio_common_points": float(e_ours.mean() / e_peer.mean()) if common.any() else float("nan"),
                    "completeness_ours_same_frames": ours_same["completeness"],
                    "speedup_ours_vs_peer": peer_ms / ours_ms[name],
                })

    for r in rows:  # the 4-camera time may have been re-measured next to the 16-camera one
        if r["method"] == "ours (robust)":
            r["ms_per_frame"] = ours_ms[r["case"]]
        elif "speedup_ours_vs_peer" in r:
            r["speedup_ours_vs_peer"] = r["ms_per_frame"] / ours_ms[r["case"]]
    print("| case | method | frames | MPJPE mm | median mm | completeness | ms/frame | MPJPE ours/peer | "
          "same, on points both output | ours completeness, same frames | speed-up ours vs peer |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        def fmt(key, pattern):
            return pattern.format(r[key]) if key in r else ""
        print(f"| {r['case']} | {r['method']} | {r['frames']} | {r['mpjpe_mm']:.1f} | {r['median_mm']:.1f} | "
              f"{r['completeness']:.4f} | {r['ms_per_frame']:.3f} | {fmt('mpjpe_ratio_ours_over_peer', '{:.2f}')} | "
              f"{fmt('mpjpe_ratio_common_points', '{:.2f}')} | {fmt('completeness_ours_same_frames', '{:.4f}')} | "
              f"{fmt('speedup_ours_vs_peer', '{:.0f}x')} |")
    if "4 cams, 3 px" in ours_ms and "16 cams, 3 px" in ours_ms:
        print(f"\nours, 16 cameras vs 4 cameras (3 px): {ours_ms['16 cams, 3 px'] / ours_ms['4 cams, 3 px']:.2f}x the time per frame")
    demo = pose2sim_demo(ROOT.parent / "shared")
    if demo is None:
        print("\nPose2Sim demo: ../shared/data/pose2sim_demo not found, skipped")
    else:
        print("\nPose2Sim demo (real OpenPose 2D, 4 cameras, 100 frames, BODY_25B; views scored >= 0.3, used or not):")
        print(f"  median reprojection error: ours {demo['ours_median_reproj_px']:.2f} px (all 25 joints), "
              f"{demo['ours_median_reproj_px_their_joints']:.2f} px on Pose2Sim's 21 joints; "
              f"Pose2Sim's own 3D {demo['pose2sim_median_reproj_px']:.2f} px")
        print(f"  3D distance ours - Pose2Sim: median {demo['median_3d_distance_mm']:.1f} mm, "
              f"90th percentile {demo['p90_3d_distance_mm']:.1f} mm; completeness ours {demo['ours_completeness']:.4f}, "
              f"Pose2Sim {demo['pose2sim_completeness']:.4f}; ours {demo['ours_ms_per_frame']:.3f} ms/frame")
    print(f"benchmark wall time: {time.perf_counter() - start_all:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "pose2sim_demo": demo}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
