"""Rig files: load and save by format, chosen by extension, content or name.

Formats (one module each in :mod:`calibration.formats`, see docs/formats.md):

=============  ======================================================  ===========
``yaml``       ours: ``cameras:`` list with K, dist, R, t (metres)     read/write
``toml``       Pose2Sim / anipose calibration TOML                      read/write
``opencv``     OpenCV FileStorage YAML (``%YAML`` header), one node     read/write
               per camera
``easymocap``  EasyMocap ``intri.yml`` + ``extri.yml`` in a folder     read/write
``qca``        Qualisys ``.qca.txt`` (XML)                              read only
=============  ======================================================  ===========
"""
from __future__ import annotations

import importlib
from pathlib import Path

from calibration.camera import Rig
from capture.errors import FileFormatError

FORMATS = {
    "yaml": "calibration.formats.mocap_yaml",
    "toml": "calibration.formats.toml_rig",
    "opencv": "calibration.formats.opencv_rig",
    "easymocap": "calibration.formats.easymocap",
    "qca": "calibration.formats.qca",
}
_ALIASES = {"ours": "yaml", "mocap": "yaml", "yml": "yaml", "pose2sim": "toml", "anipose": "toml",
            "filestorage": "opencv", "qualisys": "qca"}


def _normalize(fmt: str) -> str:
    key = _ALIASES.get(fmt.lower(), fmt.lower())
    if key not in FORMATS:
        names = ", ".join(sorted(FORMATS))
        raise FileFormatError(f"unknown rig format {fmt!r} (known: {names})")
    return key


def detect_format(path: str | Path, for_writing: bool = False) -> str:
    """Format name of ``path`` from its extension (and, for .yml/.yaml being read, its header)."""
    from calibration.formats._filestorage import is_filestorage_yaml

    path = Path(path)
    name = path.name.lower()
    if name.endswith(".qca.txt") or name.endswith(".qca"):
        return "qca"
    if name.endswith(".toml"):
        return "toml"
    if name in ("intri.yml", "extri.yml", "intri.yaml", "extri.yaml") or path.is_dir():
        return "easymocap"
    if name.endswith((".yml", ".yaml")):
        if not for_writing and is_filestorage_yaml(path):
            return "opencv"
        return "yaml"
    if for_writing and not path.suffix:
        return "easymocap"
    if not for_writing:
        sniffed = _sniff(path)
        if sniffed:
            return sniffed
    raise FileFormatError(
        f"{path}: cannot tell the rig format from the name; give it explicitly ({', '.join(sorted(FORMATS))})"
    )


def _sniff(path: Path) -> str | None:
    """Format from the first bytes of a file with an unknown extension."""
    try:
        with open(path, "rb") as f:
            head = f.read(512).lstrip()
    except OSError:
        return None
    if head.startswith(b"%YAML"):
        return "opencv"
    if head.startswith(b"<?xml") or head.startswith(b"<calibration"):
        return "qca"
    if head.startswith(b"["):
        return "toml"
    if head.startswith((b"cameras:", b"units:", b"world:")):
        return "yaml"
    return None


def load_rig(path: str | Path, format: str | None = None) -> Rig:
    """Read a rig; ``format`` is one of ``yaml``, ``toml``, ``opencv``, ``easymocap``, ``qca`` (or
    detected). Errors are FileFormatError naming the file, the camera and the field."""
    path = Path(path)
    fmt = _normalize(format) if format else detect_format(path)
    if fmt != "easymocap" and not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    return importlib.import_module(FORMATS[fmt]).load(path)


def save_rig(rig: Rig, path: str | Path, format: str | None = None, *, world: str = "") -> Path:
    """Write ``rig`` (temp file then rename). ``world`` describes the world frame in our YAML.
    For ``easymocap``, ``path`` is the folder receiving intri.yml and extri.yml. Returns the path."""
    path = Path(path)
    fmt = _normalize(format) if format else detect_format(path, for_writing=True)
    module = importlib.import_module(FORMATS[fmt])
    if not hasattr(module, "save"):
        raise FileFormatError(f"{path}: the {fmt!r} format is import-only; write yaml, toml, opencv or easymocap")
    if fmt == "yaml":
        module.save(rig, path, world=world)
    else:
        module.save(rig, path)
    return path
