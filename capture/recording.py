"""Read RealSense recordings (ROS1 .bag, rosbag2 .db3) and video files, one camera per file.

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
  ..;timestamp=..") next to a PNG image; :func:`index_recording` reads those strings with sqlite3
  (no image decoding), which is how frame counts and timestamps are known before playback.
"""
from __future__ import annotations

import logging
import queue
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from capture.errors import RecordingError
from capture.recording_writer import StreamIntrinsics

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".bag", ".db3")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
_DOMAINS = {"global time": "global_time", "hardware clock": "hardware_clock", "system time": "system_time"}


@dataclass(frozen=True, eq=False)
class StreamInfo:
    """One stream of a recording: ``stream`` is 'depth', 'color', 'infrared', ..."""

    stream: str
    index: int
    format: str
    width: int
    height: int
    fps: float
    intrinsics: StreamIntrinsics | None
    sensor: str = ""

    @property
    def key(self) -> str:
        """Unique name within a recording: 'depth', 'color', 'infrared1', ..."""
        return self.stream if self.index == 0 else f"{self.stream}{self.index}"


@dataclass(frozen=True, eq=False)
class RecordingInfo:
    """What a recording says about its camera.

    depth_to_color: (R (3, 3), t (3,) metres) mapping depth-camera points to color-camera points,
        or None when the recording lacks one of the two streams.
    depth_scale: metres per depth unit, NaN without a depth stream.
    kind: 'realsense' or 'video'.
    """

    path: Path
    serial: str
    name: str
    streams: tuple[StreamInfo, ...]
    color_intrinsics: StreamIntrinsics | None
    depth_intrinsics: StreamIntrinsics | None
    depth_scale: float
    depth_to_color: tuple[np.ndarray, np.ndarray] | None
    duration_ms: float
    kind: str = "realsense"

    def stream(self, key: str) -> StreamInfo | None:
        return next((s for s in self.streams if s.key == key), None)

    @property
    def has_depth(self) -> bool:
        return self.stream("depth") is not None

    @property
    def primary(self) -> str:
        """The stream whose frames define this camera's frames: color when present, else depth."""
        return "color" if self.stream("color") is not None else self.streams[0].key

    @property
    def fps(self) -> float:
        return self.stream(self.primary).fps


@dataclass(frozen=True, eq=False)
class StreamIndex:
    """Per-frame facts of one stream, without images: (n,) arrays in file order."""

    timestamps_ms: np.ndarray
    frame_numbers: np.ndarray
    domain: str

    def __len__(self) -> int:
        return int(self.timestamps_ms.size)


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame of one stream. ``position`` counts the stream's frames in file order from 0;
    ``data`` is (H, W) uint16 for depth, (H, W, 3) uint8 RGB for color, None when skipped."""

    stream: str
    position: int
    frame_number: int
    timestamp_ms: float
    domain: str
    data: np.ndarray | None
    metadata: dict = field(default_factory=dict)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


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


def read_recording_info(path: str | Path, fps: float | None = None) -> RecordingInfo:
    """Serial, name, streams, intrinsics, depth scale and depth-to-color extrinsics of one file.

    For a video file: size and frame rate (``fps`` overrides the file's), no depth; serial = stem.
    """
    path = Path(path)
    if is_video(path):
        return _video_info(path, fps)
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


# --------------------------------------------------------------------------------------------
# Index (timestamps and frame numbers without images)

_TOPIC = re.compile(r"/device_\d+/sensor_\d+/([A-Za-z]+)_(\d+)/image/metadata$")


def _db3_index(path: Path) -> dict[str, StreamIndex] | None:
    """Per-stream index of a .db3 from its metadata strings (sqlite3, no image decoding);
    None when the file does not look like a librealsense rosbag2 file."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        topics = con.execute("SELECT id, name FROM topics").fetchall()
        wanted = {}
        for tid, name in topics:
            m = _TOPIC.search(name)
            if m:
                stream, idx = m.group(1).lower(), int(m.group(2))
                wanted[tid] = stream if idx == 0 else f"{stream}{idx}"
        if not wanted:
            return None
        rows = con.execute(
            f"SELECT topic_id, data FROM messages WHERE topic_id IN ({','.join('?' * len(wanted))}) "
            "ORDER BY timestamp, id",
            tuple(wanted),
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    out: dict[str, tuple[list, list, str]] = {k: ([], [], "") for k in wanted.values()}
    for tid, data in rows:
        text = bytes(data[8:]).split(b"\0", 1)[0].decode("utf-8", "replace")  # CDR string after a 4+4 byte header
        fields = dict(kv.split("=", 1) for kv in text.split(";") if "=" in kv)
        try:
            ts, fn = float(fields["timestamp"]), int(fields["Frame number"])
        except (KeyError, ValueError):
            return None
        entry = out[wanted[tid]]
        entry[0].append(ts)
        entry[1].append(fn)
        out[wanted[tid]] = (entry[0], entry[1], _DOMAINS.get(fields.get("timestamp_domain", "").lower(), "unknown"))
    return {k: StreamIndex(np.asarray(t, dtype=float), np.asarray(n, dtype=np.int64), d) for k, (t, n, d) in out.items()}


def index_recording(path: str | Path, fps: float | None = None, timestamps: str | Path | None = None) -> dict[str, StreamIndex]:
    """Timestamps (ms), frame numbers and clock domain of every frame of every stream.

    .db3: read from the file's metadata messages (fast); .bag: one playback pass without copying
    images; video: from ``timestamps`` (a text file, one time in ms per line), else the file.
    """
    path = Path(path)
    if is_video(path):
        return {"color": _video_index(path, fps, timestamps)}
    if path.suffix.lower() == ".db3":
        _load_device(path)  # the same errors as playback for damaged files
        index = _db3_index(path)
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


# --------------------------------------------------------------------------------------------
# Frames


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

    def __init__(self, path: Path, key: str, queue_size: int, copy_data: bool, metadata: bool, skip_before: int):
        self.path, self.key = path, key
        self.copy_data, self.metadata, self.skip_before = copy_data, metadata, skip_before
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self.stop_event = threading.Event()
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
            if self.copy_data and position >= self.skip_before:
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
    and waits while ``queue_size`` frames are unconsumed. ``skip_before`` maps a stream key to a
    position: earlier frames are yielded with ``data=None`` (not copied), to resume cheaply.
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
        skip_before: dict[str, int] | None = None,
        expected: dict[str, int] | None = None,
        idle_timeout_s: float = 30.0,
    ):
        self.path = Path(path)
        self.queue_size = queue_size
        self.copy_data = copy_data
        self.metadata = metadata
        self.skip_before = dict(skip_before or {})
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
                                   self.skip_before.get(key, 0))
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


def read_frames(path: str | Path, stream: str | None = None, metadata: bool = False) -> Iterator[Frame]:
    """Every frame of a recording (or of one stream) in file order, bounded memory."""
    reader = RealSenseReader(path, streams=None if stream is None else (stream,), metadata=metadata)
    with reader:
        yield from reader.frames()


# --------------------------------------------------------------------------------------------
# Depth aligned to color


def _distort(x: np.ndarray, y: np.ndarray, coeffs) -> tuple[np.ndarray, np.ndarray]:
    k1, k2, p1, p2, k3 = coeffs
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y))


def align_depth_to_color(
    depth: np.ndarray,
    depth_intrinsics: StreamIntrinsics,
    color_intrinsics: StreamIntrinsics,
    depth_to_color: tuple[np.ndarray, np.ndarray],
    depth_scale: float,
) -> np.ndarray:
    """Depth (H_d, W_d) uint16 re-sampled onto the color image (H_c, W_c) uint16, same units.

    Like ``rs.align(rs.stream.color)``: each depth pixel's footprint (its corners at +-0.5 px) is
    deprojected, moved into the color camera and projected; the color pixels it covers take its
    depth, the nearest surface winning where footprints overlap. Depth distortion is ignored (D4xx
    depth streams have none); color distortion is brown_conrady (OpenCV k1, k2, p1, p2, k3).
    Vectorized: one pass per footprint offset, never per pixel.
    """
    R, t = (np.asarray(a, dtype=float) for a in depth_to_color)
    Hd, Wd = depth.shape
    Wc, Hc = color_intrinsics.width, color_intrinsics.height
    v, u = np.nonzero(depth)
    z = depth[v, u].astype(np.float64) * depth_scale
    out = np.full(Hc * Wc, np.iinfo(np.uint32).max, dtype=np.uint32)
    if z.size == 0:
        return np.zeros((Hc, Wc), np.uint16)
    di, ci = depth_intrinsics, color_intrinsics
    # Centre of each depth pixel in the color camera; a corner (+-0.5 px) differs by a column of R
    # scaled by z / f, so the four corners cost additions, not four deprojections.
    x = (u - di.ppx) * (z / di.fx)
    y = (v - di.ppy) * (z / di.fy)
    Q = R @ np.stack([x, y, z]) + t[:, None]
    ex = R[:, 0][:, None] * (0.5 * z / di.fx)
    ey = R[:, 1][:, None] * (0.5 * z / di.fy)
    umin = vmin = np.inf
    umax = vmax = -np.inf
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            C = Q + sx * ex + sy * ey
            xn, yn = C[0] / C[2], C[1] / C[2]
            if any(ci.coeffs):
                xn, yn = _distort(xn, yn, ci.coeffs)
            pu, pv = xn * ci.fx + ci.ppx, yn * ci.fy + ci.ppy
            umin, umax = np.minimum(umin, pu), np.maximum(umax, pu)
            vmin, vmax = np.minimum(vmin, pv), np.maximum(vmax, pv)
    u0 = np.floor(umin + 0.5).astype(np.int64)
    u1 = np.floor(umax + 0.5).astype(np.int64)
    v0 = np.floor(vmin + 0.5).astype(np.int64)
    v1 = np.floor(vmax + 0.5).astype(np.int64)
    span = int(min(8, max(1, (u1 - u0).max(initial=0) + 1, (v1 - v0).max(initial=0) + 1)))
    value = depth[v, u].astype(np.uint32)
    for a in range(span):
        for b in range(span):
            uu, vv = u0 + a, v0 + b
            ok = (uu <= u1) & (vv <= v1) & (uu >= 0) & (uu < Wc) & (vv >= 0) & (vv < Hc)
            np.minimum.at(out, vv[ok] * Wc + uu[ok], value[ok])
    out[out == np.iinfo(np.uint32).max] = 0
    return out.reshape(Hc, Wc).astype(np.uint16)


# --------------------------------------------------------------------------------------------
# Video files as views without depth


def _video_capture(path: Path):
    import cv2

    if not path.is_file():
        raise RecordingError(f"{path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RecordingError(f"{path}: cannot be opened as a video (damaged or an unsupported codec)")
    return cap


def _video_info(path: Path, fps: float | None = None) -> RecordingInfo:
    import cv2

    cap = _video_capture(path)
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        file_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    fps = fps or file_fps
    stream = StreamInfo("color", 0, "rgb8", w, h, float(fps), None, "video")
    return RecordingInfo(path, path.stem, "video", (stream,), None, None, float("nan"), None,
                         n * 1000.0 / fps if fps else float("nan"), kind="video")


def _video_index(path: Path, fps: float | None, timestamps: str | Path | None) -> StreamIndex:
    import cv2

    if timestamps is not None:
        try:
            t = np.loadtxt(timestamps, dtype=float, ndmin=1, comments="#", delimiter=None)
        except (OSError, ValueError) as exc:
            raise RecordingError(f"{timestamps}: cannot read timestamps (one time in ms per line): {exc}") from None
        return StreamIndex(t.reshape(-1), np.arange(t.size, dtype=np.int64), "timestamps_file")
    cap = _video_capture(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = fps or float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    if not fps:
        raise RecordingError(f"{path}: the video does not state its frame rate; give fps or a timestamps file")
    return StreamIndex(np.arange(n) * 1000.0 / fps, np.arange(n, dtype=np.int64), "video_fps")


def read_video_frames(path: str | Path, start: int = 0) -> Iterator[Frame]:
    """RGB frames of a video file from position ``start`` (a frame index)."""
    import cv2

    path = Path(path)
    cap = _video_capture(path)
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        position = start
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield Frame("color", position, position, float("nan"), "video", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            position += 1
    finally:
        cap.release()
