"""Initial camera poses from board views: PnP per (camera, frame), then a pose graph over cameras.

Two cameras are linked when they saw the board in the same frame; each shared frame gives one
estimate of their relative pose. Links are weighted by how many consistent frames and corners
support them, and camera poses are chained along the maximum spanning tree grown from the
reference camera, so a camera that never shares a frame with the reference still gets a pose as
long as the graph is connected. Poses map world -> camera (OpenCV); the world is the reference
camera's frame until :func:`world_from_board` moves it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from calibration.board import BoardSpec
from calibration.camera import rodrigues_to_matrix
from calibration.detect import Detection
from calibration.errors import CalibrationError

log = logging.getLogger(__name__)

# Board frame -> world frame of a board lying printed side up on the floor: x kept, y and z flipped,
# so world Z points up (the board's z points into the board, i.e. down).
BOARD_ON_FLOOR = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True, eq=False)
class BoardPose:
    """Board -> camera pose from PnP: ``x_cam = R @ x_board + t``; rms in px over n corners."""

    R: np.ndarray
    t: np.ndarray
    rms: float
    n: int


def board_pose_pnp(K: np.ndarray, dist: np.ndarray, detection: Detection, spec: BoardSpec,
                   max_rms: float = 5.0) -> BoardPose | None:
    """PnP of a planar board (IPPE, both solutions tried, then Levenberg-Marquardt refinement).

    Returns None with fewer than 4 corners, when the board would be behind the camera, or when the
    reprojection RMS exceeds ``max_rms`` px.
    """
    import cv2

    if len(detection) < 4:
        return None
    obj = spec.object_points()[detection.ids]
    img = detection.corners
    try:
        count, rvecs, tvecs, _ = cv2.solvePnPGeneric(obj, img, K, dist, flags=cv2.SOLVEPNP_IPPE)
    except cv2.error:
        return None
    best = None
    for rvec, tvec in zip(rvecs[:count], tvecs[:count]):
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec.copy(), tvec.copy())
        proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
        rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
        if best is None or rms < best[2]:
            best = (rvec.ravel(), tvec.ravel(), rms)
    if best is None or best[1][2] <= 0 or not np.isfinite(best[2]) or best[2] > max_rms:
        return None
    return BoardPose(rodrigues_to_matrix(best[0]), best[1], best[2], len(detection))


def estimate_board_poses(intrinsics: dict, detections: dict, spec: BoardSpec, max_rms: float = 5.0) -> dict:
    """{camera: {frame: BoardPose}} for every detection with a valid PnP.

    ``intrinsics``: {camera: (K, dist)}; ``detections``: {camera: {frame: Detection}}.
    """
    poses = {}
    for cam, frames in detections.items():
        K, dist = intrinsics[cam]
        poses[cam] = {}
        for frame, det in frames.items():
            if det is None or not det.found:
                continue
            pose = board_pose_pnp(K, dist, det, spec, max_rms)
            if pose is not None:
                poses[cam][frame] = pose
    return poses


def _mean_rotation(Rs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted chordal mean of rotations (K, 3, 3)."""
    M = np.einsum("k,kij->ij", weights, Rs)
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def _angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Angles (degrees) between rotations Ra (..., 3, 3) and Rb (..., 3, 3)."""
    trace = np.einsum("...ij,...ij->...", Ra, Rb)
    return np.degrees(np.arccos(np.clip((trace - 1) / 2, -1.0, 1.0)))


@dataclass(frozen=True, eq=False)
class Link:
    """Relative pose camera a -> camera b (``x_b = R @ x_a + t``) from the frames both saw."""

    a: str
    b: str
    R: np.ndarray
    t: np.ndarray
    frames: tuple
    inliers: int
    weight: float


def relative_pose(poses_a: dict, poses_b: dict, a: str = "a", b: str = "b") -> Link | None:
    """Robust relative pose of camera b w.r.t. camera a from their shared frames, or None."""
    shared = sorted(set(poses_a) & set(poses_b))
    if not shared:
        return None
    Ra = np.stack([poses_a[f].R for f in shared])
    ta = np.stack([poses_a[f].t for f in shared])
    Rb = np.stack([poses_b[f].R for f in shared])
    tb = np.stack([poses_b[f].t for f in shared])
    # x_b = Rb Ra^T (x_a - ta) + tb
    R_ba = Rb @ np.transpose(Ra, (0, 2, 1))
    t_ba = tb - np.einsum("kij,kj->ki", R_ba, ta)
    quality = np.array([min(poses_a[f].n, poses_b[f].n) / (1.0 + poses_a[f].rms + poses_b[f].rms) for f in shared])
    R_mean = _mean_rotation(R_ba, quality)
    t_med = np.median(t_ba, axis=0)
    # Inliers: close to the consensus; thresholds adapt to the spread of the estimates.
    ang = _angle_deg(R_ba, R_mean)
    dist = np.linalg.norm(t_ba - t_med, axis=1)
    ok = (ang <= max(2.0, 3 * np.median(ang))) & (dist <= max(0.05 * np.linalg.norm(t_med), 3 * np.median(dist)))
    if not ok.any():
        ok = np.ones(len(shared), bool)
    w = quality[ok]
    R = _mean_rotation(R_ba[ok], w)
    t = np.einsum("k,ki->i", w, t_ba[ok]) / w.sum()
    return Link(a, b, R, t, tuple(shared), int(ok.sum()), float(w.sum()))


def connected_groups(names: list[str], links: list[Link]) -> list[list[str]]:
    """Cameras grouped by connectivity of the link graph, in rig order."""
    parent = {n: n for n in names}

    def root(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for link in links:
        parent[root(link.a)] = root(link.b)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return sorted(groups.values(), key=lambda g: names.index(g[0]))


def initial_camera_poses(names: list[str], board_poses: dict, reference: str | None = None) -> tuple[dict, list[Link]]:
    """World -> camera (R, t) of every camera, world = the reference camera (default: the first).

    Chains relative poses along the maximum spanning tree (Prim) of the link graph. Raises
    CalibrationError naming the groups of cameras when the graph is disconnected.
    """
    reference = reference or names[0]
    links = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            link = relative_pose(board_poses.get(a, {}), board_poses.get(b, {}), a, b)
            if link is not None:
                links.append(link)
    groups = connected_groups(names, links)
    if len(groups) > 1:
        never = [g[0] for g in groups if len(g) == 1 and not board_poses.get(g[0])]
        text = "; ".join(f"group {k + 1}: {', '.join(g)}" for k, g in enumerate(groups))
        extra = f" Cameras that never saw the board: {', '.join(never)}." if never else ""
        raise CalibrationError(
            f"the cameras are not linked by shared board views ({text}).{extra} Record frames where "
            "cameras of different groups see the board at the same time (hold it between them)."
        )
    by_pair = {}
    for link in links:
        by_pair[(link.a, link.b)] = link
    poses = {reference: (np.eye(3), np.zeros(3))}
    used = []
    while len(poses) < len(names):
        best = None
        for link in links:
            if (link.a in poses) == (link.b in poses):
                continue
            if best is None or link.weight > best.weight:
                best = link
        # Chain: x_b = R x_a + t and x_a = R_a x_w + t_a.
        if best.a in poses:
            R_a, t_a = poses[best.a]
            poses[best.b] = (best.R @ R_a, best.R @ t_a + best.t)
        else:
            R_b, t_b = poses[best.b]
            R_ab = best.R.T
            poses[best.a] = (R_ab @ R_b, R_ab @ (t_b - best.t))
        used.append(best)
        log.info("pose graph: %s <- %s (%d shared frames, weight %.1f)", best.b, best.a, best.inliers, best.weight)
    return poses, used


def initial_board_poses(camera_poses: dict, board_poses: dict) -> dict:
    """{frame: (R, t)} board -> world from the camera that saw each frame best."""
    best: dict = {}
    for cam, frames in board_poses.items():
        if cam not in camera_poses:
            continue
        for frame, pose in frames.items():
            score = pose.n / (1.0 + pose.rms)
            if frame not in best or score > best[frame][0]:
                best[frame] = (score, cam, pose)
    result = {}
    for frame, (_, cam, pose) in best.items():
        R_c, t_c = camera_poses[cam]
        # x_c = R_c x_w + t_c = pose.R x_b + pose.t  =>  x_w = R_c^T pose.R x_b + R_c^T (pose.t - t_c)
        result[frame] = (R_c.T @ pose.R, R_c.T @ (pose.t - t_c))
    return result


def world_from_board(R_board: np.ndarray, t_board: np.ndarray, on_floor: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(R_new_old, t_new_old) moving the world to a board at pose (R_board, t_board) in the old world.

    With ``on_floor`` the new world has Z up for a board lying printed side up (x along the board's
    columns); otherwise it is the board frame itself. Use with :meth:`Rig.transformed`.
    """
    D = BOARD_ON_FLOOR if on_floor else np.eye(3)
    R_new_old = D @ np.asarray(R_board).T
    return R_new_old, -R_new_old @ np.asarray(t_board)
