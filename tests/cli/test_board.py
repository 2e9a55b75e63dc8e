"""`mocap board`: a printable board at true scale; a bad extension is one message."""
from calibration.board import BoardSpec, render_board
from tests.support import ROOT

CONFIGS = ROOT / "configs" / "boards"


def test_cli_board_png_and_bad_extension(tmp_path, capsys):
    from reconstruction.cli import main

    out = tmp_path / "board.png"
    assert main(["board", str(CONFIGS / "charuco_7x5.yaml"), "--output", str(out), "--dpi", "100"]) == 0
    import cv2

    image = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert image.shape == render_board(BoardSpec(), dpi=100, margin_m=0.01).shape
    assert "40 mm" in capsys.readouterr().out
    assert main(["board", str(CONFIGS / "charuco_7x5.yaml"), "--output", str(tmp_path / "b.svg")]) == 2
    assert ".pdf or .png" in capsys.readouterr().err
