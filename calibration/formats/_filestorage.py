"""Small helpers over cv2.FileStorage (OpenCV's YAML dialect, header ``%YAML:1.0`` / ``%YAML 1.2``)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def is_filestorage_yaml(path: Path) -> bool:
    """True when the file starts with an OpenCV ``%YAML`` directive (our YAML never has one)."""
    try:
        with open(path, "rb") as f:
            return f.read(5) == b"%YAML"
    except OSError:
        return False


def open_read(path: Path):
    import cv2

    if not Path(path).is_file():
        raise FileFormatError(f"{path}: file not found")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as exc:
        raise FileFormatError(f"{path}: not a readable OpenCV FileStorage file ({str(exc).strip()})") from None
    if not fs.isOpened():
        raise FileFormatError(f"{path}: not a readable OpenCV FileStorage file")
    return fs


@contextmanager
def open_write(path: Path):
    """cv2.FileStorage writing to a temp file, renamed over ``path`` when the block succeeds."""
    import cv2

    with atomic_path(path, suffix=".yml") as tmp:
        fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_FORMAT_YAML)
        try:
            yield fs
        finally:
            fs.release()


def write_strings(fs, key: str, values) -> None:
    import cv2

    fs.startWriteStruct(key, cv2.FileNode_SEQ)
    for value in values:
        fs.write("", str(value))
    fs.endWriteStruct()


def read_strings(node) -> list[str]:
    if node.isSeq():
        return [node.at(i).string() if node.at(i).isString() else _number_text(node.at(i)) for i in range(node.size())]
    return []


def _number_text(node) -> str:
    value = node.real()
    return str(int(value)) if float(value).is_integer() else str(value)


def read_matrix(node, path, camera: str, field: str, required: bool = True) -> np.ndarray | None:
    """Matrix node -> float64 array; a missing one -> FileFormatError naming file, camera, field."""
    if node.empty() or node.isNone():
        if required:
            raise FileFormatError(f"{path}: camera {camera!r} has no {field!r}")
        return None
    mat = node.mat()
    if mat is None:
        if node.isSeq():
            return np.array([node.at(i).real() for i in range(node.size())], dtype=np.float64)
        raise FileFormatError(f"{path}: camera {camera!r}: {field!r} is not a matrix")
    return np.asarray(mat, dtype=np.float64)


def check_key(name: str, path, what: str) -> None:
    if not KEY_RE.fullmatch(name):
        raise FileFormatError(
            f"{path}: camera name {name!r} cannot be used in {what} keys (letters, digits, '_' and '-' only); "
            "rename the camera"
        )
