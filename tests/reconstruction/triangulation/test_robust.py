"""reconstruction/triangulation/robust.py: triangulate: exact without noise, outliers rejected and reported,
many cameras, NaN where it must, covariance, chunks, the Pose2Sim demo."""
import numpy as np
import pytest

from calibration.camera import Rig
from reconstruction.simulation.rigs import ring_rig
from reconstruction.triangulation import Triangulation3D, TriangulationConfig, triangulate
from tests.support import noiseless_keypoints as _truth


@pytest.mark.parametrize("method", ["robust", "dlt"])
@pytest.mark.parametrize("refine", [False, True])
def test_noiseless_with_distortion_is_exact(rig4, method, refine):
    xyz, kp = _truth(rig4)
    result = triangulate(kp, rig4, TriangulationConfig(method=method, refine=refine))
    assert isinstance(result, Triangulation3D)
    assert result.xyz.shape == xyz.shape
    assert np.abs(result.xyz - xyz).max() < 1e-6
    assert result.completeness == 1.0 and result.num_missing == 0
    assert (result.n_views == 4).all() and result.used.all()
    assert result.residual_px.shape == kp.shape[:3] and np.nanmax(result.residual_px) < 1e-4
    assert np.nanmax(result.reproj_error_px) < 1e-4


def test_gross_outliers_are_rejected_and_reported(rig4, rng):
    xyz, kp = _truth(rig4, frames=30)
    T, V, J, _ = kp.shape
    bad_view = rng.integers(0, V, size=(T, J))  # one confident wrong detection per point
    noisy = kp.copy()
    t_idx, j_idx = np.meshgrid(np.arange(T), np.arange(J), indexing="ij")
    shift = rng.uniform(60, 200, size=(T, J, 2)) * rng.choice([-1, 1], size=(T, J, 2))
    noisy[t_idx, bad_view, j_idx, :2] += shift
    noisy[t_idx, bad_view, j_idx, 2] = 1.0
    robust = triangulate(noisy, rig4)
    assert np.abs(robust.xyz - xyz).max() < 1e-6  # the three clean views are exact
    expected_used = np.ones((T, V, J), dtype=bool)
    expected_used[t_idx, bad_view, j_idx] = False
    np.testing.assert_array_equal(robust.used, expected_used)
    assert (robust.n_views == 3).all()
    # the rejected view's residual is reported, large: about the shift
    np.testing.assert_allclose(robust.residual_px[t_idx, bad_view, j_idx], np.linalg.norm(shift, axis=-1), rtol=0.02)
    # plain DLT is pulled away by the same outliers
    dlt = triangulate(noisy, rig4, TriangulationConfig(method="dlt"))
    assert np.nanmean(np.linalg.norm(dlt.xyz - xyz, axis=-1)) > 0.05


def test_many_cameras_with_noise_and_outliers():
    rig = ring_rig(16)
    xyz, kp = _truth(rig, frames=10, seed=3)
    rng = np.random.default_rng(7)
    noisy = kp.copy()
    noisy[..., :2] += rng.normal(scale=1.0, size=kp[..., :2].shape)
    outlier = rng.random(kp.shape[:3]) < 0.3
    noisy[..., :2][outlier] = rng.uniform([0, 0], [640, 480], size=(outlier.sum(), 2))
    result = triangulate(noisy, rig)
    error = np.linalg.norm(result.xyz - xyz, axis=-1)
    assert result.completeness == 1.0
    assert np.median(error) < 0.006 and error.max() < 0.03
    assert not (result.used & outlier).any() or (result.used & outlier).mean() < 0.002


def test_two_inconsistent_views_give_nan_and_are_counted(rig4):
    xyz, kp = _truth(rig4, frames=5)
    kp[:, 2:] = np.nan  # only cam0 and cam1 see anything
    kp[0, 1, 0, :2] += 150.0  # one of the two views of (frame 0, joint 0) is wrong: no consensus
    result = triangulate(kp, rig4)
    assert np.isnan(result.xyz[0, 0]).all() and result.n_views[0, 0] == 0
    assert result.num_missing == 1
    finite = np.isfinite(result.xyz[..., 0])
    assert np.abs(result.xyz[finite] - xyz[finite]).max() < 1e-6
    assert np.isnan(result.residual_px[:, 2:]).all()  # no detection -> NaN residual


def test_scores_below_min_score_are_ignored_but_get_a_residual(rig4):
    xyz, kp = _truth(rig4, frames=3)
    kp[:, 3, :, :2] += 40.0
    kp[:, 3, :, 2] = 0.01  # far off, and scored as such
    result = triangulate(kp, rig4, TriangulationConfig(min_score=0.05))
    assert np.abs(result.xyz - xyz).max() < 1e-6
    assert not result.used[:, 3].any()
    np.testing.assert_allclose(result.residual_px[:, 3], np.hypot(40.0, 40.0), rtol=0.02)


def test_covariance_matches_the_scatter_of_noisy_solutions(rig4):
    xyz, kp = _truth(rig4, frames=1)
    rng = np.random.default_rng(11)
    trials = np.repeat(kp, 400, axis=0)
    sigma = 2.0
    trials[..., :2] += rng.normal(scale=sigma, size=trials[..., :2].shape)
    cfg = TriangulationConfig(pixel_sigma_px=sigma, reproj_threshold_px=50.0)
    result = triangulate(trials, rig4, cfg)
    err = result.xyz - xyz  # (400, J, 3)
    empirical = np.mean(np.sum(err**2, axis=-1), axis=0)  # (J,)
    predicted = np.trace(result.covariance[0], axis1=-2, axis2=-1)
    np.testing.assert_allclose(predicted, empirical, rtol=0.25)
    np.testing.assert_allclose(result.uncertainty_m[0], np.sqrt(predicted))
    assert np.allclose(result.covariance, np.swapaxes(result.covariance, -1, -2))


def test_all_nan_input_gives_nan_output_without_error(rig4):
    kp = np.full((4, 4, 17, 3), np.nan)
    result = triangulate(kp, rig4)
    assert np.isnan(result.xyz).all() and result.num_missing == 4 * 17 and result.completeness == 0.0
    assert (result.n_views == 0).all() and not result.used.any()
    assert np.isnan(result.residual_px).all() and np.isnan(result.reproj_error_px).all()
    assert np.isnan(result.covariance).all()
    empty = triangulate(np.zeros((0, 4, 17, 3)), rig4)
    assert empty.xyz.shape == (0, 17, 3)


def test_one_camera_rig_gives_nan(rig4):
    """Decision: a single camera is not an error of the library (per-point failure: NaN, counted);
    the CLI refuses such a rig with a message (tested in test_cli_*)."""
    one = Rig((rig4[0],))
    _, kp = _truth(rig4, frames=2)
    for method in ("robust", "dlt"):
        result = triangulate(kp[:, :1], one, TriangulationConfig(method=method))
        assert np.isnan(result.xyz).all() and result.completeness == 0.0


def test_view_count_mismatch_raises(rig4):
    with pytest.raises(ValueError, match="3 views but the rig has 4 cameras"):
        triangulate(np.zeros((2, 3, 17, 3)), rig4)
    with pytest.raises(ValueError, match=r"\(T, V, J, 3\)"):
        triangulate(np.zeros((2, 4, 17)), rig4)


def test_min_views_three_drops_two_view_points(rig4):
    xyz, kp = _truth(rig4, frames=4)
    kp[:, 2:, :5] = np.nan  # joints 0-4 seen by two views only
    result = triangulate(kp, rig4, TriangulationConfig(min_views=3))
    assert np.isnan(result.xyz[:, :5]).all() and np.isfinite(result.xyz[:, 5:]).all()


def test_long_recordings_are_solved_in_chunks_with_the_same_result(rig4, monkeypatch):
    import reconstruction.triangulation.robust as module

    xyz, kp = _truth(rig4, frames=30)
    kp[::3, 1, :, :2] += 90.0
    whole = triangulate(kp, rig4)
    monkeypatch.setattr(module, "_CHUNK_DETECTIONS", 4 * 17 * 7)  # 7 frames per chunk
    chunked = triangulate(kp, rig4)
    for name in ("xyz", "reproj_error_px", "n_views", "used", "residual_px", "covariance"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))


def test_pose2sim_demo_reprojection_beats_pose2sim(shared_dir):
    """Median reprojection error over every view scored >= 0.3 (used or not): Pose2Sim's own 3D
    gives 10.7 px on the same data; the 3D stays close to Pose2Sim's."""
    from calibration.rig_io import load_rig
    from reconstruction.formats.keypoints2d import read_keypoints2d
    from reconstruction.formats.points3d import read_points3d

    session = shared_dir / "data/pose2sim_demo/S00_Demo_Session"
    trial = session / "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    rig = load_rig(session / "S00_Calibration/Calib.qca.txt")
    kp = read_keypoints2d(trial / "pose-associated", skeleton="body25b", cameras=rig.names, fps=60.0)
    result = triangulate(kp.keypoints, rig)
    confident = kp.keypoints[..., 2] >= 0.3
    median = np.nanmedian(result.residual_px[confident])
    assert median <= 10.7
    assert result.completeness > 0.99
    theirs = read_points3d(trial / "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc")
    index = [kp.joint_names.index(n) for n in theirs.joint_names]
    distance = np.linalg.norm(result.xyz[: theirs.num_frames, index] - theirs.xyz, axis=-1)
    assert np.nanmedian(distance) < 0.04
