"""Real-video check of MoveNet: the 4 Pose2Sim demo videos (100 frames, 1080x1920 portrait).

Runs MoveNet (Thunder by default) with our own person boxes (MultiPose on the first frame, then
each view's joints of the previous frame), and prints
- the median distance to OpenPose's 2D (``pose-associated``, BODY_25B) on the 13 joints both
  define, with the JSON at the same frame and shifted by one frame (JSON f-1 vs video f);
- the median reprojection error of triangulating our 2D with the demo calibration
  (reconstruction.triangulation if present, else a plain DLT on undistorted points here).

    python benchmarks/models2d_real.py [--model movenet-thunder] [--frames 100] [--flip]
Needs ../shared (videos, OpenPose JSON, calibration, weights). About 30 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEMO = SHARED / "data" / "pose2sim_demo"
TRIAL = DEMO / "S00_Demo_Session" / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
CALIB = DEMO / "S00_Demo_Session" / "S00_Calibration" / "Calib.qca.txt"
SHARED_JOINTS = ("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                 "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def read_videos(n_frames: int):
    """The first ``n_frames`` frame sets of the 4 demo videos, as lists of RGB images."""
    from capture.stream import FrameSetStream

    with FrameSetStream([DEMO / "videos_BalancingTrial" / f"cam0{v}.mp4" for v in range(1, 5)]) as stream:
        for n, fs in enumerate(stream):
            if n >= n_frames:
                return
            yield list(fs.color)


def dlt_reprojection(kp: np.ndarray, rig, min_score: float = 0.3) -> np.ndarray:
    """Plain DLT on undistorted points with every view whose score >= min_score; per-(T, V, J) px error."""
    T, V, J, _ = kp.shape
    ok = np.nan_to_num(kp[..., 2], nan=0) >= min_score
    norm = np.stack([rig.cameras[v].undistort_points(kp[:, v, :, :2].reshape(-1, 2), normalized=True).reshape(T, J, 2)
                     for v in range(V)], axis=1)
    P = np.stack([np.hstack([c.R, c.t[:, None]]) for c in rig.cameras])  # normalized projection
    rows = np.stack([norm[..., 0, None] * P[:, None, 2][None] - P[:, None, 0][None],
                     norm[..., 1, None] * P[:, None, 2][None] - P[:, None, 1][None]], axis=3)  # (T, V, J, 2, 4)
    rows = np.where(ok[..., None, None], np.nan_to_num(rows), 0.0)
    M = rows.transpose(0, 2, 1, 3, 4).reshape(T, J, 2 * V, 4)
    _, _, vt = np.linalg.svd(M)
    Xh = vt[..., -1, :]
    X = Xh[..., :3] / Xh[..., 3:4]
    X[ok.sum(axis=1) < 2] = np.nan
    err = np.full((T, V, J), np.nan)
    for v, cam in enumerate(rig.cameras):
        uv = cam.project(X.reshape(-1, 3)).reshape(T, J, 2)
        e = np.linalg.norm(uv - kp[:, v, :, :2], axis=-1)
        err[:, v] = np.where(ok[:, v], e, np.nan)
    return err


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="movenet-thunder")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--flip", action="store_true", help="flip test")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save", help="write our 2D to this NPZ")
    ap.add_argument("--load", help="skip the model: evaluate 2D from this NPZ (written by --save)")
    args = ap.parse_args(argv)
    if not (DEMO.is_dir() and (SHARED / "weights" / "movenet").is_dir()):
        print(f"skipped: {SHARED} (demo videos and MoveNet weights) not found")
        return 0
    import torch

    from reconstruction.formats.keypoints2d import Keypoints2D, read_openpose_folder, write_keypoints2d
    from reconstruction.models2d.tracking import detect_sequence
    from reconstruction.models2d.movenet import MultiPoseDetector, load_movenet

    torch.set_num_threads(max(1, torch.get_num_threads()))
    wdir = SHARED / "weights" / "movenet"
    if not args.load:
        model = load_movenet(wdir / f"{args.model}.json", device=args.device)
        detector = MultiPoseDetector(wdir / "movenet-multipose.json", device=args.device)
    if args.load:
        from reconstruction.formats.keypoints2d import read_keypoints2d

        ours = read_keypoints2d(args.load).keypoints[: args.frames]
        T = len(ours)
        print(f"{args.load}: {T} frames")
    else:
        t0 = time.perf_counter()
        ours = detect_sequence(model, read_videos(args.frames), detector=detector.detect, flip_test=args.flip)
        dt = time.perf_counter() - t0
        T = len(ours)
        print(f"{args.model}: {T} frames x 4 views in {dt:.1f} s ({4 * T / dt:.1f} crops/s incl. video decoding)")
    from calibration.rig_io import load_rig

    rig = load_rig(CALIB)
    cams = rig.names  # cam_01..cam_04, the videos' order
    from reconstruction.models2d.movenet import COCO17_JOINTS

    kp = Keypoints2D(ours, cams, COCO17_JOINTS, fps=60.0)
    if args.save:
        write_keypoints2d(args.save, kp)

    op = read_openpose_folder(TRIAL / "pose-associated", skeleton="body25b", fps=60.0)
    oj = [op.joint_names.index(j) for j in SHARED_JOINTS]
    mj = [COCO17_JOINTS.index(j) for j in SHARED_JOINTS]
    a = ours[:, :, mj, :2]
    b = op.keypoints[:T, :, oj, :2]
    d0 = np.linalg.norm(a - b, axis=-1)
    d1 = np.linalg.norm(a[1:] - op.keypoints[: T - 1, :, oj, :2], axis=-1)
    print("vs OpenPose (pose-associated), 13 shared joints, px at 1080x1920:")
    print(f"  no shift      : median {np.nanmedian(d0):.2f}  mean {np.nanmean(d0):.2f}  "
          f"per view {np.round(np.nanmedian(d0, axis=(0, 2)), 2).tolist()}  n={np.isfinite(d0).sum()}")
    print(f"  JSON f-1 vs f : median {np.nanmedian(d1):.2f}  mean {np.nanmean(d1):.2f}  "
          f"per view {np.round(np.nanmedian(d1, axis=(0, 2)), 2).tolist()}  n={np.isfinite(d1).sum()}")

    print(f"triangulation with {CALIB.name}:")
    try:
        from reconstruction.triangulation import TriangulationConfig, triangulate
    except ImportError:
        triangulate = None
    for label, arr, joints in (("ours (MoveNet)", ours, mj), ("OpenPose, same triangulation", op.keypoints[:T], oj)):
        if triangulate is not None:
            tri = triangulate(arr, rig, TriangulationConfig())
            res, used = np.asarray(tri.residual_px), np.asarray(tri.reproj_error_px)
            how = "reconstruction.triangulation, TriangulationConfig() defaults"
            print(f"  {label:30s} [{how}]: median residual_px (every detected view) {np.nanmedian(res):.2f} px, "
                  f"{np.nanmedian(res[..., joints]):.2f} px on the 13 shared joints; median reproj_error_px "
                  f"(used views) {np.nanmedian(used):.2f} px; completeness {tri.completeness:.3f}")
        res = dlt_reprojection(arr, rig)
        print(f"  {label:30s} [plain DLT, score >= 0.3]: median {np.nanmedian(res):.2f} px, "
              f"{np.nanmedian(res[..., joints]):.2f} px on the 13 shared joints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
