"""Health of each camera of a capture session: counters kept while recording, and the manifest's
per-camera and per-session figures (fps, jitter, drops, gaps, skew of the matched frame sets).

Shape letters: ``V`` cameras, ``S`` frame sets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from capture.nan_warnings import quiet_nan_warnings


@dataclass(eq=False)
class CameraHealth:
    """Live counters of one camera (updated by its threads; read by the session and the manifest)."""

    serial: str
    frames_acquired: int = 0
    frames_written: int = 0
    queue_full_drops: int = 0
    writer_error_drops: int = 0
    gaps: list = field(default_factory=list)  # (after frame number, frames missing)
    frame_numbers: list = field(default_factory=list)
    timestamps_ms: list = field(default_factory=list)  # of the frames acquired
    stops: list = field(default_factory=list)  # dicts: at_s, last_timestamp_ms, resumed_at_s, gap_s
    temperatures: list = field(default_factory=list)
    max_queue: int = 0
    frames_in_file: dict | None = None  # frames per stream read back from the finished file
    error: str | None = None
    stalled: bool = False
    last_arrival_s: float | None = None

    @property
    def software_drops(self) -> int:
        return self.queue_full_drops + self.writer_error_drops


def clock_statistics(frame_numbers: np.ndarray, timestamps_ms: np.ndarray) -> tuple[float, float, float]:
    """(fps, jitter_ms, intercept_ms) of one camera: a line fitted to timestamp vs frame number; the
    jitter is the std of the residual, the fps 1000 / slope."""
    n = np.asarray(frame_numbers, dtype=np.float64)
    t = np.asarray(timestamps_ms, dtype=np.float64)
    if n.size < 3:
        return float("nan"), float("nan"), float("nan")
    A = np.stack([n - n[0], np.ones_like(n)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, t, rcond=None)
    residual = t - A @ np.array([slope, intercept])
    return 1000.0 / slope, float(np.std(residual)), float(intercept - slope * (n[0] - 1))


def _summary(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"count": 0}
    return {"count": int(values.size), "mean": float(values.mean()), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def skew_report(health: Sequence[CameraHealth], fps: float, tolerance_ms: float | None) -> dict:
    """Frame sets matched across cameras by capture.sync.synchronize, and their skew.

    ``skew_ms`` summarizes max - min of the raw timestamps of each set (what a consumer assuming
    perfect sync would get); ``offset_to_reference_ms`` are the cameras' clock offsets estimated by
    the synchronizer; ``residual_skew_ms`` the skew once those are removed (the timing jitter).
    """
    from capture.sync import synchronize

    tolerance = tolerance_ms if tolerance_ms is not None else 500.0 / fps
    stamps = [np.asarray(h.timestamps_ms, dtype=np.float64) for h in health]
    numbers = [np.asarray(h.frame_numbers, dtype=np.int64) for h in health]
    if sum(s.size > 0 for s in stamps) < 2:
        return {"frame_sets": 0, "tolerance_ms": tolerance}
    result = synchronize(stamps, tolerance_ms=tolerance, offsets_ms="estimate", frame_numbers=numbers,
                         period_ms=1000.0 / fps)
    idx = result.index  # (S, V) frame position per camera, -1 where absent
    present = idx >= 0
    raw = result.times_ms + result.offsets_ms[None, :]
    multi = present.sum(axis=1) >= 2
    with quiet_nan_warnings():
        skew = np.nanmax(raw, axis=1) - np.nanmin(raw, axis=1)
    return {
        "reference": health[0].serial,
        "tolerance_ms": tolerance,
        "frame_sets": int(result.num_sets),
        "complete_sets": int(result.complete.sum()),
        "skew_ms": _summary(skew[multi]),
        "residual_skew_ms": _summary(result.skew_ms[multi]),
        "offset_to_reference_ms": {h.serial: float(o) for h, o in zip(health, result.offsets_ms)},
        "missing_in_sets": {h.serial: int(d.size) for h, d in zip(health, result.dropped)},
        "unmatched_frames": {h.serial: int(u.size) for h, u in zip(health, result.unmatched)},
    }


def camera_manifest(source, h: CameraHealth) -> dict:
    """The manifest entry of one camera: what the device said (``source.info``), how it was set up
    (``source.config``) and what happened (``h``)."""
    measured_fps, jitter, _ = clock_statistics(np.asarray(h.frame_numbers), np.asarray(h.timestamps_ms))
    temps = h.temperatures
    return {
        **source.info.to_dict(),
        "role": source.role,
        "file": f"{source.serial}.db3",
        "streams": list(source.config.streams),
        "resolution": list(source.config.resolution),
        "fps": source.config.fps,
        "depth_scale": source.depth_scale,
        "frames_acquired": h.frames_acquired,
        "frames_written": h.frames_written,
        "software_drops": {"total": h.software_drops, "queue_full": h.queue_full_drops,
                           "writer_error": h.writer_error_drops},
        "frames_in_file": h.frames_in_file,
        "recorder_drops": (None if not h.frames_in_file else
                           int(h.frames_written - min(h.frames_in_file.values()))),
        "max_queue_frames": h.max_queue,
        "device_queue_overflows": getattr(source, "overflow_drops", None),
        "frame_number_gaps": {"count": len(h.gaps), "frames_missing": int(sum(g[1] for g in h.gaps)),
                              "gaps": [{"after": int(a), "missing": int(m)} for a, m in h.gaps[:200]]},
        "first_frame_number": h.frame_numbers[0] if h.frame_numbers else None,
        "last_frame_number": h.frame_numbers[-1] if h.frame_numbers else None,
        "first_timestamp_ms": h.timestamps_ms[0] if h.timestamps_ms else None,
        "last_timestamp_ms": h.timestamps_ms[-1] if h.timestamps_ms else None,
        "measured_fps": None if not np.isfinite(measured_fps) else float(measured_fps),
        "timestamp_jitter_ms": None if not np.isfinite(jitter) else jitter,
        "temperature_c": ({"min": min(temps), "max": max(temps), "last": temps[-1]} if temps else None),
        "stopped": list(h.stops),
        "error": h.error,
    }
