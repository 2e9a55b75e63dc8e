"""Synthetic rigs with known geometry, for the simulator, tests and benchmarks."""
from __future__ import annotations

import numpy as np

from calibration.camera import Camera, Rig

# RealSense colour-camera intrinsics typical of the models at the given resolution (fx, fy, cx, cy).
REALSENSE_PRESETS = {
    "D435": {"image_size": (640, 480), "fx": 615.0, "fy": 615.0, "cx": 320.0, "cy": 240.0},
    "D435_848": {"image_size": (848, 480), "fx": 615.0, "fy": 615.0, "cx": 424.0, "cy": 240.0},
    "D455": {"image_size": (640, 480), "fx": 385.0, "fy": 385.0, "cx": 320.0, "cy": 240.0},
    "D455_848": {"image_size": (848, 480), "fx": 425.0, "fy": 425.0, "cx": 424.0, "cy": 240.0},
}


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])):
    """Rotation R (3, 3) and translation t (3,) (world -> camera, OpenCV axes: x right, y down,
    z forward) of a camera at ``eye`` looking at ``target``; world ``up`` is Z by default."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along up: pick any right
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ eye


def ring_rig(
    num_cameras: int = 4,
    radius: float = 3.0,
    height: float = 1.5,
    target: tuple[float, float, float] = (0.0, 0.0, 1.0),
    preset: str = "D435",
    dist: tuple[float, ...] = (),
    rng: np.random.Generator | None = None,
    jitter: float = 0.0,
) -> Rig:
    """``num_cameras`` cameras evenly on a circle of ``radius`` m at ``height`` m (world Z up),
    each looking at ``target``. ``jitter`` (m) perturbs positions with ``rng``; ``dist`` sets
    the distortion of every camera (OpenCV order)."""
    spec = REALSENSE_PRESETS[preset]
    K = np.array([[spec["fx"], 0, spec["cx"]], [0, spec["fy"], spec["cy"]], [0, 0, 1.0]])
    rng = rng or np.random.default_rng(0)
    cameras = []
    for i in range(num_cameras):
        angle = 2 * np.pi * i / num_cameras
        eye = np.array([radius * np.cos(angle), radius * np.sin(angle), height])
        if jitter:
            eye = eye + rng.normal(scale=jitter, size=3)
        R, t = look_at(eye, np.asarray(target))
        cameras.append(Camera(f"cam{i}", spec["image_size"], K, np.asarray(dist, dtype=float), R, t, serial=f"9000000{i:05d}"))
    return Rig(tuple(cameras))
