"""`mocap triangulate`: points, quality and summary files, options, the messages of bad input, the refinement,
the frame rate, the Pose2Sim demo's OpenPose folder."""
import json

import numpy as np
import pytest

from calibration.camera import Rig
from reconstruction.formats.keypoints2d import Keypoints2D
from tests.support import noiseless_keypoints as _truth


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


T = 30


@pytest.fixture(scope="module")
def scene(rgbd_walk_scene):
    """The session's simulated 4-camera RGB-D walk (tests/conftest.py)."""
    return rgbd_walk_scene


def test_triangulate_cli_takes_the_frame_rate_and_reports_sequence_quality(scene, tmp_path):
    from calibration.rig_io import save_rig
    from reconstruction.cli import main
    from reconstruction.formats.keypoints2d import write_keypoints2d
    from reconstruction.formats.points3d import read_points3d

    kp_path = write_keypoints2d(tmp_path / "kp.npz", Keypoints2D(scene["det"], tuple(scene["rig"].names),
                                                                 scene["skeleton"].joint_names, 30.0))
    rig_path = save_rig(scene["rig"], tmp_path / "rig.yaml", "yaml")
    out = tmp_path / "out.trc"
    assert main(["triangulate", "--calibration", str(rig_path), "--keypoints", str(kp_path), "--fps", "60",
                 "--output", str(out)]) == 0
    assert read_points3d(out).fps == 60.0
    summary = json.loads((tmp_path / "out.trc.summary.json").read_text())
    seq = summary["sequence_quality"]
    assert seq["fps"] == 60.0 and seq["frames"] == T
    assert seq["completeness"] == pytest.approx(summary["completeness"])
    assert main(["triangulate", "--calibration", str(rig_path), "--keypoints", str(kp_path), "--fps", "0",
                 "--output", str(out)]) == 2
