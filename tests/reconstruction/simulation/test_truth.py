"""reconstruction/simulation/truth.py: the ground-truth file of a simulated session: round trip, bad files named."""
import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.simulation.truth import is_ground_truth, load_ground_truth, write_ground_truth


def _truth(rng, T=5, V=2, J=3):
    stamps = 1000.0 + np.arange(T)[:, None] * 33.3 + np.array([0.0, 2.5])[None, :V]
    stamps[2, 1] = np.nan  # camera 1 dropped frame 2
    return dict(xyz=rng.normal(size=(T, J, 3)), keypoints2d=rng.uniform(0, 640, (T, V, J, 3)),
                joint_names=("nose", "left_hip", "right_hip"), cameras=("900000000000", "900000000001"),
                timestamps_ms=stamps, clock_offsets_ms=np.array([0.0, 2.5]), frame_numbers=np.arange(1, T + 1),
                fps=30.0, depth_scale=0.001)


def test_round_trip_keeps_every_array(tmp_path, rng):
    truth = _truth(rng)
    radius = np.array([0.095, 0.08, 0.08])
    path = write_ground_truth(tmp_path / "sim" / "ground_truth.npz", **truth, joint_radius_m=radius)
    assert path == tmp_path / "sim" / "ground_truth.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == ["ground_truth.npz"]  # no temp file left
    back = load_ground_truth(path)
    assert set(back) == set(truth) | {"joint_radius_m"}
    np.testing.assert_array_equal(back["xyz"], truth["xyz"])
    np.testing.assert_array_equal(back["keypoints2d"], truth["keypoints2d"])
    np.testing.assert_array_equal(back["timestamps_ms"], truth["timestamps_ms"])  # NaN kept
    np.testing.assert_array_equal(back["clock_offsets_ms"], truth["clock_offsets_ms"])
    np.testing.assert_array_equal(back["frame_numbers"], truth["frame_numbers"])
    assert back["frame_numbers"].dtype == np.int64
    assert list(back["joint_names"]) == list(truth["joint_names"]) and list(back["cameras"]) == list(truth["cameras"])
    assert float(back["fps"]) == 30.0 and float(back["depth_scale"]) == 0.001
    np.testing.assert_array_equal(back["joint_radius_m"], radius)
    with np.load(path) as data:  # plain arrays: readable without pickle
        assert is_ground_truth(data.files) and not any(data[k].dtype == object for k in data.files)


def test_missing_array_or_unreadable_file_names_the_file(tmp_path, rng):
    truth = _truth(rng)
    for missing in ("xyz", "keypoints2d", "joint_names", "cameras", "timestamps_ms", "fps"):  # the required ones
        partial = {k: v for k, v in truth.items() if k != missing}
        path = tmp_path / f"no_{missing}.npz"
        np.savez(path, **{k: np.asarray(v) for k, v in partial.items()})
        with np.load(path) as data:
            assert not is_ground_truth(data.files)
        with pytest.raises(FileFormatError, match=rf"no_{missing}\.npz: not a simulator ground truth \(missing {missing}\)"):
            load_ground_truth(path)
    bad = tmp_path / "ground_truth.npz"
    bad.write_text("not an npz")
    with pytest.raises(FileFormatError, match=r"ground_truth\.npz: not a readable ground-truth NPZ"):
        load_ground_truth(bad)
    with pytest.raises(FileFormatError, match=r"gone\.npz: not a readable ground-truth NPZ"):
        load_ground_truth(tmp_path / "gone.npz")
