"""capture/db3_index.py: the sqlite index of a written .db3: timestamps, frame numbers, domains, image counts."""
import sqlite3

import numpy as np
import pytest

from capture.db3_index import image_counts, index_db3
from capture.simulated_cameras import write_test_pattern


pytest.importorskip("pyrealsense2")


def test_index_and_counts_of_a_written_recording(tmp_path):
    numbers = np.array([3, 4, 5, 7, 8, 12])  # frames 6, 9-11 dropped by the "camera"
    stamps = 1.7e12 + numbers * 1000.0 / 30 + np.array([0.0, 0.25, -0.125, 0.5, 0.0, 0.375])
    path = write_test_pattern(tmp_path / "cam.db3", "900000000001", stamps, numbers, size=(32, 24))
    index = index_db3(path)
    assert sorted(index) == ["color", "depth"]
    for key in ("color", "depth"):
        np.testing.assert_array_equal(index[key].frame_numbers, numbers)
        np.testing.assert_allclose(index[key].timestamps_ms, stamps, rtol=0, atol=1e-3)
        assert index[key].domain == "global_time" and len(index[key]) == 6
    assert image_counts(path) == {"color": 6, "depth": 6}
    only_color = write_test_pattern(tmp_path / "c.db3", "2", stamps[:4], numbers[:4], size=(32, 24), depth=False)
    assert sorted(index_db3(only_color)) == ["color"] and image_counts(only_color) == {"color": 4}


def test_what_is_not_a_librealsense_db3_gives_none(tmp_path):
    text = tmp_path / "notes.db3"
    text.write_text("not sqlite")
    assert index_db3(text) is None and image_counts(text) is None
    other = tmp_path / "other.db3"  # sqlite, but no rosbag2 tables
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    assert index_db3(other) is None and image_counts(other) is None
    assert index_db3(tmp_path / "missing.db3") is None
