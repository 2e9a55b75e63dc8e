"""What a recording is, whatever holds it: a RealSense file (ROS1 .bag, rosbag2 .db3) or a video.

Shape letters: ``H``/``W`` image height and width, ``n`` frames of one stream.

The types every reader shares (:class:`StreamInfo`, :class:`RecordingInfo`, :class:`StreamIndex`,
:class:`Frame`) and the entry points that dispatch on the file type:

- :func:`read_recording_info`: serial, streams, intrinsics, depth scale (``capture.realsense_file``
  or ``capture.video``);
- :func:`index_recording`: every frame's timestamp and number without images (``capture.db3_index``
  for .db3, a playback pass for .bag, ``capture.video`` for videos);
- :func:`read_frames`: the frames of one file in order, bounded memory.

:class:`capture.stream.FrameSetStream` puts several of them together into frame sets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from capture.intrinsics import StreamIntrinsics
from capture.media_files import is_video


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


def read_recording_info(path: str | Path, fps: float | None = None) -> RecordingInfo:
    """Serial, name, streams, intrinsics, depth scale and depth-to-color extrinsics of one file.

    For a video file: size and frame rate (``fps`` overrides the file's), no depth; serial = stem.
    """
    path = Path(path)
    if is_video(path):
        from capture.video import video_info

        return video_info(path, fps)
    from capture.realsense_file import read_realsense_info

    return read_realsense_info(path)


def index_recording(path: str | Path, fps: float | None = None, timestamps: str | Path | None = None) -> dict[str, StreamIndex]:
    """Timestamps (ms), frame numbers and clock domain of every frame of every stream.

    .db3: read from the file's metadata messages (fast, :mod:`capture.db3_index`); .bag: one playback
    pass without copying images; video: from ``timestamps`` (a text file, one time in ms per line),
    else the file's frame rate.
    """
    path = Path(path)
    if is_video(path):
        from capture.video import video_index

        return {"color": video_index(path, fps, timestamps)}
    from capture.realsense_file import index_realsense

    return index_realsense(path)


def read_frames(path: str | Path, stream: str | None = None, metadata: bool = False) -> Iterator[Frame]:
    """Every frame of a recording (or of one stream) in file order, bounded memory; a video's frames."""
    path = Path(path)
    if is_video(path):
        from capture.video import read_video_frames

        yield from read_video_frames(path)
        return
    from capture.realsense_file import RealSenseReader

    reader = RealSenseReader(path, streams=None if stream is None else (stream,), metadata=metadata)
    with reader:
        yield from reader.frames()
