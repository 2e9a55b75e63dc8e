"""Overlay videos: each view's colour image with its 2D detections and the 3D skeleton reprojected."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Camera
from capture.atomic import PendingFile
from reconstruction.visual.drawing import draw_skeleton


class OverlayWriter:
    """mp4 of one view: the colour image with the detections (thin, grey) and the 3D skeleton
    reprojected (coloured). Feed frames in order with :meth:`write`; :meth:`close` renames the file
    into place. ``max_width`` scales big frames down (smaller files)."""

    def __init__(self, path: Path, camera: Camera, bones: np.ndarray, fps: float, max_width: int = 960):
        self.path = Path(path)
        self.camera = camera
        self.bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
        self.fps = float(fps)
        self.scale = min(1.0, max_width / camera.width)
        self._writer = None
        self._file: PendingFile | None = None  # renamed into place (usual permissions) on close
        self.frames = 0

    def _open(self, shape):
        import cv2

        self._file = PendingFile(self.path)
        h, w = shape[:2]
        self._writer = cv2.VideoWriter(str(self._file.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        if not self._writer.isOpened():
            self.abort()
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
        """Finish the file and rename it into place; None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        return self._file.commit()

    def abort(self) -> None:
        """Drop the file being written."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._file is not None:
            self._file.discard()
            self._file = None
