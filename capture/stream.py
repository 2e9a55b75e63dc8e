"""A stream of :class:`FrameSet` over V files, one camera each: RealSense recordings and videos alike.

Shape letters: ``V`` cameras, ``S`` frame sets.

This is the one reader of the project: the offline pipeline, the calibration, ``mocap detect2d``
and ``mocap inspect`` all consume it. Opening reads each file's info and index (timestamps and
frame numbers, no images), checks the files belong together (distinct serials, one frame rate,
depth where required), synchronizes the cameras (:func:`capture.sync.synchronize`) and pairs each
camera's depth frames with its color frames. Iterating plays every stream once, in order, on its
own bounded queue; a thread assembles frame sets ahead of the consumer, at most ``readahead`` of
them, so memory does not grow with the length of the recordings.

Clocks: RealSense cameras stamp frames in a shared global time; a video's frame ``i`` is at
``i / fps`` on its own clock. When the cameras do not all share the global clock, the offsets of
the others are estimated (their first frames are taken as simultaneous with the reference's, then
refined: :func:`capture.sync.estimate_offsets`), the global-time cameras keeping one common offset.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from capture.errors import RecordingError
from capture.frameset import FrameSet
from capture.align import align_depth_to_color
from capture.realsense_file import RealSenseReader
from capture.recording import RecordingInfo, StreamIndex, index_recording, read_recording_info
from capture.video import read_video_frames
from capture.sync import SyncResult, estimate_offsets, estimate_period, synchronize

log = logging.getLogger(__name__)

_END = object()


class FrameSetStream:
    """Iterator of :class:`FrameSet` over V recordings.

    sources: V paths (.bag, .db3 or video files), in view order.
    names: camera names (default: the serial numbers, or the video file stems).
    tolerance_ms: most time between two frames of one set (default: half a frame period).
    offsets_ms: None (default: no offsets when every camera stamps frames in global time, else
        estimated, see the module docstring), ``"estimate"``, or (V,) known clock offsets (camera
        time - offset = common time).
    align_depth: resample depth onto the color image (:func:`align_depth_to_color`): True, False,
        or ``"auto"``: for the cameras whose depth is not already in the color camera's geometry.
    require_depth: every RealSense camera must have a depth stream.
    readahead: frame sets assembled ahead of the consumer.
    start: first frame-set index to yield (resume).
    step: yield every ``step``-th frame set from ``start`` (the others are not decoded).
    color / depth: decode the color / depth images (False: None in every set, timing unchanged).
    video_fps / video_timestamps: per-video frame rate or timestamps file (one ms time per line).
    """

    def __init__(
        self,
        sources: list[str | Path],
        names: list[str] | None = None,
        tolerance_ms: float | None = None,
        offsets_ms=None,
        reference: int = 0,
        align_depth: bool | str = False,
        require_depth: bool = False,
        readahead: int = 4,
        start: int = 0,
        video_fps: list[float | None] | None = None,
        video_timestamps: list[str | Path | None] | None = None,
        step: int = 1,
        color: bool = True,
        depth: bool = True,
    ):
        if not sources:
            raise RecordingError("no recordings given")
        self.paths = [Path(p) for p in sources]
        V = len(self.paths)
        video_fps = list(video_fps or [None] * V)
        video_timestamps = list(video_timestamps or [None] * V)
        self.infos: list[RecordingInfo] = []
        self.indexes: list[dict[str, StreamIndex]] = []
        for path, fps, stamps in zip(self.paths, video_fps, video_timestamps):
            self.infos.append(read_recording_info(path, fps))
            self.indexes.append(index_recording(path, fps, stamps))
        self._check(require_depth)
        self.cameras = tuple(names) if names else tuple(
            info.serial if info.kind == "realsense" else info.path.stem for info in self.infos
        )
        if len(self.cameras) != V:
            raise RecordingError(f"{len(self.cameras)} names for {V} recordings")

        primary = [self.indexes[v][self.infos[v].primary] for v in range(V)]
        periods = [1000.0 / info.fps for info in self.infos if info.fps]
        period = float(np.median(periods)) if periods else None
        if offsets_ms is None:
            offsets_ms = _default_offsets([p.domain for p in primary], [p.timestamps_ms for p in primary], period,
                                          reference)
        self.tolerance_ms = float(tolerance_ms) if tolerance_ms else (period or 33.3) / 2
        self.sync: SyncResult = synchronize(
            [p.timestamps_ms for p in primary], self.tolerance_ms, offsets_ms, reference,
            frame_numbers=[p.frame_numbers for p in primary], period_ms=period,
        )
        # Each camera's depth frame for each of its primary (color) frames, -1 where none is near.
        self.depth_for_primary: list[np.ndarray | None] = []
        for v, info in enumerate(self.infos):
            if info.primary == "depth" or "depth" not in self.indexes[v]:
                self.depth_for_primary.append(None)
                continue
            d = self.indexes[v]["depth"].timestamps_ms
            c = primary[v].timestamps_ms
            pairing = np.full(c.size, -1, dtype=np.int64)
            if d.size and c.size:
                pair = synchronize([c, d], 500.0 / info.fps, None, 0, period_ms=1000.0 / info.fps)
                ok = (pair.index >= 0).all(axis=1)
                pairing[pair.index[ok, 0]] = pair.index[ok, 1]
            self.depth_for_primary.append(pairing)
        if align_depth not in (True, False, "auto"):
            raise ValueError(f"align_depth must be True, False or 'auto', got {align_depth!r}")
        self.align = [bool(align_depth is True or (align_depth == "auto" and needs_alignment(info)))
                      for info in self.infos]
        self.readahead = max(1, int(readahead))
        self.start = int(start)
        if not 0 <= self.start <= self.sync.num_sets:
            raise RecordingError(f"start {start} is outside the {self.sync.num_sets} frame sets")
        if int(step) < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        self.step = int(step)
        self.decode_color, self.decode_depth = bool(color), bool(depth)
        self.sets_read = 0
        self._running: list[tuple[threading.Thread, queue.Queue, threading.Event]] = []

    # ----------------------------------------------------------------------------------------
    def _check(self, require_depth: bool) -> None:
        seen: dict[str, Path] = {}
        for info in self.infos:
            if info.kind != "realsense":
                continue
            if info.serial in seen:
                raise RecordingError(
                    f"{info.path}: camera serial {info.serial} is also the camera of {seen[info.serial]}; "
                    "give each camera's recording once"
                )
            seen[info.serial] = info.path
            if require_depth and not info.has_depth:
                streams = ", ".join(f"{s.key} {s.width}x{s.height} {s.format}" for s in info.streams)
                raise RecordingError(
                    f"{info.path}: no depth stream (it has {streams}); record with depth enabled"
                )
        fps = [info.fps for info in self.infos]
        for info in self.infos:
            if not info.fps:
                raise RecordingError(f"{info.path}: unknown frame rate; give it (video fps)")
            if abs(info.fps - fps[0]) > 0.01 * fps[0]:
                raise RecordingError(
                    f"{info.path}: {info.fps:g} fps but {self.infos[0].path} has {fps[0]:g} fps; "
                    "record every camera at the same frame rate"
                )

    def __len__(self) -> int:
        return len(self._rows())

    def _rows(self) -> range:
        """The frame-set indices this stream yields."""
        return range(self.start, self.sync.num_sets, self.step)

    def _wanted(self) -> dict[tuple[int, str], set]:
        """Positions of each (view, stream) whose image is decoded: those of the sets yielded."""
        rows = np.asarray(self._rows(), dtype=np.int64)
        wanted: dict[tuple[int, str], set] = {}
        for v, info in enumerate(self.infos):
            pos = self.sync.index[rows, v] if rows.size else np.zeros(0, np.int64)
            pos = pos[pos >= 0]
            primary_decoded = self.decode_color if info.primary == "color" else self.decode_depth
            wanted[(v, info.primary)] = set(pos.tolist()) if primary_decoded else set()
            pairing = self.depth_for_primary[v]
            if pairing is not None:
                paired = pairing[pos]
                wanted[(v, "depth")] = set(paired[paired >= 0].tolist()) if self.decode_depth else set()
        return wanted

    # ----------------------------------------------------------------------------------------
    def _stream_iter(self, v: int, key: str, first: int, wanted: set, readers: list) -> Iterator:
        info = self.infos[v]
        if info.kind == "video":
            return read_video_frames(info.path, start=first, wanted=wanted.__contains__)
        reader = RealSenseReader(
            info.path, streams=(key,), wanted={key: wanted.__contains__},
            expected={key: len(self.indexes[v][key])},
        )
        readers.append(reader)
        return reader.stream(key)

    def _produce(self, out: queue.Queue, stop: threading.Event) -> None:
        """The reader thread: assembles frame sets into ``out``; only this thread closes its readers
        (the SDK aborts when two threads stop one playback)."""
        readers: list[RealSenseReader] = []
        iters: dict[tuple[int, str], Iterator] = {}
        heads: dict[tuple[int, str], object] = {}
        try:
            V = len(self.infos)
            wanted = self._wanted()

            def fetch(v: int, key: str, position: int):
                k = (v, key)
                if k not in iters:
                    iters[k] = self._stream_iter(v, key, position, wanted.get(k, set()), readers)
                head = heads.get(k)
                while head is None or head.position < position:
                    head = next(iters[k], None)
                    if head is None:
                        raise RecordingError(f"{self.infos[v].path}: {key} frame {position} missing")
                heads[k] = head
                return head if head.position == position else None

            index = self.sync.index
            for s in self._rows():
                if stop.is_set():
                    return
                color, depth = [None] * V, [None] * V
                stamps = np.full(V, np.nan)
                numbers = np.full(V, -1, dtype=np.int64)
                scales = np.full(V, np.nan)
                present = index[s] >= 0
                for v in np.flatnonzero(present):
                    info = self.infos[v]
                    primary = fetch(v, info.primary, int(index[s, v]))
                    stamps[v], numbers[v] = primary.timestamp_ms, primary.frame_number
                    if info.kind == "video":
                        stamps[v] = self.indexes[v]["color"].timestamps_ms[primary.position]
                    if info.primary == "color":
                        color[v] = primary.data
                    else:
                        depth[v] = primary.data
                    pairing = self.depth_for_primary[v]
                    if pairing is not None and pairing[index[s, v]] >= 0:
                        frame = fetch(v, "depth", int(pairing[index[s, v]]))
                        depth[v] = frame.data if frame is not None else None
                    if info.has_depth:
                        scales[v] = info.depth_scale
                    if depth[v] is not None and self.align[v] and info.depth_to_color is not None \
                            and info.color_intrinsics:
                        depth[v] = align_depth_to_color(depth[v], info.depth_intrinsics, info.color_intrinsics,
                                                        info.depth_to_color, info.depth_scale)
                item = FrameSet(s, self.cameras, stamps, numbers, tuple(color), tuple(depth), scales, present.copy())
                if not _put(out, item, stop):
                    return
        except Exception as exc:  # handed to the consumer, raised after the sets read before it
            _put(out, exc, stop)
            return
        finally:
            heads.clear()
            iters.clear()  # the playbacks' generators end here, in this thread
            for reader in readers:
                reader.close()
        _put(out, _END, stop)

    def __iter__(self) -> Iterator[FrameSet]:
        out: queue.Queue = queue.Queue(maxsize=self.readahead)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(out, stop), daemon=True, name="frameset-reader")
        self._running.append((thread, out, stop))
        thread.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    if isinstance(item, RecordingError):
                        raise RecordingError(f"{item} ({self.sets_read} frame sets were read before it)") from None
                    raise item
                self.sets_read += 1
                yield item
        finally:
            _finish(thread, out, stop)

    def close(self) -> None:
        """Stop every reader thread of this stream and wait until it has closed its files."""
        for thread, out, stop in self._running:
            _finish(thread, out, stop)
        self._running.clear()

    def __enter__(self) -> "FrameSetStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _put(out: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` into ``out`` unless ``stop`` is set first; True when it went in."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _finish(thread: threading.Thread, out: queue.Queue, stop: threading.Event) -> None:
    """Stop a reader thread and wait for it (draining its queue so that it never blocks on it)."""
    stop.set()
    while thread.is_alive():
        try:
            out.get(timeout=0.1)
        except queue.Empty:
            pass
    thread.join()


def needs_alignment(info: RecordingInfo) -> bool:
    """True unless the depth image already has the color stream's intrinsics and an identity
    depth-to-color transform (a recording made aligned, like the simulator's)."""
    if not info.has_depth or info.color_intrinsics is None or info.depth_intrinsics is None:
        return False
    same = info.color_intrinsics == info.depth_intrinsics
    if info.depth_to_color is not None:
        R, t = info.depth_to_color
        same = same and np.allclose(R, np.eye(3), atol=1e-9) and np.allclose(t, 0.0, atol=1e-9)
    return not same


def _default_offsets(domains: list[str], timestamps_ms: list[np.ndarray], period_ms: float | None, reference: int):
    """None when every camera stamps frames in the shared global time; else (V,) offsets estimated
    from the data, the global-time cameras sharing one (they are on one clock)."""
    if all(d == "global_time" for d in domains) or len(domains) < 2:
        return None
    log.info("cameras do not share a global clock (domains %s): estimating offsets", sorted(set(domains)))
    periods = [estimate_period(t) for t in timestamps_ms]
    period = period_ms or float(np.nanmedian(periods))
    offsets = estimate_offsets(timestamps_ms, period, reference)
    shared = [v for v, d in enumerate(domains) if d == "global_time"]
    if shared:
        offsets[shared] = offsets[shared[0]]
    return offsets
