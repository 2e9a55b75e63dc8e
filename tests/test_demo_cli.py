"""`mocap demo`: the built-in simulated example end to end, and the reference comparison helper."""
import json

import numpy as np
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


def test_align_rig_undoes_a_rigid_motion_and_reports_what_remains():
    from dataclasses import replace

    from scipy.spatial.transform import Rotation

    from calibration.camera import Rig
    from reconstruction.simulation.rigs import ring_rig
    from calibration.rig_alignment import align_rig

    truth = ring_rig(4, 3.0, 1.5)
    Q = Rotation.from_euler("xyz", [10, -20, 75], degrees=True).as_matrix()  # X_other = Q X_truth + s
    s = np.array([0.5, -1.0, 2.0])
    moved = [replace(c, R=c.R @ Q.T, t=c.t - c.R @ Q.T @ s) for c in truth.cameras]
    # one camera also off by 1 degree about its own optical axis (a centre error would move the fit)
    turn = Rotation.from_euler("z", 1.0, degrees=True).as_matrix()
    moved[2] = replace(moved[2], R=turn @ moved[2].R, t=turn @ moved[2].t)
    placed, acc = align_rig(Rig(tuple(reversed(moved))), truth)  # any order: matched by name
    assert placed.names == truth.names
    np.testing.assert_allclose(acc.position_m, 0.0, atol=1e-9)
    np.testing.assert_allclose(acc.rotation_deg, [0.0, 0.0, 1.0, 0.0], atol=1e-4)  # arccos near 1
    np.testing.assert_allclose(acc.R, Q.T, atol=1e-9)
    np.testing.assert_allclose(placed.cameras[0].R, truth.cameras[0].R, atol=1e-9)
    np.testing.assert_allclose(placed.cameras[0].t, truth.cameras[0].t, atol=1e-9)
