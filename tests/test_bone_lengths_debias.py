"""Bone lengths: removing the lengthening by noise (``covariance``), and mirror bones for unmeasured ones."""
import numpy as np
import pytest

from reconstruction.bone_lengths import BoneLengths, complete_bone_lengths, estimate_bone_lengths
from reconstruction.skeleton import load_skeleton

L = 0.05  # a face bone: left_eye - left_ear


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


def _bone(skeleton, a, b):
    return [k for k, bone in enumerate(skeleton.bones) if set(bone) == {a, b}][0]


def _one_bone(skeleton, rng, T=500, noise_m=0.0):
    """(T, J, 3) with only left_eye and left_ear, L apart in random directions around the room, plus
    isotropic noise of ``noise_m`` per axis on each end; the other joints NaN."""
    xyz = np.full((T, skeleton.num_joints, 3), np.nan)
    a, b = skeleton.index("left_eye"), skeleton.index("left_ear")
    xyz[:, a] = rng.uniform(-0.5, 0.5, (T, 3)) + [0.0, 0.0, 1.5]
    direction = rng.normal(size=(T, 3))
    xyz[:, b] = xyz[:, a] + L * direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    return xyz + rng.normal(scale=noise_m, size=xyz.shape) if noise_m else xyz


def _covariance(skeleton, T, var):
    return np.broadcast_to(var * np.eye(3), (T, skeleton.num_joints, 3, 3))


def test_covariance_removes_the_lengthening_by_noise(skeleton):
    # 1 cm per axis on each end: |d|^2 has L^2 + 6e-4 on average. The median of the raw lengths is
    # 3.9 mm long (population value), the corrected one about 1.5 mm short (the mean's excess comes off
    # a median of squares), well within 2.5 mm.
    rng = np.random.default_rng(0)
    xyz = _one_bone(skeleton, rng, noise_m=0.01)
    k = _bone(skeleton, "left_eye", "left_ear")
    raw = estimate_bone_lengths(xyz, skeleton).lengths_m[k]
    fixed = estimate_bone_lengths(xyz, skeleton, covariance=_covariance(skeleton, len(xyz), 1e-4)).lengths_m[k]
    assert raw - L > 0.003, raw
    assert abs(fixed - L) < 0.0025, fixed
    assert abs(fixed - L) < 0.6 * (raw - L)


def test_covariance_correction_is_capped_by_the_measured_scatter(skeleton):
    k = _bone(skeleton, "left_eye", "left_ear")
    clean = _one_bone(skeleton, np.random.default_rng(1))
    cov = _covariance(skeleton, len(clean), 1e-4)  # says 1 cm, the data have none
    plain = estimate_bone_lengths(clean, skeleton)
    assert plain.lengths_m[k] == pytest.approx(L, abs=1e-12)
    fixed = estimate_bone_lengths(clean, skeleton, covariance=cov)
    np.testing.assert_allclose(fixed.lengths_m, plain.lengths_m, atol=1e-9, equal_nan=True)
    # 3 mm of noise and a covariance that claims 1 cm: uncapped, sqrt(L^2 + 5.4e-5 - 6e-4) would be
    # 44 mm; the cap (3 scatter^2 ~ 5e-5) keeps it near L.
    noisy = _one_bone(skeleton, np.random.default_rng(2), noise_m=0.003)
    assert estimate_bone_lengths(noisy, skeleton, covariance=cov).lengths_m[k] == pytest.approx(L, abs=0.0015)


def test_frames_left_out_do_not_widen_the_cap(skeleton):
    # Clean frames seen by 3 views, and wild ones (5 cm noise) seen by 1 view that the view gate
    # leaves out: their scatter must not lift the cap, so a covariance that claims 1 cm still
    # leaves the clean length as it is.
    rng = np.random.default_rng(3)
    xyz = _one_bone(skeleton, rng)
    xyz[:250] += rng.normal(scale=0.05, size=xyz[:250].shape)
    k = _bone(skeleton, "left_eye", "left_ear")
    n_views = np.full(xyz.shape[:2], 3)
    n_views[:250] = 1
    est = estimate_bone_lengths(xyz, skeleton, n_views=n_views, covariance=_covariance(skeleton, len(xyz), 1e-4))
    assert est.num_frames[k] == 250
    assert est.lengths_m[k] == pytest.approx(L, abs=1e-9)


def _lengths(skeleton):
    n = len(skeleton.bones)
    lengths = 0.1 + 0.01 * np.arange(n)
    sigma = np.full(n, 0.002)
    return BoneLengths(skeleton.bones, lengths, sigma, np.full(n, 0.004), np.full(n, 100), source="sequence")


def test_complete_bone_lengths_takes_the_mirror_bone(skeleton):
    full = _lengths(skeleton)
    r_arm = _bone(skeleton, "right_shoulder", "right_elbow")
    l_arm = _bone(skeleton, "left_shoulder", "left_elbow")
    hips = _bone(skeleton, "left_hip", "right_hip")  # its own mirror: nothing to take
    l_ear = _bone(skeleton, "nose", "left_ear")
    r_ear = _bone(skeleton, "nose", "right_ear")  # both sides missing: nothing to take
    lengths, sigma = full.lengths_m.copy(), full.sigma_m.copy()
    for k in (r_arm, hips, l_ear, r_ear):
        lengths[k], sigma[k] = np.nan, np.inf
    partial = BoneLengths(skeleton.bones, lengths, sigma, full.spread_m, full.num_frames, "sequence")
    done = complete_bone_lengths(partial, skeleton)
    assert done.lengths_m[r_arm] == full.lengths_m[l_arm]
    assert done.sigma_m[r_arm] == pytest.approx(np.hypot(0.002, 0.02 * full.lengths_m[l_arm]), rel=1e-12)
    for k in (hips, l_ear, r_ear):
        assert np.isnan(done.lengths_m[k]) and done.sigma_m[k] == np.inf
    others = np.setdiff1d(np.arange(len(skeleton.bones)), [r_arm, hips, l_ear, r_ear])
    np.testing.assert_array_equal(done.lengths_m[others], full.lengths_m[others])
    np.testing.assert_array_equal(done.sigma_m[others], full.sigma_m[others])
    assert done.source.endswith("+mirror") and done.source == "sequence+mirror"
    assert done.bones == partial.bones
    np.testing.assert_array_equal(done.num_frames, partial.num_frames)
    # the input is not modified
    assert np.isnan(partial.lengths_m[r_arm])


def test_complete_bone_lengths_changes_nothing_when_nothing_is_missing_or_mirrorable(skeleton):
    full = _lengths(skeleton)
    assert complete_bone_lengths(full, skeleton) is full
    hips = _bone(skeleton, "left_hip", "right_hip")
    lengths = full.lengths_m.copy()
    lengths[hips] = np.nan
    only_self_mirrored = BoneLengths(skeleton.bones, lengths, full.sigma_m, full.spread_m, full.num_frames, "sequence")
    same = complete_bone_lengths(only_self_mirrored, skeleton)
    assert same.source == "sequence" and np.isnan(same.lengths_m[hips])
