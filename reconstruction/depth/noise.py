"""How noisy each joint's depth is, measured from the data (no ground truth needed).

Shapes: ``T`` frames, ``V`` views, ``J`` joints. The sensor model's per-pixel noise is a prior; a
real sensor's noise is spatially correlated and each joint's surface changes with the pose, so the
weights of the depth residuals come from what the recording itself shows.
"""
from __future__ import annotations

import numpy as np

from calibration.camera import Rig
from capture.nan_warnings import quiet_nan_warnings


def variance_along_rays(covariance: np.ndarray | None, surface: np.ndarray, rig: Rig) -> np.ndarray:
    """(T, V, J) variance (m^2) of a triangulated point with (T, J, 3, 3) ``covariance`` along each
    view's ray to the (T, V, J, 3) surface point; 0 where the covariance is unknown."""
    if covariance is None:
        covariance = np.full(surface.shape[:1] + surface.shape[2:] + (3,), np.nan)
    ray = surface - rig.centers[None, :, None, :]
    d = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    return np.einsum("tvji,tjik,tvjk->tvj", d, np.nan_to_num(np.asarray(covariance)), d)


def _rolling_sum(x: np.ndarray, half: int) -> np.ndarray:
    """Sum over frames ``t - half .. t + half`` of (T, ...) (zero-padded) -> (T, ...)."""
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    T = x.shape[0]
    hi = np.minimum(np.arange(T) + half + 1, T)
    lo = np.maximum(np.arange(T) - half, 0)
    return c[hi] - c[lo]


def measure_depth_noise(
    depth_points: np.ndarray,
    white_var: np.ndarray,
    tri_xyz: np.ndarray,
    tri_var_ray: np.ndarray,
    reliable: np.ndarray,
    rig: Rig,
    min_samples: int = 20,
    half_window: int = 5,
    limits: tuple[float, float] = (0.2, 5.0),
    bias_floor_m: float = 0.003,
) -> tuple[np.ndarray, np.ndarray]:
    """How noisy each joint's depth points are, measured from the data (no ground truth).

    Two parts, per joint (J,):

    - ``white_scale``: the frame-to-frame noise relative to the sensor model ``white_var``
      (T, V, J) m^2: the robust spread (1.4826 MAD) of the second temporal difference of each
      view's depth range, divided by ``sqrt(6)`` and by the model's sigma. Motion contributes
      little at 30 fps (3 m/s^2 is 3 mm per frame^2) and the MAD ignores the rare fast frames. This
      captures how many independent pixels the window median really averages, whatever the sensor's
      spatial correlation is.
    - ``bias_sigma`` (m): the slowly varying error (which part of the limb or head faces the
      camera), which the temporal difference cannot see: the robust spread of the depth-minus-
      triangulation range difference averaged over ``+- half_window`` frames of (T, J) ``reliable``
      triangulations, minus what the averaged white noise of both still contributes
      (``tri_var_ray`` (T, V, J) m^2), at least ``bias_floor_m``.

    Joints with fewer than ``min_samples`` samples keep 1 and ``bias_floor_m``.
    """
    centers = rig.centers[None, :, None, :]
    r_d = np.linalg.norm(depth_points - centers, axis=-1)  # (T, V, J)
    r_t = np.linalg.norm(tri_xyz[:, None] - centers, axis=-1)
    J = depth_points.shape[2]
    with np.errstate(invalid="ignore"):
        sig = np.sqrt(np.where(white_var > 0, white_var, np.nan))
        d2 = (r_d[2:] - 2 * r_d[1:-1] + r_d[:-2]) / sig[1:-1]  # (T-2, V, J), NaN unless 3 frames
        diff = np.where(reliable[:, None, :] & (np.abs(r_t - r_d) < 0.3), r_t - r_d, np.nan)
    white_scale = np.ones(J)
    bias_sigma = np.full(J, bias_floor_m)
    with quiet_nan_warnings():
        flat = d2.reshape(-1, J)
        enough = np.isfinite(flat).sum(axis=0) >= min_samples
        med = np.nanmedian(flat, axis=0)
        spread = 1.4826 * np.nanmedian(np.abs(flat - med), axis=0) / np.sqrt(6.0)
        white_scale = np.where(enough & np.isfinite(spread), np.clip(spread, *limits), 1.0)
        # The slow part: window means of the difference (each window needs most of its frames).
        ok = np.isfinite(diff)
        n = _rolling_sum(ok.astype(np.float64), half_window)
        mean = _rolling_sum(np.where(ok, diff, 0.0), half_window) / np.maximum(n, 1)
        full = ok & (n >= half_window + 1)
        noise = (np.nan_to_num(tri_var_ray) + white_scale[None, None, :] ** 2 * np.nan_to_num(white_var)) / np.maximum(n, 1)
        m = np.where(full, mean, np.nan).reshape(-1, J)
        m_med = np.nanmedian(m, axis=0)
        slow_var = (1.4826 * np.nanmedian(np.abs(m - m_med), axis=0)) ** 2
        slow_var -= np.nanmedian(np.where(full, noise, np.nan).reshape(-1, J), axis=0)
        # The offset (median) was estimated from the same differences: what is left of it is bias too.
        slow_var += np.nan_to_num(m_med) ** 2
        enough_b = np.isfinite(m).sum(axis=0) >= min_samples
    bias_sigma = np.where(enough_b & np.isfinite(slow_var), np.sqrt(np.maximum(np.nan_to_num(slow_var), bias_floor_m**2)),
                          bias_floor_m)
    return white_scale, bias_sigma


