"""Our rig YAML (see docs/formats.md).

    units: m
    world: "Z up, origin on the floor at the board's first corner"
    cameras:
      - name: cam0
        serial: "123456789012"
        image_size: [640, 480]          # width, height in pixels
        K: [[615.0, 0.0, 320.0], [0.0, 615.0, 240.0], [0.0, 0.0, 1.0]]
        dist: [k1, k2, p1, p2, k3]       # OpenCV order; 0, 4, 5 or 8 values
        R: [[...], [...], [...]]         # world -> camera rotation (or rvec: [rx, ry, rz] radians)
        t: [tx, ty, tz]                  # world -> camera translation, in `units`

Floats are written with Python's repr, so a write/read round trip is exact.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Rig
from calibration.formats._common import make_camera, make_rig, read_text
from capture.atomic import atomic_write_text
from capture.errors import FileFormatError

_UNITS = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}
_CAMERA_KEYS = {"name", "serial", "image_size", "K", "dist", "R", "rvec", "t"}


def _numbers(value):
    """YAML 1.1 loads 1e-3 as a string: turn numeric strings inside nested lists into floats."""
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load(path: Path) -> Rig:
    import yaml

    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise FileFormatError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        raise FileFormatError(f"{path}: a rig file needs a top-level 'cameras:' list")
    unknown = sorted(set(data) - {"cameras", "units", "world"})
    if unknown:
        raise FileFormatError(f"{path}: unknown top-level key {unknown[0]!r} (known: cameras, units, world)")
    units = str(data.get("units", "m"))
    if units not in _UNITS:
        raise FileFormatError(f"{path}: 'units' is {units!r}, expected one of {', '.join(_UNITS)}")
    cameras = []
    for i, entry in enumerate(data["cameras"]):
        if not isinstance(entry, dict):
            raise FileFormatError(f"{path}: cameras[{i}] must be a mapping with name, image_size, K, ...")
        name = str(entry.get("name", f"cam{i}"))
        unknown = sorted(set(entry) - _CAMERA_KEYS)
        if unknown:
            raise FileFormatError(
                f"{path}: camera {name!r}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_CAMERA_KEYS))})"
            )
        for key in ("image_size", "K"):
            if key not in entry:
                raise FileFormatError(f"{path}: camera {name!r} has no {key!r}")
        if "R" in entry and "rvec" in entry:
            raise FileFormatError(f"{path}: camera {name!r}: give either 'R' or 'rvec', not both")
        t = _numbers(entry.get("t"))
        if t is not None:
            try:
                t = np.asarray(t, dtype=np.float64) * _UNITS[units]
            except (TypeError, ValueError):
                raise FileFormatError(f"{path}: camera {name!r}: 't' is not a list of numbers") from None
        cameras.append(
            make_camera(
                path, name, _numbers(entry["image_size"]), _numbers(entry["K"]), _numbers(entry.get("dist")),
                R=_numbers(entry.get("R")), rvec=_numbers(entry.get("rvec")), t=t, serial=entry.get("serial", ""),
            )
        )
    return make_rig(path, cameras)


def dumps(rig: Rig, world: str = "") -> str:
    import yaml

    data = {
        "units": "m",
        "world": world or "world frame of the calibration (Z up by convention); R, t map world -> camera",
        "cameras": [
            {
                "name": c.name,
                "serial": c.serial,
                "image_size": list(c.image_size),
                "K": c.K.tolist(),
                "dist": c.dist.tolist(),
                "R": c.R.tolist(),
                "t": c.t.tolist(),
            }
            for c in rig
        ],
    }
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def save(rig: Rig, path: Path, world: str = "") -> None:
    atomic_write_text(path, dumps(rig, world))
