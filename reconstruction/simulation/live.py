"""The live simulation loop: software cameras that show a rendered person in real time
(``mocap capture --simulate N``), their ground truth, and simulated 2D for the live view.

Shapes: ``V`` cameras, ``L`` frames of the rendered loop, ``T`` frames recorded, ``J`` joints.
The cameras themselves are capture's :class:`capture.simulated_cameras.SimulatedBackend` (the same
device interface as the RealSense backend); this module renders what they show.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.camera import Rig
from capture.intrinsics import StreamIntrinsics
from reconstruction.skeleton import Skeleton


@dataclass(frozen=True, eq=False)
class RenderedLoop:
    """A loop of a moving person as every camera of a rig sees it.

    Attributes:
        color: (V, L, H, W, 3) uint8 RGB; depth: (V, L, H, W) uint16 (``depth_scale`` metres per unit).
        xyz: (L, J, 3) world metres; keypoints2d: (L, V, J, 3) true 2D (score 1 visible, 0 occluded).
        intrinsics: (V,) each camera's stream intrinsics; skeleton; depth_scale.
    """

    color: np.ndarray
    depth: np.ndarray
    xyz: np.ndarray
    keypoints2d: np.ndarray
    intrinsics: tuple[StreamIntrinsics, ...]
    skeleton: Skeleton
    depth_scale: float


def render_loop(rig: Rig, fps: int, loop_seconds: float, seed: int = 0, skeleton: str = "coco17") -> RenderedLoop:
    """Pre-render a loop of a walking person (procedural motion) for every camera of ``rig``."""
    from reconstruction.simulation.motion import procedural_motion
    from reconstruction.simulation.render import CameraRenderer, RenderSettings, body_model
    from reconstruction.skeleton import load_skeleton

    sk = load_skeleton(skeleton)
    L = max(int(round(loop_seconds * fps)), 1)
    rng = np.random.default_rng(seed)
    xyz = procedural_motion(sk, L, fps, rng)
    settings = RenderSettings()
    body = body_model(sk)
    V = len(rig)
    H, W = rig.cameras[0].height, rig.cameras[0].width
    color = np.empty((V, L, H, W, 3), np.uint8)
    depth = np.empty((V, L, H, W), np.uint16)
    kp = np.full((L, V, sk.num_joints, 3), np.nan)
    for v, cam in enumerate(rig):
        renderer = CameraRenderer(cam, body, settings)
        for k in range(L):
            frame = renderer.render(xyz[k], rng)
            color[v, k], depth[v, k], kp[k, v] = frame.color, frame.depth, frame.keypoints2d
    return RenderedLoop(color, depth, xyz, kp, tuple(StreamIntrinsics.from_camera(c) for c in rig), sk,
                        settings.depth_scale)


def simulated_backend(num_cameras: int, config):
    """A :class:`~capture.simulated_cameras.SimulatedBackend` of ``num_cameras`` cameras on a ring
    (``config.defaults`` sets resolution and fps; ``config.simulation`` the clocks and faults), its
    rig, the rendered loop and the cameras' timings."""
    from capture.errors import ConfigError
    from capture.simulated_cameras import SimulatedBackend, realistic_timings
    from reconstruction.simulation.session import SimulationConfig, build_rig

    if num_cameras < 1:
        raise ConfigError(f"--simulate needs at least 1 camera, got {num_cameras}")
    cam, sim = config.defaults, config.simulation
    if sim.stop_camera is not None and not 0 <= sim.stop_camera < num_cameras:
        raise ConfigError(f"{config.source}: simulation.stop_camera {sim.stop_camera} is not a camera index "
                          f"(0..{num_cameras - 1})")
    rig = build_rig(SimulationConfig(cameras=num_cameras, fps=cam.fps, resolution=tuple(cam.resolution), seed=sim.seed))
    loop = render_loop(rig, cam.fps, sim.loop_seconds, sim.seed)
    stop = {sim.stop_camera: sim.stop_at_s} if sim.stop_camera is not None else None
    timings = realistic_timings(num_cameras, sim.seed, sim.max_clock_offset_ms, sim.jitter_ms, sim.drop_rate, stop)
    backend = SimulatedBackend(loop.color, loop.depth, list(loop.intrinsics), timings,
                               serials=[c.serial for c in rig], depth_scale=loop.depth_scale)
    return backend, rig, loop, timings


def write_live_truth(path: str | Path, loop: RenderedLoop, rig: Rig, timings, health, fps: float) -> Path:
    """``ground_truth.npz`` of a live simulated session (:mod:`reconstruction.simulation.truth`):
    one row per frame number 1..max recorded (frame number n shows loop frame (n - 1) % L), views in
    the order of the session's cameras (``health``); plus the loop (``loop_xyz``, ``loop_keypoints2d``)."""
    from reconstruction.simulation.truth import write_ground_truth

    numbers = [np.asarray(h.frame_numbers, dtype=np.int64) for h in health]
    T = int(max((n.max() for n in numbers if n.size), default=0))
    loop_index = np.arange(T) % loop.xyz.shape[0]
    stamps = np.full((T, len(health)), np.nan)
    for v, h in enumerate(health):
        if numbers[v].size:
            stamps[numbers[v] - 1, v] = np.asarray(h.timestamps_ms, dtype=np.float64)
    # view order of the recording = the session's cameras; the rendered truth is in rig order
    order = [list(rig.names).index(h.serial) for h in health]
    return write_ground_truth(
        path, xyz=loop.xyz[loop_index], keypoints2d=loop.keypoints2d[loop_index][:, order],
        joint_names=loop.skeleton.joint_names, cameras=[h.serial for h in health], timestamps_ms=stamps,
        clock_offsets_ms=np.array([timings[i].clock_offset_ms for i in order]), frame_numbers=np.arange(1, T + 1),
        fps=fps, depth_scale=loop.depth_scale, loop_xyz=loop.xyz, loop_keypoints2d=loop.keypoints2d[:, order])


def simulated_detection_stage(truth2d: np.ndarray, rig: Rig, noise_px: float = 2.0, outlier_rate: float = 0.02,
                              seed: int = 0):
    """A live 2D stage from the true 2D of the rendered loop ``truth2d`` (L, V, J, 3), indexed by each
    frame's ``sim_index``: noise, confident outliers and missing occluded joints, like a 2D model."""
    from reconstruction.simulation.detections import simulate_detections

    V, J = truth2d.shape[1], truth2d.shape[2]
    rng = np.random.default_rng(seed)
    sizes = np.array([c.image_size for c in rig], dtype=np.float64)

    def detect(fs, _):
        true = np.full((1, V, J, 3), np.nan)
        for v, frame in enumerate(fs.frames):
            if frame is not None and frame.sim_index >= 0:
                true[0, v] = truth2d[frame.sim_index, v]
        return simulate_detections(true, noise_px, outlier_rate, True, rng, sizes)

    return detect
