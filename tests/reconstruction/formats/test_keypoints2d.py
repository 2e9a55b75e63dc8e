"""reconstruction/formats/keypoints2d.py: 2D keypoint files: our NPZ round trip, OpenPose folders (person choice,
missing joints, corrupt files)."""
import json

import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.formats.keypoints2d import (
    Keypoints2D, OpenPoseReadError, read_keypoints2d, read_openpose_folder, write_keypoints2d,
)
from reconstruction.skeleton import load_skeleton


J = 25


def _person(rng, score):
    pose = np.column_stack([rng.uniform(0, 640, J), rng.uniform(0, 480, J), np.full(J, score)])
    return pose


def _write_openpose(root, rng, num_frames=4, cameras=("cam01", "cam02")):
    """One folder per camera, two people per file: a strong one (score 0.9) and a weak one (0.3).
    Returns the expected (T, V, J, 3) of the strong person, joint 3 missing (0, 0, 0) in every frame."""
    expected = np.full((num_frames, len(cameras), J, 3), np.nan)
    for v, cam in enumerate(cameras):
        folder = root / f"{cam}_json"
        folder.mkdir(parents=True)
        for t in range(num_frames):
            strong, weak = _person(rng, 0.9), _person(rng, 0.3)
            strong[3] = 0.0
            people = [weak, strong] if t % 2 else [strong, weak]
            payload = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p.ravel().tolist()}
                                                   for p in people]}
            (folder / f"{cam}_{t:012d}_keypoints.json").write_text(json.dumps(payload))
            expected[t, v] = strong
            expected[t, v, 3] = np.nan
    return expected


def test_keypoints2d_validates_shapes():
    kp = np.zeros((2, 3, 4, 3))
    with pytest.raises(ValueError, match=r"\(T, V, J, 3\)"):
        Keypoints2D(np.zeros((2, 3, 4)), ("a", "b", "c"), tuple("wxyz"), 30)
    with pytest.raises(ValueError, match="3 views but 2 camera names"):
        Keypoints2D(kp, ("a", "b"), tuple("wxyz"), 30)
    with pytest.raises(ValueError, match="4 joints but 3 joint names"):
        Keypoints2D(kp, ("a", "b", "c"), tuple("wxy"), 30)
    with pytest.raises(ValueError, match="fps"):
        Keypoints2D(kp, ("a", "b", "c"), tuple("wxyz"), 0)


def test_npz_round_trip_is_exact_and_atomic(tmp_path, rng):
    data = rng.normal(size=(5, 3, 17, 3))
    data[1, 2, 4] = np.nan
    kp = Keypoints2D(data, ("c0", "c1", "c2"), load_skeleton("coco17").joint_names, 59.94)
    path = write_keypoints2d(tmp_path / "kp.npz", kp)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npz"]  # no temp file left behind
    back = read_keypoints2d(path)
    np.testing.assert_array_equal(back.keypoints, kp.keypoints)
    assert back.cameras == kp.cameras and back.joint_names == kp.joint_names and back.fps == kp.fps
    reordered = read_keypoints2d(path, cameras=["c2", "c0"], fps=30)
    np.testing.assert_array_equal(reordered.keypoints, data[:, [2, 0]])
    assert reordered.fps == 30
    with pytest.raises(FileFormatError, match="do not match skeleton 'body25b'"):
        read_keypoints2d(path, skeleton="body25b")


def test_npz_missing_array_names_it(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, keypoints2d=np.zeros((1, 1, 1, 3)), cameras=np.array(["a"]))
    with pytest.raises(FileFormatError, match=r"bad\.npz: missing array 'joint_names'"):
        read_keypoints2d(path)


def test_openpose_folder_picks_best_person_and_marks_missing(tmp_path, rng):
    expected = _write_openpose(tmp_path, rng)
    kp = read_keypoints2d(tmp_path, fps=60)
    assert kp.cameras == ("cam01", "cam02")
    assert kp.joint_names == load_skeleton("body25b").joint_names
    assert kp.fps == 60
    np.testing.assert_array_equal(kp.keypoints, expected)
    assert np.isnan(kp.keypoints[:, :, 3]).all()  # 0, 0, 0 -> NaN in x, y and score


def test_openpose_person_index_and_rig_names(tmp_path, rng):
    _write_openpose(tmp_path, rng)
    first = read_openpose_folder(tmp_path, person=0, fps=30)
    assert np.allclose(first.keypoints[0, :, 0, 2], 0.9) and np.allclose(first.keypoints[1, :, 0, 2], 0.3)
    by_rig = read_keypoints2d(tmp_path, cameras=["cam_02", "cam_01"], fps=30)
    assert by_rig.cameras == ("cam_02", "cam_01")
    np.testing.assert_array_equal(by_rig.keypoints[:, 0], read_keypoints2d(tmp_path, fps=30).keypoints[:, 1])
    with pytest.raises(FileFormatError, match="no views for camera.*cam_09"):
        read_keypoints2d(tmp_path, cameras=["cam_01", "cam_09"], fps=30)


def test_openpose_wrong_joint_count_for_skeleton(tmp_path, rng):
    _write_openpose(tmp_path, rng, num_frames=1)
    with pytest.raises(FileFormatError, match="75 values, expected 51"):
        read_keypoints2d(tmp_path, skeleton="coco17", fps=30)


def test_openpose_corrupt_file_names_it_and_keeps_earlier_frames(tmp_path, rng):
    expected = _write_openpose(tmp_path, rng, num_frames=6)
    bad = tmp_path / "cam02_json" / "cam02_000000000004_keypoints.json"
    bad.write_text(bad.read_text()[:40])  # truncated mid-file
    with pytest.raises(OpenPoseReadError, match=r"cam02_000000000004_keypoints\.json") as info:
        read_keypoints2d(tmp_path, fps=30)
    assert info.value.path == bad
    partial = info.value.partial
    assert partial.num_frames == 4
    np.testing.assert_array_equal(partial.keypoints, expected[:4])
    assert isinstance(info.value, FileFormatError)  # the CLI reports it as one message
    stopped = read_openpose_folder(tmp_path, fps=30, on_error="stop")
    np.testing.assert_array_equal(stopped.keypoints, expected[:4])


def test_openpose_empty_person_is_no_detection(tmp_path, rng):
    _write_openpose(tmp_path, rng, num_frames=3)
    f = tmp_path / "cam01_json" / "cam01_000000000001_keypoints.json"
    f.write_text(json.dumps({"version": 1.3, "people": [{}]}))  # Pose2Sim's association writes this
    kp = read_keypoints2d(tmp_path, fps=30)
    assert np.isnan(kp.keypoints[1, 0]).all() and not np.isnan(kp.keypoints[1, 1, 0]).any()


def test_pose2sim_demo_openpose_reads(shared_dir):
    root = shared_dir / "data/pose2sim_demo/S00_Demo_Session/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    kp = read_keypoints2d(root / "pose", fps=60)
    assert kp.keypoints.shape == (100, 4, 25, 3)
    assert kp.cameras == ("cam01", "cam02", "cam03", "cam04")
    seen = kp.keypoints[..., 2] > 0
    assert seen.mean() > 0.8
    xy = kp.keypoints[..., :2][seen]
    assert np.all((xy >= -1) & (xy <= [1088, 1920]))  # portrait 1088 x 1920 images
