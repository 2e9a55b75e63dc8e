"""Drawing a skeleton's joints and bones on an image (OpenCV), the one drawing routine of the overlays
and the 3D plot. Shapes: ``J`` joints, ``B`` bones."""
from __future__ import annotations

import numpy as np

PALETTE = [(0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255), (255, 255, 0), (128, 128, 255)]  # BGR


def draw_skeleton(image: np.ndarray, uv: np.ndarray, bones: np.ndarray, color, radius: int = 3,
                  thickness: int = 2) -> np.ndarray:
    """Draw joints ``uv`` (J, 2) and ``bones`` (B, 2) on a BGR image in place; NaN joints skipped."""
    import cv2

    ok = np.all(np.isfinite(uv), axis=-1)
    h, w = image.shape[:2]
    ok &= np.all(np.abs(np.nan_to_num(uv)) < 4 * max(h, w), axis=-1)
    p = np.round(np.nan_to_num(uv)).astype(np.int32)
    for a, b in bones:  # a handful of lines per frame
        if ok[a] and ok[b]:
            cv2.line(image, tuple(map(int, p[a])), tuple(map(int, p[b])), color, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(image, tuple(map(int, p[j])), radius, color, -1, cv2.LINE_AA)
    return image
