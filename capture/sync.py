"""Group the frames of V cameras into frame sets by time: a pure function over timestamps.

Shape letters: ``V`` cameras, ``S`` frame sets, ``n_v`` frames of camera v.

The reference camera's timeline (after offsets) defines the instants ("anchors"); gaps in it (its
own dropped frames) and the time before its first / after its last frame are filled with anchors
one frame period apart, so that a drop of the reference does not lose the other cameras' frames.
Each camera's nearest frame to each anchor (``np.searchsorted``) joins the set when it lies within
the tolerance; members are then trimmed around the set's median time so that no two frames of a
set are more than ``tolerance_ms`` apart, and a camera frame is never used by two sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capture.nan_warnings import quiet_nan_warnings


@dataclass(frozen=True, eq=False)
class SyncResult:
    """Frame sets of V cameras.

    index: (S, V) int, position of each set's frame in each camera's frame list, -1 when missing.
    times_ms: (S, V) float, those frames' times after offsets were removed, NaN when missing.
    skew_ms: (S,) max - min of the present times of each set (0 for a set of one frame).
    offsets_ms: (V,) offsets removed from each camera's timestamps (camera time - offset = common).
    period_ms: the nominal frame period used to detect drops and fill gaps.
    dropped: V arrays of the frame numbers that are missing from each camera (by frame-number gap,
        or when the camera has no frame numbers, by time gaps: numbers counted from its first frame);
        sets before a camera's first / after its last frame count as its drops too.
    duplicates: V arrays of the positions of frames that repeat the previous frame (same frame
        number, or less than half a period after it when there are no frame numbers).
    unmatched: V arrays of the positions of frames that joined no set.
    """

    index: np.ndarray
    times_ms: np.ndarray
    skew_ms: np.ndarray
    offsets_ms: np.ndarray
    period_ms: float
    tolerance_ms: float
    dropped: tuple[np.ndarray, ...]
    duplicates: tuple[np.ndarray, ...]
    unmatched: tuple[np.ndarray, ...]

    @property
    def num_sets(self) -> int:
        return int(self.index.shape[0])

    @property
    def complete(self) -> np.ndarray:
        """(S,) bool: sets where every camera has a frame."""
        return (self.index >= 0).all(axis=1)

    @property
    def dropped_count(self) -> np.ndarray:
        return np.array([d.size for d in self.dropped], dtype=int)


def estimate_period(timestamps_ms: np.ndarray) -> float:
    """Nominal frame period (ms) of one camera: median of its positive timestamp differences."""
    d = np.diff(np.asarray(timestamps_ms, dtype=float))
    d = d[d > 0]
    if d.size == 0:
        return float("nan")
    # The median of the differences is robust to drops (longer gaps) and duplicates (removed above).
    return float(np.median(d))


def estimate_offsets(timestamps_ms: list[np.ndarray], period_ms: float, reference: int = 0) -> np.ndarray:
    """Per-camera clock offsets (V,) relative to the reference camera, from the data alone.

    Assumes the cameras started within half a frame period of each other (true for a rig started
    together; timestamps alone cannot tell a shift of whole periods): the coarse offset is the
    difference of first timestamps, refined by the median residual to the nearest reference frame.
    """
    ref = np.asarray(timestamps_ms[reference], dtype=float)
    offsets = np.zeros(len(timestamps_ms))
    for v, t in enumerate(timestamps_ms):
        t = np.asarray(t, dtype=float)
        if v == reference or t.size == 0 or ref.size == 0:
            continue
        coarse = t[0] - ref[0]
        u = t - coarse
        j = np.clip(np.searchsorted(ref, u), 1, max(ref.size - 1, 1))
        nearest = np.where(np.abs(ref[j - 1] - u) <= np.abs(ref[np.minimum(j, ref.size - 1)] - u), ref[j - 1], ref[np.minimum(j, ref.size - 1)])
        residual = u - nearest
        residual = residual[np.abs(residual) <= period_ms / 2]
        offsets[v] = coarse + (float(np.median(residual)) if residual.size else 0.0)
    return offsets


def _numbers(frame_numbers: np.ndarray | None, t: np.ndarray, period: float) -> np.ndarray:
    if frame_numbers is not None and len(frame_numbers) == len(t) and np.all(np.asarray(frame_numbers) >= 0):
        return np.asarray(frame_numbers, dtype=np.int64)
    # Without frame numbers, count elapsed periods frame to frame (a global (t - t0) / period would
    # accumulate the period's estimation error over a long recording).
    if t.size == 0:
        return np.zeros(0, np.int64)
    return np.concatenate([[0], np.cumsum(np.round(np.diff(t) / period).astype(np.int64))])


def find_drops(frame_numbers: np.ndarray | None, t: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """(missing frame numbers between the first and last frame, positions of duplicates) of one
    stream, from frame-number gaps, or from time gaps when ``frame_numbers`` is None."""
    fn = _numbers(frame_numbers, t, period)
    if fn.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = np.diff(fn)
    duplicates = np.flatnonzero(d <= 0) + 1
    gaps = np.flatnonzero(d > 1)
    counts = d[gaps] - 1
    # Missing numbers: for each gap, fn[g] + 1 ... fn[g + 1] - 1, built without a Python loop.
    starts = np.repeat(fn[gaps] + 1, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts + within, duplicates


def synchronize(
    timestamps_ms: list[np.ndarray],
    tolerance_ms: float,
    offsets_ms: np.ndarray | str | None = None,
    reference: int = 0,
    frame_numbers: list[np.ndarray | None] | None = None,
    period_ms: float | None = None,
) -> SyncResult:
    """Group frames of V cameras into frame sets.

    timestamps_ms: V arrays (n_v,), each camera's frame times (ms), increasing.
    tolerance_ms: no two frames of a set are further apart than this (after offsets).
    offsets_ms: None (a shared clock), (V,) known offsets (camera time - offset = common time), or
        ``"estimate"`` (see :func:`estimate_offsets`).
    reference: the camera whose frames define the instants.
    frame_numbers: optional V arrays (n_v,) of hardware frame numbers, for drop detection.
    period_ms: nominal frame period; estimated from the reference camera when None.
    """
    ts = _check_inputs(timestamps_ms, tolerance_ms, reference, frame_numbers)
    V = len(ts)
    if period_ms is None:
        periods = np.array([estimate_period(t) for t in ts])
        period_ms = float(periods[reference]) if np.isfinite(periods[reference]) else float(np.nanmedian(periods))
    if not np.isfinite(period_ms) or period_ms <= 0:
        raise ValueError("cannot tell the frame period: give period_ms (cameras have fewer than 2 frames)")
    offsets = _offsets(offsets_ms, ts, period_ms, reference)
    us = [t - o for t, o in zip(ts, offsets)]
    numbers = [None if frame_numbers is None else frame_numbers[v] for v in range(V)]
    dropped, duplicates = zip(*[find_drops(numbers[v], ts[v], period_ms) for v in range(V)])
    index, times = _match(us, _anchors(us, reference, period_ms), tolerance_ms)
    skew = np.nanmax(times, axis=1) - np.nanmin(times, axis=1) if times.size else np.zeros(0)
    dropped = [_with_edge_drops(d, index[:, v], numbers[v], ts[v], period_ms) for v, d in enumerate(dropped)]
    unmatched = []
    for v, u in enumerate(us):
        used = np.zeros(u.size, dtype=bool)
        used[index[index[:, v] >= 0, v]] = True
        unmatched.append(np.flatnonzero(~used))
    return SyncResult(
        index=index, times_ms=times, skew_ms=np.asarray(skew, dtype=float), offsets_ms=offsets,
        period_ms=float(period_ms), tolerance_ms=float(tolerance_ms),
        dropped=tuple(dropped), duplicates=tuple(duplicates), unmatched=tuple(unmatched),
    )


def _check_inputs(timestamps_ms, tolerance_ms: float, reference: int, frame_numbers) -> list[np.ndarray]:
    V = len(timestamps_ms)
    if V == 0:
        raise ValueError("synchronize needs at least one camera")
    if not 0 <= reference < V:
        raise ValueError(f"reference must be in [0, {V}), got {reference}")
    if tolerance_ms <= 0:
        raise ValueError(f"tolerance_ms must be positive, got {tolerance_ms}")
    ts = [np.asarray(t, dtype=float).reshape(-1) for t in timestamps_ms]
    for v, t in enumerate(ts):
        if t.size > 1 and np.any(np.diff(t) < 0):
            raise ValueError(f"timestamps of camera {v} are not increasing")
    if frame_numbers is not None and len(frame_numbers) != V:
        raise ValueError(f"frame_numbers must have {V} entries, got {len(frame_numbers)}")
    return ts


def _offsets(offsets_ms, ts: list[np.ndarray], period_ms: float, reference: int) -> np.ndarray:
    """(V,) offsets from None (a shared clock), ``"estimate"`` or given values."""
    V = len(ts)
    if isinstance(offsets_ms, str):
        if offsets_ms != "estimate":
            raise ValueError(f"offsets_ms must be None, an array or 'estimate', got {offsets_ms!r}")
        return estimate_offsets(ts, period_ms, reference)
    if offsets_ms is None:
        return np.zeros(V)
    offsets = np.asarray(offsets_ms, dtype=float).reshape(-1)
    if offsets.shape != (V,):
        raise ValueError(f"offsets_ms must be ({V},), got {offsets.shape}")
    return offsets


def _match(us: list[np.ndarray], anchors: np.ndarray, tolerance_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """(S, V) frame positions and times of the sets around ``anchors``: each camera's nearest frame
    within the tolerance, trimmed around the set's median (pairwise bound), each frame in one set
    only; sets without any frame removed."""
    S, V = anchors.size, len(us)
    index = np.full((S, V), -1, dtype=np.int64)
    times = np.full((S, V), np.nan)
    for v, u in enumerate(us):  # a loop over cameras, not frames
        if u.size == 0 or S == 0:
            continue
        j = np.searchsorted(u, anchors)
        lo = np.clip(j - 1, 0, u.size - 1)
        hi = np.clip(j, 0, u.size - 1)
        pick = np.where(np.abs(u[lo] - anchors) <= np.abs(u[hi] - anchors), lo, hi)
        ok = np.abs(u[pick] - anchors) <= tolerance_ms
        index[ok, v] = pick[ok]
        times[ok, v] = u[pick[ok]]

    # Trim each set around its median so that max - min <= tolerance (pairwise bound).
    with quiet_nan_warnings():  # all-NaN rows (no camera near an anchor)
        center = np.nanmedian(times, axis=1) if S else np.zeros(0)
    far = np.abs(times - center[:, None]) > tolerance_ms / 2
    index[far] = -1
    times[far] = np.nan

    # A frame used by two sets stays only in the one whose centre it is closest to.
    for v in range(V):
        col = index[:, v]
        rows = np.flatnonzero(col >= 0)
        if rows.size < 2:
            continue
        dist = np.abs(times[rows, v] - center[rows])
        order = np.lexsort((dist, col[rows]))
        sorted_rows = rows[order]
        first = np.ones(sorted_rows.size, dtype=bool)
        first[1:] = col[sorted_rows[1:]] != col[sorted_rows[:-1]]
        losers = sorted_rows[~first]
        index[losers, v] = -1
        times[losers, v] = np.nan
    keep = (index >= 0).any(axis=1)
    return index[keep], times[keep]


def _with_edge_drops(dropped: np.ndarray, column: np.ndarray, frame_numbers, t: np.ndarray,
                     period_ms: float) -> np.ndarray:
    """A camera's drops plus the sets before its first / after its last frame (which show up only
    against the other cameras), numbered on from its first / last frame number."""
    rows = np.flatnonzero(column >= 0)
    if rows.size == 0:
        return dropped
    fn = _numbers(frame_numbers, t, period_ms)
    lead = np.arange(fn[column[rows[0]]] - rows[0], fn[column[rows[0]]])
    tail = np.arange(fn[column[rows[-1]]] + 1, fn[column[rows[-1]]] + 1 + column.shape[0] - 1 - rows[-1])
    return np.concatenate([lead, dropped, tail]).astype(np.int64)


def _anchors(us: list[np.ndarray], reference: int, period: float) -> np.ndarray:
    """Instants of the frame sets: the reference's frames, its gaps filled one period apart, and
    extended by whole periods to cover every camera's first and last frame."""
    ref = us[reference]
    nonempty = [u for u in us if u.size]
    if not nonempty:
        return np.zeros(0)
    if ref.size == 0:
        ref = nonempty[0][:1]
    if ref.size > 1:
        keep = np.ones(ref.size, dtype=bool)
        keep[1:] = np.diff(ref) > period / 2  # duplicates of the reference do not make new sets
        ref = ref[keep]
    d = np.diff(ref)
    missing = np.maximum(np.round(d / period).astype(np.int64) - 1, 0)
    # Insert `missing[i]` anchors evenly inside gap i (vectorized with repeat).
    gap_idx = np.repeat(np.arange(d.size), missing)
    k = np.arange(missing.sum()) - np.repeat(np.cumsum(missing) - missing, missing) + 1
    fill = ref[gap_idx] + k * d[gap_idx] / (missing[gap_idx] + 1)
    first = min(u[0] for u in nonempty)
    last = max(u[-1] for u in nonempty)
    n_before = int(max(0, np.floor((ref[0] - first) / period + 0.5)))
    n_after = int(max(0, np.floor((last - ref[-1]) / period + 0.5)))
    before = ref[0] - period * np.arange(n_before, 0, -1)
    after = ref[-1] + period * np.arange(1, n_after + 1)
    return np.sort(np.concatenate([before, ref, fill, after]))
