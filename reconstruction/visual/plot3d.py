"""``plot3d.png``: front, side and top views of the skeleton over time (OpenCV drawing)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from capture.atomic import atomic_write_bytes
from reconstruction.skeleton import Skeleton
from reconstruction.visual.drawing import PALETTE, draw_skeleton


def plot3d_image(xyz: np.ndarray, skeleton: Skeleton, path: Path, title: str = "", num_poses: int = 6,
                 panel_px: int = 420, truth: np.ndarray | None = None) -> Path:
    """PNG with three orthographic panels (front X-Z, side Y-Z, top X-Y, world metres, Z up) showing
    ``num_poses`` skeletons spread over the sequence and each joint's trajectory; ``truth`` (T, J, 3)
    is drawn in grey underneath when given."""
    import cv2

    T = xyz.shape[0]
    finite = np.all(np.isfinite(xyz), axis=-1)
    pts = xyz[finite] if finite.any() else np.zeros((1, 3))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = (lo + hi) / 2
    span = max(float(np.max(hi - lo)), 0.5) * 1.15
    margin = 30
    panels = [("front (X right, Z up)", 0, 2), ("side (Y right, Z up)", 1, 2), ("top (X right, Y up)", 0, 1)]
    canvas = np.full((panel_px + 2 * margin, 3 * panel_px + 4 * margin, 3), 255, np.uint8)
    bones = skeleton.bone_indices
    frames = np.unique(np.linspace(0, max(T - 1, 0), num=min(num_poses, max(T, 1))).round().astype(int))
    for k, (label, ax_x, ax_y) in enumerate(panels):
        x0 = margin + k * (panel_px + margin)
        y0 = margin

        def to_px(p, ax_x=ax_x, ax_y=ax_y, x0=x0, y0=y0):
            u = x0 + (p[..., ax_x] - center[ax_x] + span / 2) / span * panel_px
            v = y0 + (center[ax_y] + span / 2 - p[..., ax_y]) / span * panel_px
            return np.stack([u, v], axis=-1)

        cv2.rectangle(canvas, (x0, y0), (x0 + panel_px, y0 + panel_px), (200, 200, 200), 1)
        cv2.putText(canvas, label, (x0 + 4, y0 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
        # 0.5 m grid
        for g in np.arange(np.floor((center[ax_x] - span / 2) * 2) / 2, center[ax_x] + span / 2, 0.5):
            u = int(round(to_px(np.array([g if i == ax_x else center[i] for i in range(3)]))[0]))
            if x0 <= u <= x0 + panel_px:
                cv2.line(canvas, (u, y0), (u, y0 + panel_px), (235, 235, 235), 1)
        if truth is not None:
            for t in frames:
                draw_skeleton(canvas, to_px(truth[t]), bones, (190, 190, 190), radius=2, thickness=1)
        for j in range(xyz.shape[1]):  # trajectories, one polyline per joint
            traj = to_px(xyz[:, j])
            ok = np.all(np.isfinite(traj), axis=-1)
            if ok.sum() > 1:
                cv2.polylines(canvas, [np.round(traj[ok]).astype(np.int32)], False, (225, 225, 225), 1, cv2.LINE_AA)
        for i, t in enumerate(frames):
            draw_skeleton(canvas, to_px(xyz[t]), bones, PALETTE[i % len(PALETTE)], radius=2, thickness=2)
    if title:
        cv2.putText(canvas, title, (margin, canvas.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", canvas)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the PNG")
    return atomic_write_bytes(path, buf.tobytes())
