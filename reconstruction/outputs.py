"""What an offline reconstruction leaves in its output folder.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` bones.

- ``points3d.npz`` / ``.trc`` / ``.c3d``: the final 3D (via :mod:`reconstruction.points3d_io`);
- ``keypoints2d/<camera>.npz``: the 2D of each view (our keypoints NPZ, one view each);
- ``quality.json``: :func:`quality_report`;
- ``overlay_<camera>.mp4``: the skeleton reprojected on the colour image (:class:`OverlayWriter`);
- ``plot3d.png``: front, side and top views of the skeleton over time (:func:`plot3d_image`,
  OpenCV drawing: no matplotlib needed);
- ``reconstruction.yaml``: the resolved configuration (written by the pipeline).

Every file is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from capture.atomic import atomic_write_bytes, atomic_write_text  # noqa: F401  (pipeline uses both)

log = logging.getLogger(__name__)

_COLORS = [(0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255), (255, 255, 0), (128, 128, 255)]


def _nan_stat(fn, values, **kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(values, **kw)


def _num(x) -> float | None:
    x = float(x)
    return round(x, 6) if np.isfinite(x) else None


def reprojection_errors(xyz: np.ndarray, keypoints2d: np.ndarray, rig, min_score: float = 0.3) -> np.ndarray:
    """(T, V, J) pixel distance between each 2D detection with score >= ``min_score`` and the 3D
    joint reprojected into that view; NaN where either is missing."""
    uv = np.moveaxis(rig.project(xyz), -2, 1)  # (T, V, J, 2)
    err = np.linalg.norm(uv - keypoints2d[..., :2], axis=-1)
    with np.errstate(invalid="ignore"):
        return np.where(keypoints2d[..., 2] >= min_score, err, np.nan)


def quality_report(
    xyz: np.ndarray,
    keypoints2d: np.ndarray,
    rig,
    skeleton,
    fps: float,
    disagreement_m: np.ndarray | None = None,
    depth_only_joints: int = 0,
    min_score: float = 0.3,
    extra: dict | None = None,
) -> dict:
    """Quality figures of a reconstruction, as a JSON-ready dict.

    - completeness: fraction of (frame, joint) with a 3D point, overall and per joint;
    - reprojection error (px) per camera: median and mean over detections with score >= ``min_score``;
    - bone-length standard deviation (m) per rigid bone and its median;
    - depth vs triangulation disagreement (m) per joint: median over frames (when depth was fused).
    """
    T, J, _ = xyz.shape
    finite = np.all(np.isfinite(xyz), axis=-1)
    err = reprojection_errors(xyz, keypoints2d, rig, min_score)
    per_camera = {
        cam.name: {
            "median_px": _num(_nan_stat(np.nanmedian, err[:, v])) if np.isfinite(err[:, v]).any() else None,
            "mean_px": _num(_nan_stat(np.nanmean, err[:, v])) if np.isfinite(err[:, v]).any() else None,
            "detections": int(np.isfinite(err[:, v]).sum()),
        }
        for v, cam in enumerate(rig.cameras)
    }
    lengths = skeleton.bone_lengths(xyz)  # (T, B)
    std = _nan_stat(np.nanstd, lengths, axis=0) if T else np.full(len(skeleton.bones), np.nan)
    rigid = skeleton.rigid_mask
    report = {
        "frames": int(T),
        "fps": float(fps),
        "joints": list(skeleton.joint_names),
        "completeness": _num(finite.mean()) if finite.size else 0.0,
        "completeness_per_joint": {n: _num(finite[:, j].mean()) for j, n in enumerate(skeleton.joint_names)}
        if T else {},
        "reprojection_error_px": {
            "median": _num(_nan_stat(np.nanmedian, err)) if np.isfinite(err).any() else None,
            "mean": _num(_nan_stat(np.nanmean, err)) if np.isfinite(err).any() else None,
            "min_score": min_score,
            "per_camera": per_camera,
        },
        "bone_length_std_m": {
            "median_rigid": _num(_nan_stat(np.nanmedian, std[rigid])) if rigid.any() else None,
            "per_bone": {f"{a}-{b}": _num(s) for (a, b), s in zip(skeleton.bones, std)},
        },
    }
    if disagreement_m is not None:
        report["depth_vs_triangulation_m"] = {
            "median": _num(_nan_stat(np.nanmedian, disagreement_m)) if np.isfinite(disagreement_m).any() else None,
            "per_joint": {n: _num(_nan_stat(np.nanmedian, disagreement_m[:, j])) if np.isfinite(
                disagreement_m[:, j]).any() else None for j, n in enumerate(skeleton.joint_names)},
            "depth_only_joint_frames": int(depth_only_joints),
        }
    if extra:
        report.update(extra)
    return report


def write_quality(path: Path, report: dict) -> Path:
    """``report`` as strict JSON (NaN and infinities become null)."""
    return atomic_write_text(path, json.dumps(_finite_or_null(report), indent=2, allow_nan=False) + "\n")


def _finite_or_null(value):
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_keypoints_per_view(out_dir: Path, kp) -> list[Path]:
    """One keypoints NPZ per view ``out_dir/<camera>.npz`` from a ``Keypoints2D`` (T, V, J, 3)."""
    from reconstruction.keypoints2d_io import write_keypoints2d

    paths = []
    for v, name in enumerate(kp.cameras):
        single = replace(kp, keypoints=kp.keypoints[:, v : v + 1], cameras=(name,))
        paths.append(write_keypoints2d(Path(out_dir) / f"{_safe(name)}.npz", single))
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def draw_skeleton(image: np.ndarray, uv: np.ndarray, bones: np.ndarray, color, radius: int = 3,
                  thickness: int = 2) -> np.ndarray:
    """Draw joints ``uv`` (J, 2) and ``bones`` (B, 2) on a BGR image in place; NaN joints skipped."""
    import cv2

    ok = np.all(np.isfinite(uv), axis=-1)
    h, w = image.shape[:2]
    ok &= np.all(np.abs(np.nan_to_num(uv)) < 4 * max(h, w), axis=-1)
    p = np.round(np.nan_to_num(uv)).astype(np.int32)
    for a, b in bones:  # a handful of lines per frame
        if ok[a] and ok[b]:
            cv2.line(image, tuple(map(int, p[a])), tuple(map(int, p[b])), color, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(image, tuple(map(int, p[j])), radius, color, -1, cv2.LINE_AA)
    return image


class OverlayWriter:
    """mp4 of one view: the colour image with the detections (thin, grey) and the 3D skeleton
    reprojected (coloured). Feed frames in order with :meth:`write`; :meth:`close` renames the file
    into place. ``max_width`` scales big frames down (smaller files)."""

    def __init__(self, path: Path, camera, bones: np.ndarray, fps: float, max_width: int = 960):
        self.path = Path(path)
        self.camera = camera
        self.bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
        self.fps = float(fps)
        self.scale = min(1.0, max_width / camera.width)
        self._writer = None
        self._tmp = None
        self.frames = 0

    def _open(self, shape):
        import cv2

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        h, w = shape[:2]
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        if not self._writer.isOpened():
            raise OSError(f"{self.path}: OpenCV cannot write mp4 here")

    def write(self, color_rgb: np.ndarray | None, xyz: np.ndarray, detections: np.ndarray | None = None):
        """One frame: ``color_rgb`` (H, W, 3) uint8 RGB (None: black), ``xyz`` (J, 3), detections (J, 3)."""
        import cv2

        w, h = self.camera.image_size
        if color_rgb is None:
            image = np.zeros((h, w, 3), np.uint8)
        else:
            image = cv2.cvtColor(np.ascontiguousarray(color_rgb), cv2.COLOR_RGB2BGR)
        if detections is not None:
            draw_skeleton(image, detections[:, :2], self.bones, (160, 160, 160), radius=2, thickness=1)
        uv = self.camera.project(xyz)
        draw_skeleton(image, uv, self.bones, (0, 220, 255), radius=4, thickness=2)
        if self.scale < 1.0:
            image = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        if self._writer is None:
            self._open(image.shape)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        if self._writer is None:
            return None
        self._writer.release()
        os.replace(self._tmp, self.path)
        self._writer = None
        return self.path

    def abort(self):
        if self._writer is not None:
            self._writer.release()
            self._tmp.unlink(missing_ok=True)
            self._writer = None


def plot3d_image(xyz: np.ndarray, skeleton, path: Path, title: str = "", num_poses: int = 6,
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
            draw_skeleton(canvas, to_px(xyz[t]), bones, _COLORS[i % len(_COLORS)], radius=2, thickness=2)
    if title:
        cv2.putText(canvas, title, (margin, canvas.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", canvas)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the PNG")
    return atomic_write_bytes(path, buf.tobytes())


def write_points(out_dir: Path, xyz: np.ndarray, joint_names, fps: float, quality: dict, formats=("npz", "trc", "c3d"),
                 stem: str = "points3d") -> list[Path]:
    """The final 3D as ``<stem>.npz|.trc|.c3d`` in ``out_dir``."""
    from reconstruction.points3d_io import Points3D, write_points3d

    points = Points3D(xyz=xyz, joint_names=tuple(joint_names), fps=fps, quality=quality)
    return [write_points3d(Path(out_dir) / f"{stem}.{ext}", points) for ext in formats]
