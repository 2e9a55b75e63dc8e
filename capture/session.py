"""A recording session: several cameras, one recording file each, a manifest, never a silent drop.

Threads, per camera:

    FrameSource.read --(acquisition thread)--> bounded queue --(writer thread)--> RealSenseRecordingWriter

The acquisition thread never waits for the disk: when a camera's queue is full the frame is dropped
and counted (``software_drops``); the live view gets frames through a non-blocking hook. A camera
that delivers nothing for ``queues.stall_timeout_s`` is reported stopped, with its gap, and the
session goes on with the others. :meth:`CaptureSession.stop` (Ctrl-C / SIGTERM via
:func:`stop_on_signals`, the duration, a full disk) finalizes every file and writes the manifest.

The session folder is what ``mocap reconstruct`` reads: ``<serial>.db3`` per camera, ``session.json``
(the manifest, written atomically: temp file + rename) and the rig file when one is known.

Manifest health, per camera: frames acquired / written, software drops, frame-number gaps,
measured fps, timestamp jitter (std of the residual of a line fitted to timestamp vs frame number),
clock offset to the reference camera, temperature, stops with their gaps; per session: the skew of
each matched frame set (capture.sync) summarized.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from capture.atomic import atomic_write_text
from capture.capture_config import CaptureConfig
from capture.config import to_plain
from capture.devices import CapturedFrame, FrameSource
from capture.errors import ConfigError, RecordingError

log = logging.getLogger(__name__)

MANIFEST_NAME = "session.json"
MANIFEST_FORMAT = "mocap-session"
MANIFEST_VERSION = 1
_DONE = object()  # end-of-stream marker for a writer queue
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


def write_json_atomic(path: Path, data: dict) -> Path:
    """Write JSON to a temp file in the same folder, then rename: a reader sees the old or the new file."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


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
    with _quiet():
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


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _wait_until_drained(writer, quiet_s: float = 1.0, timeout_s: float = 300.0) -> None:
    """Wait until the SDK recorder behind ``writer`` has written what it was given.

    pyrealsense2 2.59's recorder compresses and writes frames in a thread of its own; destroying it
    while frames are still queued loses the tail of the recording (measured: the last 23 frames of
    the first camera closed, with 4 cameras at 640x480 on 2 busy cores). Its file stops growing
    when the queue is empty: wait for ``quiet_s`` without growth (checking the size only, not
    opening the database, which would lock the recorder out).
    """
    path = getattr(writer, "_tmp", None)
    if path is None:
        return
    path = Path(path)
    last, since = -1, time.monotonic()
    deadline = since + timeout_s
    while time.monotonic() < deadline:
        try:
            size = path.stat().st_size + (Path(f"{path}-journal").stat().st_size if Path(f"{path}-journal").exists() else 0)
        except OSError:
            return
        now = time.monotonic()
        if size != last:
            last, since = size, now
        elif now - since >= quiet_s:
            return
        time.sleep(0.05)
    log.warning("%s: the recorder was still writing after %.0f s; finalizing anyway", path, timeout_s)


def frames_in_file(path: str | os.PathLike) -> dict | None:
    """Frames per stream stored in a finished .db3 recording (rosbag2 sqlite), read with sqlite3;
    None when the file cannot be read this way."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
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


def _default_writer_factory(path: Path, source: FrameSource):
    from capture.recording_writer import RealSenseRecordingWriter

    return RealSenseRecordingWriter(path, source.serial, source.color_intrinsics, source.depth_intrinsics,
                                    source.fps, depth_scale=source.depth_scale, depth_to_color=source.depth_to_color,
                                    name=source.info.name)


@dataclass(frozen=True, eq=False)
class SessionResult:
    """What a session wrote: the folder, the manifest path and its content, the final status."""

    out_dir: Path
    manifest_path: Path
    manifest: dict
    recordings: tuple[Path, ...]

    @property
    def status(self) -> str:
        return self.manifest["status"]


class CaptureSession:
    """Record ``sources`` into ``out_dir`` (see the module docstring).

    Args:
        sources: opened (not started) frame sources, one per camera.
        out_dir: the session folder (must be prepared with :func:`prepare_output_dir`).
        config: the capture config (queues, sync tolerance; stored in the manifest).
        duration_s: stop after this long; None: until :meth:`stop`.
        calibration: the rig file used (recorded in the manifest; copied by the CLI).
        on_frame: called with every acquired frame from the acquisition thread; must not block
            (the live view keeps the latest frame only).
        writer_factory: ``(path, source) -> writer`` with ``write(ts, n, color, depth)`` and ``close()``.
        extra: more manifest fields (simulation settings, live latency filled in later).
    """

    def __init__(self, sources: Sequence[FrameSource], out_dir: str | os.PathLike, config: CaptureConfig = CaptureConfig(),
                 duration_s: float | None = None, calibration: str | None = None,
                 on_frame: Callable[[CapturedFrame], None] | None = None,
                 writer_factory: Callable | None = None, extra: dict | None = None):
        if not sources:
            raise ConfigError("a capture session needs at least one camera")
        for s in sources:
            if "infrared" in s.config.streams:
                raise ConfigError(f"{config.source}: camera {s.serial}: the recorder writes depth and color only; "
                                  "remove 'infrared' from streams")
        self.sources = list(sources)
        self.out_dir = Path(out_dir)
        self.config = config
        self.duration_s = duration_s
        self.calibration = calibration
        self.on_frame = on_frame
        self.writer_factory = writer_factory or _default_writer_factory
        self.extra = dict(extra or {})
        self.health = [CameraHealth(s.serial) for s in self.sources]
        self._stop = threading.Event()
        self._reason_lock = threading.RLock()  # re-entrant: a signal handler may call stop() inside stop()
        self.status = "recording"
        self.reason: str | None = None
        self._t_start = None
        self._queues: list[queue.Queue] = []
        self.manifest_path = self.out_dir / MANIFEST_NAME

    # ------------------------------------------------------------------------------------------ control
    def stop(self, status: str = "interrupted", reason: str = "stopped by the user") -> None:
        """Ask the session to stop (thread- and signal-safe); the first reason given wins."""
        with self._reason_lock:
            if self.reason is None:
                self.status, self.reason = status, reason
        self._stop.set()

    def backlog(self) -> float:
        """Fullest writer queue, as a fraction of its size (0: the writers keep up)."""
        return max((q.qsize() / q.maxsize for q in self._queues), default=0.0)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def elapsed_s(self) -> float:
        return 0.0 if self._t_start is None else time.monotonic() - self._t_start

    # ------------------------------------------------------------------------------------------- threads
    def _acquire(self, v: int, source: FrameSource, q: queue.Queue) -> None:
        h = self.health[v]
        stall = self.config.queues.stall_timeout_s
        next_temperature = 0.0
        last_number = None
        while not self._stop.is_set():
            try:
                frame = source.read(0.05)
            except Exception as exc:  # a real device can fail in many ways; the others go on
                h.error = f"{type(exc).__name__}: {exc}"
                log.error("camera %s failed: %s", h.serial, h.error)
                frame = None
                time.sleep(0.05)
            now = time.monotonic()
            if frame is None:
                since = now - (h.last_arrival_s if h.last_arrival_s is not None else self._t_start)
                if not h.stalled and since > stall:
                    h.stalled = True
                    at = (h.last_arrival_s or self._t_start) - self._t_start
                    h.stops.append({"at_s": round(at, 4), "last_frame_number": last_number,
                                    "last_timestamp_ms": h.timestamps_ms[-1] if h.timestamps_ms else None,
                                    "resumed_at_s": None, "gap_s": None})
                    log.warning("camera %s stopped delivering frames at %.2f s; the session goes on", h.serial, at)
                continue
            if h.stalled:
                h.stalled = False
                stop = h.stops[-1]
                stop["resumed_at_s"] = round(now - self._t_start, 4)
                stop["gap_s"] = round(stop["resumed_at_s"] - stop["at_s"], 4)
                log.warning("camera %s resumed after %.2f s", h.serial, stop["gap_s"])
            if last_number is not None and frame.frame_number > last_number + 1:
                h.gaps.append((last_number, frame.frame_number - last_number - 1))
            last_number = frame.frame_number
            h.frames_acquired += 1
            h.frame_numbers.append(frame.frame_number)
            h.timestamps_ms.append(frame.timestamp_ms)
            h.last_arrival_s = now
            try:
                q.put_nowait(frame)
                h.max_queue = max(h.max_queue, q.qsize())
            except queue.Full:
                h.queue_full_drops += 1
            if self.on_frame is not None:
                try:
                    self.on_frame(frame)
                except Exception as exc:  # the live view must never stop the recording
                    log.error("live view hook failed: %s", exc)
                    self.on_frame = None
            if now >= next_temperature:
                next_temperature = now + 1.0
                temperature = source.temperature_c()
                if temperature is not None:
                    h.temperatures.append(float(temperature))

    def _write(self, v: int, writer, q: queue.Queue, paths: list) -> None:
        h = self.health[v]
        failed = False
        while True:
            frame = q.get()
            if frame is _DONE:
                # finalized by the thread that wrote it: a writer is used from one thread only
                self._close(v, writer, paths)
                return
            if failed:
                h.writer_error_drops += 1
                continue
            try:
                writer.write(frame.timestamp_ms, frame.frame_number, frame.color, frame.depth)
                h.frames_written += 1
            except Exception as exc:  # OSError (disk), RuntimeError (SDK), RecordingError, bad frames
                failed = True
                h.writer_error_drops += 1
                full = getattr(exc, "errno", None) == errno.ENOSPC or "no space" in str(exc).lower()
                h.error = f"writer: {exc}"
                reason = f"no space left on the disk of {self.out_dir} (camera {h.serial})" if full else \
                    f"writing camera {h.serial} failed: {exc}"
                log.error(reason)
                self.stop("failed", reason)

    def _close(self, v: int, writer, paths: list) -> None:
        h = self.health[v]
        try:
            _wait_until_drained(writer)
            paths[v] = Path(writer.close())
        except Exception as exc:
            h.error = f"finalizing the recording failed: {exc}"
            log.error("camera %s: %s", h.serial, h.error)
            return
        h.frames_in_file = frames_in_file(paths[v])

    # ---------------------------------------------------------------------------------------------- run
    def run(self, progress: Callable[["CaptureSession"], None] | None = None) -> SessionResult:
        """Record until the duration, :meth:`stop`, or every camera stopped; always finalize."""
        self.started_utc = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        writers, threads, queues, started = [], [], [], []
        paths = [self.out_dir / f"{s.serial}.db3" for s in self.sources]
        try:
            for source in self.sources:
                started.append(source)
                source.prepare()
            for source in self.sources:
                writers.append(self.writer_factory(self.out_dir / f"{source.serial}.db3", source))
            self._write_manifest(writers, final=False)
            # Start streaming only now that the writers exist (creating them takes a while), and
            # start the threads right after, so that no camera's queue fills before it is read.
            for source in self.sources:
                source.start()
            self._t_start = time.monotonic()
            for v, (source, writer) in enumerate(zip(self.sources, writers)):
                q = queue.Queue(maxsize=self.config.queues.writer_frames)
                queues.append(q)
                self._queues.append(q)
                threads.append(threading.Thread(target=self._acquire, args=(v, source, q), name=f"acquire-{source.serial}", daemon=True))
                threads.append(threading.Thread(target=self._write, args=(v, writer, q, paths), name=f"write-{source.serial}", daemon=True))
            for t in threads:
                t.start()
            next_progress = time.monotonic() + 1.0
            while not self._stop.wait(0.05):
                if self.duration_s is not None and self.elapsed_s() >= self.duration_s:
                    self.stop("complete", f"duration of {self.duration_s:g} s reached")
                elif all(h.stalled for h in self.health):
                    self.stop("interrupted", "every camera stopped delivering frames")
                if progress is not None and time.monotonic() >= next_progress:
                    next_progress += 1.0
                    progress(self)
        except BaseException as exc:
            self.stop("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._stop.set()
            self.elapsed_at_stop = self.elapsed_s()
            for t in threads[0::2]:
                if t.ident is not None:
                    t.join()
            for source in started:
                try:
                    source.stop()
                except Exception as exc:
                    log.warning("camera %s: stop failed: %s", source.serial, exc)
            for q in queues:
                q.put(_DONE)  # writers drain what was acquired, then finalize their file (in parallel)
            writer_threads = threads[1::2]
            for v, writer in enumerate(writers):
                t = writer_threads[v] if v < len(writer_threads) else None
                if t is not None and t.ident is not None:
                    t.join()
                else:  # its thread never started: finalize here
                    self._close(v, writer, paths)
            if self.status == "recording":
                self.status = "interrupted"
            fps = float(self.sources[0].fps)
            for h in self.health:  # a camera still stopped at the end: its gap runs to the end
                for stop in h.stops:
                    end = stop["resumed_at_s"] if stop["resumed_at_s"] is not None else self.elapsed_at_stop
                    stop["gap_s"] = round(end - stop["at_s"], 4)
                    stop["frames_missing"] = int(round(stop["gap_s"] * fps))
            manifest = self._write_manifest(writers, final=True)
        return SessionResult(self.out_dir, self.manifest_path, manifest, tuple(paths))

    # ------------------------------------------------------------------------------------------ manifest
    def manifest(self, final: bool = True) -> dict:
        fps = float(self.sources[0].fps)
        cameras = []
        for source, h in zip(self.sources, self.health):
            measured_fps, jitter, _ = clock_statistics(np.asarray(h.frame_numbers), np.asarray(h.timestamps_ms))
            temps = h.temperatures
            cameras.append({
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
            })
        sync = {}
        if final:
            try:
                sync = skew_report(self.health, fps, self.config.sync.tolerance_ms)
            except Exception as exc:  # the manifest must be written whatever happens
                log.error("skew statistics failed: %s", exc)
                sync = {"error": f"{type(exc).__name__}: {exc}"}
        rig = self.out_dir / "rig.yaml"
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "status": self.status if final else "recording",
            "reason": self.reason,
            "started_utc": self.started_utc,
            "duration_s": round(getattr(self, "elapsed_at_stop", self.elapsed_s()), 4),
            "requested_duration_s": self.duration_s,
            "calibration": self.calibration,
            "rig": rig.name if rig.exists() else None,
            "fps": fps,
            "config": to_plain(self.config),
            "cameras": cameras,
            "sync": sync,
            **self.extra,
        }

    def _write_manifest(self, writers, final: bool) -> dict:
        data = self.manifest(final)
        try:
            write_json_atomic(self.manifest_path, data)
        except OSError as exc:
            raise RecordingError(f"{self.manifest_path}: cannot write the session manifest: {exc}") from None
        return data


@contextlib.contextmanager
def stop_on_signals(session: CaptureSession):
    """While inside, SIGINT (Ctrl-C) and SIGTERM stop ``session`` cleanly instead of killing it.
    Only from the main thread (Python delivers signals there); elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
    previous = {}

    def handler(signum, _frame):
        session.stop("interrupted", f"{names.get(signum, signum)} received")

    for sig in names:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def load_manifest(session_dir: str | os.PathLike) -> dict:
    """Read ``session.json`` of a session folder."""
    from capture.errors import FileFormatError

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
