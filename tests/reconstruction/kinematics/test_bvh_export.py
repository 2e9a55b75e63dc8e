"""reconstruction/kinematics/bvh_export.py: the written BVH read back by an independent reader
(bvhio) reproduces our joints within 1 mm for constant-length bones (procedural motion, two
skeletons, with a gap); our own reader gives the same clip back."""
import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.formats.bvh import load_bvh, write_bvh
from reconstruction.formats.points3d import Points3D, trc_to_world
from reconstruction.kinematics.bvh_export import points_to_bvh, skeleton_for_joints, write_points_bvh
from reconstruction.simulation import procedural_motion
from reconstruction.skeleton import load_skeleton


def _bvhio_joints(path, names, frames):
    bvhio = pytest.importorskip("bvhio", reason="bvhio (the independent BVH reader) is not installed")
    root = bvhio.readAsHierarchy(str(path))
    joints = {j.Name: j for j, _, _ in root.layout()}
    out = np.zeros((frames, len(names), 3))
    for f in range(frames):
        root.loadPose(f)
        out[f] = [np.array(joints[n].PositionWorld) for n in names]
    return trc_to_world(out)


@pytest.mark.parametrize("skeleton", ["coco17", "body25b"])
def test_independent_reader_reproduces_the_joints(tmp_path, skeleton):
    sk = load_skeleton(skeleton)
    xyz = procedural_motion(skeleton, 40, rng=np.random.default_rng(3))
    path = tmp_path / "a.bvh"
    write_points_bvh(path, Points3D(xyz, sk.joint_names, 30.0), sk)
    back = _bvhio_joints(path, sk.joint_names, 40)
    assert np.max(np.linalg.norm(back - xyz, axis=-1)) < 1e-3
    clip = load_bvh(path)
    assert clip.joint_names[0] == "pelvis" and clip.fps == pytest.approx(30.0)
    assert clip.channels[0][:3] == ("Xposition", "Yposition", "Zposition")


def test_gaps_are_bridged_and_lengths_stay(tmp_path):
    sk = load_skeleton("coco17")
    xyz = procedural_motion("coco17", 30, rng=np.random.default_rng(4))
    holes = xyz.copy()
    holes[10:13, sk.index("left_wrist")] = np.nan
    export = points_to_bvh(holes, sk, 30.0)
    write_bvh(tmp_path / "g.bvh", export.bvh)
    back = _bvhio_joints(tmp_path / "g.bvh", sk.joint_names, 30)
    keep = np.ones(30, bool)
    keep[10:13] = False
    assert np.max(np.linalg.norm(back[keep] - xyz[keep], axis=-1)) < 1e-3
    forearm = np.linalg.norm(back[:, sk.index("left_wrist")] - back[:, sk.index("left_elbow")], axis=-1)
    assert np.ptp(forearm) < 1e-3  # the bridged frames keep the bone's length


def test_round_trip_of_our_reader_and_writer(tmp_path):
    sk = load_skeleton("coco17")
    export = points_to_bvh(procedural_motion("coco17", 5, rng=np.random.default_rng(0)), sk, 25.0)
    back = load_bvh(write_bvh(tmp_path / "r.bvh", export.bvh))
    assert back.joint_names == export.bvh.joint_names and back.channels == export.bvh.channels
    np.testing.assert_allclose(back.offsets, export.bvh.offsets, atol=1e-6)
    np.testing.assert_allclose(back.motion, export.bvh.motion, atol=1e-6)
    np.testing.assert_array_equal(back.parents, export.bvh.parents)


def test_skeleton_for_a_subset_and_errors():
    body = load_skeleton("body25b")
    names = [n for n in body.joint_names if not n.endswith(("eye", "ear"))]
    sk = skeleton_for_joints(names)
    assert sk.joint_names == tuple(names) and all(set(b) <= set(names) for b in sk.bones)
    with pytest.raises(FileFormatError, match="no skeleton holds"):
        skeleton_for_joints(["nose", "tail"])
    xyz = procedural_motion("coco17", 4, rng=np.random.default_rng(0))
    xyz[:, 0] = np.nan
    with pytest.raises(FileFormatError, match="never present: nose"):
        points_to_bvh(xyz, load_skeleton("coco17"), 30.0)
