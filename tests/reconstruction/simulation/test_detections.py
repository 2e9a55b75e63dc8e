"""reconstruction/simulation/detections.py: projected truth with visibility and occlusion, simulated detections
(noise, outliers, missing joints)."""
import numpy as np
import pytest

from reconstruction.simulation import procedural_motion, project_truth, simulate_detections
from reconstruction.simulation.rigs import ring_rig
from reconstruction.skeleton import load_skeleton


@pytest.fixture
def scene():
    rig = ring_rig(4)
    xyz = procedural_motion("coco17", 60, rng=np.random.default_rng(0))
    return rig, xyz


def test_project_truth_is_the_projection_with_visibility(scene):
    rig, xyz = scene
    truth = project_truth(xyz, rig)
    assert truth.shape == (60, 4, 17, 3)
    np.testing.assert_allclose(truth[..., :2], np.moveaxis(rig.project(xyz), -2, 1))
    assert (truth[..., 2] == 1).all()  # no skeleton, no random occlusion: all inside the images
    occluded = project_truth(xyz, rig, occlusion_rate=0.3, rng=np.random.default_rng(1))
    assert abs((occluded[..., 2] == 0).mean() - 0.3) < 0.03


def test_outside_the_image_is_not_visible():
    rig = ring_rig(4)
    xyz = np.array([[[0.0, 0.0, 1.0], [0.0, 0.0, 6.0]]])  # the second point is far above every view
    truth = project_truth(xyz, rig)
    assert (truth[0, :, 0, 2] == 1).all() and (truth[0, :, 1, 2] == 0).all()


def test_self_occlusion_hides_what_the_body_covers(scene):
    rig, xyz = scene
    skeleton = load_skeleton("coco17")
    truth = project_truth(xyz, rig, skeleton=skeleton)
    visible = truth[..., 2]
    # some joints are hidden in some views, but every joint is seen by two views almost always
    assert 0.05 < 1 - visible.mean() < 0.5
    assert (visible.sum(axis=1) >= 2).mean() > 0.97
    # the face: the nose is hidden from a camera behind the head, seen from one in front of it
    nose, l_ear, r_ear = (skeleton.index(n) for n in ("nose", "left_ear", "right_ear"))
    head = xyz[:, [l_ear, r_ear]].mean(axis=1)
    facing = xyz[:, nose] - head
    to_cam = rig.centers[None] - xyz[:, None, nose]  # (T, V, 3)
    cos = np.einsum("ti,tvi->tv", facing, to_cam) / (np.linalg.norm(facing, axis=-1)[:, None] * np.linalg.norm(to_cam, axis=-1))
    assert (visible[:, :, nose][cos > 0.5] == 1).all()
    assert (visible[:, :, nose][cos < -0.5] == 0).all()
    # a point straight behind the torso's centre, seen through it, is hidden
    ls, rs, lh, rh = (skeleton.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    centre = xyz[0, [ls, rs, lh, rh]].mean(axis=0)
    away = centre - rig.centers[0]
    away[2] = 0.0
    hidden_point = centre + 0.4 * away / np.linalg.norm(away)
    probe = np.concatenate([xyz[:1], hidden_point[None, None]], axis=1)
    from reconstruction.skeleton import Skeleton

    probe_skeleton = Skeleton("probe", skeleton.joint_names + ("probe",), skeleton.bones)
    assert project_truth(probe, rig, skeleton=probe_skeleton)[0, 0, -1, 2] == 0


def test_simulated_detections_noise_outliers_and_missing(scene):
    rig, xyz = scene
    truth = project_truth(xyz, rig, occlusion_rate=0.2, rng=np.random.default_rng(2))
    det = simulate_detections(truth, noise_px=3.0, outlier_rate=0.1, rng=np.random.default_rng(3),
                              image_sizes=[c.image_size for c in rig])
    visible = truth[..., 2] == 1
    assert np.isnan(det[~visible]).all()  # occluded: missing
    assert np.isfinite(det[visible]).all()
    err = np.linalg.norm(det[..., :2] - truth[..., :2], axis=-1)[visible]
    score = det[..., 2][visible]
    outlier = err > 20
    assert abs(outlier.mean() - 0.1) < 0.03  # about outlier_rate are confident wrong detections
    assert score[outlier].min() >= 0.6  # ... and confident
    good = err[~outlier]
    rms = np.sqrt(np.mean(good**2) / 2)  # per coordinate
    assert 2.5 < rms < 3.6
    assert 0.55 <= score.min() and score.max() <= 1.0
    # less confident detections are noisier
    low, high = score[~outlier] < 0.7, score[~outlier] > 0.9
    assert good[low].mean() > good[high].mean()


def test_occluded_can_be_low_score_instead_of_missing(scene):
    rig, xyz = scene
    truth = project_truth(xyz, rig, occlusion_rate=0.3, rng=np.random.default_rng(4))
    det = simulate_detections(truth, noise_px=2.0, outlier_rate=0.0, miss_occluded=False, rng=np.random.default_rng(5))
    occluded = truth[..., 2] == 0
    assert np.isfinite(det).all()
    assert det[..., 2][occluded].max() <= 0.3 and det[..., 2][~occluded].min() >= 0.55
    err = np.linalg.norm(det[..., :2] - truth[..., :2], axis=-1)
    assert err[occluded].mean() > 2 * err[~occluded].mean()


def test_nan_truth_stays_missing_and_seeded_rng_is_reproducible(scene):
    rig, xyz = scene
    xyz = xyz.copy()
    xyz[5, 3] = np.nan
    truth = project_truth(xyz, rig)
    assert np.isnan(truth[5, :, 3, :2]).all() and (truth[5, :, 3, 2] == 0).all()
    a = simulate_detections(truth, rng=np.random.default_rng(9))
    b = simulate_detections(truth, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[5, :, 3]).all()
