"""Intrinsics from projected board corners with known answers; outlier images are rejected."""
import numpy as np
import pytest

from calibration.board import BoardSpec
from calibration.detect import Detection
from calibration.errors import CalibrationError
from calibration.intrinsics import IntrinsicsConfig, calibrate_intrinsics
from reconstruction.simulation.boards import projected_detections, random_board_poses
from reconstruction.simulation.rigs import ring_rig


SPEC = BoardSpec(squares=(9, 6), square_length=0.08, marker_length=0.06)


def _views(rng, num_frames=40, noise=0.2):
    rig = ring_rig(1, dist=(-0.05, 0.02, 0.0, 0.0, 0.0))
    poses = random_board_poses(rig, SPEC, num_frames, rng, near_fraction=1.0, near_distance=(0.6, 1.2), max_tilt_deg=40)
    return rig[0], projected_detections(rig, SPEC, poses, noise / np.sqrt(2), rng)["cam0"]


def test_recovers_known_intrinsics(rng):
    cam, dets = _views(rng)
    result = calibrate_intrinsics(dets, SPEC, cam.image_size, IntrinsicsConfig(zero_tangent=True))
    assert result.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.003)
    assert result.K[1, 1] == pytest.approx(cam.K[1, 1], rel=0.003)
    np.testing.assert_allclose(result.K[:2, 2], cam.K[:2, 2], atol=1.5)
    np.testing.assert_allclose(result.dist[:2], cam.dist[:2], atol=0.02)
    # 0.2 px RMS injected; the fit absorbs a little of it.
    assert 0.16 < result.rms < 0.22
    assert not result.rejected and len(result.used) == len(dets)


def test_outlier_image_is_rejected_with_reason(rng):
    cam, dets = _views(rng)
    bad = sorted(dets)[3]
    d = dets[bad]
    dets[bad] = Detection(d.ids, d.corners + rng.normal(scale=4.0, size=d.corners.shape), d.image_size)
    result = calibrate_intrinsics(dets, SPEC, cam.image_size, IntrinsicsConfig(zero_tangent=True))
    assert [name for name, _ in result.rejected] == [bad]
    assert "RMS" in result.rejected[0][1]
    assert result.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.003)


def test_empty_and_small_views_are_reported(rng):
    cam, dets = _views(rng, num_frames=12)
    first = dets[sorted(dets)[0]]
    dets["blank"] = Detection(np.zeros(0, int), np.zeros((0, 2)), cam.image_size)
    dets["few"] = Detection(first.ids[:4], first.corners[:4], cam.image_size)
    result = calibrate_intrinsics(dets, SPEC, cam.image_size)
    reasons = dict(result.rejected)
    assert reasons["blank"] == "no board found" and "only 4 corners" in reasons["few"]


def test_too_few_images_names_the_camera(rng):
    cam, dets = _views(rng, num_frames=2)
    with pytest.raises(CalibrationError, match=r"camera 'left': only \d usable board images"):
        calibrate_intrinsics(dets, SPEC, cam.image_size, camera="left")
