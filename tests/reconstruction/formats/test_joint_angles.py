"""reconstruction/formats/joint_angles.py: CSV and NPZ round trips of a joint-angle table."""
import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.formats.joint_angles import JointAngles, read_joint_angles, write_joint_angles


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_round_trip(tmp_path, suffix):
    deg = np.random.default_rng(1).uniform(-90, 90, size=(7, 2))
    deg[3, 0] = np.nan
    table = JointAngles(deg, ("knee_flexion_r", "hip_flexion_r"), 30.0, {"opensim_deg": np.ones((7, 4))})
    back = read_joint_angles(write_joint_angles(tmp_path / f"a{suffix}", table))
    assert back.names == table.names and back.fps == pytest.approx(30.0, rel=1e-6)
    np.testing.assert_allclose(back.degrees, deg, atol=5e-5 if suffix == ".csv" else 0)
    if suffix == ".npz":
        np.testing.assert_array_equal(back.extra["opensim_deg"], np.ones((7, 4)))


def test_bad_type_and_header(tmp_path):
    table = JointAngles(np.zeros((1, 1)), ("a",), 30.0)
    with pytest.raises(FileFormatError, match="expected .csv or .npz"):
        write_joint_angles(tmp_path / "a.txt", table)
    (tmp_path / "b.csv").write_text("x,y\n")
    with pytest.raises(FileFormatError, match="frame,time_s"):
        read_joint_angles(tmp_path / "b.csv")
