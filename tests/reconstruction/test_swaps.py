"""reconstruction/swaps.py: left/right swaps: an injected swap in one view is found and undone; 3D label
flips are undone, also with sparse joints (two cameras triangulate a few joints per frame)."""
import numpy as np
import pytest

from reconstruction.simulation import procedural_motion, project_truth, simulate_detections
from reconstruction.skeleton import load_skeleton
from reconstruction.swaps import SwapConfig, correct_swaps_2d, correct_swaps_3d, flip_views
from reconstruction.triangulation import triangulate


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


@pytest.mark.parametrize("outliers, occlusion", [(0.0, 0.0), (0.1, 0.1)])
def test_swap_in_one_view_for_10_frames_is_corrected(rig4, skeleton, outliers, occlusion):
    rng = np.random.default_rng(11)
    T = 50
    truth = procedural_motion(skeleton, T, 30.0, rng)
    kp = simulate_detections(project_truth(truth, rig4, occlusion, rng, skeleton if occlusion else None),
                             noise_px=3.0, outlier_rate=outliers, rng=rng)
    injected = np.zeros((T, len(rig4)), dtype=bool)
    injected[20:30, 1] = True
    swapped_kp = flip_views(kp, injected, skeleton)
    fixed, found = correct_swaps_2d(swapped_kp, rig4, skeleton)
    assert not np.any(found & ~injected)  # no false alarm
    # all ten found; with occlusion a frame may lack the 4 left/right joints needed to decide
    assert np.sum(found & injected) >= (10 if occlusion == 0 else 9)
    err = lambda k: np.nanmean(np.linalg.norm(triangulate(k, rig4).xyz - truth, axis=-1))
    clean, corrected = err(kp), err(fixed)
    assert corrected <= 1.10 * clean
    assert not np.shares_memory(fixed, swapped_kp)


def test_no_swap_means_no_change(rig4, skeleton):
    rng = np.random.default_rng(3)
    truth = procedural_motion(skeleton, 30, 30.0, rng)
    kp = simulate_detections(project_truth(truth, rig4, 0.0, rng), noise_px=3.0, outlier_rate=0.0, rng=rng)
    fixed, found = correct_swaps_2d(kp, rig4, skeleton)
    assert not found.any()
    np.testing.assert_array_equal(np.isnan(fixed), np.isnan(kp))
    np.testing.assert_allclose(fixed[np.isfinite(fixed)], kp[np.isfinite(kp)])


def test_flip_views_twice_is_identity(skeleton, rng):
    kp = rng.normal(size=(4, 3, skeleton.num_joints, 3))
    mask = rng.random((4, 3)) < 0.5
    np.testing.assert_array_equal(flip_views(flip_views(kp, mask, skeleton), mask, skeleton), kp)


def test_3d_label_flips_are_undone(skeleton):
    truth = procedural_motion(skeleton, 60, 30.0, np.random.default_rng(2))
    flipped = truth.copy()
    flipped[10:17] = flipped[10:17][:, skeleton.flip_permutation]
    flipped[40] = flipped[40][skeleton.flip_permutation]
    fixed, frames = correct_swaps_3d(flipped, skeleton)
    assert set(np.flatnonzero(frames)) == set(range(10, 17)) | {40}
    np.testing.assert_allclose(fixed, truth)


def test_bad_shape_raises(rig4, skeleton):
    with pytest.raises(ValueError, match="keypoints2d"):
        correct_swaps_2d(np.zeros((5, 2, skeleton.num_joints, 3)), rig4, skeleton)
    with pytest.raises(ValueError):
        SwapConfig(cap_px=0)


FPS = 30.0


def _sparse(xyz, keep, rng):
    """``xyz`` with each (frame, joint) kept with probability ``keep``, NaN otherwise."""
    out = xyz.copy()
    out[rng.random(xyz.shape[:2]) >= keep] = np.nan
    return out


def _walk(skeleton, seed, noise_m, keep, T=150):
    rng = np.random.default_rng(seed)
    truth = procedural_motion(skeleton, T, FPS, rng)
    return truth, _sparse(truth + rng.normal(scale=noise_m, size=truth.shape), keep, rng)


@pytest.mark.parametrize("seed, noise_m", [(0, 0.0), (1, 0.0), (2, 0.0), (0, 0.03), (2, 0.03), (3, 0.03),
                                           (6, 0.03)])
def test_sparse_joints_flip_no_frame(skeleton, seed, noise_m):
    # 30 % of the joints per frame, at random, with 0 or 3 cm of noise per axis (a two-camera
    # triangulation): a mean over different joints in consecutive frames, or a chain through frames
    # that decide nothing, must not flip anything. (The comparison over whatever joints each frame
    # had flipped 4 to 57 frames of each of the noisy cases.)
    _, sparse = _walk(skeleton, seed, noise_m, 0.3)
    fixed, flipped = correct_swaps_3d(sparse, skeleton)
    assert not flipped.any(), np.flatnonzero(flipped)
    np.testing.assert_array_equal(fixed, sparse)


def test_sparse_joints_flip_no_frame_across_a_long_gap(skeleton):
    # frames 8 and 24 (0.53 s, half a stride apart) are the nearest that can decide; they share only
    # the knees and ankles, and the legs have exchanged places: too far apart to compare
    # (SwapConfig.max_gap_frames), the parity carries over.
    _, sparse = _walk(skeleton, 4, 0.0, 0.3)
    _, flipped = correct_swaps_3d(sparse, skeleton)
    assert not flipped.any(), np.flatnonzero(flipped)


def test_sparse_joints_with_enough_pairs_flip_no_frame(skeleton):
    # 60 %: most frames have >= 4 left/right joints with their mirrors, over differing joints.
    rng = np.random.default_rng(4)
    truth = procedural_motion(skeleton, 150, FPS, rng)
    sparse = _sparse(truth, 0.6, rng)
    _, flipped = correct_swaps_3d(sparse, skeleton)
    assert not flipped.any(), np.flatnonzero(flipped)


def test_frames_swapped_from_40_on_are_found_exactly(skeleton):
    # 70 frames, the last 30 (a minority) with every left/right label swapped
    truth = procedural_motion(skeleton, 70, FPS, np.random.default_rng(5))
    swapped = truth.copy()
    swapped[40:] = truth[40:][:, skeleton.flip_permutation]
    fixed, flipped = correct_swaps_3d(swapped, skeleton)
    np.testing.assert_array_equal(np.flatnonzero(flipped), np.arange(40, 70))
    np.testing.assert_allclose(fixed, truth)


def test_frames_swapped_with_gaps_of_undecidable_frames(skeleton):
    # Frames 20-29 have too few left/right pairs to decide (only the left side is found): they take
    # the parity of the last frame that could decide, and a swap that starts inside that gap is still
    # found when the data return.
    truth = procedural_motion(skeleton, 80, FPS, np.random.default_rng(6))
    perm = skeleton.flip_permutation
    swapped = truth.copy()
    swapped[25:50] = truth[25:50][:, perm]
    left = np.array([n.startswith("left_") for n in skeleton.joint_names])
    swapped[20:30][:, ~left] = np.nan
    fixed, flipped = correct_swaps_3d(swapped, skeleton, SwapConfig())
    np.testing.assert_array_equal(np.flatnonzero(flipped[30:]) + 30, np.arange(30, 50))
    assert not flipped[:20].any()
    np.testing.assert_allclose(fixed[30:], truth[30:])
