"""Qualisys QTM calibration export (``.qca.txt``, XML), import only.

Per ``<camera serial=...>``:

- ``<intrinsic>``: ``focalLengthU/V`` and ``centerPointU/V`` in 1/64 pixel (divided by 64 here, the
  principal point then shifted by the ``<fov_video>`` left/top crop); ``radialDistortion1..3`` and
  ``tangentalDistortion1..2`` are plain coefficients, NOT scaled (Pose2Sim's converter divides them
  by 64 too, which is wrong) -> OpenCV ``(k1, k2, p1, p2, k3)``.
- ``<transform>``: the camera's pose in the lab, millimetres: position ``x, y, z`` and a rotation
  ``r11..r33`` whose rows are the camera axes in the world, Qualisys camera axes being x right,
  y up, z backwards. OpenCV wants y down, z forwards: a rotation by pi about the camera x axis, so
  ``R = diag(1, -1, -1) @ [r_ij]`` and ``t = -R @ position / 1000``. Checked numerically against
  Pose2Sim's conversion of the same file (same R and t to 1e-6).
- image size: ``<fov_video>`` ``right - left + 1`` by ``bottom - top + 1``.

The lab (world) frame of a Qualisys system is Z up.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from calibration.camera import Rig
from calibration.formats._common import make_camera, make_rig, read_text
from capture.errors import FileFormatError

log = logging.getLogger(__name__)

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # rotation by pi about x: Qualisys camera axes -> OpenCV's


def _number(element, attribute: str, path, camera: str, where: str) -> float:
    value = None if element is None else element.get(attribute)
    if value is None:
        raise FileFormatError(f"{path}: camera {camera!r}: <{where}> has no {attribute!r}")
    try:
        return float(value)
    except ValueError:
        raise FileFormatError(f"{path}: camera {camera!r}: <{where}> {attribute}={value!r} is not a number") from None


def load(path: Path) -> Rig:
    text = read_text(path)
    try:
        root = ET.fromstring(text.encode("utf-8") if text.lstrip().startswith("<?xml") else text)
    except ET.ParseError as exc:
        raise FileFormatError(f"{path}: not valid XML ({exc}); is it a Qualisys .qca.txt export?") from None
    cameras = []
    for i, node in enumerate(root.findall("cameras/camera")):
        name = node.get("serial") or f"camera{i + 1}"
        if node.get("active", "1") == "0":
            log.info("%s: camera %r is inactive, skipped", path, name)
            continue
        intr = node.find("intrinsic")
        if intr is None:
            raise FileFormatError(f"{path}: camera {name!r} has no <intrinsic> (focal length, principal point)")
        fov = node.find("fov_video")
        if fov is None:
            raise FileFormatError(f"{path}: camera {name!r} has no <fov_video> (image size)")
        left, top = (_number(fov, k, path, name, "fov_video") for k in ("left", "top"))
        right, bottom = (_number(fov, k, path, name, "fov_video") for k in ("right", "bottom"))
        resolution = node.get("video_resolution")
        if resolution not in (None, "N/A", "1080p"):
            log.warning("%s: camera %r video_resolution=%s is not scaled; intrinsics are for the sensor's "
                        "full-resolution field of view", path, name, resolution)
        fu, fv, cu, cv = (
            _number(intr, k, path, name, "intrinsic") / 64.0
            for k in ("focalLengthU", "focalLengthV", "centerPointU", "centerPointV")
        )
        skew = float(intr.get("skew", 0.0) or 0.0)
        K = np.array([[fu, skew, cu - left], [0.0, fv, cv - top], [0.0, 0.0, 1.0]])
        k1, k2, k3 = (float(intr.get(f"radialDistortion{j}", 0.0)) for j in (1, 2, 3))
        p1, p2 = (float(intr.get(f"tangentalDistortion{j}", 0.0)) for j in (1, 2))
        tr = node.find("transform")
        if tr is None:
            raise FileFormatError(f"{path}: camera {name!r} has no <transform> (pose in the lab)")
        rows = [[_number(tr, f"r{r}{c}", path, name, "transform") for c in (1, 2, 3)] for r in (1, 2, 3)]
        position_m = np.array([_number(tr, k, path, name, "transform") for k in ("x", "y", "z")]) / 1000.0
        R = _FLIP_YZ @ np.asarray(rows)
        t = -R @ position_m
        size = (right - left + 1, bottom - top + 1)
        cameras.append(make_camera(path, name, size, K, [k1, k2, p1, p2, k3], R=R, t=t, serial=name))
    return make_rig(path, cameras)
