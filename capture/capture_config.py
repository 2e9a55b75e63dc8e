"""Typed configuration of a capture session (``configs/capture.yaml``).

Every camera gets ``defaults``; ``cameras`` overrides any of those keys for one serial number. The
field defaults below are the only defaults of the capture stage.

Example::

    defaults: {streams: [depth, color], resolution: [640, 480], fps: 30, visual_preset: high_accuracy}
    cameras:
      "123456789012": {exposure_us: 8000, emitter: false}   # quote serials: YAML reads digits as a number
    sync: {mode: hardware, master: "123456789012"}
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from capture.config import load_yaml, section_from_mapping
from capture.errors import ConfigError, DeviceError

STREAMS = ("depth", "color", "infrared")
VISUAL_PRESETS = ("custom", "default", "hand", "high_accuracy", "high_density", "medium_density")

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "capture.yaml"


@dataclass(frozen=True)
class CameraConfig:
    """What one camera streams and how its sensors are set.

    Attributes:
        streams: any of ``depth``, ``color``, ``infrared`` (left imager).
        resolution: (width, height) of every stream, pixels.
        fps: frames per second of every stream.
        exposure_us: manual exposure of the depth imager in microseconds; None keeps auto exposure.
        color_exposure_us: manual exposure of the color camera; None keeps auto exposure.
        emitter: the IR projector on (better depth indoors) or off.
        laser_power: projector power (mW, model range); None keeps the device's.
        visual_preset: depth preset (``high_accuracy``, ``high_density``, ``default``, ...); None keeps it.
        auto_exposure_priority: False holds the frame rate when auto exposure wants longer exposures.
    """

    streams: tuple[str, ...] = ("depth", "color")
    resolution: tuple[int, int] = (640, 480)
    fps: int = 30
    exposure_us: float | None = None
    color_exposure_us: float | None = None
    emitter: bool = True
    laser_power: float | None = None
    visual_preset: str | None = None
    auto_exposure_priority: bool = False

    def __post_init__(self):
        if not self.streams:
            raise ValueError("streams must name at least one of depth, color, infrared")
        bad = [s for s in self.streams if s not in STREAMS]
        if bad:
            raise ValueError(f"unknown stream {bad[0]!r} (known: {', '.join(STREAMS)})")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams lists a stream twice: {list(self.streams)}")
        if self.resolution[0] <= 0 or self.resolution[1] <= 0 or self.fps <= 0:
            raise ValueError(f"resolution and fps must be positive, got {self.resolution} at {self.fps} fps")
        if self.visual_preset is not None and self.visual_preset not in VISUAL_PRESETS:
            raise ValueError(f"visual_preset {self.visual_preset!r} is not one of {', '.join(VISUAL_PRESETS)}")
        for name in ("exposure_us", "color_exposure_us", "laser_power"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")

    @property
    def width(self) -> int:
        return int(self.resolution[0])

    @property
    def height(self) -> int:
        return int(self.resolution[1])


@dataclass(frozen=True)
class SyncConfig:
    """Hardware sync and frame-set matching.

    Attributes:
        mode: ``hardware`` (one master, the others slaves over the sync cable) or ``none``.
        master: serial of the master; None takes the first camera by serial.
        global_time: timestamps in the host-corrected global time domain, shared by all cameras.
        tolerance_ms: frames of one frame set lie within this; None: half a frame period.
    """

    mode: Literal["hardware", "none"] = "hardware"
    master: str | None = None
    global_time: bool = True
    tolerance_ms: float | None = None


@dataclass(frozen=True)
class QueueConfig:
    """Buffers between acquisition and writing.

    Attributes:
        writer_frames: frames held per camera while its writer is busy; when full, frames are dropped
            and counted (acquisition never waits for the disk).
        stall_timeout_s: no frame for this long: the camera is reported stopped (its gap is marked).
    """

    writer_frames: int = 90
    stall_timeout_s: float = 1.0

    def __post_init__(self):
        if self.writer_frames < 1:
            raise ValueError(f"writer_frames must be >= 1, got {self.writer_frames}")
        if self.stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be positive, got {self.stall_timeout_s}")


@dataclass(frozen=True)
class SimulatedCamerasConfig:
    """Simulated cameras (``mocap capture --simulate N``): their clocks and faults.

    Attributes:
        max_clock_offset_ms: camera 0 (the master) at 0, the others' clock offsets uniform in +- this.
        jitter_ms: timestamp jitter (1 sigma, clipped to two sigmas).
        drop_rate: probability that a camera drops a frame on the device (seen as a frame-number gap).
        stop_camera, stop_at_s: camera index that stops delivering at ``stop_at_s`` seconds (a lost device).
        loop_seconds: length of the pre-rendered loop of frames each camera plays.
        seed: seeds the motion, clocks and faults.
    """

    max_clock_offset_ms: float = 8.0
    jitter_ms: float = 0.3
    drop_rate: float = 0.0
    stop_camera: int | None = None
    stop_at_s: float | None = None
    loop_seconds: float = 2.0
    seed: int = 0

    def __post_init__(self):
        if self.max_clock_offset_ms < 0 or self.jitter_ms < 0 or not 0 <= self.drop_rate < 1:
            raise ValueError("max_clock_offset_ms and jitter_ms must be >= 0 and drop_rate in [0, 1)")
        if (self.stop_camera is None) != (self.stop_at_s is None):
            raise ValueError("give both stop_camera and stop_at_s, or neither")
        if self.loop_seconds <= 0:
            raise ValueError(f"loop_seconds must be positive, got {self.loop_seconds}")


@dataclass(frozen=True)
class CaptureConfig:
    """The capture section as a whole.

    Attributes:
        defaults: settings of every camera.
        cameras: per-serial overrides of any ``defaults`` key (only the keys given change).
        sync: hardware sync and matching tolerance.
        queues: buffering between acquisition and the writers.
        usb3_budget_mb_s: usable bandwidth of one USB 3 controller (MB/s), shared by its cameras.
        usb2_budget_mb_s: the same for a camera on USB 2.
        simulation: the simulated cameras of ``--simulate``.
    """

    defaults: CameraConfig = field(default_factory=CameraConfig)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync: SyncConfig = field(default_factory=SyncConfig)
    queues: QueueConfig = field(default_factory=QueueConfig)
    usb3_budget_mb_s: float = 400.0
    usb2_budget_mb_s: float = 35.0
    simulation: SimulatedCamerasConfig = field(default_factory=SimulatedCamerasConfig)
    source: str = "defaults"  # where this config came from (file name), for messages

    def __post_init__(self):
        for serial, overrides in self.cameras.items():
            self._merged(serial, overrides)  # validate early: a bad override fails at load time

    def _merged(self, serial: str, overrides: dict) -> CameraConfig:
        if not isinstance(overrides, dict):
            raise ConfigError(f"{self.source}: cameras.{serial}: expected a mapping of keys to values")
        base = {f.name: getattr(self.defaults, f.name) for f in dataclasses.fields(CameraConfig)}
        unknown = [k for k in overrides if k not in base]
        if unknown:
            raise ConfigError(
                f"{self.source}: cameras.{serial}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(base))})"
            )
        converted = section_from_mapping(CameraConfig, overrides and {**overrides}, f"{self.source}: cameras.{serial}")
        merged = {k: getattr(converted, k) if k in overrides else v for k, v in base.items()}
        try:
            return CameraConfig(**merged)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: cameras.{serial}: {exc}") from None

    def for_camera(self, serial: str) -> CameraConfig:
        """The resolved settings of camera ``serial`` (defaults + its overrides)."""
        return self._merged(serial, self.cameras.get(str(serial), {}))

    def check_serials(self, connected: Sequence[str]) -> None:
        """Raise DeviceError when the config names a camera that is not connected (or the master)."""
        connected = [str(s) for s in connected]
        named = list(self.cameras) + ([self.sync.master] if self.sync.master else [])
        missing = [s for s in named if s not in connected]
        if missing:
            listing = ", ".join(connected) if connected else "none"
            raise DeviceError(
                f"{self.source}: camera {missing[0]} is not connected (connected: {listing}); "
                "fix the serial in the config or plug the camera in (`mocap devices` lists them)"
            )


def capture_config_from_mapping(data: Any, source: str = "config") -> CaptureConfig:
    """Build a CaptureConfig from a mapping (serial keys may be numbers in YAML: they become text)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    data = dict(data)
    cameras = data.get("cameras")
    if isinstance(cameras, dict):
        data["cameras"] = {str(k): ({} if v is None else v) for k, v in cameras.items()}
    sync = data.get("sync")
    if isinstance(sync, dict) and sync.get("master") is not None:
        data["sync"] = {**sync, "master": str(sync["master"])}
    data["source"] = source
    return section_from_mapping(CaptureConfig, data, source)


def load_capture_config(path: str | Path | None = None) -> CaptureConfig:
    """Read ``path`` (default ``configs/capture.yaml``); its ``capture`` section if it has one."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = load_yaml(path)
    if isinstance(data, dict) and "capture" in data and len(data) == 1:
        data = data["capture"]
    return capture_config_from_mapping(data, str(path))
