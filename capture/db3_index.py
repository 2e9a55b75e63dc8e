"""The one index of a librealsense rosbag2 (.db3) file, read with sqlite3 (no image decoding).

A .db3 holds, per stream, an image message and a metadata message per frame; the metadata is a
string "Frame number=..;timestamp_domain=..;timestamp=..". :func:`index_db3` reads those strings
(timestamps and frame numbers before any playback), :func:`image_counts` counts the image messages
(what a finished file holds, for the capture manifest). Both open the file read-only.
"""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np

from capture.recording import StreamIndex

_DOMAINS = {"global time": "global_time", "hardware clock": "hardware_clock", "system time": "system_time"}


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)


_TOPIC = re.compile(r"/device_\d+/sensor_\d+/([A-Za-z]+)_(\d+)/image/metadata$")


def index_db3(path: Path) -> dict[str, StreamIndex] | None:
    """Per-stream index of a .db3 from its metadata strings (sqlite3, no image decoding);
    None when the file does not look like a librealsense rosbag2 file."""
    try:
        con = _connect(path)
    except sqlite3.Error:
        return None
    try:
        topics = con.execute("SELECT id, name FROM topics").fetchall()
        wanted = {}
        for tid, name in topics:
            m = _TOPIC.search(name)
            if m:
                stream, idx = m.group(1).lower(), int(m.group(2))
                wanted[tid] = stream if idx == 0 else f"{stream}{idx}"
        if not wanted:
            return None
        rows = con.execute(
            f"SELECT topic_id, data FROM messages WHERE topic_id IN ({','.join('?' * len(wanted))}) "
            "ORDER BY timestamp, id",
            tuple(wanted),
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    out: dict[str, tuple[list, list, str]] = {k: ([], [], "") for k in wanted.values()}
    for tid, data in rows:
        text = bytes(data[8:]).split(b"\0", 1)[0].decode("utf-8", "replace")  # CDR string after a 4+4 byte header
        fields = dict(kv.split("=", 1) for kv in text.split(";") if "=" in kv)
        try:
            ts, fn = float(fields["timestamp"]), int(fields["Frame number"])
        except (KeyError, ValueError):
            return None
        entry = out[wanted[tid]]
        entry[0].append(ts)
        entry[1].append(fn)
        out[wanted[tid]] = (entry[0], entry[1], _DOMAINS.get(fields.get("timestamp_domain", "").lower(), "unknown"))
    return {k: StreamIndex(np.asarray(t, dtype=float), np.asarray(n, dtype=np.int64), d) for k, (t, n, d) in out.items()}


def image_counts(path: str | Path) -> dict[str, int] | None:
    """Frames per stream stored in a finished .db3 recording ({'depth': n, 'color': m}); None when
    the file cannot be read this way."""
    try:
        con = _connect(Path(path))
        try:
            rows = con.execute(
                "SELECT t.name, COUNT(*) FROM messages m JOIN topics t ON m.topic_id = t.id "
                "WHERE t.name LIKE '%/image/data%' GROUP BY t.name").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    out = {}
    for name, count in rows:
        stream = "depth" if "/Depth_" in name else "color" if "/Color_" in name else name
        out[stream] = int(count)
    return out
