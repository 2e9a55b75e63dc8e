"""reconstruction/kinematics/markers.py: our joints as a marker set's markers (names, aliases,
derived Neck/Hip), and the message listing the markers the data lacks."""
import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.kinematics.markers import MarkerMismatchError, markers_from_points, read_marker_set
from reconstruction.skeleton import load_skeleton


def test_coco17_gets_a_neck_at_mid_shoulders_and_keeps_its_values():
    names = load_skeleton("coco17").joint_names
    xyz = np.random.default_rng(0).normal(size=(3, len(names), 3))
    data = markers_from_points(xyz, names, ["Nose", "Neck", "LShoulder", "RShoulder", "LBigToe"][:4], "p.npz", "m.xml")
    assert data.derived == ("Neck",)
    np.testing.assert_allclose(data.xyz[:, 1], 0.5 * (xyz[:, 5] + xyz[:, 6]))
    np.testing.assert_allclose(data.xyz[:, 2], xyz[:, names.index("left_shoulder")])
    assert "left_eye" in data.unused


def test_aliases_mid_hip_and_foot_index():
    names = ("mid_hip", "left_foot_index", "left_hip", "right_hip")
    xyz = np.arange(24, dtype=float).reshape(2, 4, 3)
    data = markers_from_points(xyz, names, ["CHip", "LBigToe"], "p", "m")
    np.testing.assert_array_equal(data.xyz[:, 0], xyz[:, 0])
    np.testing.assert_array_equal(data.xyz[:, 1], xyz[:, 1])
    assert data.derived == ()


def test_missing_markers_are_listed():
    names = load_skeleton("coco17").joint_names
    with pytest.raises(MarkerMismatchError) as err:
        markers_from_points(np.zeros((1, 17, 3)), names, ["LShoulder", "LBigToe", "RHeel", "Head"], "pts.trc",
                            "Markers_Body25b.xml")
    message = str(err.value)
    assert "pts.trc" in message and "LBigToe, RHeel, Head" in message and "LShoulder" in message  # what it has
    assert isinstance(err.value, FileFormatError)


def test_read_marker_set(shared_dir, tmp_path):
    names = read_marker_set(shared_dir / "data/opensim/pose2sim_setup/Markers_Coco17.xml")
    assert names[:3] == ("Nose", "Neck", "LShoulder") and len(names) == 14
    bad = tmp_path / "bad.xml"
    bad.write_text("<OpenSimDocument><MarkerSet>")
    with pytest.raises(FileFormatError, match="bad.xml"):
        read_marker_set(bad)
