"""Offline pipeline benchmark: frame sets per second per stage and end to end (CPU, and GPU for the
2D model where present), accuracy against the ground truth with and without depth fusion, and
(``--long``) peak memory on a long 4-camera 848x480 session.

    python benchmarks/pipeline.py                      # 4 cameras, 640x480, 3 s: speed + accuracy
    python benchmarks/pipeline.py --model movenet-lightning   # + the 2D model's throughput
    python benchmarks/pipeline.py --long 3000          # + 3,000 frame sets at 848x480 under /usr/bin/time -v

The simulated person is no photograph, so accuracy is measured with simulated detections (3 px
noise, 10 % confident outliers, occluded joints missing); the 2D model's timing runs on the
rendered images (its keypoints are not scored).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _detections(truth_path: Path, seed: int = 1):
    from reconstruction.formats.keypoints2d import Keypoints2D
    from reconstruction.pipeline import Detections2D
    from reconstruction.simulation.detections import simulate_detections

    gt = np.load(truth_path, allow_pickle=False)
    det = simulate_detections(gt["keypoints2d"], 3.0, 0.1, True, np.random.default_rng(seed))
    kp = Keypoints2D(det, tuple(map(str, gt["cameras"])), tuple(map(str, gt["joint_names"])), float(gt["fps"]))
    return Detections2D(kp, gt["timestamps_ms"]), gt["xyz"]


def speed_and_accuracy(seconds: float, model: str | None, device: str, workdir: Path) -> None:
    from reconstruction.depth.offsets import joint_offsets
    from reconstruction.pipeline import ReconstructionConfig, open_session, reconstruct_keypoints, reconstruct_session
    from reconstruction.pipeline.offline import lift_chunk_depth
    from reconstruction.simulation.session import SimulationConfig, simulate_session

    sim_cfg = SimulationConfig(cameras=4, seconds=seconds, clock_offsets_ms=(0.0,) * 4)
    t0 = time.perf_counter()
    sim = simulate_session(workdir / "session", sim_cfg)
    print(f"simulated {sim_cfg.num_frames} frame sets x 4 cameras 640x480 in {time.perf_counter() - t0:.1f} s")
    det, truth = _detections(sim.ground_truth)
    session = open_session(sim.recordings, sim.rig)
    cfg = ReconstructionConfig()
    T = sim_cfg.num_frames

    rows = []
    t0 = time.perf_counter()
    with session.frame_sets() as stream:
        frames = list(stream)
    t_read = time.perf_counter() - t0
    rows.append(("read + synchronize frame sets", t_read))
    kp = det.keypoints.select_cameras(session.rig.names).keypoints[: len(frames)]
    t0 = time.perf_counter()
    from reconstruction.skeleton import load_skeleton

    skeleton = load_skeleton(cfg.skeleton)
    lift = lift_chunk_depth(kp, [f.depth for f in frames], 0.001, session.rig, skeleton, cfg, sim_cfg.fps,
                      joint_offsets(det.keypoints.joint_names, cfg.depth_fusion))
    rows.append(("depth lift (first 3D estimate + window medians)", time.perf_counter() - t0))
    res = reconstruct_keypoints(kp, session.rig, skeleton, cfg, sim_cfg.fps, lift=lift)
    for stage in ("triangulate", "depth_fusion", "refine", "filter"):
        rows.append((stage, res.timings_s.get(stage, float("nan"))))
    no_depth = reconstruct_keypoints(kp, session.rig, skeleton,
                                     replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False)), sim_cfg.fps)
    if model:
        rows.append((f"2D model {model} ({device}, 4 views)", _model_time(model, device, frames, cfg)))
    depth_frames = [f.depth for f in frames]
    del frames
    t0 = time.perf_counter()
    out = reconstruct_session(session, cfg, workdir / "out", detections=det, progress=False)
    t_e2e = time.perf_counter() - t0
    rows.append(("end to end with precomputed 2D (incl. outputs, overlay videos)", t_e2e))
    print(f"\nthroughput on {T} frame sets (CPU {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}):")
    for name, sec in rows:
        print(f"  {name:<62s} {sec:7.3f} s  {T / sec if sec > 0 else float('inf'):9.1f} frame sets/s")
    n = min(len(truth), len(out.result.xyz))
    e = np.linalg.norm(out.result.xyz[:n] - truth[:n], axis=-1)
    e0 = np.linalg.norm(no_depth.xyz[:n] - truth[:n], axis=-1)
    et = np.linalg.norm(res.triangulation.xyz[:n] - truth[:n], axis=-1)
    print("\naccuracy vs ground truth (3 px noise, 10 % outliers, occlusion):")
    print(f"  robust triangulation only:        MPJPE {np.nanmean(et) * 1000:6.1f} mm, completeness "
          f"{np.isfinite(et).mean():.3f}")
    print(f"  full pipeline without depth:      MPJPE {np.nanmean(e0) * 1000:6.1f} mm (median "
          f"{np.nanmedian(e0) * 1000:.1f}), completeness {np.isfinite(e0).mean():.3f}")
    print(f"  full pipeline with depth fusion:  MPJPE {np.nanmean(e) * 1000:6.1f} mm (median "
          f"{np.nanmedian(e) * 1000:.1f}), completeness {np.isfinite(e).mean():.3f}")
    print(f"  ratio with / without depth: {np.nanmean(e) / np.nanmean(e0):.3f} (mean), "
          f"{np.nanmedian(e) / np.nanmedian(e0):.3f} (median)")
    two = reconstruct_two_cameras(kp, depth_frames, session.rig, skeleton, cfg, sim_cfg.fps, truth)
    for label, (mpjpe, compl, by_views) in two.items():
        print(f"  2 cameras {label:<22s} MPJPE {mpjpe * 1000:6.1f} mm, completeness {compl:.3f}; MPJPE of joints "
              "seen by 2 / 1 / 0 cameras: " + " / ".join(f"{e * 1000:.1f}" for e in by_views) + " mm")


def reconstruct_two_cameras(kp, depth_frames, rig, skeleton, cfg, fps, truth) -> dict:
    """The session as two of its cameras would have recorded it: each pair lifts and reconstructs alone."""
    from calibration.camera import Rig
    from reconstruction.depth.offsets import joint_offsets
    from reconstruction.pipeline import reconstruct_keypoints
    from reconstruction.pipeline.offline import lift_chunk_depth

    out = {}
    pairs = (("at 90 degrees (0, 1)", [0, 1]), ("at 90 degrees (1, 2)", [1, 2]), ("facing (0, 2)", [0, 2]),
             ("facing (1, 3)", [1, 3]))
    for label, views in pairs:
        sub = Rig(tuple(rig.cameras[v] for v in views))
        depth = [[f[v] for v in views] for f in depth_frames]
        lift = lift_chunk_depth(kp[:, views], depth, 0.001, sub, skeleton, cfg, fps,
                          joint_offsets(skeleton.joint_names, cfg.depth_fusion))
        res = reconstruct_keypoints(kp[:, views], sub, skeleton, cfg, fps, lift=lift)
        n = min(len(truth), len(res.xyz))
        e = np.linalg.norm(res.xyz[:n] - truth[:n], axis=-1)
        seen = np.isfinite(kp[:n][:, views][..., 0]).sum(axis=1)
        with np.errstate(invalid="ignore"):
            by_views = tuple(float(np.nanmean(e[seen == k])) if (seen == k).any() else float("nan") for k in (2, 1, 0))
        out[label] = (float(np.nanmean(e)), float(np.isfinite(e).mean()), by_views)
    return out


def _model_time(model_name: str, device: str, frames, cfg) -> float:
    from reconstruction.models2d import registry
    from reconstruction.models2d.tracking import detect_sequence

    weights = ROOT.parent / "shared" / "weights" / "movenet"
    wd = str(weights) if weights.is_dir() else None
    model = registry.load_model(model_name, device=device, weights_dir=wd)
    t0 = time.perf_counter()
    detect_sequence(model, ([c for c in f.color] for f in frames), box_cfg=cfg.boxes)
    return time.perf_counter() - t0


# --- long session: memory ------------------------------------------------------------------------------

def make_long_session(out: Path, num_frames: int, distinct: int = 60) -> Path:
    """4 cameras 848x480 at 30 fps, ``num_frames`` frame sets: ``distinct`` rendered frames of the
    simulated person played in a loop (rendering 12,000 images would dominate), with ground truth."""
    from capture.recording_writer import RealSenseRecordingWriter
    from reconstruction.simulation.render import CameraRenderer, RenderSettings, body_model
    from capture.intrinsics import StreamIntrinsics
    from reconstruction.simulation.session import SimulationConfig, build_rig, simulated_motion
    from reconstruction.skeleton import load_skeleton

    cfg = SimulationConfig(cameras=4, seconds=distinct / 30, resolution=(848, 480))
    rig = build_rig(cfg)
    skeleton = load_skeleton("coco17")
    rng = np.random.default_rng(0)
    xyz = simulated_motion(cfg, skeleton, rng)
    renderers = [CameraRenderer(c, body_model(skeleton), RenderSettings()) for c in rig]
    rendered = [[r.render(xyz[k], rng) for r in renderers] for k in range(distinct)]
    out.mkdir(parents=True, exist_ok=True)
    stamps = np.arange(num_frames)[:, None] * 1000.0 / 30 + np.zeros((1, 4))
    loop = np.arange(num_frames) % distinct
    writers = [RealSenseRecordingWriter(out / f"{c.name}.db3", c.serial, color=StreamIntrinsics.from_camera(c),
                                        depth=StreamIntrinsics.from_camera(c), fps=30) for c in rig]
    try:
        for k in range(num_frames):
            for v, w in enumerate(writers):
                f = rendered[loop[k]][v]
                w.write(float(stamps[k, v]), k + 1, f.color, f.depth)
    finally:
        for w in writers:
            w.close()
    from calibration.rig_io import save_rig

    save_rig(rig, out / "rig.yaml")
    kp2d = np.stack([np.stack([rendered[i][v].keypoints2d for v in range(4)]) for i in loop])
    np.savez_compressed(out / "ground_truth.npz", xyz=xyz[loop], keypoints2d=kp2d, joint_names=np.array(skeleton.joint_names),
                        cameras=np.array(rig.names), timestamps_ms=stamps, fps=np.float64(30.0))
    return out


def run_long(num_frames: int, workdir: Path) -> None:
    session_dir = workdir / "long"
    t0 = time.perf_counter()
    make_long_session(session_dir, num_frames)
    print(f"\nwrote a 4-camera 848x480 session of {num_frames} frame sets in {time.perf_counter() - t0:.0f} s")
    timer = "/usr/bin/time"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--reconstruct-only", str(session_dir)]
    if Path(timer).exists():
        cmd = [timer, "-v"] + cmd
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    print(proc.stdout.strip())
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
    if peak:
        print(f"peak memory (max RSS) of the reconstruction: {int(peak.group(1)) / 1024:.0f} MiB "
              f"({num_frames} frame sets, {wall:.0f} s wall, {num_frames / wall:.1f} frame sets/s end to end)")


def reconstruct_only(session_dir: Path) -> None:
    from calibration.rig_io import load_rig
    from reconstruction.pipeline import ReconstructionConfig, open_session, reconstruct_session

    det, truth = _detections(session_dir / "ground_truth.npz")
    rig = load_rig(session_dir / "rig.yaml")
    session = open_session(sorted(session_dir.glob("*.db3")), rig)
    cfg = ReconstructionConfig()
    cfg = replace(cfg, output=replace(cfg.output, overlay_video=False))
    t0 = time.perf_counter()
    out = reconstruct_session(session, cfg, session_dir / "out", detections=det, progress=False)
    e = np.linalg.norm(out.result.xyz - truth[: len(out.result.xyz)], axis=-1)
    print(f"reconstructed {len(out.result.xyz)} frame sets in {time.perf_counter() - t0:.0f} s: MPJPE "
          f"{np.nanmean(e) * 1000:.1f} mm, completeness {out.quality['completeness']:.3f}; stage seconds "
          + ", ".join(f"{k} {v:.1f}" for k, v in out.result.timings_s.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the speed/accuracy session")
    parser.add_argument("--model", default=None, help="also time this 2D model (e.g. movenet-lightning)")
    parser.add_argument("--device", default="cpu", help="device of the 2D model (cpu or cuda)")
    parser.add_argument("--long", type=int, default=0, metavar="N",
                        help="also measure peak memory on N frame sets at 848x480 (e.g. 3000; minutes)")
    parser.add_argument("--workdir", default=None, help="keep the sessions here (default: a temp folder)")
    parser.add_argument("--reconstruct-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reconstruct_only:
        reconstruct_only(Path(args.reconstruct_only))
        return 0
    with tempfile.TemporaryDirectory(prefix="mocap-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        speed_and_accuracy(args.seconds, args.model, args.device, workdir)
        if args.long:
            run_long(args.long, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
