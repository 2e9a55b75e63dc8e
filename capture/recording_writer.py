"""Write RealSense recordings (one camera per file) from numpy frames.

The writer builds an ``rs.software_device`` that looks like a D435 (serial, name, a "Stereo Module"
with a z16 depth stream and an "RGB Camera" with an rgb8 color stream, intrinsics, depth units,
depth-to-color extrinsics) and records it with ``rs.recorder``, so the result is a genuine SDK
recording: pyrealsense2 itself (``rs.context().load_device``, ``rs.pipeline`` with
``enable_device_from_file``) and the RealSense Viewer play it back.

Facts learned about pyrealsense2 2.59 (measured, they explain the code below):

- ``rs.recorder`` writes a rosbag2 sqlite file (.db3) whatever extension is asked for, so the writer
  always writes ``*.db3`` (a ``.bag`` path is renamed, with a warning); read ``writer.path``.
- The file is complete only once the recorder object is destroyed; ``close()`` drops every
  reference to it before the file is renamed into place. Read the file back only after ``close()``.
- Frames reach the recorder only while the sensors are open and started. A frame goes from
  ``on_video_frame`` to the sensor's dispatcher thread (short queue: frames submitted faster are
  DROPPED), which stamps it and queues it for the recorder's write thread (unbounded queue; PNG
  encoding is slow, so the queue, and memory, grow: +0.45 MB per 848x480 frame pair). Destroying
  the recorder waits a bounded time for that queue, then DISCARDS the rest: 3,000-frame files lost
  their last 5-340 frames on a busy machine. ``recorder.pause()`` does drain the queue, but the
  pause time it subtracts from later message times races with frames stamped before ``resume()``
  runs, which made message times go backwards (playback then reorders frames). So the writer
  watches the file itself: rosbag2 commits each message, and a read-only sqlite3 connection
  counts the frames' metadata rows. ``write`` waits while more than ``MAX_PENDING`` frames are not
  yet in the file, ``close`` until all are, then destroys the recorder.
- ``software_video_frame.pixels`` copies the buffer, so one numpy array can be reused across calls.
- The recorder compresses frames: constant or smooth synthetic images cost little disk.
- Timestamps are written in the frame's own domain; we use ``global_time`` (milliseconds, one clock
  shared by all cameras of a rig) so that the synchronizer can compare cameras directly.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from capture.errors import RecordingError
from capture.intrinsics import StreamIntrinsics

log = logging.getLogger(__name__)

MAX_PENDING = 6  # frames per stream submitted but not yet in the file
IDENTITY_EXTRINSICS = ((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0))


class RealSenseRecordingWriter:
    """Record numpy frames of one simulated RealSense camera into a .db3 file.

    Use as a context manager::

        with RealSenseRecordingWriter("cam0.db3", "900000000000", color_intr, depth_intr, fps=30) as w:
            w.write(timestamp_ms, frame_number, color_rgb, depth_z16)
        # the file is final here; w.path is where it is

    ``depth_to_color`` is (R as 9 floats row-major, t as 3 floats in metres) mapping depth-camera
    coordinates to color-camera coordinates (the SDK's ``get_extrinsics_to`` convention; the SDK
    stores the rotation column-major, the writer converts). ``color`` or ``depth`` may be None for a
    recording with one stream only.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        serial: str,
        color: StreamIntrinsics | None,
        depth: StreamIntrinsics | None,
        fps: int,
        depth_scale: float = 0.001,
        depth_to_color: tuple = IDENTITY_EXTRINSICS,
        name: str = "Intel RealSense D435 (simulated)",
    ):
        import pyrealsense2 as rs

        if color is None and depth is None:
            raise ValueError("a recording needs a color or a depth stream (both are None)")
        path = Path(path)
        if path.suffix != ".db3":
            # pyrealsense2 2.59 writes rosbag2 sqlite whatever the extension; name it for what it is.
            log.warning("%s: pyrealsense2 records .db3 only; writing %s", path, path.with_suffix(".db3"))
            path = path.with_suffix(".db3")
        self.path = path
        self.serial = str(serial)
        self.fps = int(fps)
        self.depth_scale = float(depth_scale)
        self.color_intrinsics = color
        self.depth_intrinsics = depth
        self._tmp = path.with_name(f".{path.stem}.partial.db3")
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (self._tmp, Path(str(self._tmp) + "-journal")):
            if stale.exists():
                stale.unlink()
        self.frames_written = 0
        self._submitted = {"depth": 0, "color": 0}
        self._delivered = {"depth": 0, "color": 0}
        self._in_file = {"depth": 0, "color": 0}
        self._db = None
        self._topics: dict[int, str] = {}
        self._last_row = 0

        dev = rs.software_device()
        dev.register_info(rs.camera_info.serial_number, self.serial)
        dev.register_info(rs.camera_info.name, name)
        dev.register_info(rs.camera_info.product_line, "D400")
        self._sensors = []  # (sensor, profile) kept alive as long as the recorder
        self._depth = self._add_stream(rs, dev, "Stereo Module", rs.stream.depth, depth, 2, rs.format.z16, 0) \
            if depth is not None else None
        if self._depth is not None:
            # Read-only option: playback reports it as the sensor's depth scale.
            self._depth[0].add_read_only_option(rs.option.depth_units, self.depth_scale)
        self._color = self._add_stream(rs, dev, "RGB Camera", rs.stream.color, color, 3, rs.format.rgb8,
                                       int(self._depth is not None)) if color is not None else None
        if self._depth is not None and self._color is not None:
            self._register_extrinsics(rs, depth_to_color)
        self._device = dev
        # The recorder must exist before the sensors open: it wraps them to capture every frame.
        self._recorder = rs.recorder(str(self._tmp), dev)
        self._rs = rs
        for label, pair in (("depth", self._depth), ("color", self._color)):
            if pair is not None:
                pair[0].open(pair[1])
                pair[0].start(lambda frame, label=label: self._on_recorded(label))
                self._sensors.append(pair)

    def _add_stream(self, rs, dev, sensor_name: str, kind, intr: StreamIntrinsics, bpp: int, fmt, uid: int):
        """A sensor with one video stream of ``intr``'s size at the writer's fps: (sensor, profile)."""
        sensor = dev.add_sensor(sensor_name)
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = kind, 0, uid
        stream.width, stream.height, stream.fps = intr.width, intr.height, self.fps
        stream.bpp, stream.fmt, stream.intrinsics = bpp, fmt, intr.to_rs()
        return sensor, sensor.add_video_stream(stream).as_video_stream_profile()

    def _register_extrinsics(self, rs, depth_to_color) -> None:
        """Depth-to-colour (and back) on the two profiles; librealsense stores rotations column-major."""
        R = np.asarray(depth_to_color[0], dtype=float).reshape(3, 3)
        t = np.asarray(depth_to_color[1], dtype=float).reshape(3)
        ext = rs.extrinsics()
        ext.rotation = [float(v) for v in R.T.ravel()]
        ext.translation = [float(v) for v in t]
        self._depth[1].register_extrinsics_to(self._color[1], ext)
        inv = rs.extrinsics()
        inv.rotation = [float(v) for v in R.ravel()]  # (R^T) column-major == R row-major
        inv.translation = [float(v) for v in -R.T @ t]
        self._color[1].register_extrinsics_to(self._depth[1], inv)

    def _on_recorded(self, label: str) -> None:
        self._delivered[label] += 1  # one sensor's callbacks run one at a time

    def _wait(self, label: str, in_flight: int, timeout_s: float = 30.0) -> None:
        """Wait until the sensor handed all but ``in_flight`` frames to the recorder."""
        import time

        deadline = time.monotonic() + timeout_s
        while self._submitted[label] - self._delivered[label] > in_flight:
            if time.monotonic() > deadline:
                raise RecordingError(
                    f"{self.path}: the recorder did not take {label} frame {self._submitted[label]} within "
                    f"{timeout_s:g} s ({self._delivered[label]} taken)"
                )
            time.sleep(0.0005)

    def _count_in_file(self) -> None:
        """Add the frames committed to the file since the last call (metadata rows per stream)."""
        import sqlite3

        try:
            if self._db is None:
                # check_same_thread=False: a session may write from one thread and close from another;
                # one writer is never used by two threads at once.
                self._db = sqlite3.connect(
                    f"file:{self._tmp}?mode=ro", uri=True, timeout=1.0, check_same_thread=False
                )
            rows = self._db.execute(
                "SELECT id, topic_id FROM messages WHERE id > ? ORDER BY id", (self._last_row,)
            ).fetchall()
            for row_id, topic in rows:
                if topic not in self._topics:
                    self._topics = {
                        tid: ("depth" if "/Depth_0/" in name else "color" if "/Color_0/" in name else "")
                        for tid, name in self._db.execute("SELECT id, name FROM topics")
                        if name.endswith("/image/metadata")
                    }
                label = self._topics.get(topic)
                if label:
                    self._in_file[label] += 1
                self._last_row = row_id
        except sqlite3.Error:
            pass  # the file or its tables do not exist yet, or the writer holds a lock: ask again later

    def _wait_in_file(self, pending: int, timeout_s: float = 60.0) -> None:
        """Wait until at most ``pending`` frames per stream are not yet in the file."""
        import time

        last_progress, last_total = time.monotonic(), -1
        while True:
            self._count_in_file()
            behind = {k: self._submitted[k] - self._in_file[k] for k in self._submitted}
            if max(behind.values()) <= pending:
                return
            total = sum(self._in_file.values())
            if total != last_total:
                last_progress, last_total = time.monotonic(), total
            elif time.monotonic() - last_progress > timeout_s:
                raise RecordingError(
                    f"{self.path}: the recorder stopped writing ({self._in_file} frames in the file, "
                    f"{self._submitted} submitted)"
                )
            time.sleep(0.002)

    @property
    def partial_path(self) -> Path:
        """The file being written (renamed to :attr:`path` by :meth:`close`)."""
        return self._tmp

    def __enter__(self) -> "RealSenseRecordingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(keep=exc_type is None)

    def write(
        self,
        timestamp_ms: float,
        frame_number: int,
        color: np.ndarray | None,
        depth: np.ndarray | None,
    ) -> None:
        """Record one frame of each given stream with a global-time timestamp (ms) and frame number.

        ``color`` (H, W, 3) uint8 RGB, ``depth`` (H, W) uint16 in units of ``depth_scale``; pass None
        to skip a stream for this frame (a dropped frame).
        """
        if self._recorder is None:
            raise RecordingError(f"{self.path}: writer already closed")
        rs = self._rs
        for image, pair, intr, bpp, shape, dtype, label in (
            (depth, self._depth, self.depth_intrinsics, 2, 2, np.uint16, "depth"),
            (color, self._color, self.color_intrinsics, 3, 3, np.uint8, "color"),
        ):
            if image is None:
                continue
            if pair is None:
                raise ValueError(f"{self.path}: the recording has no {label} stream")
            expected = (intr.height, intr.width) + ((3,) if shape == 3 else ())
            if image.shape != expected or image.dtype != dtype:
                raise ValueError(
                    f"{label} frame must be {expected} {np.dtype(dtype).name}, got {image.shape} {image.dtype}"
                )
            frame = rs.software_video_frame()
            frame.pixels = np.ascontiguousarray(image)
            frame.bpp = bpp
            frame.stride = bpp * intr.width
            frame.timestamp = float(timestamp_ms)
            frame.domain = rs.timestamp_domain.global_time
            frame.frame_number = int(frame_number)
            frame.profile = pair[1]
            if label == "depth":
                frame.depth_units = self.depth_scale
            pair[0].on_video_frame(frame)
            self._submitted[label] += 1
            self._wait(label, in_flight=0)
        self.frames_written += 1
        self._wait_in_file(MAX_PENDING)

    def close(self, keep: bool = True) -> Path:
        """Stop the sensors, destroy the recorder (which finalizes the file) and move it into place.

        With ``keep=False`` (an exception inside the ``with`` block) the partial file is removed.
        """
        if self._recorder is None:
            return self.path
        for label in self._submitted:
            if self._submitted[label]:
                self._wait(label, in_flight=0)
        self._wait_in_file(0)  # destruction would drop what is still queued
        if self._db is not None:
            self._db.close()
            self._db = None
        for sensor, _ in self._sensors:
            sensor.stop()
            sensor.close()
        self._sensors.clear()
        self._recorder = None  # the file is flushed and closed when the recorder is destroyed
        self._depth = self._color = None
        self._device = None
        import gc

        gc.collect()
        if keep:
            os.replace(self._tmp, self.path)
        elif self._tmp.exists():
            self._tmp.unlink()
        return self.path
