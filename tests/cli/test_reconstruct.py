"""`mocap reconstruct` on small simulated sessions: the bad-input cases of the issue."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reconstruction.cli import main


def _simulate(out: Path, seconds: float, cameras: int = 3):
    from reconstruction.simulation.session import SimulationConfig, simulate_session

    cfg = SimulationConfig(cameras=cameras, seconds=seconds, resolution=(320, 240), clock_offsets_ms=(0.0,) * cameras,
                           seed=3)
    return simulate_session(out, cfg)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("session")
    return _simulate(root / "full", 0.5)


def _quiet_config(tmp_path: Path) -> Path:
    path = tmp_path / "quiet.yaml"
    path.write_text("output:\n  overlay_video: false\n")
    return path


def _run(capsys, *argv):
    code = main(["reconstruct", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recording_whose_serial_is_not_in_the_rig_is_named(session, tmp_path, capsys):
    from calibration.rig_io import load_rig, save_rig
    from calibration.camera import Rig
    from dataclasses import replace

    rig = load_rig(session.rig_yaml)
    other = Rig((replace(rig.cameras[0], name="111111111111", serial="111111111111"),) + rig.cameras[1:])
    rig_path = save_rig(other, tmp_path / "other.yaml")
    code, out, err = _run(capsys, session.out_dir, "--calibration", rig_path, "--output", tmp_path / "out",
                          "--detections", session.ground_truth)
    assert code == 2
    assert session.recordings[0].name in err and rig.cameras[0].serial in err
    assert "not in the calibration" in err


def test_unknown_model_lists_the_known_ones(session, tmp_path, capsys):
    code, out, err = _run(capsys, session.out_dir, "--calibration", session.rig_yaml, "--output", tmp_path / "o",
                          "--model", "openpose-huge")
    assert code == 2
    assert "openpose-huge" in err and "movenet-thunder" in err and "movenet-lightning" in err


def test_single_camera_gives_depth_only_3d(session, tmp_path, capsys):
    code, out, err = _run(capsys, session.recordings[1], "--calibration", session.rig_yaml, "--output",
                          tmp_path / "one", "--detections", session.ground_truth, "--config", _quiet_config(tmp_path))
    assert code == 0, err
    assert "depth-only" in out
    quality = json.loads((tmp_path / "one" / "quality.json").read_text())
    assert quality["cameras"] == [session.rig.cameras[1].name]
    assert quality["completeness"] > 0.5
    truth = np.load(session.ground_truth)["xyz"]
    xyz = np.load(tmp_path / "one" / "points3d.npz")["xyz"]
    err3d = np.linalg.norm(xyz - truth[: len(xyz)], axis=-1)
    assert np.nanmedian(err3d) < 0.05  # metric from one RGB-D camera (true 2D, noisy depth)


def test_much_shorter_recording_leaves_that_view_missing(session, tmp_path, capsys):
    short = _simulate(tmp_path / "short", 0.2)  # same seed and rig: the first frames of the same motion
    folder = tmp_path / "mixed"
    folder.mkdir()
    for rec in session.recordings[:2]:
        shutil.copy(rec, folder / rec.name)
    shutil.copy(short.recordings[2], folder / short.recordings[2].name)
    code, out, err = _run(capsys, folder, "--calibration", session.rig_yaml, "--output", tmp_path / "out",
                          "--detections", session.ground_truth, "--config", _quiet_config(tmp_path))
    assert code == 0, err
    assert short.recordings[2].name in out and "missing after its end" in out
    kp = np.load(tmp_path / "out" / "keypoints2d" / f"{session.rig.cameras[2].name}.npz")["keypoints2d"]
    n_short = len(short.timestamps_ms)
    assert kp.shape[0] == len(session.timestamps_ms)  # the rest is reconstructed
    assert np.isfinite(kp[:n_short, 0, :, 0]).any()
    assert np.all(np.isnan(kp[n_short:, 0]))  # that view is missing after its end
    quality = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert quality["completeness"] > 0.9
