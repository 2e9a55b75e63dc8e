"""Read RealSense recordings (ROS1 .bag, rosbag2 .db3): their info, their index, their frames.

Shape letters: ``H``/``W`` image height and width, ``n`` frames of one stream.

Why sensor-level playback (measured with pyrealsense2 2.59):

- ``rs.pipeline`` playback drops the first frame now and then and emits framesets that repeat or
  mix depth/color frames; ``rs.context().load_device(path)`` with each sensor opened on all its
  profiles returns every frame.
- Playback starts reading when the first sensor of a device starts, so a second sensor started a
  moment later can miss frames (pausing around the starts does not prevent it): each stream is
  played on its own ``load_device`` with one sensor started, which never lost a frame.
- In non-real-time mode the playback thread waits while a sensor callback blocks, so a bounded
  ``queue.Queue`` filled from the callbacks gives back-pressure: memory stays bounded whatever the
  file's length. With one device per stream, no stream waits on another's queue.
- A truncated file, or one that is not a recording, fails in ``load_device`` (nothing is
  readable); damage inside a .db3 (a corrupt image message) makes playback stop early without an
  error, which the reader detects by comparing with the file's own index.
- .db3 files store each frame's metadata as a string message ("Frame number=..;timestamp_domain=
  ..;timestamp=..") next to a PNG image; :mod:`capture.db3_index` reads those strings with sqlite3
  (no image decoding), which is how frame counts and timestamps are known before playback.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from capture.db3_index import index_db3
from capture.errors import RecordingError
from capture.intrinsics import StreamIntrinsics
from capture.media_files import RECORDING_SUFFIXES, VIDEO_SUFFIXES
from capture.recording import Frame, RecordingInfo, StreamIndex, StreamInfo

log = logging.getLogger(__name__)


def _rs():
    import pyrealsense2 as rs

    return rs


def _load_device(path: Path):
    """(context, device, playback) for a recording; RecordingError naming the file otherwise."""
    rs = _rs()
    if not path.is_file():
        raise RecordingError(f"{path}: file not found")
    if path.suffix.lower() not in RECORDING_SUFFIXES:
        raise RecordingError(
            f"{path}: not a RealSense recording (expected .bag or .db3; videos {', '.join(VIDEO_SUFFIXES)})"
        )
    ctx = rs.context()
    try:
        device = ctx.load_device(str(path))
    except RuntimeError as exc:
        raise RecordingError(
            f"{path}: cannot be read as a RealSense recording, it is truncated, damaged or not a recording "
            f"(pyrealsense2: {exc}); re-copy or re-record the file"
        ) from None
    playback = device.as_playback()
    # Non-real-time: read as fast as the consumer takes frames, and wait for it (no drops).
    playback.set_real_time(False)
    return ctx, device, playback


def _enum_name(value) -> str:
    return str(value).split(".")[-1]


def read_realsense_info(path: str | Path) -> RecordingInfo:
    """Serial, name, streams, intrinsics, depth scale and depth-to-color extrinsics of a RealSense file."""
    path = Path(path)
    rs = _rs()
    ctx, device, playback = _load_device(path)
    streams, profiles = [], {}
    depth_scale = float("nan")
    for sensor in device.query_sensors():
        sensor_name = sensor.get_info(rs.camera_info.name) if sensor.supports(rs.camera_info.name) else ""
        if sensor.is_depth_sensor():
            # Stored as float32 by the SDK: round to the 1e-9 the value was given with.
            depth_scale = round(float(sensor.as_depth_sensor().get_depth_scale()), 9)
        for p in sensor.get_stream_profiles():
            intr = None
            w = h = 0
            if p.is_video_stream_profile():
                vp = p.as_video_stream_profile()
                w, h = vp.width(), vp.height()
                try:
                    intr = StreamIntrinsics.from_rs(vp.get_intrinsics())
                except RuntimeError:
                    intr = None
            info = StreamInfo(_enum_name(p.stream_type()), int(p.stream_index()), _enum_name(p.format()),
                              int(w), int(h), float(p.fps()), intr, sensor_name)
            streams.append(info)
            profiles[info.key] = p
    if not streams:
        raise RecordingError(f"{path}: the recording has no streams")

    def info_of(key):
        return device.get_info(key) if device.supports(key) else ""

    extr = None
    if "depth" in profiles and "color" in profiles:
        try:
            e = profiles["depth"].get_extrinsics_to(profiles["color"])
            R = np.asarray(e.rotation, dtype=float).reshape(3, 3).T  # SDK stores R column-major
            extr = (R, np.asarray(e.translation, dtype=float))
        except RuntimeError:
            extr = None
    by_key = {s.key: s for s in streams}
    return RecordingInfo(
        path=path,
        serial=str(info_of(rs.camera_info.serial_number)),
        name=str(info_of(rs.camera_info.name)),
        streams=tuple(streams),
        color_intrinsics=by_key["color"].intrinsics if "color" in by_key else None,
        depth_intrinsics=by_key["depth"].intrinsics if "depth" in by_key else None,
        depth_scale=depth_scale if "depth" in by_key else float("nan"),
        depth_to_color=extr,
        duration_ms=playback.get_duration().total_seconds() * 1000.0,
    )


def index_realsense(path: str | Path) -> dict[str, StreamIndex]:
    """Per-stream index of a RealSense file: from a .db3's metadata messages, else (.bag) one playback
    pass without copying images."""
    path = Path(path)
    if path.suffix.lower() == ".db3":
        _load_device(path)  # the same errors as playback for damaged files
        index = index_db3(path)
        if index is not None:
            return index
    reader = RealSenseReader(path, copy_data=False)
    stamps: dict[str, tuple[list, list]] = {}
    domains: dict[str, str] = {}
    with reader:
        for frame in reader.frames():
            entry = stamps.setdefault(frame.stream, ([], []))
            entry[0].append(frame.timestamp_ms)
            entry[1].append(frame.frame_number)
            domains[frame.stream] = frame.domain
    return {k: StreamIndex(np.asarray(t, dtype=float), np.asarray(n, dtype=np.int64), domains[k]) for k, (t, n) in stamps.items()}


def _to_rgb(image: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "rgb8":
        return image
    if fmt in ("bgr8", "bgra8"):
        return np.ascontiguousarray(image[..., 2::-1])
    if fmt == "rgba8":
        return np.ascontiguousarray(image[..., :3])
    if fmt == "yuyv":
        import cv2

        return cv2.cvtColor(image.reshape(image.shape[0], -1, 2), cv2.COLOR_YUV2RGB_YUYV)
    return image


class _StreamPlayback:
    """Playback of one stream of a recording on its own playback device, frames into a bounded queue.

    One device per stream because playback starts reading when the first sensor of a device starts:
    a second sensor started a moment later misses frames (measured: about 1 run in 10 lost the
    color frame of the shared D435 .bag, whether or not the playback was paused around the starts).
    A device with a single started sensor sees every message of its stream.
    """

    def __init__(self, path: Path, key: str, queue_size: int, copy_data: bool, metadata: bool,
                 wanted: Callable[[int], bool] | None):
        self.path, self.key = path, key
        self.copy_data, self.metadata, self.wanted = copy_data, metadata, wanted
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self.stop_event = threading.Event()
        self._close_lock = threading.Lock()
        self.ended = threading.Event()
        self.count = 0
        self.sensor = None
        rs = _rs()
        self._ctx, self._device, self._playback = _load_device(path)
        for sensor in self._device.query_sensors():
            profiles = [p for p in sensor.get_stream_profiles() if _key_of(p) == key]
            if profiles:
                self.sensor, self.profile = sensor, profiles[0]
                break
        if self.sensor is None:
            raise RecordingError(f"{path}: no {key} stream in the recording")
        self.format = _enum_name(self.profile.format())

        def on_status(status):
            if status == rs.playback_status.stopped:
                self.ended.set()

        self._playback.set_status_changed_callback(on_status)
        self.sensor.open(self.profile)
        self.sensor.start(self._callback)

    def _callback(self, frame) -> None:
        if self.stop_event.is_set():
            return
        try:
            position = self.count  # callbacks of one sensor run one at a time
            self.count = position + 1
            data = None
            if self.copy_data and (self.wanted is None or self.wanted(position)):
                data = np.array(np.asanyarray(frame.get_data()), copy=True)
                if self.key == "color":
                    data = _to_rgb(data, self.format)
            meta = {}
            if self.metadata:
                for name, value in _rs().frame_metadata_value.__members__.items():
                    if frame.supports_frame_metadata(value):
                        meta[name] = int(frame.get_frame_metadata(value))
            item = Frame(self.key, position, int(frame.get_frame_number()), float(frame.get_timestamp()),
                         _enum_name(frame.get_frame_timestamp_domain()), data, meta)
        except Exception as exc:  # never let an exception escape into the SDK's thread
            item = exc
        # Blocking put: in non-real-time playback this holds the reader (back-pressure).
        while not self.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def frames(self, expected: int | None, idle_timeout_s: float) -> Iterator[Frame]:
        quiet_since = None
        delivered = 0
        while True:
            if expected is not None and delivered >= expected:
                return
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                # At end of file the SDK flushes the sensor (our callback has returned for every
                # frame) before it reports "stopped": stopped + empty queue is the end.
                now = time.monotonic()
                quiet_since = quiet_since or now
                if (self.ended.is_set() and now - quiet_since > 0.1) or now - quiet_since > idle_timeout_s:
                    break
                continue
            quiet_since = None
            if isinstance(item, Exception):
                raise RecordingError(f"{self.path}: {self.key} frame {self.count} could not be read: {item}") from None
            delivered += 1
            yield item
        if expected is not None and delivered < expected:
            raise RecordingError(
                f"{self.path}: playback of the {self.key} stream ended after {delivered} of {expected} frames: "
                "the file is damaged after that point (the frames before it were read); re-copy or re-record it"
            )

    def close(self) -> None:
        """Stop the sensor and release the device; once, whichever thread calls it (the SDK aborts
        the process when a playback is stopped twice at once)."""
        with self._close_lock:
            self.stop_event.set()
            if self.sensor is not None:
                try:
                    self.sensor.stop()
                    self.sensor.close()
                except RuntimeError:
                    pass
            while True:  # free frames still queued
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    break
            self.sensor = self.profile = None
            self._device = self._playback = self._ctx = None


class RealSenseReader:
    """Stream the frames of one recording with bounded memory.

    ``stream(key)`` yields the :class:`Frame` of one stream in file order; ``frames()`` yields
    every stream, one after the other. Each stream plays on its own playback device, non-real-time,
    and waits while ``queue_size`` frames are unconsumed. ``wanted`` maps a stream key to a
    predicate of the frame position: other frames are yielded with ``data=None`` (not copied), to
    resume or to take every n-th frame cheaply.
    ``expected`` maps stream keys to frame counts (from :func:`index_recording`): fewer frames
    means damage, and the iterator raises RecordingError after yielding what it could read.
    Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        path: str | Path,
        streams: tuple[str, ...] | None = None,
        queue_size: int = 4,
        copy_data: bool = True,
        metadata: bool = False,
        wanted: dict[str, Callable[[int], bool]] | None = None,
        expected: dict[str, int] | None = None,
        idle_timeout_s: float = 30.0,
    ):
        self.path = Path(path)
        self.queue_size = queue_size
        self.copy_data = copy_data
        self.metadata = metadata
        self.wanted = dict(wanted or {})
        self.expected = dict(expected) if expected else {}
        self.idle_timeout_s = idle_timeout_s
        if streams is None:
            _, device, _ = _load_device(self.path)
            streams = tuple(_key_of(p) for s in device.query_sensors() for p in s.get_stream_profiles())
            del device
        self.streams = tuple(streams)
        self._open: list[_StreamPlayback] = []

    def __enter__(self) -> "RealSenseReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def counts(self) -> dict[str, int]:
        return {p.key: p.count for p in self._open}

    def stream(self, key: str) -> Iterator[Frame]:
        """Frames of one stream in file order."""
        playback = _StreamPlayback(self.path, key, self.queue_size, self.copy_data, self.metadata,
                                   self.wanted.get(key))
        self._open.append(playback)
        try:
            yield from playback.frames(self.expected.get(key), self.idle_timeout_s)
        finally:
            playback.close()

    def frames(self) -> Iterator[Frame]:
        """Every frame of the chosen streams, stream after stream."""
        for key in self.streams:
            yield from self.stream(key)

    def close(self) -> None:
        for playback in self._open:
            playback.close()


def _key_of(profile) -> str:
    stream, index = _enum_name(profile.stream_type()), int(profile.stream_index())
    return stream if index == 0 else f"{stream}{index}"
