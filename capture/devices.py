"""Cameras: discovery, configuration, hardware sync and the frame-source interface.

A capture session talks to cameras only through two small interfaces, so that real RealSense
devices and simulated ones (capture.simulated_cameras) run the identical session code:

- :class:`DeviceBackend` lists :class:`DeviceInfo` and opens a :class:`FrameSource` per camera;
- :class:`FrameSource` yields :class:`CapturedFrame` (numpy color/depth, frame number, global-time
  timestamp) one at a time from its own pipeline.

:func:`plan_capture` checks a config against the connected devices before anything streams:
serials exist, every requested mode is one the device offers, the USB bandwidth fits each
controller, and it assigns sync roles (one master, the others slaves).

Facts about pyrealsense2 2.59 used below:

- ``inter_cam_sync_mode`` 1 = master, 2 = slave (0 = default/free running); D400 models sync the
  depth imagers; the color sensor follows only on models with a global-shutter color (D455) —
  the option is set on the depth sensor either way.
- ``global_time_enabled`` maps device timestamps into one host-corrected clock shared by all
  cameras; without it, timestamps of two cameras cannot be compared.
- ``auto_exposure_priority`` on the color sensor lets auto exposure lower the frame rate in dim
  light; it is turned off so that 30 fps stays 30 fps.
- Over the wire, color is YUYV (2 bytes per pixel) even when rgb8 is asked (the SDK converts on the
  host), depth is z16 (2 bytes), infrared y8 (1 byte).
"""
from __future__ import annotations

import abc
import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from capture.capture_config import CameraConfig, CaptureConfig, SyncConfig
from capture.errors import DeviceError

log = logging.getLogger(__name__)

WIRE_BYTES_PER_PIXEL = {"depth": 2, "color": 2, "infrared": 1}
STREAM_FORMATS = {"depth": "z16", "color": "rgb8", "infrared": "y8"}
SYNC_MODE_VALUES = {"none": 0, "master": 1, "slave": 2}


@dataclass(frozen=True)
class StreamMode:
    """One mode a device offers: stream name, width, height, fps."""

    stream: str
    width: int
    height: int
    fps: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps}"


@dataclass(frozen=True, eq=False)
class DeviceInfo:
    """A connected camera as discovery sees it.

    Attributes:
        serial, name, firmware: from the device.
        usb_type: USB type descriptor ("3.2", "2.1", "" when unknown).
        physical_port: OS path of the device; its USB controller is read from it.
        modes: every (stream, width, height, fps) the device offers.
        sync_capable: the depth sensor has ``inter_cam_sync_mode``.
        simulated: a software camera (``--simulate``).
    """

    serial: str
    name: str
    firmware: str = ""
    usb_type: str = ""
    physical_port: str = ""
    modes: tuple[StreamMode, ...] = ()
    sync_capable: bool = True
    simulated: bool = False

    @property
    def usb2(self) -> bool:
        """True when the camera is on a USB 2 link (bandwidth for little more than one low-res stream)."""
        return self.usb_type.startswith("2")

    @property
    def controller(self) -> str:
        """The USB host controller (PCI address from the port path), shared by cameras on one bus."""
        pci = re.findall(r"([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F])", self.physical_port)
        if pci:
            return pci[-1]
        bus = re.search(r"usb(\d+)", self.physical_port)
        return f"usb{bus.group(1)}" if bus else "default"

    def supported(self, stream: str) -> list[StreamMode]:
        return sorted({m for m in self.modes if m.stream == stream}, key=lambda m: (m.width, m.height, m.fps))

    def to_dict(self) -> dict:
        return {"serial": self.serial, "name": self.name, "firmware": self.firmware, "usb_type": self.usb_type,
                "physical_port": self.physical_port, "controller": self.controller,
                "sync_capable": self.sync_capable, "simulated": self.simulated}


@dataclass(frozen=True, eq=False)
class CapturedFrame:
    """One frame of one camera.

    Attributes:
        serial: the camera.
        frame_number: the device's counter (a jump is a frame lost before the host saw it).
        timestamp_ms: global-time timestamp, milliseconds (comparable across cameras).
        color: (H, W, 3) uint8 RGB or None; depth: (H, W) uint16 or None.
        arrival_s: host monotonic time the frame was read.
        sim_index: for simulated cameras, the index of the rendered frame (its ground truth); -1 else.
    """

    serial: str
    frame_number: int
    timestamp_ms: float
    color: np.ndarray | None
    depth: np.ndarray | None
    arrival_s: float
    sim_index: int = -1


class FrameSource(abc.ABC):
    """One camera's stream as the session sees it (a real rs.pipeline or a simulated camera).

    Intrinsics, depth scale and the depth-to-color extrinsics are valid after :meth:`start`.
    """

    info: DeviceInfo
    config: CameraConfig
    role: str = "none"
    color_intrinsics = None  # capture.recording_writer.StreamIntrinsics | None
    depth_intrinsics = None
    depth_scale: float = 0.001
    depth_to_color: tuple = ((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0))

    @property
    def serial(self) -> str:
        return self.info.serial

    @property
    def fps(self) -> int:
        return self.config.fps

    def prepare(self) -> None:
        """Make intrinsics, depth scale and extrinsics valid (may start the device); the session calls
        it for every camera, creates the writers, then calls :meth:`start` right before reading."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start streaming (frames are read from now on)."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> CapturedFrame | None:
        """The next frame, waiting up to ``timeout_s``; None when none came (a stalled or lost camera)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop streaming (idempotent)."""

    def temperature_c(self) -> float | None:
        """The device's temperature (ASIC or projector) where it reports one."""
        return None


class DeviceBackend(abc.ABC):
    """Lists cameras and opens them."""

    @abc.abstractmethod
    def devices(self) -> list[DeviceInfo]:
        """Every connected camera."""

    @abc.abstractmethod
    def open(self, info: DeviceInfo, config: CameraConfig, role: str, sync: SyncConfig) -> FrameSource:
        """Configure the camera (options, sync role) and return its (not yet started) source."""


@dataclass(frozen=True, eq=False)
class PlannedCamera:
    """A camera as it will run: its info, resolved settings and sync role (master/slave/none)."""

    info: DeviceInfo
    config: CameraConfig
    role: str


@dataclass(frozen=True, eq=False)
class CapturePlan:
    """Checked assignment of settings to cameras, plus the bandwidth per USB controller (MB/s)."""

    cameras: tuple[PlannedCamera, ...]
    bandwidth_mb_s: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def bandwidth_mb_s(config: CameraConfig) -> float:
    """USB bandwidth of a camera's streams: bytes per frame (wire format) x fps, in MB/s (1e6 bytes)."""
    pixels = config.width * config.height
    return sum(WIRE_BYTES_PER_PIXEL[s] * pixels * config.fps for s in config.streams) / 1e6


def check_modes(info: DeviceInfo, config: CameraConfig, source: str = "config") -> None:
    """Raise DeviceError when ``info`` does not offer every requested stream at the resolution and fps."""
    for stream in config.streams:
        offered = info.supported(stream)
        if not offered:
            raise DeviceError(f"{source}: camera {info.serial} ({info.name}) has no {stream} stream")
        want = StreamMode(stream, config.width, config.height, config.fps)
        if not any((m.width, m.height, m.fps) == (want.width, want.height, want.fps) for m in offered):
            listing = ", ".join(str(m) for m in offered)
            raise DeviceError(
                f"{source}: camera {info.serial} ({info.name}) cannot stream {stream} at {want}; "
                f"supported {stream} modes: {listing}"
            )


def sync_roles(serials: Sequence[str], sync: SyncConfig, infos: Sequence[DeviceInfo] = ()) -> dict[str, str]:
    """One master (``sync.master`` or the first serial in order), the others slaves; all ``none``
    when sync is off, for a single camera, or for cameras without the sync option."""
    serials = [str(s) for s in serials]
    capable = {i.serial: i.sync_capable for i in infos}
    if sync.mode == "none" or len(serials) < 2:
        return {s: "none" for s in serials}
    master = sync.master or sorted(serials)[0]
    return {s: ("none" if not capable.get(s, True) else "master" if s == master else "slave") for s in serials}


def plan_capture(backend: DeviceBackend, config: CaptureConfig, serials: Sequence[str] | None = None) -> CapturePlan:
    """Check ``config`` against the connected cameras (all of them, or ``serials``) and plan the run.

    Raises DeviceError: no camera, a configured serial not connected (lists the connected ones), a
    mode the model does not offer (lists the supported ones), or a USB controller over its budget.
    """
    infos = backend.devices()
    if not infos:
        raise DeviceError("no camera found: plug a RealSense camera in (USB 3), or try --simulate N")
    connected = [i.serial for i in infos]
    config.check_serials(connected)
    if serials is not None:
        missing = [s for s in serials if s not in connected]
        if missing:
            raise DeviceError(f"camera {missing[0]} is not connected (connected: {', '.join(connected)})")
        infos = [i for i in infos if i.serial in serials]
    infos = sorted(infos, key=lambda i: i.serial)
    warnings = []
    for info in infos:
        if info.usb2:
            msg = (f"camera {info.serial} ({info.name}) is on USB {info.usb_type}: expect low frame rates and "
                   "drops; use a USB 3 port and cable")
            log.warning(msg)
            warnings.append(msg)
    roles = sync_roles([i.serial for i in infos], config.sync, infos)
    planned = []
    for info in infos:
        cam = config.for_camera(info.serial)
        check_modes(info, cam, config.source)
        planned.append(PlannedCamera(info, cam, roles[info.serial]))
    if config.sync.master and config.sync.master not in roles:
        raise DeviceError(f"{config.source}: sync.master {config.sync.master} is not among the cameras used")
    bandwidth = check_bandwidth(planned, config)
    return CapturePlan(tuple(planned), bandwidth, tuple(warnings))


def check_bandwidth(planned: Sequence[PlannedCamera], config: CaptureConfig) -> dict[str, float]:
    """Sum the cameras' bandwidth per USB controller; DeviceError when one exceeds its budget."""
    per_controller: dict[str, float] = {}
    budget: dict[str, float] = {}
    for cam in planned:
        key = cam.info.controller
        per_controller[key] = per_controller.get(key, 0.0) + bandwidth_mb_s(cam.config)
        limit = config.usb2_budget_mb_s if cam.info.usb2 else config.usb3_budget_mb_s
        budget[key] = min(budget.get(key, limit), limit)
    for key, need in per_controller.items():
        if need > budget[key]:
            names = ", ".join(f"{c.info.serial} ({bandwidth_mb_s(c.config):.0f} MB/s)" for c in planned
                              if c.info.controller == key)
            raise DeviceError(
                f"the cameras on USB controller {key} need {need:.0f} MB/s, more than its {budget[key]:.0f} MB/s "
                f"({names}); lower the resolution or fps, drop a stream, or move cameras to another controller"
            )
    return per_controller


# ----------------------------------------------------------------------------------------------- RealSense


class RealSenseBackend(DeviceBackend):
    """Cameras through pyrealsense2: one rs.pipeline per device."""

    def __init__(self):
        import pyrealsense2 as rs

        self._rs = rs
        self._ctx = rs.context()
        self._devices: dict[str, object] = {}

    def devices(self) -> list[DeviceInfo]:
        rs = self._rs
        infos = []
        self._devices.clear()
        for dev in self._ctx.query_devices():
            def get(key, dev=dev):
                return dev.get_info(key) if dev.supports(key) else ""

            serial = get(rs.camera_info.serial_number)
            modes = set()
            sync_capable = False
            for sensor in dev.query_sensors():
                if sensor.supports(rs.option.inter_cam_sync_mode):
                    sync_capable = True
                for profile in sensor.get_stream_profiles():
                    name = {rs.stream.depth: "depth", rs.stream.color: "color",
                            rs.stream.infrared: "infrared"}.get(profile.stream_type())
                    if name is None or not profile.is_video_stream_profile():
                        continue
                    vp = profile.as_video_stream_profile()
                    modes.add(StreamMode(name, vp.width(), vp.height(), profile.fps()))
            infos.append(DeviceInfo(serial, get(rs.camera_info.name), get(rs.camera_info.firmware_version),
                                    get(rs.camera_info.usb_type_descriptor), get(rs.camera_info.physical_port),
                                    tuple(sorted(modes, key=lambda m: (m.stream, m.width, m.height, m.fps))),
                                    sync_capable))
            self._devices[serial] = dev
        return infos

    def open(self, info: DeviceInfo, config: CameraConfig, role: str, sync: SyncConfig) -> FrameSource:
        if info.serial not in self._devices:
            self.devices()
        dev = self._devices.get(info.serial)
        if dev is None:
            raise DeviceError(f"camera {info.serial} disappeared before it could be opened")
        apply_options(dev, config, role, sync)
        return RealSenseSource(self._rs, self._ctx, info, config, role)


def _set(sensor, option, value, serial: str) -> None:
    if sensor.supports(option):
        try:
            sensor.set_option(option, float(value))
        except RuntimeError as exc:
            raise DeviceError(f"camera {serial}: cannot set {option} to {value}: {exc}") from None


def apply_options(dev, config: CameraConfig, role: str, sync: SyncConfig) -> None:
    """Exposure, emitter, preset, sync role, global time and auto-exposure priority on every sensor."""
    import pyrealsense2 as rs

    serial = dev.get_info(rs.camera_info.serial_number)
    for sensor in dev.query_sensors():
        if sync.global_time:
            _set(sensor, rs.option.global_time_enabled, 1, serial)
        is_depth = sensor.is_depth_sensor()
        is_color = sensor.supports(rs.camera_info.name) and "RGB" in sensor.get_info(rs.camera_info.name)
        if is_depth:
            _set(sensor, rs.option.inter_cam_sync_mode, SYNC_MODE_VALUES[role], serial)
            _set(sensor, rs.option.emitter_enabled, 1 if config.emitter else 0, serial)
            if config.laser_power is not None:
                _set(sensor, rs.option.laser_power, config.laser_power, serial)
            if config.visual_preset is not None:
                _set(sensor, rs.option.visual_preset, int(getattr(rs.rs400_visual_preset, config.visual_preset)), serial)
            if config.exposure_us is not None:
                _set(sensor, rs.option.enable_auto_exposure, 0, serial)
                _set(sensor, rs.option.exposure, config.exposure_us, serial)
        if is_color:
            _set(sensor, rs.option.auto_exposure_priority, 1 if config.auto_exposure_priority else 0, serial)
            if config.color_exposure_us is not None:
                _set(sensor, rs.option.enable_auto_exposure, 0, serial)
                # the color sensor's exposure unit is 100 us
                _set(sensor, rs.option.exposure, config.color_exposure_us / 100.0, serial)


class RealSenseSource(FrameSource):
    """One device through its own rs.pipeline; frames are copied out of the SDK's buffers at once."""

    def __init__(self, rs, ctx, info: DeviceInfo, config: CameraConfig, role: str):
        self._rs = rs
        self.info, self.config, self.role = info, config, role
        self._pipeline = rs.pipeline(ctx)
        self._rs_config = rs.config()
        self._rs_config.enable_device(info.serial)
        kinds = {"depth": (rs.stream.depth, rs.format.z16), "color": (rs.stream.color, rs.format.rgb8)}
        for stream in config.streams:
            if stream in kinds:
                kind, fmt = kinds[stream]
                self._rs_config.enable_stream(kind, config.width, config.height, fmt, config.fps)
        self._started = False
        self._depth_sensor = None

    def start(self) -> None:
        if not self._started:
            self.prepare()
        # frames queued by the SDK since prepare() are older than the session: drop them
        while self._pipeline.poll_for_frames():
            pass

    def prepare(self) -> None:
        """Start the pipeline (pyrealsense2 gives the streams' intrinsics only once streaming)."""
        from capture.intrinsics import StreamIntrinsics

        if self._started:
            return
        rs = self._rs
        try:
            profile = self._pipeline.start(self._rs_config)
        except RuntimeError as exc:
            raise DeviceError(f"camera {self.serial}: cannot start streaming: {exc}") from None
        self._started = True
        streams = {s.stream_type(): s.as_video_stream_profile() for s in profile.get_streams()}
        if rs.stream.depth in streams:
            self.depth_intrinsics = StreamIntrinsics.from_rs(streams[rs.stream.depth].get_intrinsics())
            self._depth_sensor = profile.get_device().first_depth_sensor()
            self.depth_scale = float(self._depth_sensor.get_depth_scale())
        if rs.stream.color in streams:
            self.color_intrinsics = StreamIntrinsics.from_rs(streams[rs.stream.color].get_intrinsics())
        if rs.stream.depth in streams and rs.stream.color in streams:
            ext = streams[rs.stream.depth].get_extrinsics_to(streams[rs.stream.color])
            R = np.asarray(ext.rotation, dtype=float).reshape(3, 3).T  # SDK stores R column-major
            self.depth_to_color = (tuple(R.ravel()), tuple(ext.translation))

    def read(self, timeout_s: float) -> CapturedFrame | None:
        import time

        try:
            ok, frames = self._pipeline.try_wait_for_frames(max(int(timeout_s * 1000), 1))
        except RuntimeError:  # device lost
            return None
        if not ok:
            return None
        depth_frame, color_frame = frames.get_depth_frame(), frames.get_color_frame()
        ref = depth_frame or color_frame
        depth = np.asanyarray(depth_frame.get_data()).copy() if depth_frame else None
        color = np.asanyarray(color_frame.get_data()).copy() if color_frame else None
        return CapturedFrame(self.serial, int(ref.get_frame_number()), float(ref.get_timestamp()), color, depth,
                             time.monotonic())

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self._pipeline.stop()
            except RuntimeError as exc:  # already gone (unplugged)
                log.warning("camera %s: stop failed: %s", self.serial, exc)

    def temperature_c(self) -> float | None:
        sensor = self._depth_sensor
        if sensor is None:
            return None
        for option in (self._rs.option.asic_temperature, self._rs.option.projector_temperature):
            try:
                if sensor.supports(option):
                    return float(sensor.get_option(option))
            except RuntimeError:
                continue
        return None


def discover(backend: DeviceBackend | None = None) -> list[DeviceInfo]:
    """Connected cameras sorted by serial (RealSense by default); warns for cameras on USB 2."""
    backend = backend or RealSenseBackend()
    infos = sorted(backend.devices(), key=lambda i: i.serial)
    for info in infos:
        if info.usb2:
            log.warning("camera %s (%s) is on USB %s: use a USB 3 port and cable", info.serial, info.name,
                        info.usb_type)
    return infos
