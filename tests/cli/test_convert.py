"""`mocap convert`: rig, keypoints and points through the CLI entry point."""
import json

import numpy as np
import pytest

from calibration.rig_io import load_rig, save_rig
from reconstruction.cli import main
from reconstruction.formats.keypoints2d import read_keypoints2d
from reconstruction.formats.points3d import Points3D, read_points3d, write_points3d


def test_convert_rig_through_every_writable_format(tmp_path, rig4, capsys):
    src = save_rig(rig4, tmp_path / "rig.yaml")
    assert main(["convert", "rig", str(src), str(tmp_path / "calib.toml")]) == 0
    toml_path, cv_path = str(tmp_path / "calib.toml"), str(tmp_path / "cv.yml")
    assert main(["convert", "rig", toml_path, cv_path, "--to-format", "opencv"]) == 0
    assert main(["convert", "rig", str(tmp_path / "cv.yml"), str(tmp_path / "emc"), "--to-format", "easymocap"]) == 0
    assert main(["convert", "rig", str(tmp_path / "emc"), str(tmp_path / "back.yaml"), "--world", "lab"]) == 0
    assert "4 cameras (cam0, cam1, cam2, cam3)" in capsys.readouterr().out
    back = load_rig(tmp_path / "back.yaml")
    for a, b in zip(rig4, back):
        np.testing.assert_allclose(b.K, a.K, atol=1e-9)
        np.testing.assert_allclose(b.R, a.R, atol=1e-9)
        np.testing.assert_allclose(b.t, a.t, atol=1e-9)
        np.testing.assert_array_equal(b.dist, a.dist)
    assert "world: lab" in (tmp_path / "back.yaml").read_text()


def test_convert_rig_errors_are_one_message(tmp_path, rig4, capsys):
    bad = tmp_path / "calib.toml"
    bad.write_text('[cam0]\nname = "cam0"\nsize = [640, 480]\nmatrix = [[1, 0')
    assert main(["convert", "rig", str(bad), str(tmp_path / "out.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mocap convert: error:") and "calib.toml" in err and "Traceback" not in err
    assert main(["convert", "rig", str(save_rig(rig4, tmp_path / "r.yaml")), str(tmp_path / "x.qca.txt")]) == 2
    assert "import-only" in capsys.readouterr().err
    assert not (tmp_path / "out.yaml").exists()


def test_convert_qca_demo(shared_dir, tmp_path):
    qca = shared_dir / "data/pose2sim_demo/S00_Demo_Session/S00_Calibration/Calib.qca.txt"
    assert main(["convert", "rig", str(qca), str(tmp_path / "demo.toml")]) == 0
    ours, theirs = load_rig(qca), load_rig(tmp_path / "demo.toml")
    np.testing.assert_allclose(theirs.projection_matrices, ours.projection_matrices, rtol=1e-12)


def test_convert_keypoints_openpose_to_npz(tmp_path, rig4, rng, capsys):
    root = tmp_path / "openpose"
    truth = rng.uniform(10, 400, size=(3, 2, 17, 2))
    for v, cam in enumerate(["cam1", "cam0"]):
        (root / f"{cam}_json").mkdir(parents=True)
        for t in range(3):
            pose = np.column_stack([truth[t, v], np.full(17, 0.8)])
            payload = {"people": [{"pose_keypoints_2d": pose.ravel().tolist()}]}
            (root / f"{cam}_json" / f"{t:04d}.json").write_text(json.dumps(payload))
    rig_path = save_rig(rig4.subset(["cam0", "cam1"]), tmp_path / "rig.yaml")
    out = tmp_path / "kp.npz"
    code = main(["convert", "keypoints", str(root), str(out), "--skeleton", "coco17", "--fps", "25",
                 "--rig", str(rig_path)])
    assert code == 0
    assert "3 frames, 2 views (cam0, cam1), 17 joints, 25 fps" in capsys.readouterr().out
    kp = read_keypoints2d(out)
    assert kp.cameras == ("cam0", "cam1") and kp.fps == 25
    np.testing.assert_allclose(kp.keypoints[:, 0, :, :2], truth[:, 1])  # cam0 was the second folder
    np.testing.assert_allclose(kp.keypoints[..., 2], 0.8)


def test_convert_points_npz_trc_c3d(tmp_path, rng):
    xyz = rng.normal(size=(4, 2, 3))
    xyz[1, 0] = np.nan
    write_points3d(tmp_path / "p.npz", Points3D(xyz, ("left_knee", "right_knee"), 50))
    assert main(["convert", "points", str(tmp_path / "p.npz"), str(tmp_path / "p.trc")]) == 0
    assert main(["convert", "points", str(tmp_path / "p.trc"), str(tmp_path / "p.c3d")]) == 0
    assert main(["convert", "points", str(tmp_path / "p.c3d"), str(tmp_path / "q.npz"), "--fps", "100"]) == 0
    back = read_points3d(tmp_path / "q.npz")
    assert back.joint_names == ("left_knee", "right_knee") and back.fps == 100
    np.testing.assert_allclose(back.xyz, xyz, atol=1e-6)
    assert np.isnan(back.xyz[1, 0]).all()


def test_convert_needs_a_kind():
    with pytest.raises(SystemExit):
        main(["convert"])
