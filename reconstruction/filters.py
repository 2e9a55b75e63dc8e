"""Temporal filters for 3D joint trajectories, with a gap policy.

Shapes: ``T`` frames first, then anything (``(T, J, 3)`` for joints); every column (joint
coordinate) is filtered independently, all columns at once. NaN marks a missing sample.

Gap policy (every filter): a NaN gap of at most ``max_gap_frames`` frames between two valid samples
is filled (linear interpolation for Butterworth and one-euro, the smoother's estimate for Kalman);
longer gaps, and gaps at the start or end, stay NaN. Filling never extrapolates.

- ``butterworth``: zero-phase (forward-backward ``sosfiltfilt``) low-pass of order ``order`` at
  ``cutoff_hz``, on each contiguous valid stretch separately. Forward-backward squares the
  magnitude response: the attenuation at f is ``2 x`` the single pass's (-6 dB at the cutoff).
  Offline only (it looks ahead).
- ``one_euro``: the causal 1-euro filter (Casiez et al., CHI 2012), adaptive cutoff
  ``min_cutoff_hz + beta * |speed|``: little lag when moving fast, little jitter when still. For live
  use: :class:`OneEuroFilter` keeps its state between calls.
- ``kalman``: Rauch-Tung-Striebel smoother with a constant-velocity or constant-acceleration model
  (white jerk / acceleration noise ``process_noise``), measurement noise ``measurement_noise_m``.
- ``none``: gap filling only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from reconstruction.gaps import fill_gaps, fillable, true_runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterConfig:
    """Filter choice and parameters (section ``filters``; these defaults are the only defaults).

    Attributes:
        enabled: filter the offline result after the refinement (off by default: the refinement
            already smooths, and on every simulated session the filter moved the result further from
            the truth). The live view always filters, causally (``one_euro``).
        kind: "butterworth", "one_euro", "kalman" or "none".
        cutoff_hz: Butterworth cutoff frequency.
        order: Butterworth order (per pass).
        max_gap_frames: longest gap that is filled; longer gaps stay NaN.
        min_cutoff_hz, beta, d_cutoff_hz: one-euro parameters (beta in 1/m: cutoff gain per m/s).
        kalman_model: "velocity" (constant velocity) or "acceleration" (constant acceleration).
        process_noise: Kalman process noise density: m/s^2 (velocity model) or m/s^3 (acceleration).
        measurement_noise_m: Kalman measurement noise (1 sigma), metres.
    """

    enabled: bool = False
    kind: Literal["butterworth", "one_euro", "kalman", "none"] = "butterworth"
    cutoff_hz: float = 6.0
    order: int = 4
    max_gap_frames: int = 10
    min_cutoff_hz: float = 1.0
    beta: float = 0.5
    d_cutoff_hz: float = 1.0
    kalman_model: Literal["velocity", "acceleration"] = "acceleration"
    process_noise: float = 20.0
    measurement_noise_m: float = 0.01

    def __post_init__(self):
        if self.kind not in ("butterworth", "one_euro", "kalman", "none"):
            raise ValueError(f"kind must be butterworth, one_euro, kalman or none, got {self.kind!r}")
        if self.kalman_model not in ("velocity", "acceleration"):
            raise ValueError(f"kalman_model must be velocity or acceleration, got {self.kalman_model!r}")
        for name in ("cutoff_hz", "min_cutoff_hz", "d_cutoff_hz", "process_noise", "measurement_noise_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.order < 1 or self.max_gap_frames < 0 or self.beta < 0:
            raise ValueError("order must be >= 1, max_gap_frames >= 0 and beta >= 0")


def butterworth_filter(x: np.ndarray, fps: float, cutoff_hz: float = 6.0, order: int = 4,
                       max_gap_frames: int = 10) -> np.ndarray:
    """Zero-phase Butterworth low-pass of (T, ...) samples; short gaps filled first, long ones stay NaN.

    Each contiguous valid stretch is filtered on its own (stretches of 6 samples or fewer are left as
    they are). A cutoff at or above Nyquist (``fps / 2``) leaves the samples unfiltered.
    """
    from scipy.signal import butter, sosfiltfilt

    if not cutoff_hz > 0:
        raise ValueError(f"cutoff_hz must be > 0, got {cutoff_hz}")
    filled = fill_gaps(x, max_gap_frames)
    if cutoff_hz >= fps / 2:
        # Nothing to remove below Nyquist (a low frame rate): the low-pass is the identity.
        log.info("Butterworth cutoff %.3g Hz >= Nyquist (%.3g Hz at %.3g fps): not filtering", cutoff_hz, fps / 2, fps)
        return filled
    shape = filled.shape
    flat = filled.reshape(shape[0], -1).copy()
    sos = butter(order, cutoff_hz, btype="low", fs=fps, output="sos")
    valid = np.isfinite(flat)
    padlen = 3 * (2 * len(sos) + 1)
    # Columns share their gap pattern most of the time (x, y, z of one joint): group them.
    patterns: dict[bytes, list[int]] = {}
    for c in range(flat.shape[1]):
        patterns.setdefault(valid[:, c].tobytes(), []).append(c)
    for key, cols in patterns.items():
        for start, end in true_runs(valid[:, cols[0]]):
            n = end - start
            if n <= 6:
                continue
            flat[start:end, cols] = sosfiltfilt(sos, flat[start:end, cols], axis=0, padlen=min(padlen, n - 1))
    return flat.reshape(shape)


class OneEuroFilter:
    """Causal 1-euro filter for live use, vectorized over the samples' shape (e.g. (J, 3)).

    Call it once per frame with the new sample (NaN where missing) and, optionally, its timestamp
    in seconds; it returns the filtered sample. A value missing for more than ``max_gap_frames``
    frames restarts from its next measurement; shorter gaps hold the last estimate (output NaN).
    """

    def __init__(self, fps: float, min_cutoff_hz: float = 1.0, beta: float = 0.5, d_cutoff_hz: float = 1.0,
                 max_gap_frames: int = 10):
        self.fps = float(fps)
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff_hz = float(d_cutoff_hz)
        self.max_gap_frames = int(max_gap_frames)
        self.reset()

    def reset(self) -> None:
        self._x = None
        self._dx = None
        self._missing = None
        self._t = None

    @staticmethod
    def _alpha(cutoff: np.ndarray, dt: np.ndarray) -> np.ndarray:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, sample: np.ndarray, timestamp_s: float | None = None) -> np.ndarray:
        sample = np.asarray(sample, dtype=np.float64)
        if self._x is None:
            self._x = np.full(sample.shape, np.nan)
            self._dx = np.zeros(sample.shape)
            self._missing = np.zeros(sample.shape, dtype=np.int64)
        if timestamp_s is None or self._t is None:
            dt = 1.0 / self.fps
        else:
            dt = max(float(timestamp_s) - self._t, 1e-6)
        self._t = timestamp_s
        seen = np.isfinite(sample)
        dt_eff = dt * (self._missing + 1)  # time since the last measurement of each value
        fresh = seen & (np.isnan(self._x) | (self._missing > self.max_gap_frames))
        update = seen & ~fresh
        with np.errstate(invalid="ignore"):
            dx = np.where(update, (sample - self._x) / dt_eff, 0.0)
            a_d = self._alpha(self.d_cutoff_hz, dt_eff)
            dx_hat = np.where(update, a_d * dx + (1 - a_d) * self._dx, 0.0)
            cutoff = self.min_cutoff_hz + self.beta * np.abs(dx_hat)
            a = self._alpha(cutoff, dt_eff)
            x_hat = np.where(update, a * sample + (1 - a) * self._x, sample)
        self._x = np.where(seen, x_hat, self._x)
        self._dx = np.where(seen, dx_hat, self._dx)
        self._missing = np.where(seen, 0, self._missing + 1)
        return np.where(seen, x_hat, np.nan)


def one_euro_filter(x: np.ndarray, fps: float, min_cutoff_hz: float = 1.0, beta: float = 0.5,
                    d_cutoff_hz: float = 1.0, max_gap_frames: int = 10) -> np.ndarray:
    """The causal 1-euro filter run over a recorded (T, ...) sequence (short gaps filled first)."""
    filled = fill_gaps(x, max_gap_frames)
    f = OneEuroFilter(fps, min_cutoff_hz, beta, d_cutoff_hz, max_gap_frames)
    return np.stack([f(sample) for sample in filled]) if len(filled) else filled.copy()


def _kalman_model(model: str, dt: float, q: float):
    if model == "velocity":
        F = np.array([[1.0, dt], [0.0, 1.0]])
        Q = q * q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    else:
        F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
        Q = q * q * np.array([
            [dt**5 / 20, dt**4 / 8, dt**3 / 6],
            [dt**4 / 8, dt**3 / 3, dt**2 / 2],
            [dt**3 / 6, dt**2 / 2, dt],
        ])
    return F, Q


def kalman_smoother(x: np.ndarray, fps: float, model: str = "acceleration", process_noise: float = 20.0,
                    measurement_noise_m: float = 0.01, max_gap_frames: int = 10) -> np.ndarray:
    """Rauch-Tung-Striebel smoothing of (T, ...) samples, every column at once.

    Missing samples are predicted through; gaps longer than ``max_gap_frames`` (and the ends before
    the first / after the last measurement) are NaN in the output.
    """
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    T = shape[0]
    z = x.reshape(T, -1)
    C = z.shape[1]
    if T == 0:
        return x.copy()
    F, Q = _kalman_model(model, 1.0 / fps, process_noise)
    n = F.shape[0]
    r2 = measurement_noise_m**2
    valid = np.isfinite(z)
    first = np.where(valid.any(axis=0), np.argmax(valid, axis=0), 0)
    m = np.zeros((C, n))
    m[:, 0] = np.nan_to_num(z[first, np.arange(C)])
    P = np.broadcast_to(np.diag([r2] + [1e2] * (n - 1)), (C, n, n)).copy()
    m_f = np.zeros((T, C, n))
    P_f = np.zeros((T, C, n, n))
    m_p = np.zeros((T, C, n))
    P_p = np.zeros((T, C, n, n))
    for k in range(T):  # the recursion is sequential in time; vectorized over columns
        if k > 0:
            m = m @ F.T
            P = F @ P @ F.T + Q
        m_p[k], P_p[k] = m, P
        ok = valid[k]
        S = P[:, 0, 0] + r2
        K = P[:, :, 0] / S[:, None]
        innovation = np.where(ok, np.nan_to_num(z[k]) - m[:, 0], 0.0)
        m = m + K * innovation[:, None]
        P = np.where(ok[:, None, None], P - K[:, :, None] * P[:, 0, None, :], P)
        m_f[k], P_f[k] = m, P
    m_s = m_f.copy()
    for k in range(T - 2, -1, -1):
        G = P_f[k] @ F.T @ np.linalg.inv(P_p[k + 1])
        m_s[k] = m_f[k] + np.einsum("cij,cj->ci", G, m_s[k + 1] - m_p[k + 1])
        P_f[k] = P_f[k] + G @ (P_f[k + 1] - P_p[k + 1]) @ np.transpose(G, (0, 2, 1))
    out = m_s[..., 0]
    keep = valid | fillable(valid, max_gap_frames)
    return np.where(keep, out, np.nan).reshape(shape)


def filter_sequence(xyz: np.ndarray, fps: float, cfg: FilterConfig = FilterConfig()) -> np.ndarray:
    """Filter (T, ...) samples (e.g. (T, J, 3) joints) with the filter ``cfg.kind`` and the gap policy."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if cfg.kind == "butterworth":
        return butterworth_filter(xyz, fps, cfg.cutoff_hz, cfg.order, cfg.max_gap_frames)
    if cfg.kind == "one_euro":
        return one_euro_filter(xyz, fps, cfg.min_cutoff_hz, cfg.beta, cfg.d_cutoff_hz, cfg.max_gap_frames)
    if cfg.kind == "kalman":
        return kalman_smoother(xyz, fps, cfg.kalman_model, cfg.process_noise, cfg.measurement_noise_m,
                               cfg.max_gap_frames)
    return fill_gaps(xyz, cfg.max_gap_frames)
