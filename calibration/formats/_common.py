"""Helpers shared by the rig formats: building cameras with file/camera/field error messages."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Camera, Rig, rodrigues_to_matrix
from capture.errors import FileFormatError


def field_array(value, shape: tuple[int, ...] | None, path, camera: str, field: str) -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (any 1-D length if ``shape`` is (-1,)),
    else FileFormatError naming the file, the camera and the field."""
    if value is None:
        raise FileFormatError(f"{path}: camera {camera!r} has no {field!r}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FileFormatError(f"{path}: camera {camera!r}: {field!r} is not a list of numbers") from None
    if shape == (-1,):
        array = array.ravel()
    elif shape is not None and array.size == int(np.prod(shape)) and array.shape != shape:
        array = array.reshape(shape)
    if shape is not None and shape != (-1,) and array.shape != shape:
        raise FileFormatError(f"{path}: camera {camera!r}: {field!r} must be {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise FileFormatError(f"{path}: camera {camera!r}: {field!r} contains NaN or infinity")
    return array


def make_camera(path, name, image_size, K, dist, R=None, rvec=None, t=None, serial="") -> Camera:
    """Camera from raw fields; any invalid value -> FileFormatError naming file and camera."""
    name = str(name)
    K = field_array(K, (3, 3), path, name, "K")
    dist = field_array(dist if dist is not None else [], (-1,), path, name, "dist")
    if R is not None:
        R = field_array(R, (3, 3), path, name, "R")
    elif rvec is not None:
        R = rodrigues_to_matrix(field_array(rvec, (3,), path, name, "rvec"))
    else:
        R = np.eye(3)
    t = field_array(t, (3,), path, name, "t") if t is not None else np.zeros(3)
    size = field_array(image_size, (2,), path, name, "image_size")
    try:
        return Camera(name, tuple(size), K, dist, R, t, serial=str(serial or ""))
    except ValueError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


def make_rig(path, cameras: list[Camera]) -> Rig:
    if not cameras:
        raise FileFormatError(f"{path}: no cameras in the file")
    try:
        return Rig(tuple(cameras))
    except ValueError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: cannot read ({exc})") from None
