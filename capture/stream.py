"""A stream of :class:`FrameSet` over V recordings (or videos), one camera per file.

Shape letters: ``V`` cameras, ``S`` frame sets.

Opening reads each file's info and index (timestamps and frame numbers, no images), checks the
files belong together (distinct serials, one frame rate, depth where required), synchronizes the
cameras (:func:`capture.sync.synchronize`) and pairs each camera's depth frames with its color
frames. Iterating plays every stream once, in order, on its own bounded queue; a thread assembles
frame sets ahead of the consumer, at most ``readahead`` of them, so memory does not grow with the
length of the recordings.
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
from capture.recording import (
    RealSenseReader,
    RecordingInfo,
    StreamIndex,
    align_depth_to_color,
    index_recording,
    read_recording_info,
    read_video_frames,
)
from capture.sync import SyncResult, synchronize

log = logging.getLogger(__name__)

_END = object()


class FrameSetStream:
    """Iterator of :class:`FrameSet` over V recordings.

    sources: V paths (.bag, .db3 or video files), in view order.
    names: camera names (default: the serial numbers, or the video file stems).
    tolerance_ms: most time between two frames of one set (default: half a frame period).
    offsets_ms: None (default: no offsets when every camera stamps frames in global time, else
        estimated), ``"estimate"``, or (V,) known clock offsets (camera time - offset = common time).
    align_depth: resample depth onto the color image (:func:`align_depth_to_color`).
    require_depth: every RealSense camera must have a depth stream.
    readahead: frame sets assembled ahead of the consumer.
    start: first frame-set index to yield (resume).
    video_fps / video_timestamps: per-video frame rate or timestamps file (one ms time per line).
    """

    def __init__(
        self,
        sources: list[str | Path],
        names: list[str] | None = None,
        tolerance_ms: float | None = None,
        offsets_ms=None,
        reference: int = 0,
        align_depth: bool = False,
        require_depth: bool = False,
        readahead: int = 4,
        start: int = 0,
        video_fps: list[float | None] | None = None,
        video_timestamps: list[str | Path | None] | None = None,
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
            if all(p.domain == "global_time" for p in primary):
                offsets_ms = None
            else:
                log.info("cameras do not share a global clock (domains %s): estimating offsets",
                         sorted({p.domain for p in primary}))
                offsets_ms = "estimate" if V > 1 else None
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
        self.align_depth = align_depth
        self.readahead = max(1, int(readahead))
        self.start = int(start)
        if not 0 <= self.start <= self.sync.num_sets:
            raise RecordingError(f"start {start} is outside the {self.sync.num_sets} frame sets")
        self.sets_read = 0
        self._stop = threading.Event()
        self._readers: list[RealSenseReader] = []

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
        return self.sync.num_sets - self.start

    # ----------------------------------------------------------------------------------------
    def _stream_iter(self, v: int, key: str, first: int) -> Iterator:
        info = self.infos[v]
        if info.kind == "video":
            return read_video_frames(info.path, start=first)
        reader = RealSenseReader(
            info.path, streams=(key,), skip_before={key: first},
            expected={key: len(self.indexes[v][key])},
        )
        self._readers.append(reader)
        return reader.stream(key)

    def _produce(self, out: queue.Queue) -> None:
        try:
            index = self.sync.index[self.start:]
            V = len(self.infos)
            iters: dict[tuple[int, str], Iterator] = {}
            heads: dict[tuple[int, str], object] = {}

            def fetch(v: int, key: str, position: int):
                k = (v, key)
                if k not in iters:
                    iters[k] = self._stream_iter(v, key, position)
                head = heads.get(k)
                while head is None or head.position < position:
                    head = next(iters[k], None)
                    if head is None:
                        raise RecordingError(f"{self.infos[v].path}: {key} frame {position} missing")
                heads[k] = head
                return head if head.position == position else None

            for s in range(index.shape[0]):
                if self._stop.is_set():
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
                    if depth[v] is not None:
                        scales[v] = info.depth_scale
                        if self.align_depth and info.depth_to_color is not None and info.color_intrinsics:
                            depth[v] = align_depth_to_color(depth[v], info.depth_intrinsics, info.color_intrinsics,
                                                            info.depth_to_color, info.depth_scale)
                item = FrameSet(self.start + s, self.cameras, stamps, numbers, tuple(color), tuple(depth),
                                scales, present.copy())
                while not self._stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # handed to the consumer, raised after the sets read before it
            out.put(exc)
            return
        finally:
            for reader in self._readers:
                reader.close()
        out.put(_END)

    def __iter__(self) -> Iterator[FrameSet]:
        self._stop.clear()
        out: queue.Queue = queue.Queue(maxsize=self.readahead)
        thread = threading.Thread(target=self._produce, args=(out,), daemon=True, name="frameset-reader")
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
            self._stop.set()
            while thread.is_alive():
                try:
                    out.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()

    def close(self) -> None:
        self._stop.set()
        for reader in self._readers:
            reader.close()

    def __enter__(self) -> "FrameSetStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
