"""`mocap inspect`: prints what a recording holds; bad files give one message and exit code 2."""
import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from capture.simulated_cameras import write_test_pattern  # noqa: E402
from reconstruction.cli import main  # noqa: E402


def test_inspect_real_bag(shared_dir, capsys):
    assert main(["inspect", str(shared_dir / "data/realsense/librealsense_single_depth_color_640x480.bag")]) == 0
    out = capsys.readouterr().out
    assert "serial 728612070259" in out
    assert "depth     640x480 z16    6 fps  2 frames" in out
    assert "color     640x480 rgb8   6 fps  1 frames" in out
    assert "depth scale: 0.001 m/unit" in out
    assert "fx 390.43" in out  # depth intrinsics as recorded


def test_inspect_two_cameras_reports_drops_and_skew(tmp_path, capsys):
    n = np.arange(20)
    a = write_test_pattern(tmp_path / "a.db3", "11", 5000 + n * 33.3, n, size=(64, 48))
    keep = np.delete(n, [4, 5, 12])
    b = write_test_pattern(tmp_path / "b.db3", "22", 5000.5 + keep * 33.3, keep, size=(64, 48))
    assert main(["inspect", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "color     64x48 rgb8   30 fps  17 frames  dropped 3  duplicates 0" in out
    assert "frame sets: 20 (17 complete)" in out
    assert "skew: median 0.500 ms, max 0.500 ms" in out
    assert "22: offset 0.000 ms, dropped 3" in out


def test_inspect_not_a_recording(tmp_path, capsys):
    bad = tmp_path / "x.db3"
    bad.write_text("not sqlite")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mocap inspect: error: ") and "x.db3" in err and "not a recording" in err
    assert len(err.strip().splitlines()) == 1
