"""reconstruction/bone_lengths.py: subject bone lengths: robust median from a sequence, from body height,
from a subject file; removing the lengthening by noise (``covariance``), and mirror bones for
unmeasured ones."""
import numpy as np
import pytest

from capture.errors import ConfigError
from reconstruction.bone_lengths import (
    BoneLengths, bone_lengths_from_height, combine, complete_bone_lengths, estimate_bone_lengths,
    load_bone_lengths,
)
from reconstruction.simulation import procedural_motion
from reconstruction.skeleton import load_skeleton


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


def test_median_is_robust_to_noise_and_gross_errors(skeleton, rng):
    truth = procedural_motion(skeleton, 300, 30.0, rng)
    true_lengths = skeleton.bone_lengths(truth[0])
    noisy = truth + rng.normal(scale=0.005, size=truth.shape)
    gross = rng.random(truth.shape[:2]) < 0.1  # 10 % of joints thrown 0.5 m away
    noisy[gross] += 0.5
    est = estimate_bone_lengths(noisy, skeleton)
    rigid = skeleton.rigid_mask
    np.testing.assert_allclose(est.lengths_m[rigid], true_lengths[rigid], atol=0.004)
    # MAD spread ~ the per-frame spread of a bone length with 5 mm joint noise (~7 mm), not the gross errors
    assert np.all(est.spread_m[rigid] < 0.012)
    assert np.all(est.sigma_m[rigid] < 0.001)
    assert np.all(est.num_frames > 200)


def test_gating_by_views_and_reprojection(skeleton, rng):
    truth = procedural_motion(skeleton, 100, 30.0, rng)
    bad = truth.copy()
    bad[:60] *= 1.2  # badly triangulated frames: everything 20 % too large
    n_views = np.full(truth.shape[:2], 4)
    n_views[:60] = 2
    rigid = skeleton.rigid_mask
    est = estimate_bone_lengths(bad, skeleton, n_views=n_views, min_views=3)
    np.testing.assert_allclose(est.lengths_m[rigid], skeleton.bone_lengths(truth[0])[rigid], atol=1e-9)
    err = np.zeros(truth.shape[:2])
    err[:60] = 40.0
    est = estimate_bone_lengths(bad, skeleton, reproj_error_px=err, max_reproj_px=15)
    np.testing.assert_allclose(est.lengths_m[rigid], skeleton.bone_lengths(truth[0])[rigid], atol=1e-9)


def test_unmeasured_bone_is_nan_with_infinite_sigma(skeleton):
    xyz = np.zeros((20, skeleton.num_joints, 3))
    xyz[:, skeleton.index("left_wrist")] = np.nan
    est = estimate_bone_lengths(xyz, skeleton)
    i = skeleton.bones.index(("left_elbow", "left_wrist"))
    assert np.isnan(est.lengths_m[i]) and np.isinf(est.sigma_m[i]) and est.num_frames[i] == 0


def test_from_height_matches_anthropometry(skeleton):
    est = bone_lengths_from_height(1.80, skeleton)
    i = skeleton.bones.index(("left_shoulder", "left_elbow"))
    assert est.lengths_m[i] == pytest.approx(0.186 * 1.80)
    j = skeleton.bones.index(("right_knee", "right_ankle"))
    assert est.lengths_m[j] == pytest.approx(0.246 * 1.80)
    assert np.all(np.isfinite(est.lengths_m))
    # the procedural body uses the same segment ratios: within the stated 6 % for the limbs
    truth = skeleton.bone_lengths(procedural_motion(skeleton, 1, 30.0, height_m=1.80)[0])
    for k in (i, j):
        assert abs(est.lengths_m[k] - truth[k]) < 2 * est.sigma_m[k]
    with pytest.raises(ValueError):
        bone_lengths_from_height(180.0, skeleton)  # centimetres by mistake


def test_subject_file(tmp_path, skeleton):
    path = tmp_path / "subject.yaml"
    path.write_text("height_m: 1.70\nsigma_m: 0.003\nbone_lengths_m:\n  - [left_elbow, left_shoulder, 0.30]\n")
    est = load_bone_lengths(path, skeleton)
    i = skeleton.bones.index(("left_shoulder", "left_elbow"))
    assert est.lengths_m[i] == 0.30 and est.sigma_m[i] == 0.003
    k = skeleton.bones.index(("left_hip", "left_knee"))
    assert est.lengths_m[k] == pytest.approx(0.245 * 1.70)
    assert est.source == "height+file"
    assert set(est.as_dict()) == {f"{a}-{b}" for a, b in skeleton.bones}


@pytest.mark.parametrize("text, match", [
    ("heigth_m: 1.7\n", "unknown key 'heigth_m'"),
    ("bone_lengths_m:\n  - [left_elbow, nose, 0.3]\n", "not a bone"),
    ("bone_lengths_m:\n  - [left_elbow, left_wrist]\n", r"bone_lengths_m\[0\]"),
    ("height_m: tall\n", "height_m"),
])
def test_subject_file_errors_name_the_key(tmp_path, skeleton, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_bone_lengths(path, skeleton)


def test_combine_is_inverse_variance(skeleton):
    n = len(skeleton.bones)
    a = BoneLengths(skeleton.bones, np.full(n, 0.30), np.full(n, 0.01), np.full(n, np.nan), np.zeros(n, int), "a")
    b = BoneLengths(skeleton.bones, np.full(n, 0.33), np.full(n, 0.02), np.full(n, np.nan), np.zeros(n, int), "b")
    c = combine(a, b)
    np.testing.assert_allclose(c.lengths_m, (0.30 / 1e-4 + 0.33 / 4e-4) / (1 / 1e-4 + 1 / 4e-4))
    np.testing.assert_allclose(c.sigma_m, 1 / np.sqrt(1 / 1e-4 + 1 / 4e-4))


L = 0.05  # a face bone: left_eye - left_ear


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
