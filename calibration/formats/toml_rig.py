"""Pose2Sim / anipose calibration TOML.

One table per camera (Pose2Sim names the table after the camera), then ``[metadata]``:

    [cam_01]
    name = "cam_01"
    size = [1088, 1920]                       # width, height
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2]            # OpenCV order (we write all our coefficients)
    rotation = [rx, ry, rz]                   # Rodrigues vector, world -> camera
    translation = [tx, ty, tz]                # metres, world -> camera
    fisheye = false

Cameras are read in file order (Pose2Sim's order). anipose (aniposelib) orders cameras by table
name, so keep table names sortable when you hand the file to anipose. The file is written by hand
(floats as Python repr, exact on reading back) because the standard library only reads TOML.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from calibration.camera import Rig
from calibration.formats._common import make_camera, make_rig, read_text
from capture.atomic import atomic_write_text
from capture.errors import FileFormatError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport has the same API
    import tomli as tomllib

_REQUIRED = ("size", "matrix", "distortions", "rotation", "translation")


def load(path: Path) -> Rig:
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"{path}: not valid TOML ({exc}); the file may be truncated") from None
    cameras = []
    for key, table in data.items():
        if key == "metadata" or not isinstance(table, dict):
            continue
        name = str(table.get("name", key))
        for field in _REQUIRED:
            if field not in table:
                raise FileFormatError(f"{path}: camera {name!r} (table [{key}]) has no {field!r}")
        if table.get("fisheye", False):
            raise FileFormatError(
                f"{path}: camera {name!r}: fisheye = true is not supported (only the OpenCV pinhole model)"
            )
        cameras.append(
            make_camera(
                path, name, table["size"], table["matrix"], table["distortions"],
                rvec=table["rotation"], t=table["translation"], serial=table.get("serial", ""),
            )
        )
    return make_rig(path, cameras)


def _float(value: float) -> str:
    return repr(float(value))


def _list(values) -> str:
    return "[ " + ", ".join(_float(v) for v in values) + "]"


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def dumps(rig: Rig) -> str:
    parts = []
    for c in rig:
        lines = [
            f"[{_key(c.name)}]",
            f"name = {json.dumps(c.name)}",
            f"size = [ {c.image_size[0]}, {c.image_size[1]}]",
            "matrix = [ " + ", ".join(_list(row) for row in c.K) + "]",
            f"distortions = {_list(c.dist)}",
            f"rotation = {_list(c.rvec)}",
            f"translation = {_list(c.t)}",
            "fisheye = false",
        ]
        if c.serial:
            lines.insert(2, f"serial = {json.dumps(c.serial)}")
        parts.append("\n".join(lines) + "\n")
    parts.append("[metadata]\nadjusted = false\nerror = 0.0\n")
    return "\n".join(parts)


def save(rig: Rig, path: Path) -> None:
    atomic_write_text(path, dumps(rig))
