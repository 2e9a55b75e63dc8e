"""reconstruction/simulation/motion.py: procedural motion: rigid bones keep their length, smooth, seeded, overrides."""
import numpy as np
import pytest

from reconstruction.simulation import canonical_body_map, procedural_motion
from reconstruction.simulation.rigs import ring_rig
from reconstruction.skeleton import Skeleton, builtin_skeletons, load_skeleton


@pytest.mark.parametrize("name", builtin_skeletons())
def test_rigid_bones_keep_their_length_and_the_person_stays_in_view(name):
    skeleton = load_skeleton(name)
    xyz = procedural_motion(skeleton, 300, fps=30.0, rng=np.random.default_rng(3))
    assert xyz.shape == (300, skeleton.num_joints, 3) and np.isfinite(xyz).all()
    lengths = skeleton.bone_lengths(xyz)
    rigid = lengths[:, skeleton.rigid_mask]
    np.testing.assert_allclose(rigid, rigid[:1].repeat(300, 0), atol=1e-9)
    assert (rigid > 0.01).all()
    # every joint is mapped to the canonical body (no fallback for built-in skeletons)
    assert None not in canonical_body_map(skeleton)
    # around the origin, on the ground, within the view of a 3 m ring rig
    assert np.linalg.norm(xyz[..., :2], axis=-1).max() < 1.2
    assert -0.02 < xyz[..., 2].min() < 0.15 and 1.55 < xyz[..., 2].max() < 1.95
    uv = ring_rig(4).project(xyz)
    assert (uv >= 0).all() and (uv[..., 0] < 640).all() and (uv[..., 1] < 480).all()


def test_motion_moves_smoothly_and_depends_on_rng():
    xyz = procedural_motion("coco17", 301, fps=30.0, rng=np.random.default_rng(0))
    speed = np.linalg.norm(np.diff(xyz, axis=0), axis=-1) * 30.0  # m/s
    assert speed.max() < 4.0  # no jumps
    wrists = [load_skeleton("coco17").index(n) for n in ("left_wrist", "right_wrist")]
    assert np.ptp(xyz[:, wrists, 2], axis=0).min() > 0.2  # arms really swing / rise
    pelvis = xyz[:, 11:13].mean(axis=1)
    assert np.linalg.norm(pelvis[-1, :2] - pelvis[0, :2]) > 0.05 or np.ptp(pelvis[:, 0]) > 0.1  # walks
    other = procedural_motion("coco17", 301, fps=30.0, rng=np.random.default_rng(1))
    assert np.abs(other - xyz).max() > 0.05


def test_height_and_bone_length_overrides():
    sk = load_skeleton("coco17")
    tall = procedural_motion(sk, 10, rng=np.random.default_rng(0), height_m=2.0)
    short = procedural_motion(sk, 10, rng=np.random.default_rng(0), height_m=1.5)
    femur = [sk.bones.index(("left_hip", "left_knee"))]
    np.testing.assert_allclose(sk.bone_lengths(tall)[0, femur] / sk.bone_lengths(short)[0, femur], 2.0 / 1.5)
    custom = procedural_motion(sk, 10, rng=np.random.default_rng(0), bone_lengths={"thigh": 0.5})
    np.testing.assert_allclose(sk.bone_lengths(custom)[:, femur], 0.5)
    with pytest.raises(ValueError, match="unknown bone length 'femur'"):
        procedural_motion(sk, 10, bone_lengths={"femur": 0.5})


def test_unknown_joint_names_are_attached_rigidly():
    sk = Skeleton("custom", ("left_hip", "left_knee", "tail", "antenna"), (("left_hip", "left_knee"), ("left_knee", "tail")))
    xyz = procedural_motion(sk, 50, rng=np.random.default_rng(0))
    assert np.isfinite(xyz).all()
    lengths = sk.bone_lengths(xyz)
    np.testing.assert_allclose(lengths, lengths[:1].repeat(50, 0), atol=1e-9)
    assert canonical_body_map(sk) == ["left_hip", "left_knee", None, None]
