"""`mocap kinematics`: ISB angles only (--no-opensim), and bad input as one message with exit code 2."""
import numpy as np

from reconstruction.cli import main
from reconstruction.formats.points3d import Points3D, write_points3d
from reconstruction.simulation import procedural_motion
from reconstruction.skeleton import load_skeleton


def _points(path, skeleton="coco17"):
    sk = load_skeleton(skeleton)
    write_points3d(path, Points3D(procedural_motion(skeleton, 8, rng=np.random.default_rng(0)), sk.joint_names, 30.0))
    return path


def test_no_opensim_run(tmp_path, capsys):
    points = _points(tmp_path / "p.npz")
    assert main(["kinematics", str(points), "--output", str(tmp_path / "k"), "--no-opensim"]) == 0
    out = capsys.readouterr().out
    assert "knee_flexion_r" in out and (tmp_path / "k" / "p_joint_angles.csv").is_file()


def test_bad_input_is_one_message(tmp_path, capsys):
    assert main(["kinematics", str(tmp_path / "none.npz"), "--output", str(tmp_path / "k"), "--no-opensim"]) == 2
    assert "none.npz: file not found" in capsys.readouterr().err
    points = _points(tmp_path / "p.trc")
    assert main(["kinematics", str(points), "--output", str(tmp_path / "k"), "--no-opensim", "--person", "4"]) == 2
    assert "holds one person" in capsys.readouterr().err
    assert main(["kinematics", str(points), "--output", str(tmp_path / "k"), "--no-opensim", "--mass", "-3"]) == 2
    assert "mass_kg must be positive" in capsys.readouterr().err


def test_convert_points_to_bvh(tmp_path, capsys):
    points = _points(tmp_path / "p.npz", "body25b")
    assert main(["convert", "points", str(points), str(tmp_path / "p.bvh")]) == 0
    assert "BVH joints for 25 points" in capsys.readouterr().out
    assert (tmp_path / "p.bvh").read_text().startswith("HIERARCHY\nROOT pelvis")
