"""Codec round trips with known sub-pixel errors: encode joints, decode, compare."""
import numpy as np
import pytest

from reconstruction.models2d.codecs import ArgmaxOffset, GaussianHeatmap, SimCC


def _joints(rng, B=4, J=17, h=64, w=48):
    # away from the border, where DARK's blur is not symmetric
    xy = np.stack([rng.uniform(5, w - 6, (B, J)), rng.uniform(5, h - 6, (B, J))], axis=-1)
    return np.concatenate([xy, np.ones((B, J, 1))], axis=-1)


@pytest.mark.parametrize("refine,tol", [("quadratic", 1e-6), ("dark", 0.05), ("argmax", 0.71)])
def test_gaussian_round_trip(rng, refine, tol):
    codec = GaussianHeatmap(size=(64, 48), sigma=2.0, refine=refine)
    kp = _joints(rng)
    hm = codec.encode(kp)
    assert hm.shape == (4, 17, 64, 48)
    got = codec.decode(hm)
    err = np.hypot(*(got[..., :2] - kp[..., :2]).transpose(2, 0, 1))
    # a sampled Gaussian has an exactly quadratic log: one Newton step is exact (float32 aside);
    # DARK's blur keeps it Gaussian (wider); argmax is off by up to half a cell per axis
    assert err.max() < max(tol, 1e-4), f"{refine}: max error {err.max():.4f} cells"
    np.testing.assert_allclose(got[..., 2], hm.reshape(4, 17, -1).max(-1), rtol=1e-6)


def test_dark_beats_argmax_on_noisy_heatmaps(rng):
    kp = _joints(rng, B=8)
    hm = GaussianHeatmap(sigma=2.0).encode(kp) + rng.normal(0, 0.01, (8, 17, 64, 48)).astype(np.float32)
    e = {r: np.hypot(*(GaussianHeatmap(sigma=2.0, refine=r).decode(hm)[..., :2] - kp[..., :2]).transpose(2, 0, 1))
         for r in ("argmax", "dark")}
    assert np.median(e["dark"]) < 0.5 * np.median(e["argmax"])
    assert np.median(e["dark"]) < 0.1


def test_argmax_offset_round_trip(rng):
    codec = ArgmaxOffset(size=(48, 48))
    kp = _joints(rng, h=48, w=48)
    hm, off = codec.encode(kp)
    assert off.shape == (4, 34, 48, 48)
    np.testing.assert_allclose(codec.decode(hm, off)[..., :2], kp[..., :2], atol=1e-5)


@pytest.mark.parametrize("k", [1.0, 2.0, 3.0])
def test_simcc_round_trip(rng, k):
    codec = SimCC(size=(64, 48), split_ratio=k, sigma=1.5)
    kp = _joints(rng)
    x, y = codec.encode(kp)
    assert x.shape == (4, 17, int(48 * k)) and y.shape == (4, 17, int(64 * k))
    np.testing.assert_allclose(codec.decode(x, y)[..., :2], kp[..., :2], atol=1e-5)


def test_missing_joints_encode_to_zero_and_edges_are_safe(rng):
    kp = _joints(rng, B=1, J=3)
    kp[0, 1] = np.nan
    kp[0, 2, :2] = [0.2, 63.0]  # at the border: refinement falls back to argmax there
    hm = GaussianHeatmap(sigma=2.0, refine="quadratic").encode(kp)
    assert hm[0, 1].max() == 0
    got = GaussianHeatmap(sigma=2.0, refine="quadratic").decode(hm)
    assert np.isfinite(got).all()
    assert abs(got[0, 2, 0] - 0.2) <= 0.5 and abs(got[0, 2, 1] - 63.0) <= 0.5
