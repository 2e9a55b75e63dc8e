import json

import numpy as np
import pytest

from calibration.camera import Rig
from reconstruction.simulation.rigs import ring_rig
from reconstruction.simulation import procedural_motion
from reconstruction.triangulation import Triangulation3D, TriangulationConfig, triangulate, triangulation_summary


def _truth(rig, frames=20, skeleton="coco17", seed=0):
    xyz = procedural_motion(skeleton, frames, rng=np.random.default_rng(seed))
    uv = np.moveaxis(rig.project(xyz), -2, 1)  # (T, V, J, 2)
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)
    return xyz, kp


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


def test_config_from_mapping_and_validation():
    from capture.config import section_from_mapping
    from capture.errors import ConfigError

    cfg = section_from_mapping(TriangulationConfig, {"method": "dlt", "min_views": 3, "reproj_threshold_px": "2e1"})
    assert cfg.method == "dlt" and cfg.min_views == 3 and cfg.reproj_threshold_px == 20.0
    with pytest.raises(ConfigError, match="unknown key 'threshold'"):
        section_from_mapping(TriangulationConfig, {"threshold": 3})
    with pytest.raises(ValueError, match="min_views must be >= 2"):
        TriangulationConfig(min_views=1)


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


def test_summary_reports_cameras_joints_and_exclusions(rig4):
    xyz, kp = _truth(rig4, frames=6)
    kp[:, 1, :, :2] += 100.0  # camera 1 always wrong
    result = triangulate(kp, rig4)
    summary = triangulation_summary(result, rig4.names, [f"j{j}" for j in range(kp.shape[2])])
    json.dumps(summary)  # JSON-ready
    assert summary["completeness"] == 1.0
    assert summary["per_camera"]["cam1"]["exclusion_rate"] == 1.0
    assert summary["per_camera"]["cam0"]["exclusion_rate"] == 0.0
    assert summary["per_camera"]["cam0"]["median_px"] < 1e-3
    assert set(summary["per_joint"]) == {f"j{j}" for j in range(kp.shape[2])}


# --- the `mocap triangulate` command ------------------------------------------------------------

def _write_inputs(tmp_path, rig, kp, cameras=None, joint_names=None):
    from calibration.rig_io import save_rig
    from reconstruction.formats.keypoints2d import Keypoints2D, write_keypoints2d
    from reconstruction.skeleton import load_skeleton

    rig_path = save_rig(rig, tmp_path / "rig.yaml")
    names = joint_names or load_skeleton("coco17").joint_names
    kp_path = write_keypoints2d(tmp_path / "kp.npz", Keypoints2D(kp, cameras or rig.names, names, 30.0))
    return str(rig_path), str(kp_path)


def test_cli_writes_points_quality_and_summary(tmp_path, rig4, capsys):
    from reconstruction.cli import main
    from reconstruction.formats.points3d import read_points3d

    xyz, kp = _truth(rig4, frames=8)
    kp[:, 2, :, :2] += 80.0  # camera 2 is always wrong
    rig_path, kp_path = _write_inputs(tmp_path, rig4, kp[:, ::-1], cameras=rig4.names[::-1])  # views in another order
    out = tmp_path / "out.npz"
    assert main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--output", str(out)]) == 0
    points = read_points3d(out)
    assert np.abs(points.xyz - xyz).max() < 1e-6
    assert (points.quality["n_views"] == 3).all()
    assert points.quality["covariance"].shape == (8, 17, 3, 3) and points.quality["reproj_error_px"].shape == (8, 17)
    summary = json.loads((tmp_path / "out.npz.summary.json").read_text())
    assert summary["completeness"] == 1.0 and summary["per_camera"]["cam2"]["exclusion_rate"] == 1.0
    assert summary["config"]["min_views"] == 2 and summary["skeleton"] == "coco17"
    printed = capsys.readouterr().out
    assert "completeness 100.00 %" in printed and "cam2" in printed and "left_wrist" in printed


def test_cli_trc_output_and_min_views(tmp_path, rig4):
    from reconstruction.cli import main
    from reconstruction.formats.points3d import read_points3d

    xyz, kp = _truth(rig4, frames=4)
    kp[:, 2:, :3] = np.nan  # joints 0-2: two views only
    rig_path, kp_path = _write_inputs(tmp_path, rig4, kp)
    out = tmp_path / "out.trc"
    assert main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--min-views", "3", "--output", str(out)]) == 0
    points = read_points3d(out)
    assert np.isnan(points.xyz[:, :3]).all()
    np.testing.assert_allclose(points.xyz[:, 3:], xyz[:, 3:], atol=1e-4)  # TRC text precision


def test_cli_keypoint_cameras_missing_from_the_rig_are_listed(tmp_path, rig4, capsys):
    from reconstruction.cli import main

    _, kp = _truth(rig4, frames=2)
    rig_path, kp_path = _write_inputs(tmp_path, rig4, kp, cameras=["cam0", "cam1", "side_left", "side_right"])
    assert main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--output", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "side_left, side_right" in err and "not in the rig" in err and "cam0, cam1, cam2, cam3" in err
    assert not (tmp_path / "o.npz").exists()


def test_cli_joint_count_not_matching_the_skeleton(tmp_path, rig4, capsys):
    from reconstruction.cli import main

    _, kp = _truth(rig4, frames=2)
    rig_path, kp_path = _write_inputs(tmp_path, rig4, kp)  # 17 COCO joints
    code = main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--skeleton", "body25b",
                 "--output", str(tmp_path / "o.npz")])
    assert code == 2
    err = capsys.readouterr().err
    assert "body25b" in err and "17" in err


def test_cli_one_camera_rig_is_refused(tmp_path, rig4, capsys):
    from reconstruction.cli import main

    _, kp = _truth(rig4, frames=2)
    rig_path, kp_path = _write_inputs(tmp_path, Rig((rig4[0],)), kp[:, :1])
    assert main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--output", str(tmp_path / "o.npz")]) == 2
    assert "single camera" in capsys.readouterr().err


def test_cli_all_nan_keypoints_give_nan_points(tmp_path, rig4, capsys):
    from reconstruction.cli import main
    from reconstruction.formats.points3d import read_points3d

    kp = np.full((3, 4, 17, 3), np.nan)
    rig_path, kp_path = _write_inputs(tmp_path, rig4, kp)
    out = tmp_path / "o.npz"
    assert main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--output", str(out)]) == 0
    assert np.isnan(read_points3d(out).xyz).all()
    summary = json.loads((tmp_path / "o.npz.summary.json").read_text())
    assert summary["completeness"] == 0.0 and summary["missing_points"] == 3 * 17
    assert "completeness 0.00 %" in capsys.readouterr().out


def test_cli_refine_runs_the_sequence_refinement(tmp_path, rig4):
    from reconstruction.cli import main
    from reconstruction.formats.points3d import read_points3d

    xyz, kp = _truth(rig4, frames=12)
    kp[..., :2] += np.random.default_rng(0).normal(scale=1.0, size=kp[..., :2].shape)
    rig_path, kp_path = _write_inputs(tmp_path, rig4, kp)
    out = tmp_path / "o.npz"
    assert main(["triangulate", "--calibration", rig_path, "--keypoints", kp_path, "--refine", "--output", str(out)]) == 0
    summary = json.loads((tmp_path / "o.npz.summary.json").read_text())
    assert summary["refine"] != "no"
    assert np.nanmedian(np.linalg.norm(read_points3d(out).xyz - xyz, axis=-1)) < 0.01


# --- real data: the Pose2Sim demo -----------------------------------------------------------------

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


def test_cli_on_the_pose2sim_demo_openpose_folder_to_c3d(shared_dir, tmp_path, capsys):
    from reconstruction.cli import main
    from reconstruction.formats.points3d import read_points3d

    session = shared_dir / "data/pose2sim_demo/S00_Demo_Session"
    trial = session / "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    out = tmp_path / "demo.c3d"
    code = main(["triangulate", "--calibration", str(session / "S00_Calibration/Calib.qca.txt"),
                 "--keypoints", str(trial / "pose-associated"), "--skeleton", "body25b", "--output", str(out)])
    assert code == 0
    points = read_points3d(out)
    assert points.xyz.shape == (100, 25, 3) and np.isfinite(points.xyz).mean() > 0.99
    summary = json.loads((tmp_path / "demo.c3d.summary.json").read_text())
    assert set(summary["per_camera"]) == {"cam_01", "cam_02", "cam_03", "cam_04"}  # folders cam01_json..
    assert summary["reprojection_error_px"]["median_px"] < 10.7
