"""The capture session folder: what is in it, how it is created, how its manifest is read.

A session folder holds ``<serial>.db3`` per camera, ``session.json`` (the manifest), ``rig.yaml``
when the calibration is known and, for simulated sessions, ``ground_truth.npz``. It is exactly what
``mocap reconstruct`` reads.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from capture.errors import ConfigError, FileFormatError

MANIFEST_NAME = "session.json"
MANIFEST_FORMAT = "mocap-session"
MANIFEST_VERSION = 1
# Files a session writes; only these are removed by overwrite=True.
_OWN_PATTERNS = ("*.db3", ".*.partial.db3", ".*.partial.db3-journal", MANIFEST_NAME, f".{MANIFEST_NAME}.partial",
                 "rig.yaml", "ground_truth.npz", "live_3d.rrd", "live_3d.npz", "capture.yaml")


def prepare_output_dir(out_dir: str | os.PathLike, overwrite: bool = False, create: bool = True) -> Path:
    """Create ``out_dir``; refuse one that exists and is not empty unless ``overwrite`` (which removes
    only the files a session writes). ``create=False`` only checks (nothing is touched)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out}: folder exists and is not empty; choose a new --out or pass --overwrite")
        if not create:
            return out
        for pattern in _OWN_PATTERNS:
            for path in out.glob(pattern):
                if path.is_file():
                    path.unlink()
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def load_manifest(session_dir: str | os.PathLike) -> dict:
    """Read ``session.json`` of a session folder."""
    path = Path(session_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no session manifest (is {path.parent} a `mocap capture` folder?)") from None
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: not valid JSON ({exc})") from None
    if data.get("format") != MANIFEST_FORMAT:
        raise FileFormatError(f"{path}: not a mocap session manifest (format {data.get('format')!r})")
    return data
