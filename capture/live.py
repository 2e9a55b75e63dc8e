"""Live 3D while recording: the pipeline's stages on the newest frame set, in a thread of its own.

The session's acquisition threads hand every frame to :meth:`LiveView.push`, which only stores it
(the newest few per camera) and wakes the live thread: acquisition never waits for the live view.
The live thread takes the newest frame set, runs the stages in order, timing each, and sends the
result to a sink. When the stages are slower than the cameras, the frame sets that arrived in the
meantime are skipped — for the live view only; the recording gets every frame.

The stages are plain callables given by the caller (the ``mocap capture`` CLI wires the
reconstruction library's own functions: 2D model or simulated detections -> triangulation ->
depth fusion -> causal one-euro filter), so this module depends on nothing above ``capture``.
A stage is ``(name, fn)``; ``fn(frameset, previous_output) -> output``; the last output is the
(J, 3) skeleton in world metres (NaN where missing).

Sinks: :class:`RerunSink` (rerun-sdk: a spawned viewer, or a ``.rrd`` file when headless) or
:class:`NpzSink` (every live skeleton with its timestamp and latencies, saved at the end).
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from capture.devices import CapturedFrame

log = logging.getLogger(__name__)

Stage = tuple[str, Callable]


@dataclass(frozen=True, eq=False)
class LiveFrameSet:
    """One instant across views for the live view.

    Attributes:
        index: count of frame sets processed so far.
        timestamp_ms: the reference camera's timestamp.
        frames: (V,) the frame of each view nearest the reference, None where absent.
        arrival_s: host monotonic time the reference frame arrived (latency is measured from it).
    """

    index: int
    timestamp_ms: float
    frames: tuple[CapturedFrame | None, ...]
    arrival_s: float


class NpzSink:
    """Keeps every live skeleton; :meth:`close` writes them (``xyz (T, J, 3)``, ``timestamps_ms (T,)``,
    ``latency_ms`` per stage (T,)) to ``path`` (temp file + rename)."""

    def __init__(self, path: str | os.PathLike, joint_names: Sequence[str] = (), bones: Sequence = ()):
        self.path = Path(path)
        self.joint_names = list(joint_names)
        self.xyz, self.timestamps, self.latency = [], [], collections.defaultdict(list)

    def log(self, frameset: LiveFrameSet, xyz: np.ndarray, latency_ms: dict) -> None:
        self.xyz.append(np.asarray(xyz, dtype=np.float64))
        self.timestamps.append(frameset.timestamp_ms)
        for k, v in latency_ms.items():
            self.latency[k].append(v)

    def close(self) -> Path:
        from capture.atomic import atomic_path

        xyz = np.stack(self.xyz) if self.xyz else np.zeros((0, len(self.joint_names), 3))
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, xyz=xyz, timestamps_ms=np.asarray(self.timestamps, dtype=np.float64),
                                joint_names=np.array(self.joint_names),
                                **{f"latency_ms_{k}": np.asarray(v) for k, v in self.latency.items()})
        return self.path


class RerunSink:
    """Shows the live skeleton in rerun: a spawned viewer, or saved to ``save_path`` (.rrd) when
    there is no display. Needs the optional ``rerun-sdk`` package."""

    def __init__(self, joint_names: Sequence[str], bones: Sequence[tuple[int, int]] = (),
                 save_path: str | os.PathLike | None = None, spawn: bool = True):
        import rerun as rr

        self.rr = rr
        self.bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
        self.joint_names = list(joint_names)
        rr.init("mocap live", spawn=False)
        self.path = None
        if save_path is not None or not spawn:
            self.path = Path(save_path or "live_3d.rrd")
            rr.save(str(self.path))
        else:
            rr.spawn()

    def log(self, frameset: LiveFrameSet, xyz: np.ndarray, latency_ms: dict) -> None:
        rr = self.rr
        rr.set_time("capture_time", duration=frameset.timestamp_ms / 1000.0) if hasattr(rr, "set_time") else \
            rr.set_time_seconds("capture_time", frameset.timestamp_ms / 1000.0)
        ok = np.all(np.isfinite(xyz), axis=1)
        rr.log("world/skeleton/joints", rr.Points3D(xyz[ok], radii=0.02))
        if len(self.bones):
            keep = ok[self.bones[:, 0]] & ok[self.bones[:, 1]]
            rr.log("world/skeleton/bones", rr.LineStrips3D(xyz[self.bones[keep]]))
        for name, value in latency_ms.items():
            rr.log(f"latency_ms/{name}", rr.Scalars(value) if hasattr(rr, "Scalars") else rr.Scalar(value))

    def close(self):
        return self.path


class LiveView:
    """Run ``stages`` on the newest frame set of ``serials`` in a thread (see the module docstring).

    Args:
        serials: the view order; the first camera is the reference of each frame set.
        stages: ``(name, fn)`` pairs run in order.
        fps: the cameras' rate (frames within half a period of the reference form a set).
        sink: where each result goes (``log(frameset, xyz, latency_ms)``, ``close()``), or None.
        preview: show each view's color image in an OpenCV window (needs a display).
        yield_when: called before each frame set; while it returns True (e.g. the recording's writer
            queues are filling up) the live view skips frame sets, leaving the CPU to the recording.
    """

    def __init__(self, serials: Sequence[str], stages: Sequence[Stage], fps: float, sink=None, preview: bool = False,
                 yield_when: Callable[[], bool] | None = None):
        self.serials = [str(s) for s in serials]
        self.view = {s: v for v, s in enumerate(self.serials)}
        self.stages = list(stages)
        self.fps = float(fps)
        self.sink = sink
        self.preview = preview
        self.yield_when = yield_when
        self.yielded = 0
        self.tolerance_ms = 500.0 / self.fps
        self._recent = [collections.deque(maxlen=4) for _ in self.serials]
        self._cond = threading.Condition()
        self._new_reference = 0  # reference frames not yet taken by the live thread
        self._stop = False
        self._thread: threading.Thread | None = None
        self.latency_ms = collections.defaultdict(list)
        self.processed = 0
        self.skipped = 0
        self.references = 0
        self.errors = 0
        self._t_first = self._t_last = None
        self.last_xyz: np.ndarray | None = None

    # called from the acquisition threads: store and notify, never wait
    def push(self, frame: CapturedFrame) -> None:
        v = self.view.get(frame.serial)
        if v is None:
            return
        with self._cond:
            self._recent[v].append(frame)
            if v == 0:
                self._new_reference += 1
                self.references += 1
            self._cond.notify()

    def start(self) -> "LiveView":
        self._thread = threading.Thread(target=self._loop, name="live-3d", daemon=True)
        self._thread.start()
        return self

    def _take(self) -> LiveFrameSet | None:
        with self._cond:
            while not self._stop and self._new_reference == 0:
                self._cond.wait(0.1)
            if self._stop:
                return None
            self.skipped += self._new_reference - 1  # older reference frames are not shown
            self._new_reference = 0
            ref = self._recent[0][-1]
            # wait (briefly) for the other views' frames of this instant: their clocks lag a little
            deadline = time.monotonic() + self.tolerance_ms / 1000.0
            while not self._stop:
                late = [v for v in range(1, len(self.serials))
                        if not self._recent[v] or self._recent[v][-1].timestamp_ms < ref.timestamp_ms - self.tolerance_ms]
                remaining = deadline - time.monotonic()
                if not late or remaining <= 0:
                    break
                self._cond.wait(remaining)
            frames = []
            for v, recent in enumerate(self._recent):
                best = min(recent, key=lambda f: abs(f.timestamp_ms - ref.timestamp_ms), default=None)
                if best is not None and abs(best.timestamp_ms - ref.timestamp_ms) > self.tolerance_ms:
                    best = None
                frames.append(best)
        return LiveFrameSet(self.processed, ref.timestamp_ms, tuple(frames), ref.arrival_s)

    def _loop(self) -> None:
        while True:
            frameset = self._take()
            if frameset is None:
                return
            if self.yield_when is not None and self.yield_when():
                self.skipped += 1  # the recording comes first
                self.yielded += 1
                continue
            latency = {}
            out = None
            try:
                for name, fn in self.stages:
                    t = time.perf_counter()
                    out = fn(frameset, out)
                    latency[name] = (time.perf_counter() - t) * 1000.0
            except Exception as exc:  # a failing frame must not end the live view
                self.errors += 1
                if self.errors <= 3:
                    log.exception("live 3D: frame %d failed: %s", frameset.index, exc)
                continue
            latency["total"] = (time.monotonic() - frameset.arrival_s) * 1000.0
            for k, v in latency.items():
                self.latency_ms[k].append(v)
            now = time.monotonic()
            self._t_first = self._t_first or now
            self._t_last = now
            self.processed += 1
            if out is not None:
                self.last_xyz = np.asarray(out)
                if self.sink is not None:
                    try:
                        self.sink.log(frameset, self.last_xyz, latency)
                    except Exception as exc:
                        log.error("live 3D sink failed (%s); the live view goes on without it", exc)
                        self.sink = None
            if self.preview:
                self._show(frameset)

    def _show(self, frameset: LiveFrameSet) -> None:
        import cv2

        try:
            for serial, frame in zip(self.serials, frameset.frames):
                if frame is not None and frame.color is not None:
                    cv2.imshow(f"camera {serial}", cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)
        except cv2.error as exc:  # no display
            log.warning("preview disabled: %s", exc)
            self.preview = False

    def stop(self) -> dict:
        """Stop the thread, close the sink and return :meth:`report`."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception as exc:
                log.error("live 3D sink: closing failed: %s", exc)
        return self.report()

    def report(self) -> dict:
        """Achieved fps, frame sets processed / skipped, latency per stage (ms: mean, p50, p95, max)."""
        span = (self._t_last - self._t_first) if self._t_first is not None and self._t_last is not None else 0.0
        stats = {}
        for name, values in self.latency_ms.items():
            a = np.asarray(values)
            stats[name] = {"mean": float(a.mean()), "p50": float(np.median(a)), "p95": float(np.percentile(a, 95)),
                           "max": float(a.max())}
        return {
            "achieved_fps": (self.processed - 1) / span if span > 0 else 0.0,
            "camera_fps": self.fps,
            "processed": self.processed,
            "skipped": self.skipped,
            "skipped_for_recording": self.yielded,
            "reference_frames": self.references,
            "errors": self.errors,
            "latency_ms": stats,
            "sink": type(self.sink).__name__ if self.sink is not None else None,
        }


def make_sink(out_dir: Path, joint_names: Sequence[str], bones: Sequence, prefer_rerun: bool = True,
              headless: bool | None = None):
    """A RerunSink (spawned viewer; ``live_3d.rrd`` in ``out_dir`` when headless) or, when rerun-sdk
    is not installed, an NpzSink writing ``live_3d.npz``. Returns (sink, message)."""
    if headless is None:
        headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if prefer_rerun:
        try:
            sink = RerunSink(joint_names, bones, save_path=(out_dir / "live_3d.rrd") if headless else None,
                             spawn=not headless)
            where = f"saved to {out_dir / 'live_3d.rrd'}" if headless else "shown in a rerun viewer"
            return sink, f"live 3D {where}"
        except ImportError:
            pass
    return NpzSink(out_dir / "live_3d.npz", joint_names, bones), (
        f"rerun-sdk is not installed (pip install rerun-sdk): live 3D saved to {out_dir / 'live_3d.npz'}")
