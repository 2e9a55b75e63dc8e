"""Subject bone lengths: robust median from a sequence, from body height, from a subject file."""
import numpy as np
import pytest

from capture.errors import ConfigError
from reconstruction.bone_lengths import (
    BoneLengths,
    bone_lengths_from_height,
    combine,
    estimate_bone_lengths,
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
