"""Pinhole intrinsics of one stream as RealSense states them, shared by the readers and the writer.

A calibrated :class:`calibration.camera.Camera` converts with :meth:`StreamIntrinsics.from_camera`
(the one conversion; capture does not import calibration, so it reads the camera's fields).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StreamIntrinsics:
    """Pinhole intrinsics of one stream, in RealSense terms (pixels; ``coeffs`` in the SDK order,
    which for ``brown_conrady`` is OpenCV's k1, k2, p1, p2, k3)."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: str = "brown_conrady"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if len(self.coeffs) != 5:
            raise ValueError(f"coeffs must have 5 values, got {len(self.coeffs)}")

    @property
    def K(self) -> np.ndarray:
        """Camera matrix (3, 3)."""
        return np.array([[self.fx, 0.0, self.ppx], [0.0, self.fy, self.ppy], [0.0, 0.0, 1.0]])

    def to_rs(self):
        import pyrealsense2 as rs

        intr = rs.intrinsics()
        intr.width, intr.height = int(self.width), int(self.height)
        intr.fx, intr.fy, intr.ppx, intr.ppy = float(self.fx), float(self.fy), float(self.ppx), float(self.ppy)
        try:
            intr.model = getattr(rs.distortion, self.model)
        except AttributeError:
            raise ValueError(f"unknown distortion model {self.model!r} (see pyrealsense2.distortion)") from None
        intr.coeffs = [float(c) for c in self.coeffs]
        return intr

    @classmethod
    def from_camera(cls, camera) -> "StreamIntrinsics":
        """The intrinsics of a calibrated camera (anything with ``width``, ``height``, ``K`` (3, 3) and
        ``dist`` in OpenCV order): its first five distortion terms, which is all RealSense stores."""
        coeffs = np.zeros(5)
        dist = np.asarray(camera.dist, dtype=np.float64).ravel()
        coeffs[: min(dist.size, 5)] = dist[:5]
        K = np.asarray(camera.K, dtype=np.float64)
        return cls(int(camera.width), int(camera.height), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
                   float(K[1, 2]), "brown_conrady", tuple(float(c) for c in coeffs))

    @classmethod
    def from_rs(cls, intr) -> "StreamIntrinsics":
        return cls(
            int(intr.width), int(intr.height), float(intr.fx), float(intr.fy), float(intr.ppx), float(intr.ppy),
            str(intr.model).split(".")[-1], tuple(float(c) for c in intr.coeffs),
        )
