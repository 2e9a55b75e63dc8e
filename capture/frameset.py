"""One instant across the views of a rig: the unit that every later stage consumes.

Shape letters: ``V`` views (cameras), ``H``/``W`` image height and width in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class FrameSet:
    """Frames of V cameras taken at (nearly) the same time.

    A view that has no frame in this set keeps its slot: ``present[v]`` is False, its timestamp
    NaN, its frame number -1 and its images None. ``timestamps_ms`` are the cameras' own clocks
    (device time, not corrected by any synchronization offset); ``depth`` is in units of
    ``depth_scale`` metres (z16), aligned to color when the stream was opened with alignment.

    index: position of the set in its stream (0-based).
    cameras: (V,) camera names, in the rig's view order.
    timestamps_ms: (V,) float, NaN where the view is missing.
    frame_numbers: (V,) int, -1 where missing.
    color: V entries, each (H, W, 3) uint8 RGB or None.
    depth: V entries, each (H, W) uint16 or None.
    depth_scale: (V,) metres per depth unit (NaN for views without depth).
    present: (V,) bool.
    """

    index: int
    cameras: tuple[str, ...]
    timestamps_ms: np.ndarray
    frame_numbers: np.ndarray
    color: tuple[np.ndarray | None, ...]
    depth: tuple[np.ndarray | None, ...]
    depth_scale: np.ndarray
    present: np.ndarray

    def __post_init__(self):
        V = len(self.cameras)
        for name in ("timestamps_ms", "frame_numbers", "depth_scale", "present"):
            value = getattr(self, name)
            if np.shape(value) != (V,):
                raise ValueError(f"{name} must be ({V},) for {V} cameras, got {np.shape(value)}")
        for name in ("color", "depth"):
            if len(getattr(self, name)) != V:
                raise ValueError(f"{name} must have {V} entries, got {len(getattr(self, name))}")

    @property
    def num_views(self) -> int:
        return len(self.cameras)

    @property
    def skew_ms(self) -> float:
        """Spread of the present views' timestamps (max - min) in ms; NaN if none is present."""
        t = self.timestamps_ms[self.present]
        return float(t.max() - t.min()) if t.size else float("nan")

    def depth_m(self, view: int) -> np.ndarray | None:
        """Depth of one view in metres (H, W) float32, NaN where the sensor saw nothing (0)."""
        d = self.depth[view]
        if d is None:
            return None
        out = d.astype(np.float32) * np.float32(self.depth_scale[view])
        out[d == 0] = np.nan
        return out
