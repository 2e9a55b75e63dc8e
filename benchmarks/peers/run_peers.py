"""Run the peers' triangulation on our arrays, inside the peers' own venv (./.venv-peers).

Usage (called by benchmarks/triangulation.py, not imported by the project):

    .venv-peers/bin/python benchmarks/peers/run_peers.py IN.npz OUT.npz METHOD[:FRAMES] [...]

IN.npz holds ``keypoints`` (T, V, J, 3) (x, y, score; distorted pixels; NaN missing) and the rig:
``K`` (V, 3, 3), ``dist`` (V, 5), ``R`` (V, 3, 3), ``t`` (V, 3), ``image_size`` (V, 2), plus
``score_threshold`` (). OUT.npz gets ``<method>_xyz`` (T, J, 3), ``<method>_seconds`` () (first call
in this process) and ``<method>_warm_seconds`` () (best of 3 more calls with the same input: aniposelib's
JAX code compiles for each new input shape; NaN for the others) for each
METHOD (on its first FRAMES frames when given) in:

- ``aniposelib_dlt``: ``aniposelib.cameras.CameraGroup.triangulate`` (its DLT, undistorting first);
- ``aniposelib_ransac``: ``CameraGroup.triangulate_ransac``, on the points seen by 2+ cameras (it
  crashes on a point no camera sees);
- ``pose2sim``: ``Pose2Sim.triangulation.triangulation_from_best_cameras`` per frame and keypoint,
  its own loop that drops cameras until the reprojection error is under its threshold (15 px,
  min 2 cameras, the defaults of its Config.toml), with its projection matrices ``K [R | t]`` and
  detections below its likelihood threshold set to NaN, as ``triangulate_all`` does.

Detections scored below ``score_threshold`` are NaN for the aniposelib methods too (their pipelines
filter by score the same way). The peers' functions are called, never reimplemented.
"""
import sys
import time

import numpy as np


def _camera_group(data):
    from aniposelib.cameras import Camera, CameraGroup
    import cv2

    cams = []
    for v in range(data["K"].shape[0]):
        rvec, _ = cv2.Rodrigues(data["R"][v])
        cams.append(Camera(matrix=data["K"][v], dist=data["dist"][v], size=tuple(int(s) for s in data["image_size"][v]),
                           rvec=rvec.ravel(), tvec=data["t"][v], name=f"cam{v}"))
    return CameraGroup(cams)


def _anipose_points(kp, threshold):
    T, V, J, _ = kp.shape
    pts = kp[..., :2].copy()
    with np.errstate(invalid="ignore"):
        pts[~(kp[..., 2] >= threshold)] = np.nan
    return np.moveaxis(pts, 1, 0).reshape(V, T * J, 2)  # (C, N, 2)


def run_aniposelib(data, ransac):
    kp = data["keypoints"]
    T, V, J, _ = kp.shape
    group = _camera_group(data)
    pts = _anipose_points(kp, float(data["score_threshold"]))
    start = time.perf_counter()
    if ransac:
        # triangulate_ransac crashes on a point no camera sees and returns a one-camera "DLT" for a
        # point one camera sees; give it only the points seen by two or more (the rest stay NaN).
        seen = np.sum(~np.isnan(pts[:, :, 0]), axis=0) >= 2
        out = np.full((T * J, 3), np.nan)
        if seen.any():
            out[seen] = group.triangulate_ransac(pts[:, seen], undistort=True, min_cams=2, progress=False)[0]
    else:
        out = group.triangulate(pts, undistort=True, progress=False)
    seconds = time.perf_counter() - start
    warm = np.nan
    if not ransac:  # JAX compiles for each new input shape: time a second call with the same shape too
        warm = np.inf
        for _ in range(3):  # best of 3, as for ours
            start = time.perf_counter()
            group.triangulate(pts, undistort=True, progress=False)
            warm = min(warm, time.perf_counter() - start)
    return np.asarray(out, dtype=np.float64).reshape(T, J, 3), seconds, warm


def run_pose2sim(data):
    from Pose2Sim.triangulation import triangulation_from_best_cameras

    kp = data["keypoints"].copy()
    T, V, J, _ = kp.shape
    threshold = float(data["score_threshold"])
    with np.errstate(invalid="ignore"):
        low = ~(kp[..., 2] >= threshold)
    kp[low] = np.nan  # triangulate_all: x, y and likelihood NaN below likelihood_threshold_triangulation
    P = [data["K"][v] @ np.hstack([data["R"][v], data["t"][v][:, None]]) for v in range(V)]
    P = [np.vstack([p, [0, 0, 0, 1.0]]) for p in P]  # Pose2Sim's computeP gives 4x4 matrices K_h @ H
    config = {"triangulation": {"reproj_error_threshold_triangulation": 15, "min_cameras_for_triangulation": 2,
                                "handle_LR_swap": False, "undistort_points": False}}
    out = np.full((T, J, 3), np.nan)
    start = time.perf_counter()
    for f in range(T):
        for j in range(J):
            coords = np.array((kp[f, :, j, 0], kp[f, :, j, 1], kp[f, :, j, 2]))
            Q, _error, _n_excluded, _ids = triangulation_from_best_cameras(config, coords, coords, P, None)
            out[f, j] = Q
    seconds = time.perf_counter() - start
    return out, seconds


def main(argv):
    src, dst, methods = argv[0], argv[1], argv[2:]
    full = dict(np.load(src))
    results = {}
    for spec in methods:
        method, _, frames = spec.partition(":")
        data = dict(full)
        if frames:
            data["keypoints"] = full["keypoints"][: int(frames)]
        warm = np.nan
        if method == "aniposelib_dlt":
            xyz, seconds, warm = run_aniposelib(data, ransac=False)
        elif method == "aniposelib_ransac":
            xyz, seconds, _ = run_aniposelib(data, ransac=True)
        elif method == "pose2sim":
            xyz, seconds = run_pose2sim(data)
        else:
            raise SystemExit(f"unknown method {method!r}")
        results[f"{method}_xyz"] = xyz
        results[f"{method}_seconds"] = np.float64(seconds)
        results[f"{method}_warm_seconds"] = np.float64(warm)
    np.savez(dst, **results)


if __name__ == "__main__":
    main(sys.argv[1:])
