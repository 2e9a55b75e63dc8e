"""Skeleton definitions: built-ins, user files, bad input, canonical names, flips."""
import numpy as np
import pytest

from capture.errors import ConfigError
from reconstruction.skeleton import Skeleton, builtin_skeletons, canonical_joint_name, load_skeleton


EXPECTED_JOINTS = {"coco17": 17, "body25": 25, "body25b": 25, "mpii16": 16, "halpe26": 26, "blazepose33": 33}


@pytest.mark.parametrize("name", sorted(EXPECTED_JOINTS))
def test_builtins_load_with_consistent_topology(name):
    skeleton = load_skeleton(name)
    assert skeleton.num_joints == EXPECTED_JOINTS[name]
    used = {j for bone in skeleton.bones for j in bone}
    assert used == set(skeleton.joint_names)  # every joint is on a bone, bones name only known joints
    perm = skeleton.flip_permutation
    np.testing.assert_array_equal(perm[perm], np.arange(skeleton.num_joints))  # a flip is an involution
    for left, right in skeleton.left_right:
        assert "left" in left and right == left.replace("left", "right")


def test_builtin_list_and_name_spellings():
    assert set(EXPECTED_JOINTS) <= set(builtin_skeletons())
    assert load_skeleton("COCO-17").joint_names == load_skeleton("coco17").joint_names
    assert load_skeleton("body_25b").name == "body25b"
    with pytest.raises(ConfigError, match="unknown skeleton 'nope'.*coco17"):
        load_skeleton("nope")


def test_flip_permutation_swaps_left_and_right():
    coco = load_skeleton("coco17")
    perm = coco.flip_permutation
    names = coco.joint_names
    assert names[perm[names.index("left_wrist")]] == "right_wrist"
    assert names[perm[names.index("right_ankle")]] == "left_ankle"
    assert perm[names.index("nose")] == names.index("nose")


def test_user_skeleton_file_and_bone_lengths(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text("name: arm\njoints: [a, b, c]\nbones: [[a, b], [b, c]]\nnon_rigid: [[b, c]]\n")
    arm = load_skeleton(path)
    assert arm.name == "arm" and arm.joint_names == ("a", "b", "c")
    np.testing.assert_array_equal(arm.rigid_mask, [True, False])
    xyz = np.array([[[0, 0, 0], [3, 4, 0], [3, 4, 2]], [[0, 0, 0], [np.nan, 0, 0], [1, 1, 1]]], dtype=float)
    lengths = arm.bone_lengths(xyz)
    np.testing.assert_allclose(lengths[0], [5.0, 2.0])
    assert np.isnan(lengths[1]).all()


def test_bone_with_unknown_joint_names_file_and_joint(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("joints: [a, b]\nbones: [[a, b], [b, elbow]]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*bones entry \['b', 'elbow'\] names unknown joint 'elbow'"):
        load_skeleton(path)


def test_other_skeleton_file_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("joints: [a, b]\nbones: [[a, b]]\nlimbs: []\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'limbs'"):
        load_skeleton(path)
    path.write_text("joints: [a, b]\nbones: [[a, b]]\nnon_rigid: [[a, a]]\n")
    with pytest.raises(ConfigError, match="is not one of its bones"):
        load_skeleton(path)
    with pytest.raises(ValueError, match="repeated: a"):
        Skeleton("x", ("a", "a"), ())


@pytest.mark.parametrize(
    "other, ours",
    [("RShoulder", "right_shoulder"), ("LBigToe", "left_big_toe"), ("r_knee", "right_knee"), ("Nose", "nose"),
     ("LSmallToe", "left_small_toe"), ("Neck", "neck"), ("left_hip", "left_hip"), ("R.Heel", "right_heel")],
)
def test_canonical_joint_name(other, ours):
    assert canonical_joint_name(other) == ours


def test_pose2sim_trc_names_are_body25b_joints():
    body25b = set(load_skeleton("body25b").joint_names)
    pose2sim = ["RHip", "RKnee", "RAnkle", "RBigToe", "RSmallToe", "RHeel", "LHip", "LKnee", "LAnkle", "LBigToe",
                "LSmallToe", "LHeel", "Neck", "Head", "Nose", "RShoulder", "RElbow", "RWrist", "LShoulder",
                "LElbow", "LWrist"]
    assert {canonical_joint_name(n) for n in pose2sim} <= body25b
