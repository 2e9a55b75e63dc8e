"""reconstruction/evaluation.py: position errors against a reference, and the distance to another tool's TRC."""
import numpy as np
import pytest

from reconstruction.evaluation import position_error


def test_distance_to_reference_finds_the_frame_shift(tmp_path):
    from reconstruction.evaluation import distance_to_reference
    from reconstruction.formats.points3d import Points3D, write_points3d
    from reconstruction.skeleton import load_skeleton

    skeleton = load_skeleton("coco17")
    rng = np.random.default_rng(0)
    ours = np.cumsum(rng.normal(0, 0.02, (40, skeleton.num_joints, 3)), axis=0) + [0, 0, 1.0]
    # The reference names its joints the OpenPose way and runs one frame behind, 1 cm off.
    names = ["Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist",
             "RWrist", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle"]
    ref = np.concatenate([ours[:1], ours[:-1]]) + [0.01, 0, 0]
    path = write_points3d(tmp_path / "ref.trc", Points3D(ref, tuple(names), 30.0))
    result = distance_to_reference(ours, skeleton, path)
    assert result["shift"] == 1 and result["joints"] == 17
    assert result["median_m"] == pytest.approx(0.01, abs=1e-4)


def test_position_error_over_the_common_frames():
    ref = np.zeros((4, 2, 3))
    ref[..., 0] = 0.1 * np.arange(4)[:, None]  # the reference moves 10 cm per frame
    xyz = ref[:3].copy()  # one frame shorter: compared over 3 frames, frame by frame
    xyz[0, 0] += [0.03, 0.04, 0.0]  # 5 cm
    xyz[1, 1] += [0.0, 0.0, 0.01]  # 1 cm
    xyz[2, 0] = np.nan  # missing: not counted
    err = position_error(xyz, ref)
    assert err.errors_m.shape == (3, 2) and np.isnan(err.errors_m[2, 0])
    np.testing.assert_allclose(err.errors_m[[0, 0, 1, 1, 2], [0, 1, 0, 1, 1]], [0.05, 0, 0, 0.01, 0])
    assert err.mean_m == pytest.approx(0.06 / 5, rel=1e-12) and err.median_m == 0.0
    assert np.isnan(position_error(np.full((2, 2, 3), np.nan), ref).mean_m)  # nothing in common: NaN, no warning
