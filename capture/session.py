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
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from capture.capture_config import CaptureConfig
from capture.config import to_plain
from capture.db3_index import image_counts
from capture.devices import CapturedFrame, FrameSource
from capture.errors import ConfigError, RecordingError
from capture.health import CameraHealth, camera_manifest, skew_report
from capture.json_io import write_json
from capture.session_folder import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION

log = logging.getLogger(__name__)

_DONE = object()  # end-of-stream marker for a writer queue


def _wait_until_drained(writer, quiet_s: float = 1.0, timeout_s: float = 300.0) -> None:
    """Wait until the SDK recorder behind ``writer`` has written what it was given.

    pyrealsense2 2.59's recorder compresses and writes frames in a thread of its own; destroying it
    while frames are still queued loses the tail of the recording (measured: the last 23 frames of
    the first camera closed, with 4 cameras at 640x480 on 2 busy cores). Its file stops growing
    when the queue is empty: wait for ``quiet_s`` without growth (checking the size only, not
    opening the database, which would lock the recorder out).
    """
    path = getattr(writer, "partial_path", None)  # writers other than RealSenseRecordingWriter: nothing to wait for
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
        self.elapsed_at_stop: float | None = None
        self.started_utc: str | None = None

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
        h.frames_in_file = image_counts(paths[v])

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
        cameras = [camera_manifest(source, h) for source, h in zip(self.sources, self.health)]
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
            "duration_s": round(self.elapsed_at_stop if self.elapsed_at_stop is not None else self.elapsed_s(), 4),
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
            write_json(self.manifest_path, data)
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
