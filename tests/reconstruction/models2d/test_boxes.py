"""reconstruction/models2d/boxes.py: person boxes from joints, MultiPose rows, depth foreground, a projected
3D skeleton; smoothing."""
import numpy as np
import pytest

from reconstruction.models2d.boxes import (
    BackgroundDepth, BoxConfig, box_iou, boxes_from_depth, boxes_from_keypoints, boxes_from_multipose,
    boxes_from_skeleton3d, smooth_boxes,
)


def test_boxes_from_keypoints_known_extent():
    kp = np.zeros((2, 5, 3))
    kp[0, :, 0] = [100, 140, 120, 110, 130]
    kp[0, :, 1] = [200, 260, 300, 250, 240]
    kp[0, :, 2] = 0.9
    kp[1] = kp[0]
    kp[1, 1:, 2] = 0.05  # too few confident joints
    b = boxes_from_keypoints(kp, BoxConfig(margin=0.25, min_joints=4, min_size=10))
    # extent 40 x 100, centre (120, 250); side = 100 * 1.5
    np.testing.assert_allclose(b[0], [120 - 75, 250 - 75, 150, 150])
    assert np.isnan(b[1]).all()
    assert boxes_from_keypoints(np.full((3, 17, 3), np.nan)).shape == (3, 4)


def test_boxes_from_multipose_best_or_tracked():
    people = np.array([[[10, 10, 50, 90, 0.9], [200, 20, 260, 120, 0.6], [0, 0, 0, 0, 0]],
                       [[0, 0, 0, 0, 0.0], [0, 0, 0, 0, 0.0], [0, 0, 0, 0, 0]]])
    b = boxes_from_multipose(people)
    np.testing.assert_allclose(b[0], [10, 10, 40, 80])
    assert np.isnan(b[1]).all()
    # following the previous box picks the overlapping person even with a lower score
    b = boxes_from_multipose(people, previous=np.array([[205, 25, 50, 90], [0, 0, 1, 1]]))
    np.testing.assert_allclose(b[0], [200, 20, 60, 100])
    assert box_iou(np.array([0, 0, 2, 2.0]), np.array([1, 1, 2, 2.0])) == pytest.approx(1 / 7)


def test_boxes_from_depth_foreground(rng):
    H, W = 120, 160
    bg_frames = np.full((5, H, W), 3000, np.uint16)  # a wall at 3 m (units: mm)
    bg_frames[:, :10] = 0  # never measured there
    bg_frames = (bg_frames + rng.integers(0, 5, size=bg_frames.shape)).astype(np.uint16)
    bg = BackgroundDepth.from_frames(bg_frames, depth_scale=0.001)
    frame = bg_frames[0].copy()
    frame[30:100, 60:90] = 1800  # a person at 1.8 m
    frame[5:8, 140:143] = 1000  # a small speck: below min_pixels
    b = boxes_from_depth(frame[None], bg, depth_scale=0.001, min_pixels=100, margin=0.0)
    np.testing.assert_allclose(b[0], [59.5, 29.5, 30, 70])
    assert np.isnan(boxes_from_depth(bg_frames[:1], bg, depth_scale=0.001)).all()
    with pytest.raises(ValueError, match="background model"):
        boxes_from_depth(np.zeros((1, 10, 10)), bg)


def test_boxes_from_skeleton3d_contain_the_projections(rig4, rng):
    X = np.array([[0, 0, 1.7], [0.2, 0, 1.4], [-0.2, 0, 1.4], [0.1, 0, 0.9], [-0.1, 0, 0.9], [0.1, 0, 0.05],
                  [-0.1, 0, 0.05], [np.nan, np.nan, np.nan]])
    boxes = boxes_from_skeleton3d(X, rig4)
    assert boxes.shape == (4, 4) and np.isfinite(boxes).all()
    for cam, (x, y, w, h) in zip(rig4.cameras, boxes):
        uv = cam.project(X[:-1])
        assert np.all(uv[:, 0] > x) and np.all(uv[:, 0] < x + w) and np.all(uv[:, 1] > y) and np.all(uv[:, 1] < y + h)
        extent = np.ptp(uv, axis=0).max()
        assert w == pytest.approx(extent * 1.3)
    # behind every camera: no box
    assert np.isnan(boxes_from_skeleton3d(np.full((3, 3), np.nan), rig4)).all()


def test_smooth_boxes_nan_aware():
    T = 9
    b = np.zeros((T, 2, 4))
    b[..., 0] = np.arange(T)[:, None]  # a steady drift: a centred average keeps it
    b[4, 1] = np.nan
    b[6, 0, 0] += 3  # a one-frame jump is spread over the window
    s = smooth_boxes(b, window=3)
    # next to the gap the mean is over the 2 frames present: (2 + 3) / 2 and (5 + 6) / 2
    np.testing.assert_allclose(s[[1, 2, 3, 5, 6, 7], 1, 0], [1, 2, 2.5, 5.5, 6, 7])
    assert np.isnan(s[4, 1]).all()
    assert s[0, 1, 0] == pytest.approx(0.5)  # the first frame: mean of frames 0 and 1
    assert s[6, 0, 0] == pytest.approx(7.0) and s[5, 0, 0] == pytest.approx(6.0)
    np.testing.assert_allclose(smooth_boxes(b, 1), b, equal_nan=True)
