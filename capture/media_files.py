"""Which files hold what: the one list of recording, video and image file types.

Every reader of the project (sessions, calibration, 2D detection, inspection) asks here, so a
new container format is added in one place.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

RECORDING_SUFFIXES = (".bag", ".db3")  # RealSense: ROS1 bag (read only), rosbag2 sqlite (read and write)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_recording(path: str | Path) -> bool:
    """A RealSense recording by its extension (.bag, .db3)."""
    return Path(path).suffix.lower() in RECORDING_SUFFIXES


def is_video(path: str | Path) -> bool:
    """A video file by its extension (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_image(path: str | Path) -> bool:
    """An image file by its extension (:data:`IMAGE_SUFFIXES`)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def describe_media() -> str:
    """'recordings (.bag, .db3) or videos (.mp4, ...)', for messages."""
    return f"recordings ({', '.join(RECORDING_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)})"


def media_files(paths: Iterable[str | Path]) -> list[Path]:
    """The recordings and videos named by ``paths``: files as given, folders expanded to the
    recordings and videos directly inside them (sorted). A missing path, a file of another type
    or a folder without any is a :class:`~capture.errors.RecordingError` naming it."""
    from capture.errors import RecordingError

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and (is_recording(f) or is_video(f)))
            if not found:
                raise RecordingError(f"{p}: no {describe_media()} in this folder")
            files.extend(found)
        elif p.is_file():
            if not (is_recording(p) or is_video(p)):
                raise RecordingError(f"{p}: not one of the {describe_media()}")
            files.append(p)
        else:
            raise RecordingError(f"{p}: no such file or folder")
    return files
