"""reconstruction/formats/mot.py: .mot/.sto round trip, reading OpenSim's own files, bad files."""
import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.formats.mot import Storage, read_mot, write_mot


def test_round_trip_with_nan(tmp_path):
    values = np.random.default_rng(0).normal(size=(5, 3)) * 40
    values[2, 1] = np.nan
    s = Storage(np.arange(5) / 60, values, ("hip_flexion_r", "knee_angle_r", "pelvis_tx"))
    back = read_mot(write_mot(tmp_path / "a.mot", s))
    assert back.names == s.names and back.in_degrees and back.name == "Coordinates"
    np.testing.assert_allclose(back.values, values, rtol=1e-9)
    np.testing.assert_allclose(back.time, s.time, atol=1e-12)
    np.testing.assert_allclose(back.column("knee_angle_r"), values[:, 1], rtol=1e-9)


def test_reads_opensim_header(tmp_path):
    text = ("Coordinates\nversion=1\nnRows=2\nnColumns=3\ninDegrees=yes\n\nUnits are S.I. units\n\nendheader\n"
            "time\ta\tb\n      0.01666667\t  1.5\t-2\n      0.03333333\t 2.5\t-3\n")
    (tmp_path / "o.mot").write_text(text)
    s = read_mot(tmp_path / "o.mot")
    assert s.names == ("a", "b") and s.values.shape == (2, 2) and s.in_degrees


@pytest.mark.parametrize("text, message", [("no header\n1 2\n", "endheader"),
                                           ("x\nendheader\ntime\ta\n1\n", "line 4 has 1 values"),
                                           ("x\nendheader\nframe\ta\n", "first column must be 'time'")])
def test_bad_files(tmp_path, text, message):
    (tmp_path / "b.mot").write_text(text)
    with pytest.raises(FileFormatError, match=message):
        read_mot(tmp_path / "b.mot")
