"""Keypoint codecs: encode joints to a model's target representation and decode it back.

Each codec is an encode/decode pair on numpy arrays, tested as a round trip. Shapes: ``B``
images, ``J`` joints, ``h, w`` heatmap grid. Coordinates are in heatmap cells with cell centres at
integers (cell ``i`` covers ``[i - 0.5, i + 0.5)``); scaling to image pixels is the caller's
(``x_img = (x + 0.5) * stride - 0.5`` for a grid of stride ``stride``, pixel centres at integers).

- :class:`GaussianHeatmap`: Gaussian heatmaps, decoded by argmax + sub-pixel refinement
  (``"quadratic"``: a 2-D Newton step on the log heatmap, or ``"dark"``: DARK's Newton step on the
  Gaussian-blurred log heatmap, Zhang et al. CVPR 2020), or plain ``"argmax"``.
- :class:`ArgmaxOffset`: MoveNet-style heatmap + per-joint offset field (y, x interleaved).
- :class:`SimCC`: 1-D coordinate classification along x and y (Li et al. ECCV 2022), with
  ``split_ratio`` bins per cell, decoded by argmax + quadratic refinement.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _gaussian_1d(n: int, mu: np.ndarray, sigma: float) -> np.ndarray:
    """``(..., n)`` unnormalised Gaussian of centres ``mu (...)`` over bins 0..n-1."""
    g = np.arange(n, dtype=np.float64)
    return np.exp(-0.5 * ((g - mu[..., None]) / sigma) ** 2)


def _argmax2d(hm: np.ndarray):
    B, J, h, w = hm.shape
    flat = np.nan_to_num(hm, nan=-np.inf).reshape(B, J, -1)
    idx = flat.argmax(axis=-1)
    return idx // w, idx % w, np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]


def _newton_step(logh: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 2-D Newton step on ``logh (B, J, h, w)`` at integer peaks (y, x) (inner cells only)."""
    B, J, h, w = logh.shape
    yc = np.clip(y, 1, h - 2)
    xc = np.clip(x, 1, w - 2)
    b, j = np.meshgrid(np.arange(B), np.arange(J), indexing="ij")

    def at(dy, dx):
        return logh[b, j, yc + dy, xc + dx]

    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * at(0, 0) + at(0, -1)
    dyy = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy ** 2
    inner = (y == yc) & (x == xc) & (det > 1e-12) & (dxx < 0) & (dyy < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ox = -(dyy * dx - dxy * dy) / det
        oy = -(dxx * dy - dxy * dx) / det
    ok = inner & (np.abs(ox) <= 1) & (np.abs(oy) <= 1)
    return np.where(ok, oy, 0.0), np.where(ok, ox, 0.0)


@dataclass(frozen=True)
class GaussianHeatmap:
    """Gaussian heatmaps of ``sigma`` cells on an ``(h, w)`` grid; ``refine`` = quadratic | dark | argmax;
    ``blur_kernel`` (odd) is DARK's modulation kernel."""

    size: tuple = (64, 48)
    sigma: float = 2.0
    refine: str = "dark"
    blur_kernel: int = 7

    def encode(self, keypoints: np.ndarray) -> np.ndarray:
        """``(B, J, 2|3)`` x, y in cells -> ``(B, J, h, w)`` heatmaps (peak 1; zero for NaN joints)."""
        kp = np.asarray(keypoints, dtype=np.float64)
        h, w = self.size
        ok = np.isfinite(kp[..., :2]).all(axis=-1)
        xy = np.where(ok[..., None], kp[..., :2], 0)
        gy = _gaussian_1d(h, xy[..., 1], self.sigma)
        gx = _gaussian_1d(w, xy[..., 0], self.sigma)
        return (gy[..., :, None] * gx[..., None, :] * ok[..., None, None]).astype(np.float32)

    def decode(self, heatmaps: np.ndarray) -> np.ndarray:
        """``(B, J, h, w)`` -> ``(B, J, 3)`` x, y in cells, score (the peak value)."""
        hm = np.asarray(heatmaps, dtype=np.float64)
        y, x, score = _argmax2d(hm)
        if self.refine == "argmax":
            oy = ox = np.zeros(y.shape)
        elif self.refine == "quadratic":
            oy, ox = _newton_step(np.log(np.maximum(hm, 1e-10)), y, x)
        elif self.refine == "dark":
            import cv2

            k = self.blur_kernel
            B, J, h, w = hm.shape
            flat = hm.reshape(B * J, h, w)
            # DARK: blur (keeping the peak height) so the log is smooth, then a Newton step
            blurred = np.stack([cv2.GaussianBlur(m, (k, k), 0) for m in flat]).reshape(hm.shape)
            peak = hm.reshape(B, J, -1).max(-1)[..., None, None]
            bpeak = np.maximum(blurred.reshape(B, J, -1).max(-1)[..., None, None], 1e-10)
            blurred = blurred * peak / bpeak
            oy, ox = _newton_step(np.log(np.maximum(blurred, 1e-10)), y, x)
        else:
            raise ValueError(f"refine must be 'argmax', 'quadratic' or 'dark', got {self.refine!r}")
        return np.stack([x + ox, y + oy, score], axis=-1)


@dataclass(frozen=True)
class ArgmaxOffset:
    """MoveNet-style: a peaked heatmap and an offset field ``(B, 2J, h, w)`` (dy, dx per joint) that
    points from each cell to the joint; decode = argmax + the offset read at the peak."""

    size: tuple = (48, 48)
    sigma: float = 1.0

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp = np.asarray(keypoints, dtype=np.float64)
        hm = GaussianHeatmap(self.size, self.sigma).encode(kp)
        h, w = self.size
        gy, gx = np.mgrid[0:h, 0:w]
        off = np.stack([kp[..., 1, None, None] - gy, kp[..., 0, None, None] - gx], axis=2)  # (B, J, 2, h, w)
        off = np.nan_to_num(off).reshape(kp.shape[0], -1, h, w)
        return hm, off.astype(np.float32)

    def decode(self, heatmaps: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        hm = np.asarray(heatmaps, dtype=np.float64)
        B, J, h, w = hm.shape
        y, x, score = _argmax2d(hm)
        off = np.asarray(offsets, dtype=np.float64).reshape(B, J, 2, h, w)
        b, j = np.meshgrid(np.arange(B), np.arange(J), indexing="ij")
        return np.stack([x + off[b, j, 1, y, x], y + off[b, j, 0, y, x], score], axis=-1)


@dataclass(frozen=True)
class SimCC:
    """1-D classification of x and y: ``split_ratio`` bins per cell over an ``(h, w)`` grid, Gaussian
    labels of ``sigma`` cells. Representations: ``x_labels (B, J, w*k)``, ``y_labels (B, J, h*k)``."""

    size: tuple = (64, 48)
    split_ratio: float = 2.0
    sigma: float = 1.5

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp = np.asarray(keypoints, dtype=np.float64)
        h, w = self.size
        k = self.split_ratio
        ok = np.isfinite(kp[..., :2]).all(axis=-1)
        xy = np.where(ok[..., None], kp[..., :2], 0)
        # bin b covers cells [(b - 0.5)/k - 0.5 + ...]: bin centre b <-> cell coordinate (b + 0.5)/k - 0.5
        mx = (xy[..., 0] + 0.5) * k - 0.5
        my = (xy[..., 1] + 0.5) * k - 0.5
        gx = _gaussian_1d(int(round(w * k)), mx, self.sigma * k) * ok[..., None]
        gy = _gaussian_1d(int(round(h * k)), my, self.sigma * k) * ok[..., None]
        return gx.astype(np.float32), gy.astype(np.float32)

    def decode(self, x_labels: np.ndarray, y_labels: np.ndarray) -> np.ndarray:
        k = self.split_ratio

        def one(lab):
            lab = np.asarray(lab, dtype=np.float64)
            n = lab.shape[-1]
            i = np.nan_to_num(lab, nan=-np.inf).argmax(axis=-1)
            v = np.take_along_axis(lab, i[..., None], -1)[..., 0]
            ic = np.clip(i, 1, n - 2)
            l0 = np.log(np.maximum(np.take_along_axis(lab, (ic - 1)[..., None], -1)[..., 0], 1e-10))
            l1 = np.log(np.maximum(np.take_along_axis(lab, ic[..., None], -1)[..., 0], 1e-10))
            l2 = np.log(np.maximum(np.take_along_axis(lab, (ic + 1)[..., None], -1)[..., 0], 1e-10))
            den = l0 - 2 * l1 + l2
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.where((ic == i) & (den < -1e-12), 0.5 * (l0 - l2) / den, 0.0)
            d = np.clip(d, -1, 1)
            return (i + d + 0.5) / k - 0.5, v

        x, sx = one(x_labels)
        y, sy = one(y_labels)
        return np.stack([x, y, np.minimum(sx, sy)], axis=-1)
