"""calibration/detect.py: board detection on rendered views (known corner pixels), the detection cache, bad images."""
import os

import cv2
import numpy as np
import pytest

from calibration.board import BoardSpec
from calibration.detect import BoardDetector, Detection, detect_image_file
from capture.errors import FileFormatError
from reconstruction.simulation.boards import board_facing, render_board_view


CHARUCO = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11)
CHECKER = BoardSpec(type="checkerboard", inner_corners=(6, 4), square_length=0.1)


def _view(rig4, spec, tilt=(20.0, -15.0, 10.0), distance=2.0):
    cam = rig4[0]
    position = cam.center + distance * cam.R[2]
    return cam, render_board_view(cam, spec, *board_facing(position, cam.center, tilt, spec))


def test_charuco_corners_match_truth(rig4):
    cam, (image, corners, visible) = _view(rig4, CHARUCO)
    det = BoardDetector(CHARUCO).detect(image)
    assert len(det) == visible.sum() == CHARUCO.num_corners
    err = det.corners - corners[det.ids]
    assert np.sqrt(np.mean(np.sum(err ** 2, axis=1))) < 0.15
    assert det.image_size == cam.image_size


def test_checkerboard_corners_match_truth_up_to_half_turn(rig4):
    _, (image, corners, _) = _view(rig4, CHECKER, tilt=(15.0, 10.0, 5.0))
    det = BoardDetector(CHECKER).detect(image)
    assert len(det) == CHECKER.num_corners
    # A checkerboard has no orientation: its corner order may come back reversed.
    err = min(np.abs(det.corners - corners).max(), np.abs(det.corners[::-1] - corners).max())
    assert err < 0.3


def test_partial_charuco_view_gives_only_visible_corners(rig4):
    cam = rig4[0]
    # Board centre near the image's right border: part of it is outside.
    ray = np.array([0.45, 0.0, 1.0])
    position = cam.R.T @ (2.0 * ray / np.linalg.norm(ray) - cam.t)
    image, corners, visible = render_board_view(cam, CHARUCO, *board_facing(position, cam.center, spec=CHARUCO))
    det = BoardDetector(CHARUCO).detect(image)
    assert 6 <= len(det) < CHARUCO.num_corners
    assert set(det.ids) <= set(np.flatnonzero(visible))
    assert np.abs(det.corners - corners[det.ids]).max() < 0.5


def test_no_board_and_wrong_dictionary_give_empty(rig4):
    blank = np.full((480, 640), 128, np.uint8)
    assert not BoardDetector(CHARUCO).detect(blank).found
    assert not BoardDetector(CHECKER).detect(blank).found
    _, (image, _, _) = _view(rig4, CHARUCO)
    wrong = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11, dictionary="DICT_4X4_50")
    assert not BoardDetector(wrong).detect(image).found


def test_detection_cache_keyed_by_file_and_spec(rig4, tmp_path, monkeypatch):
    _, (image, corners, _) = _view(rig4, CHARUCO)
    path = tmp_path / "f0000.png"
    cv2.imwrite(str(path), image)
    cache = tmp_path / "cache"
    first = detect_image_file(path, CHARUCO, cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def boom(self, image):
        raise AssertionError("detector called although the cache holds the result")

    monkeypatch.setattr(BoardDetector, "detect", boom)
    again = detect_image_file(path, CHARUCO, cache)
    np.testing.assert_array_equal(again.ids, first.ids)
    np.testing.assert_allclose(again.corners, first.corners)
    assert again.image_size == first.image_size
    monkeypatch.undo()
    # A new modification time or another spec is another cache entry.
    os.utime(path, ns=(1, 1))
    detect_image_file(path, CHARUCO, cache)
    other = BoardSpec(squares=(5, 4), square_length=0.2, marker_length=0.15)
    detect_image_file(path, other, cache)
    assert len(list(cache.glob("*.npz"))) == 3


def test_unreadable_image_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(FileFormatError, match="broken.png"):
        detect_image_file(path, CHARUCO)


def test_detection_validates_lengths():
    with pytest.raises(ValueError, match="differ"):
        Detection(np.arange(3), np.zeros((2, 2)), (640, 480))
