"""Filters: designed Butterworth attenuation on a known sinusoid, gap policy, one-euro, Kalman."""
import numpy as np
import pytest

from reconstruction.filters import (
    FilterConfig, OneEuroFilter, butterworth_filter, fill_gaps, filter_sequence, kalman_smoother,
    one_euro_filter,
)


FPS = 100.0


def _amplitude(signal, freq, fps):
    """Amplitude of the sinusoid at ``freq`` in ``signal`` (least squares on sin and cos)."""
    t = np.arange(len(signal)) / fps
    A = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(A, signal, rcond=None)
    return np.hypot(coef[0], coef[1])


@pytest.mark.parametrize("freq", [4.0, 8.0, 12.0])
def test_butterworth_attenuation_matches_design_within_1db(freq, rng):
    from scipy.signal import butter, sosfreqz

    cutoff, order = 6.0, 4
    t = np.arange(2000) / FPS
    x = np.sin(2 * np.pi * freq * t) + rng.normal(scale=0.05, size=t.size)
    y = butterworth_filter(x[:, None], FPS, cutoff, order)[:, 0]
    core = slice(200, -200)  # away from the edges' transients
    measured_db = 20 * np.log10(_amplitude(y[core], freq, FPS) / _amplitude(x[core], freq, FPS))
    sos = butter(order, cutoff, fs=FPS, output="sos")
    _, h = sosfreqz(sos, worN=[freq], fs=FPS)
    designed_db = 2 * 20 * np.log10(np.abs(h[0]))  # forward-backward: squared magnitude
    assert abs(measured_db - designed_db) < 1.0, (measured_db, designed_db)


def test_butterworth_removes_noise_and_keeps_slow_signal(rng):
    t = np.arange(1000) / FPS
    clean = np.sin(2 * np.pi * 1.0 * t)
    y = butterworth_filter((clean + rng.normal(scale=0.05, size=t.size))[:, None], FPS, 6.0)[:, 0]
    assert np.std(y[50:-50] - clean[50:-50]) < 0.02


def test_gap_policy_short_gaps_filled_long_gaps_stay_nan():
    t = np.arange(200) / FPS
    x = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1)
    holed = x.copy()
    holed[50:55] = np.nan  # 5 frames: filled
    holed[100:130] = np.nan  # 30 frames: stays NaN
    holed[:3, 0] = np.nan  # the start: never extrapolated
    for cfg in (FilterConfig(kind="none", max_gap_frames=10), FilterConfig(kind="butterworth", max_gap_frames=10),
                FilterConfig(kind="kalman", max_gap_frames=10), FilterConfig(kind="one_euro", max_gap_frames=10)):
        y = filter_sequence(holed, FPS, cfg)
        assert np.all(np.isfinite(y[50:55])), cfg.kind
        assert np.all(np.isnan(y[100:130])), cfg.kind
        assert np.all(np.isnan(y[:3, 0])) and np.all(np.isfinite(y[:3, 1])), cfg.kind
        reference = filter_sequence(x, FPS, cfg)  # same filter without the holes
        assert np.max(np.abs(y[50:55] - reference[50:55])) < 0.02, cfg.kind


def test_fill_gaps_is_linear_interpolation():
    x = np.array([0.0, np.nan, np.nan, 3.0, np.nan])
    np.testing.assert_allclose(fill_gaps(x, 2)[:4], [0, 1, 2, 3])
    assert np.isnan(fill_gaps(x, 2)[4])
    assert np.isnan(fill_gaps(x, 1)[1])


def test_kalman_smoother_reduces_noise_without_lag(rng):
    t = np.arange(600) / 30.0
    clean = 0.3 * np.sin(2 * np.pi * 0.7 * t)
    noisy = clean + rng.normal(scale=0.01, size=t.size)
    for model, q in (("velocity", 1.0), ("acceleration", 5.0)):  # m/s^2 resp. m/s^3
        y = kalman_smoother(noisy[:, None], 30.0, model=model, process_noise=q, measurement_noise_m=0.01)[:, 0]
        assert np.std(y - clean) < 0.6 * np.std(noisy - clean), model
        assert abs(np.mean(y - clean)) < 1e-3


def test_one_euro_is_causal_smooths_when_still_and_follows_fast_moves(rng):
    still = 0.5 + rng.normal(scale=0.005, size=300)
    y = one_euro_filter(still[:, None], 30.0, min_cutoff_hz=1.0, beta=0.5)[:, 0]
    assert np.std(y[30:] - 0.5) < 0.5 * np.std(still[30:] - 0.5)
    # a fast ramp (2 m/s): the speed term raises the cutoff, so the lag is much smaller than beta=0's
    ramp = np.concatenate([np.zeros(30), np.arange(60) * 2.0 / 30.0])
    lag_adaptive = np.abs(one_euro_filter(ramp[:, None], 30.0, beta=2.0)[-1, 0] - ramp[-1])
    lag_fixed = np.abs(one_euro_filter(ramp[:, None], 30.0, beta=0.0)[-1, 0] - ramp[-1])
    assert lag_adaptive < 0.3 * lag_fixed
    # causal: the output up to frame k does not depend on later frames
    np.testing.assert_allclose(one_euro_filter(still[:100, None], 30.0), one_euro_filter(still[:, None], 30.0)[:100])


def test_one_euro_live_state_and_shape():
    f = OneEuroFilter(30.0)
    out = f(np.zeros((17, 3)))
    assert out.shape == (17, 3)
    sample = np.ones((17, 3))
    sample[0] = np.nan
    out = f(sample)
    assert np.all(np.isnan(out[0])) and np.all((out[1:] > 0) & (out[1:] < 1))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        FilterConfig(kind="median")
    with pytest.raises(ValueError):
        butterworth_filter(np.zeros((100, 1)), 30.0, cutoff_hz=0.0)


def test_cutoff_above_nyquist_leaves_samples_unfiltered(rng):
    x = rng.normal(size=(50, 2))
    np.testing.assert_array_equal(butterworth_filter(x, 6.0, cutoff_hz=6.0), x)
