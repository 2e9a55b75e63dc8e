"""`mocap demo`: the built-in simulated example end to end."""
import json

import pytest

from reconstruction.cli import main


@pytest.mark.slow
def test_demo_runs_and_prints_its_accuracy(tmp_path, capsys):
    # A shorter clip than the default 3 s keeps the test quick; the path (board calibration included) is the same.
    code = main(["demo", "--out", str(tmp_path), "--seconds", "1.0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no photograph" in out and "simulated detections" in out
    # Calibrated from the simulated board, not the simulator's rig: its accuracy against the truth.
    assert "calibration: from the simulated board" in out and "rigid alignment" in out
    rms = float(out.split("reprojection RMS")[1].split("px")[0])
    positions = [float(x) for x in out.split("camera position error")[1].split("mm")[0].split(",")]
    rotations = [float(x) for x in out.split("rotation error")[1].split("deg")[0].split(",")]
    assert len(positions) == len(rotations) == 4
    assert 0.1 < rms < 0.6  # corners detected in the rendered images to a few tenths of a pixel
    assert max(positions) < 15.0 and max(rotations) < 0.3
    assert (tmp_path / "calibration" / "report.json").is_file()
    assert "MPJPE with depth fusion" in out and "MPJPE without depth fusion" in out
    with_depth = float(out.split("MPJPE with depth fusion:")[1].split("mm")[0])
    without = float(out.split("MPJPE without depth fusion:")[1].split("mm")[0])
    assert with_depth < 25.0 and with_depth < without
    true_rig = float(out.split("with the simulator's true rig instead of the calibrated one:")[1].split("mm")[0])
    assert without < true_rig + 5.0  # the board calibration costs a few millimetres at most
    rec = tmp_path / "reconstruction"
    for name in ("points3d.npz", "points3d.trc", "points3d.c3d", "quality.json", "plot3d.png", "reconstruction.yaml"):
        assert (rec / name).is_file(), name
    assert len(list(rec.glob("overlay_*.mp4"))) == 4
    quality = json.loads((rec / "quality.json").read_text())
    assert quality["completeness"] == 1.0 and quality["depth_fusion"] is True
    assert str(rec) in out
