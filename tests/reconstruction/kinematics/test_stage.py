"""reconstruction/kinematics/stage.py: one person out of today's and the person-axis NPZ layouts,
the files and summary of a run without OpenSim."""
import json

import numpy as np
import pytest

from capture.errors import ConfigError
from reconstruction.formats.joint_angles import read_joint_angles
from reconstruction.formats.points3d import Points3D, write_points3d
from reconstruction.kinematics.config import KinematicsConfig
from reconstruction.kinematics.stage import load_person, run_kinematics
from reconstruction.simulation import procedural_motion
from reconstruction.skeleton import load_skeleton


def _people_npz(path, ids=("3", "7")):
    sk = load_skeleton("coco17")
    xyz = np.stack([procedural_motion("coco17", 6, rng=np.random.default_rng(i)) for i in range(len(ids))], axis=1)
    np.savez(path, xyz=xyz, joint_names=np.array(sk.joint_names), fps=np.float64(30), person_ids=np.array(ids),
             quality_n_views=np.ones((6, len(ids), 17)))
    return xyz


def test_person_axis_is_selected_by_id(tmp_path):
    xyz = _people_npz(tmp_path / "p.npz")
    points, person = load_person(tmp_path / "p.npz", "7")
    assert person == "7" and points.xyz.shape == (6, 17, 3) and points.quality["n_views"].shape == (6, 17)
    np.testing.assert_array_equal(points.xyz, xyz[:, 1])
    with pytest.raises(ConfigError, match=r"2 people \(3, 7\); choose one with --person"):
        load_person(tmp_path / "p.npz")
    with pytest.raises(ConfigError, match="--person 5: not in p.npz"):
        load_person(tmp_path / "p.npz", "5")


def test_single_person_layouts(tmp_path):
    sk = load_skeleton("coco17")
    points = Points3D(procedural_motion("coco17", 5, rng=np.random.default_rng(0)), sk.joint_names, 30.0)
    write_points3d(tmp_path / "one.npz", points)
    write_points3d(tmp_path / "one.trc", points)
    assert load_person(tmp_path / "one.npz")[0].num_frames == 5
    assert load_person(tmp_path / "one.trc")[0].joint_names == sk.joint_names
    with pytest.raises(ConfigError, match="holds one person"):
        load_person(tmp_path / "one.trc", "2")


def test_run_without_opensim_writes_the_angle_table(tmp_path):
    sk = load_skeleton("body25b")
    points = Points3D(procedural_motion("body25b", 12, rng=np.random.default_rng(2)), sk.joint_names, 30.0)
    result = run_kinematics(points, KinematicsConfig(opensim=False), tmp_path, "walk", "walk.npz")
    table = read_joint_angles(result.files["joint_angles_npz"])
    assert "knee_flexion_r" in table.names and "ankle_dorsiflexion_l" in table.names and table.num_frames == 12
    summary = json.loads((tmp_path / "walk_kinematics.json").read_text())
    assert summary["opensim"] is None and summary["frames"] == 12
    assert summary["joint_angles_deg"]["knee_flexion_r"]["valid_fraction"] == 1.0
