"""Left/right swap detection and correction, in 2D per view before triangulation and in 3D per frame.

Shapes: ``T`` frames, ``V`` views, ``J`` joints. A *swap* exchanges every left joint with its right
twin (``Skeleton.flip_permutation``): what a 2D detector does when it mistakes a person's back for
their front, in one view (2D) or, consistently, in all views of some frames (then the 3D labels flip).

2D (:func:`correct_swaps_2d`): for every frame and view ``v``, every pair of the *other* views
triangulates each left/right joint (two-ray midpoint) and reprojects it into ``v``; the pair that
explains ``v``'s detections best, with the labels as they are and with the labels flipped, gives two
costs (mean of the truncated pixel errors over the left/right joints). The view is flipped when the
flipped labels are better by ``min_improvement_px``. Taking the best pair makes the test immune to
one other view being swapped as well (a pair with a swapped view explains neither labelling).

3D (:func:`correct_swaps_3d`): between consecutive frames, flipping the labels of frame ``t`` either
keeps the left/right joints near where they were at ``t - 1`` or not; the flips accumulate into a
parity per frame, and the frames in the minority parity are flipped back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from calibration.camera import Rig
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.skeleton import Skeleton

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwapConfig:
    """Settings of the swap correction (section ``swaps``; these defaults are the only defaults).

    Attributes:
        per_view: undo left/right swaps of single views before triangulation (needs 3 or more views).
        per_frame: undo frames whose left/right labels flipped in every view at once (needs 3 or more
            views: two triangulate too few left/right pairs to judge, and a wrong call flips every
            later frame).
        cap_px: per-joint reprojection errors are truncated here (one bad joint cannot decide).
        min_improvement_px: flip a view when the flipped labels' mean error is lower by this.
        min_joints: fewest left/right joints detected in the view (and triangulable) to decide; 3D:
            fewest left/right joints found (with their mirror) in both frames to decide a flip.
        min_score: detections below this score are ignored.
        min_improvement_m: 3D: flip a frame when flipped labels are closer to the previous frame by this
            (mean over the left/right joints).
        max_gap_frames: 3D: frames farther apart than this (between them none had enough joints) are
            not compared: the parity carries over.
    """

    per_view: bool = True
    per_frame: bool = True
    cap_px: float = 60.0
    min_improvement_px: float = 8.0
    min_joints: int = 4
    min_score: float = 0.2
    min_improvement_m: float = 0.03
    max_gap_frames: int = 12

    def __post_init__(self):
        if not (self.cap_px > 0 and self.min_improvement_px >= 0 and self.min_joints >= 1):
            raise ValueError("cap_px must be > 0, min_improvement_px >= 0 and min_joints >= 1")


def _rays(kp: np.ndarray, rig: Rig):
    """World ray directions (T, V, J, 3) (unnormalized) of the detections, and the centres (V, 3)."""
    dirs = []
    for v, cam in enumerate(rig):
        xn = cam.undistort_points(kp[:, v, :, :2], normalized=True)  # (T, J, 2)
        homog = np.concatenate([xn, np.ones(xn.shape[:-1] + (1,))], axis=-1)
        dirs.append(homog @ cam.R)  # R^T d, as row vectors
    return np.stack(dirs, axis=1), rig.centers


def _midpoint(ca, da, cb, db):
    """Midpoint of the closest points of two rays (..., 3); NaN for (nearly) parallel rays."""
    w0 = ca - cb
    a = np.sum(da * da, -1)
    b = np.sum(da * db, -1)
    c = np.sum(db * db, -1)
    d = np.sum(da * w0, -1)
    e = np.sum(db * w0, -1)
    den = a * c - b * b
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = den > 1e-12 * a * c
        s = np.where(ok, (b * e - c * d) / den, np.nan)
        t = np.where(ok, (a * e - b * d) / den, np.nan)
    return 0.5 * (ca + s[..., None] * da + cb + t[..., None] * db)


def detect_swaps_2d(keypoints2d: np.ndarray, rig: Rig, skeleton: Skeleton, cfg: SwapConfig = SwapConfig()):
    """(T, V) True where a view's detections have left and right exchanged; also the two costs (T, V)
    (labels as they are, labels flipped) in pixels, NaN where undecidable."""
    kp = np.asarray(keypoints2d, dtype=np.float64).copy()
    T, V, J, _ = kp.shape
    perm = skeleton.flip_permutation
    lr = np.flatnonzero(perm != np.arange(J))
    with np.errstate(invalid="ignore"):
        kp[~(kp[..., 2] >= cfg.min_score)] = np.nan
    cost_id = np.full((T, V), np.nan)
    cost_flip = np.full((T, V), np.nan)
    if V < 3 or lr.size == 0:
        return np.zeros((T, V), dtype=bool), cost_id, cost_flip
    rays, centers = _rays(kp[:, :, lr], rig)  # only the left/right joints
    for v in range(V):  # loops over views and view pairs only; frames and joints are vectorized
        others = [u for u in range(V) if u != v]
        detected = kp[:, v, lr, :2]
        detected_flip = kp[:, v, perm[lr], :2]
        best_id = np.full(T, np.inf)
        best_flip = np.full(T, np.inf)
        for a, b in combinations(others, 2):
            X = _midpoint(centers[a], rays[:, a], centers[b], rays[:, b])  # (T, L, 3)
            pred = rig[v].project(X)  # (T, L, 2)
            e_id = np.linalg.norm(pred - detected, axis=-1)
            e_flip = np.linalg.norm(pred - detected_flip, axis=-1)
            both = np.isfinite(e_id) & np.isfinite(e_flip)
            n = both.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                m_id = np.where(both, np.minimum(e_id, cfg.cap_px), 0.0).sum(1) / n
                m_flip = np.where(both, np.minimum(e_flip, cfg.cap_px), 0.0).sum(1) / n
            enough = n >= cfg.min_joints
            best_id = np.where(enough, np.fmin(best_id, m_id), best_id)
            best_flip = np.where(enough, np.fmin(best_flip, m_flip), best_flip)
        cost_id[:, v] = np.where(np.isfinite(best_id), best_id, np.nan)
        cost_flip[:, v] = np.where(np.isfinite(best_flip), best_flip, np.nan)
    with np.errstate(invalid="ignore"):
        swapped = cost_flip + cfg.min_improvement_px < cost_id
    return swapped, cost_id, cost_flip


def flip_views(keypoints2d: np.ndarray, swapped: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Keypoints (T, V, J, 3) with the joints of the (T, V) ``swapped`` views relabelled left <-> right."""
    kp = np.asarray(keypoints2d)
    flipped = kp[:, :, skeleton.flip_permutation]
    return np.where(np.asarray(swapped, dtype=bool)[:, :, None, None], flipped, kp)


def correct_swaps_2d(keypoints2d: np.ndarray, rig: Rig, skeleton: Skeleton, cfg: SwapConfig = SwapConfig(),
                     max_rounds: int | None = None):
    """Detect and undo per-view left/right swaps; returns (corrected keypoints (T, V, J, 3), swapped (T, V)).

    Greedy rounds: each round flips, in every frame, only the view whose flip helps most, then tests
    again. A swapped view can make the view opposite it look swapped too (the two are near mirror
    images); fixing the clearer one first removes that echo. At most ``max_rounds`` rounds
    (default V // 2). A view the multi-view test cannot judge (occlusions) is compared with its own
    corrected previous frame instead.
    """
    kp = np.array(keypoints2d, dtype=np.float64)  # a copy: corrected in place below
    if kp.ndim != 4 or kp.shape[1] != len(rig) or kp.shape[2] != skeleton.num_joints:
        raise ValueError(
            f"keypoints2d must be (T, {len(rig)}, {skeleton.num_joints}, 3) for this rig and skeleton, got {kp.shape}"
        )
    T, V = kp.shape[:2]
    swapped = np.zeros((T, V), dtype=bool)
    todo = np.ones(T, dtype=bool)
    for _ in range(max_rounds or max(V // 2, 1)):
        if not todo.any():
            break
        sub = np.flatnonzero(todo)
        wants, cost_id, cost_flip = detect_swaps_2d(kp[sub], rig, skeleton, cfg)
        gain = np.where(wants, cost_id - cost_flip, -np.inf)
        best = np.argmax(gain, axis=1)
        flip_now = np.zeros((len(sub), V), dtype=bool)
        flip_now[np.arange(len(sub)), best] = wants[np.arange(len(sub)), best]
        if not flip_now.any():
            break
        kp[sub] = flip_views(kp[sub], flip_now, skeleton)
        swapped[sub] ^= flip_now
        todo = np.zeros(T, dtype=bool)
        todo[sub[flip_now.any(axis=1)]] = True
    # Views the multi-view test cannot judge (too few left/right joints seen by enough views): follow
    # the view's own previous frame in 2D, where a joint moves far less than left and right are apart.
    _, cost_id, _ = detect_swaps_2d(kp, rig, skeleton, cfg)
    undecided = np.isnan(cost_id)
    undecided[0] = False
    perm = skeleton.flip_permutation
    lr = np.flatnonzero(perm != np.arange(kp.shape[2]))
    for t, v in zip(*np.nonzero(undecided)):  # rare (frame, view) pairs, in time order
        prev = kp[t - 1, v, lr, :2]
        e_id = np.linalg.norm(kp[t, v, lr, :2] - prev, axis=-1)
        e_flip = np.linalg.norm(kp[t, v, perm[lr], :2] - prev, axis=-1)
        both = np.isfinite(e_id) & np.isfinite(e_flip)
        if both.sum() >= cfg.min_joints // 2 + 1:
            m_id = np.minimum(e_id[both], cfg.cap_px).mean()
            m_flip = np.minimum(e_flip[both], cfg.cap_px).mean()
            if m_flip + cfg.min_improvement_px < m_id:
                kp[t, v] = kp[t, v, perm]
                swapped[t, v] = ~swapped[t, v]
    if swapped.any():
        log.info("left/right swaps corrected in %d (frame, view) of %d", int(swapped.sum()), swapped.size)
    return kp, swapped


def correct_swaps_3d(xyz: np.ndarray, skeleton: Skeleton, cfg: SwapConfig = SwapConfig()):
    """Undo frames whose 3D left/right labels flipped (all views swapped at once).

    Returns (corrected xyz (T, J, 3), flipped (T,) bool). Frames whose left/right joints are all NaN,
    or whose previous frame is, do not change the parity (the chain restarts with the majority).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    T, J, _ = xyz.shape
    perm = skeleton.flip_permutation
    lr = np.flatnonzero(perm != np.arange(J))
    if T < 2 or lr.size == 0:
        return xyz.copy(), np.zeros(T, dtype=bool)
    # Each frame is compared with the last frame that had enough left/right joints (with their
    # mirrors) and over the joints found in both, both ways: with two cameras many joints are
    # missing, and a mean over different joints, or a chain through a frame that decides nothing,
    # would flip the parity of every later frame.
    both_sides = np.all(np.isfinite(xyz[:, lr]), axis=-1) & np.all(np.isfinite(xyz[:, perm[lr]]), axis=-1)  # (T, L)
    valid = np.flatnonzero(both_sides.sum(axis=1) >= cfg.min_joints)
    parity = np.zeros(T, dtype=bool)
    if len(valid) >= 2:
        cur, prev = xyz[valid[1:]][:, lr], xyz[valid[:-1]][:, lr]
        cur_flip = xyz[valid[1:]][:, perm[lr]]
        e_id = np.linalg.norm(cur - prev, axis=-1)  # (K-1, L)
        e_flip = np.linalg.norm(cur_flip - prev, axis=-1)
        common = np.isfinite(e_id) & np.isfinite(e_flip)
        with quiet_nan_warnings():
            d_id = np.nanmean(np.where(common, e_id, np.nan), axis=1)
            d_flip = np.nanmean(np.where(common, e_flip, np.nan), axis=1)
        with np.errstate(invalid="ignore"):
            change = (d_flip + cfg.min_improvement_m < d_id) & (common.sum(axis=1) >= cfg.min_joints)
        # Across a long gap the body moves too much to tell (legs half a stride apart look swapped):
        # no decision, the parity carries over.
        change &= np.diff(valid) <= cfg.max_gap_frames
        chain = np.concatenate([[0], np.cumsum(change) % 2]).astype(bool)  # parity of the valid frames
        last_valid = np.clip(np.searchsorted(valid, np.arange(T), side="right") - 1, 0, None)
        parity = chain[last_valid]
    flipped = parity if parity.mean() < 0.5 else ~parity
    out = np.where(flipped[:, None, None], xyz[:, perm], xyz)
    if flipped.any():
        log.info("left/right labels flipped back in %d of %d frames (3D)", int(flipped.sum()), T)
    return out, flipped
