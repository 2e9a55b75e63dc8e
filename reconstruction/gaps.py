"""Gaps in time series: which frames lie between valid ones, and filling short gaps.

Shapes: ``T`` frames, ``C`` columns (anything after the time axis, flattened). Used by the filters
(gap filling before a zero-phase filter) and the refinement (which NaN joints to bridge).
"""
from __future__ import annotations

import numpy as np


def neighbour_frames(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a (T, C) validity mask: previous and next valid frame of every frame (-1 / T if none)."""
    T = valid.shape[0]
    frames = np.arange(T)[:, None]
    prev = np.maximum.accumulate(np.where(valid, frames, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, frames, T)[::-1], axis=0)[::-1]
    return prev, nxt


def fillable(valid: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """(T, C) True for missing frames inside a gap of at most ``max_gap_frames`` between valid frames."""
    T = valid.shape[0]
    prev, nxt = neighbour_frames(valid)
    return ~valid & (prev >= 0) & (nxt < T) & (nxt - prev - 1 <= max_gap_frames)


def fill_gaps(x: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """Linear interpolation over time of the NaN gaps of at most ``max_gap_frames`` frames.

    ``x`` is (T, ...); each column (every index after T) is treated on its own. Longer gaps and the
    ends stay NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    T = shape[0]
    if T == 0:
        return x.copy()
    flat = x.reshape(T, -1)
    valid = np.isfinite(flat)
    prev, nxt = neighbour_frames(valid)
    fill = fillable(valid, max_gap_frames)
    cols = np.arange(flat.shape[1])[None, :]
    p = np.clip(prev, 0, T - 1)
    n = np.clip(nxt, 0, T - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (np.arange(T)[:, None] - prev) / (nxt - prev)
        interp = flat[p, cols] + (flat[n, cols] - flat[p, cols]) * frac
    out = np.where(fill, interp, flat)
    return out.reshape(shape)


def true_runs(valid_col: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous True runs [start, end) of a 1D mask."""
    edges = np.diff(np.concatenate([[0], valid_col.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
