"""Software cameras fed in real time, for ``mocap capture --simulate N`` and hardware-free tests.

:class:`SimulatedBackend` implements the same :class:`capture.devices.DeviceBackend` interface as
the RealSense backend, so a simulated session runs the identical session code. Each camera loops
over pre-rendered frames (color + depth arrays given by the caller; the CLI renders them with the
simulator's renderer) and delivers frame ``k`` no earlier than ``k / fps`` s after the shared start,
stamped in a shared "global time" with its own clock offset and Gaussian jitter (clipped at two
sigmas), like hardware-synced RealSense cameras whose host clocks differ by a few milliseconds.

Optional faults: frames dropped at random on the device (frame numbers keep counting, so the drop
shows as a frame-number gap), and a camera that stops delivering at a given time (a lost device).
A reader that falls more than ``device_queue`` frames behind loses the oldest frames, as the SDK's
own frame queue does; those show as gaps too and are counted in ``overflow_drops``.

Every delivered frame is logged in :attr:`SimulatedCamera.delivered` (frame number, timestamp), the
ground truth against which a session's files and manifest are checked.

:func:`write_test_pattern` writes a recording of cheap frames that say which frame they are, for the
readers' and the synchronizer's tests and benchmarks. The simulated person and scenes (rendered
frames, sessions with ground truth) are in ``reconstruction.simulation``, which takes its serial
numbers from :data:`SIMULATED_SERIAL_BASE` here.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from capture.capture_config import CameraConfig, SyncConfig
from capture.devices import CapturedFrame, DeviceBackend, DeviceInfo, FrameSource, StreamMode
from capture.errors import DeviceError

SIMULATED_SERIAL_BASE = 900000000000  # camera v: SIMULATED_SERIAL_BASE + v, as the simulator's rigs

# Modes of a D435 (depth z16 and color rgb8), enough to reject what a real camera would reject.
_D435_DEPTH = [(w, h, f) for (w, h) in [(424, 240), (480, 270), (640, 360), (640, 480), (848, 480), (1280, 720)]
               for f in (6, 15, 30, 60, 90) if not ((w, h) == (1280, 720) and f > 30)]
_D435_COLOR = [(w, h, f) for (w, h) in [(320, 180), (320, 240), (424, 240), (640, 360), (640, 480), (848, 480),
                                         (960, 540), (1280, 720), (1920, 1080)]
               for f in (6, 15, 30, 60) if not ((w, h) in ((1280, 720), (1920, 1080)) and f > 30)]
# Simulated cameras also accept the small test mode 320x240 for depth.
D435_MODES = tuple(
    [StreamMode("depth", w, h, f) for w, h, f in _D435_DEPTH + [(320, 240, f) for f in (6, 15, 30, 60)]]
    + [StreamMode("color", w, h, f) for w, h, f in _D435_COLOR]
)


@dataclass(frozen=True)
class SimulatedTiming:
    """Clock and faults of one simulated camera.

    Attributes:
        clock_offset_ms: added to every timestamp (the camera's clock vs the shared global time).
        jitter_ms: standard deviation of the timestamp jitter (Gaussian clipped to two sigmas).
        drop_rate: probability that the device drops a frame.
        stop_at_s: the camera delivers nothing from this time on (None: never stops).
        seed: seeds its jitter and drops.
    """

    clock_offset_ms: float = 0.0
    jitter_ms: float = 0.3
    drop_rate: float = 0.0
    stop_at_s: float | None = None
    seed: int = 0

    def __post_init__(self):
        if self.jitter_ms < 0 or not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"jitter_ms must be >= 0 and drop_rate in [0, 1), got {self.jitter_ms}, {self.drop_rate}")


def realistic_timings(num_cameras: int, seed: int = 0, max_offset_ms: float = 8.0, jitter_ms: float = 0.3,
                      drop_rate: float = 0.0, stop: dict[int, float] | None = None) -> list[SimulatedTiming]:
    """Timings like hardware-synced cameras on one host: camera 0 (the master) at offset 0, the
    others within ``max_offset_ms``; ``stop`` maps a camera index to the time (s) it stops."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0.0], rng.uniform(-max_offset_ms, max_offset_ms, num_cameras - 1)])
    stop = stop or {}
    return [SimulatedTiming(float(offsets[v]), jitter_ms, drop_rate, stop.get(v), seed * 1000 + v)
            for v in range(num_cameras)]


class _SharedClock:
    """One start instant for all cameras of a backend: frame k of every camera happens at t0 + k/fps."""

    def __init__(self):
        self._lock = threading.Lock()
        self.t0: float | None = None
        self.epoch_ms: float | None = None

    def start(self) -> tuple[float, float]:
        with self._lock:
            if self.t0 is None:
                self.t0 = time.monotonic() + 0.05  # a little ahead: every camera starts at frame 0
                self.epoch_ms = time.time() * 1000.0
            return self.t0, self.epoch_ms


class SimulatedCamera(FrameSource):
    """A software camera delivering a loop of frames in real time (see the module docstring).

    ``color`` (L, H, W, 3) uint8 RGB and/or ``depth`` (L, H, W) uint16: the loop of L frames.
    """

    def __init__(self, info: DeviceInfo, config: CameraConfig, color: np.ndarray | None, depth: np.ndarray | None,
                 color_intrinsics, depth_intrinsics, timing: SimulatedTiming = SimulatedTiming(),
                 depth_scale: float = 0.001, clock: _SharedClock | None = None, device_queue: int = 16,
                 role: str = "none"):
        self.info, self.config, self.role = info, config, role
        self.timing = timing
        self.color = color if "color" in config.streams else None
        self.depth = depth if "depth" in config.streams else None
        self.color_intrinsics = color_intrinsics if self.color is not None else None
        self.depth_intrinsics = depth_intrinsics if self.depth is not None else None
        self.depth_scale = depth_scale
        loop = [a.shape[0] for a in (self.color, self.depth) if a is not None]
        if not loop:
            raise DeviceError(f"simulated camera {info.serial}: no frames for streams {list(config.streams)}")
        self.loop_length = min(loop)
        self._clock = clock or _SharedClock()
        self._rng = np.random.default_rng(timing.seed)
        self.device_queue = int(device_queue)
        self._next = 0
        self._t0 = None
        self._epoch_ms = None
        self.delivered: list[tuple[int, float]] = []  # (frame number, timestamp ms) of every frame read
        self.device_drops = 0
        self.overflow_drops = 0
        self._stopped = False

    def start(self) -> None:
        self._t0, self._epoch_ms = self._clock.start()
        self._next = 0
        self._stopped = False

    def read(self, timeout_s: float) -> CapturedFrame | None:
        if self._t0 is None or self._stopped:
            time.sleep(timeout_s)
            return None
        fps = self.config.fps
        deadline = time.monotonic() + timeout_s
        while True:
            k = self._next
            if self.timing.stop_at_s is not None and k / fps >= self.timing.stop_at_s:
                time.sleep(max(deadline - time.monotonic(), 0.0))
                return None
            due = self._t0 + (k + 1) / fps  # delivered once exposed and read out: one period later
            now = time.monotonic()
            if due > deadline:
                time.sleep(max(deadline - now, 0.0))
                return None
            if due > now:
                time.sleep(due - now)
                now = time.monotonic()
            behind = int((now - due) * fps)
            if behind > self.device_queue:  # the device queue overflowed: the oldest frames are gone
                lost = behind - self.device_queue
                self.overflow_drops += lost
                self._next += lost
                continue
            self._next += 1
            if self.timing.drop_rate > 0 and self._rng.random() < self.timing.drop_rate:
                self.device_drops += 1
                continue
            jitter = 0.0
            if self.timing.jitter_ms > 0:
                jitter = float(np.clip(self._rng.normal(0.0, self.timing.jitter_ms),
                                       -2 * self.timing.jitter_ms, 2 * self.timing.jitter_ms))
            timestamp = self._epoch_ms + 1000.0 * k / fps + self.timing.clock_offset_ms + jitter
            index = k % self.loop_length
            frame = CapturedFrame(
                self.serial, k + 1, timestamp,
                self.color[index] if self.color is not None else None,
                self.depth[index] if self.depth is not None else None,
                now, index,
            )
            self.delivered.append((k + 1, timestamp))
            return frame

    def stop(self) -> None:
        self._stopped = True

    def temperature_c(self) -> float | None:
        if self._t0 is None:
            return None
        return 38.0 + 0.01 * max(time.monotonic() - self._t0, 0.0)  # a slow warm-up, like an ASIC


class SimulatedBackend(DeviceBackend):
    """N simulated D435-like cameras; serials ``900000000000 + v`` unless given.

    ``color`` (V, L, H, W, 3) and ``depth`` (V, L, H, W): each camera's loop of frames; intrinsics per
    camera (capture.recording_writer.StreamIntrinsics, shared by color and depth: depth is aligned).
    """

    def __init__(self, color: np.ndarray | None, depth: np.ndarray | None, intrinsics: Sequence,
                 timings: Sequence[SimulatedTiming] | None = None, serials: Sequence[str] | None = None,
                 depth_scale: float = 0.001, modes: Sequence[StreamMode] = D435_MODES, usb_type: str = "3.2",
                 device_queue: int = 16):
        ref = color if color is not None else depth
        if ref is None:
            raise ValueError("simulated cameras need color or depth frames")
        V = ref.shape[0]
        self.color, self.depth, self.intrinsics = color, depth, list(intrinsics)
        if len(self.intrinsics) != V:
            raise ValueError(f"{len(self.intrinsics)} intrinsics for {V} cameras")
        self.timings = list(timings) if timings is not None else [SimulatedTiming(seed=v) for v in range(V)]
        self.serials = [str(s) for s in serials] if serials is not None else \
            [str(SIMULATED_SERIAL_BASE + v) for v in range(V)]
        self.depth_scale = depth_scale
        self.device_queue = device_queue
        self.clock = _SharedClock()
        self._infos = [DeviceInfo(s, "Intel RealSense D435 (simulated)", "simulated", usb_type,
                                  f"simulated://usb{v}", tuple(modes), True, True)
                       for v, s in enumerate(self.serials)]
        self.cameras: dict[str, SimulatedCamera] = {}

    def devices(self) -> list[DeviceInfo]:
        return list(self._infos)

    def open(self, info: DeviceInfo, config: CameraConfig, role: str, sync: SyncConfig) -> FrameSource:
        v = self.serials.index(info.serial)
        intr = self.intrinsics[v]
        if (intr.width, intr.height) != (config.width, config.height):
            raise DeviceError(f"simulated camera {info.serial}: frames are {intr.width}x{intr.height}, the config "
                              f"asks for {config.width}x{config.height}")
        camera = SimulatedCamera(
            info, config, None if self.color is None else self.color[v], None if self.depth is None else self.depth[v],
            intr, intr, self.timings[v], self.depth_scale, self.clock, self.device_queue, role,
        )
        self.cameras[info.serial] = camera
        return camera


def placeholder_backend(num_cameras: int) -> "SimulatedBackend":
    """``num_cameras`` simulated D435 cameras showing nothing (640x480): what ``mocap devices
    --simulate N`` lists."""
    from capture.intrinsics import StreamIntrinsics

    intr = [StreamIntrinsics(640, 480, 615.0, 615.0, 320.0, 240.0)] * num_cameras
    return SimulatedBackend(None, np.zeros((num_cameras, 1, 480, 640), np.uint16), intr)


def write_test_pattern(
    path: str | os.PathLike,
    serial: str,
    timestamps_ms: np.ndarray,
    frame_numbers: np.ndarray,
    size: tuple[int, int] = (640, 480),
    fps: int = 30,
    depth: bool = True,
    color: bool = True,
    depth_scale: float = 0.001,
) -> Path:
    """A recording of cheap synthetic frames whose pixels say which frame they are.

    Color: a gradient; pixel (0, 0) holds (frame_number % 256, frame_number // 256 % 256, 7).
    Depth: ``1000 + frame_number % 1000`` units everywhere. For tests and benchmarks of the
    readers and the synchronizer (the simulator renders real scenes).
    """
    from capture.intrinsics import StreamIntrinsics
    from capture.recording_writer import RealSenseRecordingWriter

    w, h = size
    intr = StreamIntrinsics(w, h, 0.96 * w, 0.96 * w, w / 2, h / 2)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 1] = (np.arange(w) * 255 // max(w - 1, 1)).astype(np.uint8)[None, :]
    z = np.empty((h, w), np.uint16)
    with RealSenseRecordingWriter(path, serial, intr if color else None, intr if depth else None, fps,
                                  depth_scale=depth_scale) as writer:
        for t, n in zip(np.asarray(timestamps_ms, float), np.asarray(frame_numbers, np.int64)):
            rgb[0, 0] = (n % 256, n // 256 % 256, 7)
            z[:] = 1000 + n % 1000
            writer.write(float(t), int(n), rgb if color else None, z if depth else None)
    return writer.path
