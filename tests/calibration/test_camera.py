"""calibration/camera.py: Camera projection against OpenCV, undistortion, Rodrigues, Rig transforms and
camera matching by name or serial."""
from dataclasses import replace

import numpy as np
import pytest

from calibration.camera import Camera, Rig, matrix_to_rodrigues, rodrigues_to_matrix


def test_projection_matches_opencv(rig4, rng):
    import cv2

    X = rng.uniform([-0.5, -0.5, 0.2], [0.5, 0.5, 1.8], size=(200, 3))
    for cam in rig4:
        ours = cam.project(X)
        ref, _ = cv2.projectPoints(X, cam.rvec, cam.t, cam.K, cam.dist)
        np.testing.assert_allclose(ours, ref.reshape(-1, 2), atol=1e-9)


def test_undistort_inverts_distortion(rig4, rng):
    X = rng.uniform([-0.5, -0.5, 0.2], [0.5, 0.5, 1.8], size=(50, 3))
    cam = rig4[0]
    distorted = cam.project(X)
    ideal = Camera("ideal", cam.image_size, cam.K, np.zeros(5), cam.R, cam.t).project(X)
    np.testing.assert_allclose(cam.undistort_points(distorted), ideal, atol=1e-6)


def test_nan_in_nan_out(rig4):
    X = np.array([[np.nan, 0, 1.0], [0, 0, 1.0]])
    uv = rig4[1].project(X)
    assert np.isnan(uv[0]).all() and np.isfinite(uv[1]).all()
    und = rig4[1].undistort_points(uv)
    assert np.isnan(und[0]).all() and np.isfinite(und[1]).all()


def test_center_and_rig_shapes(rig4):
    assert rig4.centers.shape == (4, 3)
    np.testing.assert_allclose(np.linalg.norm(rig4.centers[:, :2], axis=1), 3.0)
    assert rig4.project(np.zeros((7, 3)) + [0, 0, 1]).shape == (7, 4, 2)
    # the target is seen at the principal point of every camera
    np.testing.assert_allclose(rig4.project(np.array([0, 0, 1.0])), [[320, 240]] * 4, atol=1e-6)


def test_rodrigues_round_trip(rng):
    rvec = rng.normal(size=(10, 3))
    rvec = rvec / np.linalg.norm(rvec, axis=1, keepdims=True) * rng.uniform(0, 3.0, size=(10, 1))
    np.testing.assert_allclose(matrix_to_rodrigues(rodrigues_to_matrix(rvec)), rvec, atol=1e-9)


def test_bad_camera_messages():
    with pytest.raises(ValueError, match=r"K must be \(3, 3\), got \(3, 4\)"):
        Camera("c", (640, 480), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="unique"):
        c = Camera("c", (640, 480), np.eye(3))
        Rig((c, c))


def test_rig_transform_keeps_projection(rig4, rng):
    from scipy.spatial.transform import Rotation

    R = Rotation.from_rotvec([0.1, -0.2, 0.3]).as_matrix()
    t = np.array([0.5, -1.0, 2.0])
    X = rng.uniform(-0.5, 0.5, size=(20, 3)) + [0, 0, 1]
    moved = rig4.transformed(R, t)
    np.testing.assert_allclose(moved.project(X @ R.T + t), rig4.project(X), atol=1e-8)


def _named_rig(rig4):
    """cam01..cam04 with serials 900000000001..4; the last one named by its serial, as a RealSense rig is."""
    names = ["cam01", "cam02", "side_left", "900000000004"]
    return Rig(tuple(replace(c, name=n, serial=f"90000000000{i + 1}") for i, (c, n) in enumerate(zip(rig4, names))))


def test_rig_match_by_name_serial_and_loose_name(rig4):
    rig = _named_rig(rig4)
    assert rig.match("cam02") is rig[1]  # exact name
    assert rig.match("900000000003") is rig[2]  # exact serial
    assert rig.match(900000000001) is rig[0]  # a serial read as a number
    for loose in ("CAM_01", "cam01_json", "Cam-01", "CAM01_JSON"):  # files and OpenPose folders of camera cam01
        assert rig.match(loose) is rig[0], loose
    assert rig.match("SIDE-LEFT") is rig[2]
    assert rig.match("900000000004.db3") is None  # the file's name, not its stem: no camera
    assert rig.match("cam05") is None and rig.match("") is None


def test_rig_match_ambiguous_gives_none(rig4):
    rig = Rig(tuple(replace(c, name=n) for c, n in zip(rig4, ["cam_01", "CAM01", "cam02", "cam03"])))
    assert rig.match("cam_01") is rig[0] and rig.match("CAM01") is rig[1]  # exact first
    assert rig.match("cam01") is None and rig.match("Cam-01_json") is None  # loosely both: no guess
    # one camera's name and another's serial both loosely "cam04": ambiguous as well
    rig = Rig((replace(rig4[0], name="cam04"), replace(rig4[1], name="b", serial="CAM_04")))
    assert rig.match("cam-04") is None
    assert rig.match("cam04") is rig[0] and rig.match("CAM_04") is rig[1]  # exact name, exact serial
