"""Depth re-sampled onto the color image of the same RealSense camera (like ``rs.align``).

Shape letters: ``H_d``/``W_d`` depth image, ``H_c``/``W_c`` color image.
"""
from __future__ import annotations

import numpy as np

from capture.intrinsics import StreamIntrinsics


def _distort(x: np.ndarray, y: np.ndarray, coeffs) -> tuple[np.ndarray, np.ndarray]:
    k1, k2, p1, p2, k3 = coeffs
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y))


def align_depth_to_color(
    depth: np.ndarray,
    depth_intrinsics: StreamIntrinsics,
    color_intrinsics: StreamIntrinsics,
    depth_to_color: tuple[np.ndarray, np.ndarray],
    depth_scale: float,
) -> np.ndarray:
    """Depth (H_d, W_d) uint16 re-sampled onto the color image (H_c, W_c) uint16, same units.

    Like ``rs.align(rs.stream.color)``: each depth pixel's footprint (its corners at +-0.5 px) is
    deprojected, moved into the color camera and projected; the color pixels it covers take its
    depth, the nearest surface winning where footprints overlap. Depth distortion is ignored (D4xx
    depth streams have none); color distortion is brown_conrady (OpenCV k1, k2, p1, p2, k3).
    Vectorized: one pass per footprint offset, never per pixel.
    """
    R, t = (np.asarray(a, dtype=float) for a in depth_to_color)
    Hd, Wd = depth.shape
    Wc, Hc = color_intrinsics.width, color_intrinsics.height
    v, u = np.nonzero(depth)
    z = depth[v, u].astype(np.float64) * depth_scale
    out = np.full(Hc * Wc, np.iinfo(np.uint32).max, dtype=np.uint32)
    if z.size == 0:
        return np.zeros((Hc, Wc), np.uint16)
    di, ci = depth_intrinsics, color_intrinsics
    # Centre of each depth pixel in the color camera; a corner (+-0.5 px) differs by a column of R
    # scaled by z / f, so the four corners cost additions, not four deprojections.
    x = (u - di.ppx) * (z / di.fx)
    y = (v - di.ppy) * (z / di.fy)
    Q = R @ np.stack([x, y, z]) + t[:, None]
    ex = R[:, 0][:, None] * (0.5 * z / di.fx)
    ey = R[:, 1][:, None] * (0.5 * z / di.fy)
    umin = vmin = np.inf
    umax = vmax = -np.inf
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            C = Q + sx * ex + sy * ey
            xn, yn = C[0] / C[2], C[1] / C[2]
            if any(ci.coeffs):
                xn, yn = _distort(xn, yn, ci.coeffs)
            pu, pv = xn * ci.fx + ci.ppx, yn * ci.fy + ci.ppy
            umin, umax = np.minimum(umin, pu), np.maximum(umax, pu)
            vmin, vmax = np.minimum(vmin, pv), np.maximum(vmax, pv)
    u0 = np.floor(umin + 0.5).astype(np.int64)
    u1 = np.floor(umax + 0.5).astype(np.int64)
    v0 = np.floor(vmin + 0.5).astype(np.int64)
    v1 = np.floor(vmax + 0.5).astype(np.int64)
    span = int(min(8, max(1, (u1 - u0).max(initial=0) + 1, (v1 - v0).max(initial=0) + 1)))
    value = depth[v, u].astype(np.uint32)
    for a in range(span):
        for b in range(span):
            uu, vv = u0 + a, v0 + b
            ok = (uu <= u1) & (vv <= v1) & (uu >= 0) & (uu < Wc) & (vv >= 0) & (vv < Hc)
            np.minimum.at(out, vv[ok] * Wc + uu[ok], value[ok])
    out[out == np.iinfo(np.uint32).max] = 0
    return out.reshape(Hc, Wc).astype(np.uint16)
