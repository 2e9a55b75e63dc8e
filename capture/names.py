"""Names of cameras and the files named after them: one way to match them, one way to make them
safe as file names.

Cameras are named in a rig (``cam01``), by their serial (``900000000001``), by a file (``cam01.mp4``,
``cam01_json/``, ``CAM_01``). :func:`match_names` is the one name-matching rule of the project:
exactly first, then loosely (case, separators and a trailing ``_json`` of OpenPose folders
ignored), a loose match counting only when it is unique.
"""
from __future__ import annotations

import re
from typing import Sequence


def loose_name(name: str) -> str:
    """``name`` lowercased, without a trailing ``_json`` and without anything but letters and digits."""
    name = re.sub(r"_json$", "", str(name).strip(), flags=re.IGNORECASE)
    return re.sub(r"[^0-9a-z]", "", name.lower())


def match_name(name: str, candidates: Sequence[str]) -> int | None:
    """Index of ``name`` in ``candidates``: the exact match, else the one loose match, else None."""
    candidates = [str(c) for c in candidates]
    if str(name) in candidates:
        return candidates.index(str(name))
    loose = [loose_name(c) for c in candidates]
    key = loose_name(name)
    return loose.index(key) if key and loose.count(key) == 1 else None


def match_names(names: Sequence[str], candidates: Sequence[str]) -> tuple[list[int | None], list[str]]:
    """:func:`match_name` for each of ``names``: (indices, names that matched nothing)."""
    order = [match_name(n, candidates) for n in names]
    return order, [n for n, i in zip(names, order) if i is None]


def safe_file_name(name: str) -> str:
    """``name`` with every character other than letters, digits, '-', '_' and '.' replaced by '_'."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))
