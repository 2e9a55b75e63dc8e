"""Left/right swaps: an injected swap in one view is found and undone; 3D label flips are undone."""
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
