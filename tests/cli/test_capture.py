"""`mocap capture` end to end with simulated cameras (small, short)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reconstruction.cli import main
from tests.support import ROOT, playback


SMALL = """
defaults: {resolution: [320, 240], fps: 15}
simulation: {loop_seconds: 0.4, max_clock_offset_ms: 5.0, jitter_ms: 0.3, seed: 2}
"""


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "capture.yaml"
    path.write_text(SMALL)
    return path


def test_capture_simulated_session_folder(tmp_path, small_config, capsys):
    from calibration.rig_io import load_rig

    out = tmp_path / "session"
    rc = main(["capture", "--config", str(small_config), "--simulate", "2", "--duration", "1.5", "--out", str(out),
               "--live-3d"])
    assert rc == 0
    manifest = json.loads((out / "session.json").read_text())
    serials = [c["serial"] for c in manifest["cameras"]]
    names = sorted(p.name for p in out.iterdir())
    assert {f"{s}.db3" for s in serials} | {"session.json", "rig.yaml", "ground_truth.npz"} <= set(names)
    assert list(load_rig(out / "rig.yaml").names) == serials  # rig cameras named by serial, as reconstruct reads
    assert manifest["status"] == "complete" and manifest["calibration"] == "rig.yaml (simulated)"
    offsets = manifest["simulation"]["clock_offsets_ms"]
    for cam in manifest["cameras"]:
        assert cam["frames_written"] == cam["frames_acquired"] >= 20 and cam["software_drops"]["total"] == 0
        assert len(playback(out / cam["file"])["Depth"]) == cam["frames_written"]
        assert manifest["sync"]["offset_to_reference_ms"][cam["serial"]] == pytest.approx(
            offsets[cam["serial"]] - offsets[serials[0]], abs=0.5)
    live = manifest["live"]
    assert live["processed"] > 10 and set(live["latency_ms"]) >= {"detect2d", "triangulate", "depth_fusion", "filter"}
    assert (out / "live_3d.rrd").exists() or (out / "live_3d.npz").exists()
    assert "session complete" in capsys.readouterr().out


def test_capture_refuses_non_empty_folder(tmp_path, small_config, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "x.txt").write_text("keep")
    assert main(["capture", "--config", str(small_config), "--simulate", "1", "--duration", "1", "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_capture_unsupported_mode_lists_supported(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("defaults: {resolution: [1024, 768], fps: 30}\nsimulation: {loop_seconds: 0.1}\n")
    rc = main(["capture", "--config", str(cfg), "--simulate", "1", "--duration", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot stream depth at 1024x768@30" in err and "848x480@30" in err


def test_capture_config_serial_not_connected(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL + 'cameras: {"123456789012": {fps: 30}}\n')
    rc = main(["capture", "--config", str(cfg), "--simulate", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "camera 123456789012 is not connected (connected: 900000000000, 900000000001)" in err


def test_sigint_finalizes_files_and_manifest(tmp_path, small_config):
    out = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "reconstruction", "capture", "--config", str(small_config),
                             "--simulate", "2", "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # wait until it records, then a second more
        if line.startswith("recording into"):
            break
        assert time.monotonic() < deadline
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, rest
    manifest = json.loads((out / "session.json").read_text())
    assert manifest["status"] == "interrupted" and "SIGINT" in manifest["reason"]
    for cam in manifest["cameras"]:
        played = playback(out / cam["file"])
        assert len(played["Depth"]) == len(played["Color"]) == cam["frames_written"] == cam["frames_acquired"] > 10
