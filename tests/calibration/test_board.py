"""calibration/board.py: board specs from YAML, corner layout, true-scale drawing (PNG/PDF)."""
import re
import zlib

import numpy as np
import pytest

from calibration.board import BoardSpec, board_scale, load_board, render_board, save_board
from capture.errors import ConfigError
from tests.support import ROOT

CONFIGS = ROOT / "configs" / "boards"


def test_example_boards_load():
    charuco = load_board(CONFIGS / "charuco_7x5.yaml")
    assert charuco.type == "charuco" and charuco.squares == (7, 5) and charuco.dictionary == "DICT_5X5_100"
    assert charuco.corner_grid == (6, 4) and charuco.num_corners == 24
    checker = load_board(CONFIGS / "checkerboard_4x7.yaml")
    assert checker.type == "checkerboard" and checker.corner_grid == (7, 4) and checker.square_length == 0.06
    assert checker.num_corners == 28


def test_object_points_layout():
    spec = BoardSpec(type="checkerboard", inner_corners=(4, 3), square_length=0.05)
    pts = spec.object_points()
    assert pts.shape == (12, 3)
    # id = row * columns + column; first corner one square in from the outer corner.
    np.testing.assert_allclose(pts[0], [0.05, 0.05, 0])
    np.testing.assert_allclose(pts[1] - pts[0], [0.05, 0, 0])
    np.testing.assert_allclose(pts[4] - pts[0], [0, 0.05, 0])
    # Same layout as OpenCV's own ChArUco board.
    charuco = BoardSpec()
    np.testing.assert_allclose(charuco.object_points(), charuco.cv_board().getChessboardCorners(), atol=1e-7)


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("type: charuco\nsqaures: [7, 5]\n")
    with pytest.raises(ConfigError, match=r"board\.yaml.*'sqaures'"):
        load_board(path)


@pytest.mark.parametrize("text, match", [
    ("dictionary: DICT_9X9_1\n", "dictionary"),
    ("marker_length: 0.05\n", "marker_length"),
    ("squares: [12, 10]\ndictionary: DICT_4X4_50\n", "needs 60 markers"),
    ("type: checkerboard\ninner_corners: [1, 4]\n", "inner_corners"),
    ("type: circles\n", "type"),
    ("square_length: -0.1\n", "square_length"),
])
def test_invalid_specs_raise_with_the_field(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_board(path)
    assert "bad.yaml" in str(info.value)


@pytest.mark.parametrize("spec", [BoardSpec(), BoardSpec(type="checkerboard", inner_corners=(7, 4), square_length=0.06)])
def test_render_is_true_scale_and_detectable(spec):
    from calibration.detect import BoardDetector

    image = render_board(spec, px_per_m=1000, margin_m=0.02)
    scale, square_px, margin_px = board_scale(spec, px_per_m=1000, margin_m=0.02)
    cols, rows = spec.square_grid
    assert image.shape == (rows * square_px + 2 * margin_px, cols * square_px + 2 * margin_px)
    det = BoardDetector(spec).detect(image)
    assert len(det) == spec.num_corners
    expected = spec.object_points()[det.ids, :2] * scale + margin_px - 0.5
    np.testing.assert_allclose(det.corners, expected, atol=0.05)


def test_pdf_page_has_the_board_size(tmp_path):
    spec = BoardSpec()
    path = save_board(spec, tmp_path / "board.pdf", dpi=150, margin_m=0.01)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    box = [float(v) for v in re.search(rb"/MediaBox \[([^\]]+)\]", data).group(1).split()]
    width_mm, height_mm = box[2] / 72 * 25.4, box[3] / 72 * 25.4
    assert width_mm == pytest.approx(280 + 20, abs=0.01) and height_mm == pytest.approx(200 + 20, abs=0.01)
    # The embedded image is the rendered board.
    w = int(re.search(rb"/Width (\d+)", data).group(1))
    h = int(re.search(rb"/Height (\d+)", data).group(1))
    start = data.index(b"stream\n", data.index(b"/Subtype /Image")) + len(b"stream\n")
    length = int(re.search(rb"/Subtype /Image[^>]*/Length (\d+)", data).group(1))
    pixels = np.frombuffer(zlib.decompress(data[start:start + length]), np.uint8).reshape(h, w)
    np.testing.assert_array_equal(pixels, render_board(spec, dpi=150, margin_m=0.01))
    # xref offsets point at the objects.
    xref = int(data.rsplit(b"startxref", 1)[1].split()[0])
    offsets = [int(line[:10]) for line in data[xref:].split(b"\n")[3:8]]
    assert all(data[o:].startswith(f"{i} 0 obj".encode()) for i, o in enumerate(offsets, start=1))
