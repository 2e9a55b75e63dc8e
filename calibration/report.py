"""Calibration quality report: numbers (JSON + text), a coverage image per camera, a layout plot.

Drawn with OpenCV only (no matplotlib dependency).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.camera import Rig
from capture.atomic import atomic_write_bytes, atomic_write_text
from capture.json_io import write_json
from capture.names import safe_file_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CameraReport:
    """One camera: images read, images with the board, images used, RMS reprojection error (px)."""

    name: str
    image_size: tuple[int, int]
    images: int
    detections: int
    used: int
    rms: float
    intrinsics: str  # "board", "fixed" or "factory"
    intrinsics_rms: float = float("nan")


@dataclass(frozen=True, eq=False)
class CalibrationReport:
    """What a calibration did and how good it is.

    Attributes:
        board: description of the board.
        cameras: one :class:`CameraReport` per camera, rig order.
        rms: RMS reprojection error (px) over every used corner.
        initial_rms: the same before bundle adjustment (NaN for intrinsics only).
        frame_rms: {frame: RMS px} over the cameras that saw that frame.
        camera_frame_rms: {camera: {frame: RMS px}}.
        rejected: (camera, image, reason) of every image left out.
        links: (camera a, camera b, shared frames) of the pose-graph links chained.
        intrinsics_only: no extrinsics were computed (every camera at the origin).
        world: how the world frame was chosen.
        detections: {camera: {frame: Detection}}, for the coverage images.
    """

    board: str
    cameras: tuple
    rms: float
    initial_rms: float = float("nan")
    frame_rms: dict = field(default_factory=dict)
    camera_frame_rms: dict = field(default_factory=dict)
    rejected: tuple = ()
    links: tuple = ()
    intrinsics_only: bool = False
    world: str = "first camera"
    detections: dict = field(default_factory=dict)
    board_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def to_dict(self) -> dict:
        return {
            "board": self.board,
            "rms_px": _num(self.rms),
            "initial_rms_px": _num(self.initial_rms),
            "intrinsics_only": self.intrinsics_only,
            "world": self.world,
            "cameras": [
                {"name": c.name, "image_size": list(c.image_size), "images": c.images, "detections": c.detections,
                 "used": c.used, "rms_px": _num(c.rms), "intrinsics": c.intrinsics, "intrinsics_rms_px": _num(c.intrinsics_rms)}
                for c in self.cameras
            ],
            "frame_rms_px": {f: _num(v) for f, v in self.frame_rms.items()},
            "camera_frame_rms_px": {c: {f: _num(v) for f, v in d.items()} for c, d in self.camera_frame_rms.items()},
            "rejected": [{"camera": c, "image": i, "reason": r} for c, i, r in self.rejected],
            "links": [{"a": a, "b": b, "shared_frames": n} for a, b, n in self.links],
        }

    def summary(self) -> str:
        lines = [f"board: {self.board}",
                 f"RMS reprojection error: {self.rms:.3f} px" + ("" if np.isnan(self.initial_rms) else f" (before bundle adjustment {self.initial_rms:.3f} px)"),
                 "intrinsics only: every camera at the origin" if self.intrinsics_only else f"world frame: {self.world}",
                 "", f"{'camera':<16} {'size':>11} {'images':>6} {'board':>6} {'used':>5} {'RMS px':>7}  intrinsics"]
        for c in self.cameras:
            lines.append(f"{c.name:<16} {c.image_size[0]:>5}x{c.image_size[1]:<5} {c.images:>6} {c.detections:>6} "
                         f"{c.used:>5} {c.rms:>7.3f}  {c.intrinsics}")
        if self.links:
            lines += ["", "pose graph links (camera a - camera b: shared frames):"]
            lines += [f"  {a} - {b}: {n}" for a, b, n in self.links]
        lines += ["", f"rejected images: {len(self.rejected)}"]
        lines += [f"  {c}/{i}: {r}" for c, i, r in self.rejected]
        return "\n".join(lines) + "\n"


def _num(value: float):
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if ok:
        atomic_write_bytes(path, buf.tobytes())


def coverage_image(detections: dict, image_size: tuple[int, int], max_side: int = 640) -> np.ndarray:
    """BGR image: the outline of the board in every used view, and its corners, on black."""
    import cv2

    w, h = image_size
    scale = min(1.0, max_side / max(w, h))
    out = np.zeros((int(round(h * scale)), int(round(w * scale)), 3), np.uint8)
    heat = np.zeros(out.shape[:2], np.float32)
    for det in detections.values():
        if det is None or not det.found:
            continue
        pts = det.corners * scale
        hull = cv2.convexHull(pts.astype(np.float32)).astype(np.int32)
        mask = np.zeros_like(heat)
        cv2.fillConvexPoly(mask, hull, 1.0)
        heat += mask
    if heat.max() > 0:
        heat = (255 * heat / heat.max()).astype(np.uint8)
        out = cv2.applyColorMap(heat, cv2.COLORMAP_VIRIDIS)
        out[heat == 0] = 0
    for det in detections.values():
        if det is not None and det.found:
            for x, y in det.corners * scale:
                cv2.circle(out, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
    return out


def layout_image(rig: Rig, board_positions: np.ndarray | None = None, size: int = 800) -> np.ndarray:
    """BGR top view (world X right, Y up) and side view (X right, Z up) of the camera centres with
    their viewing directions, and the board positions as grey dots."""
    import cv2

    centres = rig.centers
    forward = np.stack([c.R[2] for c in rig])  # optical axis in world
    pts = [centres]
    if board_positions is not None and len(board_positions):
        pts.append(board_positions)
    allp = np.concatenate(pts)
    span = float(np.max(np.ptp(allp, axis=0))) if len(allp) > 1 else 1.0
    span = max(span, 0.5)
    arrow = 0.15 * span
    panel = size // 2
    image = np.full((panel + 40, size, 3), 255, np.uint8)
    for k, (ax0, ax1, title) in enumerate(((0, 1, "top view (X right, Y up)"), (0, 2, "side view (X right, Z up)"))):
        lo = allp[:, [ax0, ax1]].min(axis=0) - 0.25 * span
        hi = allp[:, [ax0, ax1]].max(axis=0) + 0.25 * span
        s = (panel - 20) / float(np.max(hi - lo))
        ox = k * panel + 10

        def to_px(p):
            return (int(round(ox + (p[0] - lo[0]) * s)), int(round(30 + panel - 20 - (p[1] - lo[1]) * s)))

        cv2.putText(image, title, (ox, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(image, (ox - 5, 25), (ox + panel - 15, 25 + panel), (200, 200, 200), 1)
        if board_positions is not None:
            for p in board_positions:
                cv2.circle(image, to_px(p[[ax0, ax1]]), 2, (160, 160, 160), -1)
        for name, c, f in zip(rig.names, centres, forward):
            a, b = to_px(c[[ax0, ax1]]), to_px((c + arrow * f)[[ax0, ax1]])
            cv2.arrowedLine(image, a, b, (200, 80, 0), 2, cv2.LINE_AA, tipLength=0.25)
            cv2.circle(image, a, 5, (0, 0, 220), -1)
            cv2.putText(image, name, (a[0] + 6, a[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def write_report(folder: str | Path, rig: Rig, report: CalibrationReport) -> Path:
    """Write report.json, report.txt, coverage_<camera>.png and (with extrinsics) layout.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "report.json", report.to_dict())
    atomic_write_text(folder / "report.txt", report.summary())
    write_json(folder / "rejected.json", [{"camera": c, "image": i, "reason": r} for c, i, r in report.rejected])
    for cam in rig:
        dets = report.detections.get(cam.name, {})
        _write_png(folder / f"coverage_{safe_file_name(cam.name)}.png", coverage_image(dets, cam.image_size))
    if not report.intrinsics_only:
        _write_png(folder / "layout.png", layout_image(rig, report.board_positions))
    log.info("calibration report written to %s", folder)
    return folder
