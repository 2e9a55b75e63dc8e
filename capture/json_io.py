"""Strict JSON out of the project's reports: numpy values as plain numbers, NaN and infinities as
null (JSON has no NaN; a reader in another language must be able to parse every report), paths as
text, written atomically (capture.atomic).

The one JSON writer of the project: session manifests, quality.json, triangulation summaries,
calibration reports.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from capture.atomic import atomic_write_text


def json_safe(value: Any) -> Any:
    """``value`` with every numpy scalar or array turned into plain Python, every non-finite float
    into None, paths into text, tuples into lists (recursively)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``data`` (see :func:`json_safe`)."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as strict JSON (a final newline), atomically; returns the path."""
    return atomic_write_text(path, dumps(data) + "\n")
