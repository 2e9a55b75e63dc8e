"""`mocap calibrate`: synthetic images through the CLI, error messages, and the real Pose2Sim demo
checkerboard images against the Qualisys reference."""
import json

import numpy as np
import pytest

from calibration.board import BoardSpec
from reconstruction.cli import main
from reconstruction.simulation.boards import random_board_poses, write_board_images
from reconstruction.simulation.rigs import ring_rig
from tests.support import CONFIGS


BOARD_YAML = """type: charuco
squares: [5, 4]
square_length: 0.15
marker_length: 0.11
dictionary: DICT_5X5_100
legacy_pattern: false
"""


@pytest.fixture
def three_cameras(tmp_path):
    rig = ring_rig(3, radius=2.5, dist=(-0.05, 0.02, 0.0, 0.0, 0.0))
    spec = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11)
    poses = random_board_poses(rig, spec, 8, np.random.default_rng(4), near_fraction=0.0,
                               centre=(0.0, 0.0, 1.2), spread=(0.4, 0.4, 0.2), max_tilt_deg=20)
    write_board_images(rig, spec, poses, tmp_path / "images")
    board = tmp_path / "board.yaml"
    board.write_text(BOARD_YAML)
    return tmp_path, rig


def test_cli_calibrates_with_fixed_intrinsics_and_writes_report(three_cameras, capsys):
    from calibration.rig_io import load_rig, save_rig

    tmp, rig = three_cameras
    save_rig(rig, tmp / "factory.yaml")
    code = main(["calibrate", "--board", str(tmp / "board.yaml"), "--images", str(tmp / "images"),
                 "--output", str(tmp / "rig.yaml"), "--fix-intrinsics", str(tmp / "factory.yaml"),
                 "--report", str(tmp / "report")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "RMS reprojection error" in out.out and "rig written to" in out.out
    est = load_rig(tmp / "rig.yaml")
    assert est.names == rig.names
    truth = rig.transformed(rig[0].R, rig[0].t)
    assert np.abs(est.centers - truth.centers).max() < 0.02
    report = json.loads((tmp / "report" / "report.json").read_text())
    assert [c["intrinsics"] for c in report["cameras"]] == ["fixed"] * len(rig)
    assert report["rms_px"] < 0.5 and (tmp / "report" / "layout.png").is_file()


def test_cli_error_is_one_message(tmp_path, capsys):
    (tmp_path / "board.yaml").write_text(BOARD_YAML)
    (tmp_path / "empty").mkdir()
    code = main(["calibrate", "--board", str(tmp_path / "board.yaml"), "--images", str(tmp_path / "empty"),
                 "--output", str(tmp_path / "rig.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mocap calibrate: error:") and "no images found" in err
    assert "Traceback" not in err and not (tmp_path / "rig.yaml").exists()


def test_cli_unknown_board_key(tmp_path, capsys):
    (tmp_path / "board.yaml").write_text(BOARD_YAML + "colour: red\n")
    code = main(["calibrate", "--board", str(tmp_path / "board.yaml"), "--images", str(tmp_path),
                 "--output", str(tmp_path / "rig.yaml")])
    assert code == 2 and "'colour'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.shared
def test_pose2sim_demo_intrinsics_against_qualisys(shared_dir, tmp_path, capsys):
    """Issue acceptance: real checkerboard images, --intrinsics-only: focal lengths within 1.5 % of
    the Qualisys reference, RMS < 1 px, the report names the rejected images."""
    from calibration.rig_io import load_rig

    calib = shared_dir / "data" / "pose2sim_demo" / "S00_Demo_Session" / "S00_Calibration"
    board = CONFIGS / "boards" / "checkerboard_4x7.yaml"
    code = main(["calibrate", "--board", str(board), "--images", str(calib / "intrinsics"),
                 "--output", str(tmp_path / "rig.yaml"), "--intrinsics-only", "--report", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0
    est = load_rig(tmp_path / "rig.yaml")
    ref = load_rig(calib / "Calib.qca.txt")
    assert len(est) == len(ref) == 4
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    lines = []
    for cam, ref_cam in zip(est, ref):  # folders int_cam01_img.. sort like cam_01..
        assert cam.image_size == ref_cam.image_size
        rel = np.array([cam.K[0, 0] / ref_cam.K[0, 0] - 1, cam.K[1, 1] / ref_cam.K[1, 1] - 1])
        lines.append(f"{cam.name}: fx {cam.K[0, 0]:.1f} vs {ref_cam.K[0, 0]:.1f} ({rel[0] * 100:+.2f} %)")
        assert np.abs(rel).max() < 0.015, lines[-1]
    print("\n".join(lines), f"\nRMS {report['rms_px']} px")
    assert report["rms_px"] < 1.0
    assert all(c["rms_px"] < 1.0 for c in report["cameras"])
    rejected = {(r["camera"], r["image"]) for r in report["rejected"]}
    assert rejected and all(r["reason"] for r in report["rejected"])
    text = (tmp_path / "report" / "report.txt").read_text()
    for camera, image in rejected:
        assert f"{camera}/{image}" in text and image in out
