"""Person boxes per view for the top-down 2D models.

A box is ``(x, y, w, h)`` in image pixels (pixel centres at integers), NaN when there is none.
Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` images. Sources:

- :func:`boxes_from_keypoints`: around the previous frame's 2D joints (MoveNet's own tracking);
- :func:`boxes_from_multipose`: the best person of MoveNet MultiPose on the whole frame;
- :func:`boxes_from_depth`: the foreground of a depth image against a background depth model
  (RGB-D rigs; no weights);
- :func:`boxes_from_skeleton3d`: the previous 3D skeleton projected into every view;
- :func:`smooth_boxes`: NaN-aware moving average over time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from capture.nan_warnings import quiet_nan_warnings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxConfig:
    """How boxes are made from joints: ``margin`` (fraction of the joints' extent added on each
    side), ``min_score`` of a joint to count, ``min_joints`` for a box at all, ``min_size`` px."""

    margin: float = 0.25
    min_score: float = 0.2
    min_joints: int = 4
    min_size: float = 64.0


def _extent_boxes(xy: np.ndarray, ok: np.ndarray, cfg: BoxConfig) -> np.ndarray:
    """``xy (..., J, 2)``, ``ok (..., J)`` -> boxes ``(..., 4)`` around the ok joints plus margin."""
    inf = np.inf
    x0 = np.where(ok, xy[..., 0], inf).min(axis=-1)
    y0 = np.where(ok, xy[..., 1], inf).min(axis=-1)
    x1 = np.where(ok, xy[..., 0], -inf).max(axis=-1)
    y1 = np.where(ok, xy[..., 1], -inf).max(axis=-1)
    with np.errstate(invalid="ignore"):  # inf - inf where no joint qualifies: masked below
        w, h = x1 - x0, y1 - y0
        side = np.maximum(np.maximum(w, h) * (1 + 2 * cfg.margin), cfg.min_size)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        boxes = np.stack([cx - side / 2, cy - side / 2, side, side], axis=-1)
    enough = ok.sum(axis=-1) >= cfg.min_joints
    return np.where(enough[..., None], boxes, np.nan)


def boxes_from_keypoints(keypoints: np.ndarray, cfg: BoxConfig = BoxConfig()) -> np.ndarray:
    """Square boxes ``(..., 4)`` around 2D joints ``(..., J, 3)`` scoring at least ``cfg.min_score``;
    NaN where fewer than ``cfg.min_joints`` joints qualify."""
    kp = np.asarray(keypoints, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(kp[..., :2]).all(axis=-1) & (np.nan_to_num(kp[..., 2], nan=-1) >= cfg.min_score)
    return _extent_boxes(kp[..., :2], ok, cfg)


def boxes_from_multipose(people_boxes: np.ndarray, previous: np.ndarray | None = None,
                         min_score: float = 0.2) -> np.ndarray:
    """Pick one person per image from MultiPose boxes ``(B, P, 5)`` (x0, y0, x1, y1, score) ->
    ``(B, 4)`` x, y, w, h: the best-scoring one, or the one overlapping ``previous (B, 4)`` most."""
    pb = np.asarray(people_boxes, dtype=np.float64)
    valid = pb[..., 4] >= min_score
    xywh = np.stack([pb[..., 0], pb[..., 1], pb[..., 2] - pb[..., 0], pb[..., 3] - pb[..., 1]], axis=-1)
    rank = np.where(valid, pb[..., 4], -np.inf)
    if previous is not None:
        iou = box_iou(xywh, np.asarray(previous, dtype=np.float64)[:, None, :])
        rank = np.where(valid, np.nan_to_num(iou, nan=0.0) + 1e-3 * pb[..., 4], -np.inf)
    best = rank.argmax(axis=1)
    out = xywh[np.arange(len(pb)), best]
    return np.where(valid.any(axis=1)[:, None], out, np.nan)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of ``(..., 4)`` x, y, w, h boxes (broadcasting)."""
    ix = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ix * iy
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


@dataclass(frozen=True, eq=False)
class BackgroundDepth:
    """Per-pixel background depth ``depth (H, W)`` in metres (NaN where never measured)."""

    depth: np.ndarray

    @classmethod
    def from_frames(cls, depth_frames: np.ndarray, depth_scale: float = 1.0) -> "BackgroundDepth":
        """Median over ``(T, H, W)`` raw depth frames of the empty scene (0 = no measurement)."""
        d = np.asarray(depth_frames, dtype=np.float64) * depth_scale
        d = np.where(d > 0, d, np.nan)
        with quiet_nan_warnings():  # all-NaN pixels (never measured) stay NaN, silently
            return cls(depth=np.nanmedian(d, axis=0))


def boxes_from_depth(depth: np.ndarray, background: BackgroundDepth, depth_scale: float = 1.0,
                     min_difference_m: float = 0.15, min_pixels: int = 500, margin: float = 0.1) -> np.ndarray:
    """Boxes ``(B, 4)`` around the largest foreground blob of ``depth (B, H, W)`` (raw units x
    ``depth_scale`` = metres): pixels nearer than the background by ``min_difference_m`` (or
    measured where the background never was). NaN where no blob has ``min_pixels``."""
    import cv2

    d = np.asarray(depth, dtype=np.float64) * depth_scale
    if d.ndim == 2:
        d = d[None]
    bg = background.depth
    if bg.shape != d.shape[1:]:
        raise ValueError(f"depth frames are {d.shape[1:]} but the background model is {bg.shape}")
    with np.errstate(invalid="ignore"):
        fg = (d > 0) & (np.isnan(bg) | (d < bg - min_difference_m))
    out = np.full((len(d), 4), np.nan)
    kernel = np.ones((5, 5), np.uint8)
    for i, m in enumerate(fg):  # connected components are per image (OpenCV)
        m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        if n <= 1:
            continue
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[k, cv2.CC_STAT_AREA] < min_pixels:
            continue
        x, y, w, h = stats[k, :4].astype(np.float64)
        out[i] = [x - 0.5 - margin * w, y - 0.5 - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)]
    return out


def boxes_from_skeleton3d(points3d: np.ndarray, rig, cfg: BoxConfig = BoxConfig(margin=0.15, min_score=0.0)) -> np.ndarray:
    """Project a 3D skeleton ``(J, 3)`` metres (NaN joints ignored) into every camera of ``rig``:
    boxes ``(V, 4)`` around the projections (3D-guided crops); NaN for a view that sees fewer
    than ``cfg.min_joints`` joints in front of it."""
    X = np.asarray(points3d, dtype=np.float64).reshape(-1, 3)
    ok3 = np.isfinite(X).all(axis=1)
    boxes = []
    for cam in rig.cameras:  # one projection per camera (each has its own model)
        Xc = X @ np.asarray(cam.R).T + np.asarray(cam.t)
        in_front = ok3 & (np.nan_to_num(Xc[:, 2], nan=-1) > 1e-6)
        uv = np.full((len(X), 2), np.nan)
        if in_front.any():
            uv[in_front] = cam.project(X[in_front])
        boxes.append(_extent_boxes(uv, in_front, cfg))
    return np.stack(boxes)


def smooth_boxes(boxes: np.ndarray, window: int = 5) -> np.ndarray:
    """NaN-aware centred moving average of ``boxes (T, ..., 4)`` over ``window`` frames (odd).
    A frame with no box stays NaN; its neighbours are averaged from the frames that have one."""
    b = np.asarray(boxes, dtype=np.float64)
    if window <= 1 or len(b) == 0:
        return b.copy()
    half = window // 2
    ok = np.isfinite(b)
    vals = np.where(ok, b, 0.0)
    pad = [(half, half)] + [(0, 0)] * (b.ndim - 1)
    cs = np.cumsum(np.pad(vals, pad), axis=0)
    cn = np.cumsum(np.pad(ok.astype(np.float64), pad), axis=0)
    zero = np.zeros((1,) + b.shape[1:])
    cs, cn = np.concatenate([zero, cs]), np.concatenate([zero, cn])
    s = cs[window:] - cs[:-window]
    n = cn[window:] - cn[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / n
    return np.where(ok, out, np.nan)
