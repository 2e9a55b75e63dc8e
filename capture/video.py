"""Video files as views without depth: their info, their frame times and their RGB frames (OpenCV).

A video's frame ``i`` is stamped ``1000 i / fps`` ms (its own clock, ``video_fps`` domain) unless a
timestamps file gives each frame's time (``timestamps_file`` domain).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from capture.errors import RecordingError
from capture.recording import Frame, RecordingInfo, StreamIndex, StreamInfo


def _video_capture(path: Path):
    import cv2

    if not path.is_file():
        raise RecordingError(f"{path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RecordingError(f"{path}: cannot be opened as a video (damaged or an unsupported codec)")
    return cap


def video_info(path: Path, fps: float | None = None) -> RecordingInfo:
    """Size and frame rate of a video (``fps`` overrides the file's); serial and name are the stem."""
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


def video_index(path: Path, fps: float | None, timestamps: str | Path | None) -> StreamIndex:
    """Frame times of a video: from a timestamps file (one time in ms per line), else ``i / fps``."""
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


def read_video_frames(path: str | Path, start: int = 0,
                      wanted: Callable[[int], bool] | None = None) -> Iterator[Frame]:
    """RGB frames of a video file from position ``start`` (a frame index); frames for which
    ``wanted(position)`` is False are skipped without decoding (``data`` None)."""
    import cv2

    path = Path(path)
    cap = _video_capture(path)
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        position = start
        while True:
            if wanted is not None and not wanted(position):
                if not cap.grab():
                    return
                yield Frame("color", position, position, float("nan"), "video", None)
            else:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield Frame("color", position, position, float("nan"), "video", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            position += 1
    finally:
        cap.release()
