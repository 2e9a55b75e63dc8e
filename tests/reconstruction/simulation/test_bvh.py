"""reconstruction/simulation/bvh.py: forward kinematics, bone lengths imposed, retargeting: known answers on tiny
files and on the CMU clip."""
import numpy as np
import pytest

from capture.errors import ConfigError
from reconstruction.simulation.bvh import (
    bvh_canonical_joints, forward_kinematics, impose_bone_lengths, resample, retarget_bvh,
)
from reconstruction.formats.bvh import load_bvh, parse_bvh
from reconstruction.skeleton import Skeleton, load_skeleton
from tests.support import BVH_TINY as TINY


def test_forward_kinematics_known_answer():
    positions, rotations = forward_kinematics(parse_bvh(TINY))
    # frame 0: rest pose shifted by the root translation
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 4, 3], [4, 4, 3]], atol=1e-12)
    # frame 1: root Rz(90) maps the arm offset (0, 2, 0) to (-2, 0, 0); the arm's local rotation is
    # Rx(90) @ Rz(90) (file order), applied after the root's: end = arm + Rz90 Rx90 Rz90 (3, 0, 0).
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    rx = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    arm = np.array([1, 2, 3]) + rz @ [0, 2, 0]
    end = arm + rz @ rx @ rz @ [3, 0, 0]
    np.testing.assert_allclose(positions[1, 1], arm, atol=1e-12)
    np.testing.assert_allclose(positions[1, 2], end, atol=1e-12)
    np.testing.assert_allclose(rotations[1, 1], rz @ rx @ rz, atol=1e-12)


def test_forward_kinematics_rotates_about_y_right_handed():
    # Ry(+90 deg) maps +x to -z (right-handed, as BVH files and every reader of them have it)
    text = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  End Site
  {
    OFFSET 1 0 0
  }
}
MOTION
Frames: 1
Frame Time: 0.1
0 0 0 0 0 90
"""
    positions, rotations = forward_kinematics(parse_bvh(text))
    np.testing.assert_allclose(positions[0, 1], [0.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(rotations[0, 0], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-12)


def test_impose_bone_lengths_keeps_directions(rng):
    skeleton = Skeleton("chain", ("a", "b", "c", "d"), (("a", "b"), ("b", "c"), ("c", "d")), non_rigid=(("c", "d"),))
    xyz = rng.normal(size=(5, 4, 3))
    out = impose_bone_lengths(xyz, skeleton, [0.3, 0.5, np.nan])
    lengths = skeleton.bone_lengths(out)
    np.testing.assert_allclose(lengths[:, :2], np.tile([0.3, 0.5], (5, 1)), atol=1e-12)
    for (i, j) in ((0, 1), (1, 2), (2, 3)):
        d_in = xyz[:, j] - xyz[:, i]
        d_out = out[:, j] - out[:, i]
        cos = np.sum(d_in * d_out, -1) / np.linalg.norm(d_in, axis=-1) / np.linalg.norm(d_out, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    # the non-rigid bone keeps its own vector
    np.testing.assert_allclose(out[:, 3] - out[:, 2], xyz[:, 3] - xyz[:, 2], atol=1e-12)


def test_symmetric_pair_keeps_midpoint(rng):
    skeleton = load_skeleton("coco17")
    xyz = rng.normal(size=(3, 17, 3))
    lengths = np.full(len(skeleton.bones), 0.25)
    out = impose_bone_lengths(xyz, skeleton, lengths)
    # the bones of the rigid forest; those closing a loop (the skull's) follow from the others
    from reconstruction.simulation.bvh import _rigid_forest

    tree = {frozenset((a, b)) for a, b, _ in _rigid_forest(skeleton)}
    rigid = skeleton.rigid_mask & np.array([frozenset(b) in tree for b in skeleton.bone_indices.tolist()])
    assert rigid.sum() >= 14
    np.testing.assert_allclose(skeleton.bone_lengths(out)[:, rigid], 0.25, atol=1e-12)
    hips = [skeleton.index("left_hip"), skeleton.index("right_hip")]
    np.testing.assert_allclose(out[:, hips].mean(1), xyz[:, hips].mean(1), atol=1e-12)


@pytest.fixture
def cmu(shared_dir):
    return load_bvh(shared_dir / "data" / "mocap" / "131_02.bvh")


def test_retarget_cmu_to_coco17(cmu):
    skeleton = load_skeleton("coco17")
    xyz = retarget_bvh(cmu, skeleton, fps=30, num_frames=90)
    assert xyz.shape == (90, 17, 3) and np.all(np.isfinite(xyz))
    lengths = skeleton.bone_lengths(xyz)
    rigid = skeleton.rigid_mask
    # rigid bones: one fixed length per bone (the skull's loop bones to float rounding of the head)
    assert np.max(np.ptp(lengths[:, rigid], axis=0)) < 1e-6
    # the subject's lengths: thigh and shank about 0.4 m (CMU subject 131), in metres
    assert 0.3 < lengths[0, skeleton.bones.index(("left_hip", "left_knee"))] < 0.5
    # Z up, floor at 0: the ankles a few cm above the floor, the nose about 1.5 m up
    name = skeleton.index
    assert 0.03 < xyz[:, [name("left_ankle"), name("right_ankle")], 2].min() < 0.2
    assert np.all(xyz[:, name("nose"), 2] > xyz[:, name("left_hip"), 2] + 0.2)
    assert 1.3 < np.median(xyz[:, name("nose"), 2]) < 1.9
    # left is left: with Z up and the person facing f, left = up x f
    forward = xyz[:, name("nose"), :2] - 0.5 * (xyz[:, name("left_ear"), :2] + xyz[:, name("right_ear"), :2])
    across = xyz[:, name("left_hip"), :2] - xyz[:, name("right_hip"), :2]
    left_of_forward = np.stack([-forward[:, 1], forward[:, 0]], axis=1)
    assert np.all(np.sum(across * left_of_forward, axis=1) > 0)


def test_retarget_resamples_in_time(cmu):
    skeleton = load_skeleton("coco17")
    src = bvh_canonical_joints(cmu, skeleton.joint_names)
    # 30 fps from 120 fps: every 4th frame (the clip's fps is 120.0005, so nearly exactly)
    np.testing.assert_allclose(resample(src, cmu.fps, 30.0, 10), src[0:40:4], atol=1e-3)
    xyz = retarget_bvh(cmu, skeleton, fps=30, num_frames=10, center=False)
    moved = np.linalg.norm(np.diff(xyz[:, skeleton.index("left_ankle")], axis=0), axis=1)
    assert np.all(moved < 0.2)  # about 3 cm per frame at 30 fps for a walk


def test_retarget_too_long_names_the_limit(cmu):
    with pytest.raises(ConfigError, match="at most 10.3"):
        retarget_bvh(cmu, load_skeleton("coco17"), fps=30, num_frames=30 * 20)


def test_retarget_height_scales(cmu):
    skeleton = load_skeleton("coco17")
    a = retarget_bvh(cmu, skeleton, fps=30, num_frames=5)
    b = retarget_bvh(cmu, skeleton, fps=30, num_frames=5, height_m=2.0)
    ratio = skeleton.bone_lengths(b)[0] / skeleton.bone_lengths(a)[0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    assert ratio[0] > 1.1


MOTIONBUILDER = """HIERARCHY
ROOT Hips
{
  OFFSET 0 100 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT LeftUpLeg
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
  JOINT LeftShoulder
  {
    OFFSET 5 50 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT LeftArm
    {
      OFFSET 15 0 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 30 0 0
      }
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.01
0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
"""


def test_motionbuilder_names_map_the_shoulder_not_the_collar():
    bvh = parse_bvh(MOTIONBUILDER, "mb.bvh")
    xyz = bvh_canonical_joints(bvh, ["left_hip", "left_shoulder"], unit_m=0.01, up="y")
    # Y up -> Z up: (x, y, z) -> (x, -z, y); LeftArm (not the LeftShoulder collar) is the shoulder
    np.testing.assert_allclose(xyz[0], [[0.10, 0.0, 1.0], [0.20, 0.0, 1.5]], atol=1e-12)
    with pytest.raises(ConfigError, match="cannot place joint 'left_knee'"):
        bvh_canonical_joints(bvh, ["left_knee"])
