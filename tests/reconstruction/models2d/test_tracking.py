"""reconstruction/models2d/tracking.py: the box tracker: crops follow the previous frame's joints; a lost
view gets the detector's box, else ``init_boxes``, else the whole frame; extra passes only after a
loss; ``detect_sequence`` over a multi-view sequence."""
from types import SimpleNamespace

import numpy as np
import pytest

from reconstruction.models2d.boxes import BoxConfig
from reconstruction.models2d.tracking import BoxTracker


class _BlobModel:
    """A stand-in 2D model: its 'joints' are spread over the bright blob of the crop (known answer)."""

    def __new__(cls):
        pytest.importorskip("torch")
        from reconstruction.models2d.interface import KeypointModel2D

        class Blob(KeypointModel2D):
            name, input_size = "blob", 64
            joint_names = tuple(f"j{i}" for i in range(5))

            def predict_crops(self, crops, flip_test=False):
                kp = np.zeros((len(crops), 5, 3))
                for i, c in enumerate(crops):
                    ys, xs = np.nonzero(c[..., 0] > 127)
                    if len(xs) == 0:
                        continue  # score 0: lost
                    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
                    kp[i] = [[x0, y0, 0.9], [x1, y0, 0.9], [x0, y1, 0.9], [x1, y1, 0.9],
                             [(x0 + x1) / 2, (y0 + y1) / 2, 0.9]]
                return np.zeros((len(crops), 5, 16, 16)), kp

        return Blob()


def test_detect_sequence_tracks_and_redetects():
    from reconstruction.models2d.tracking import detect_sequence

    model = _BlobModel()
    H, W = 240, 320

    def frame(x, present=True):
        img = np.zeros((H, W, 3), np.uint8)
        if present:
            img[60:180, x:x + 40] = 255  # a 40 x 120 'person'
        return img

    xs = [100, 104, 108, None, 120, 124]
    frames = [[frame(x if x is not None else 0, x is not None), frame(150)] for x in xs]
    calls = []

    def detector(images):  # a loose box around the blob, off-centre: the refinement passes tighten it
        calls.append(len(images))
        boxes = []
        for img in images:
            ys, xs_ = np.nonzero(img[..., 0] > 127)
            boxes.append([xs_.min() - 30.0, ys.min() - 50.0, 120.0, 200.0] if len(xs_) else [np.nan] * 4)
        return np.array(boxes)

    kp = detect_sequence(model, frames, detector=detector, box_cfg=None, refine_first=2)
    assert kp.shape == (6, 2, 5, 3)
    for t, x in enumerate(xs):
        if x is None:
            assert np.all(kp[t, 0, :, 2] == 0)  # lost: zero score from the model
            continue
        # the blob's centre in image pixels (pixel centres at integers): x + 19.5, 119.5
        np.testing.assert_allclose(kp[t, 0, 4, :2], [x + 19.5, 119.5], atol=3.0)
    np.testing.assert_allclose(kp[:, 1, 4, :2], np.tile([169.5, 119.5], (6, 1)), atol=3.0)
    # the detector ran on frame 0 (both views) and after the loss (one view), not in between
    assert calls == [2, 1]


def test_missing_view_gives_nan_not_an_error():
    from reconstruction.models2d.tracking import detect_sequence

    model = _BlobModel()
    img = np.zeros((100, 100, 3), np.uint8)
    img[20:80, 40:60] = 255
    kp = detect_sequence(model, [[img, img], [img, None], [img, img]])
    assert np.isnan(kp[1, 1]).all() and np.isfinite(kp[[0, 2], 1]).all()
    np.testing.assert_allclose(kp[2, 1, 4, :2], [49.5, 49.5], atol=2.0)


class _ScriptedModel:
    """A stand-in 2D model (the interface's ``predict``): each call returns the next (B, J, 3) keypoints of
    ``script`` for the views it is given (``script(call, view)``), and records the boxes it was given."""

    joint_names = tuple(f"j{i}" for i in range(5))

    def __init__(self, script):
        self.script = script
        self.calls = []  # (views, boxes) per call

    def predict(self, images, boxes, flip_test=False):
        views = [self._view[id(im)] for im in images]
        self.calls.append((views, np.array(boxes, dtype=float)))
        return SimpleNamespace(keypoints=np.stack([self.script(len(self.calls) - 1, v) for v in views]))

    def frame(self, V, shapes=None):
        """V images (recognized by identity, so the model knows each one's view)."""
        shapes = shapes or [(240, 320)] * V
        images = [np.zeros(s + (3,), np.uint8) for s in shapes]
        self._view = {id(im): v for v, im in enumerate(images)}
        return images


def _person(x0, y0, score=0.9):
    """Five joints: the corners of a 40 x 100 px rectangle at (x0, y0) and its centre."""
    return np.array([[x0, y0, score], [x0 + 40, y0, score], [x0, y0 + 100, score], [x0 + 40, y0 + 100, score],
                     [x0 + 20, y0 + 50, score]], dtype=float)


def _box(x0, y0):
    """The box the tracker makes around ``_person(x0, y0)`` (BoxConfig defaults: 25 % margin on each side
    of the longer extent, square): centre (x0 + 20, y0 + 50), side 100 * 1.5."""
    return [x0 + 20 - 75, y0 + 50 - 75, 150, 150]


def test_box_follows_the_previous_frames_joints():
    model = _ScriptedModel(lambda call, v: _person(100 + 10 * call + 50 * v, 60 + 5 * call))
    tracker = BoxTracker(model, refine_first=0)
    for t in range(4):
        kp = tracker.step(model.frame(2))
        np.testing.assert_array_equal(kp, np.stack([_person(100 + 10 * t + 50 * v, 60 + 5 * t) for v in range(2)]))
    assert len(model.calls) == 4  # one model call per frame: nobody was lost after the first
    views, first = model.calls[0]
    np.testing.assert_allclose(first, [[-0.5, -0.5, 320, 240]] * 2)  # nothing known yet: the whole frame
    for t in range(1, 4):  # each frame's crops: around the joints of the frame before
        np.testing.assert_allclose(model.calls[t][1], [_box(100 + 10 * (t - 1) + 50 * v, 60 + 5 * (t - 1))
                                                       for v in range(2)])


def test_a_lost_view_gets_the_detector_box_else_init_boxes_else_the_whole_frame():
    lost = _person(0, 0, score=0.0)  # view 1 loses the person in frame 0

    def script(call, v):
        return lost if (call == 0 and v == 1) else _person(100, 60)

    detected = []

    def detector(images):
        detected.append(len(images))
        return np.array([[10.0, 20.0, 200.0, 180.0]] * len(images))

    model = _ScriptedModel(script)
    tracker = BoxTracker(model, detector=detector, refine_first=0)
    tracker.step(model.frame(2))
    tracker.step(model.frame(2))
    assert detected == [2, 1]  # frame 0: both views unknown; frame 1: only the lost one
    np.testing.assert_allclose(model.calls[1][1], [_box(100, 60), [10, 20, 200, 180]])

    init = np.array([[1.0, 2.0, 300.0, 200.0], [5.0, 6.0, 100.0, 120.0]])
    model = _ScriptedModel(script)
    tracker = BoxTracker(model, init_boxes=init, refine_first=0)
    tracker.step(model.frame(2))
    np.testing.assert_allclose(model.calls[0][1], init)
    tracker.step(model.frame(2))
    np.testing.assert_allclose(model.calls[1][1], [_box(100, 60), init[1]])

    model = _ScriptedModel(script)
    tracker = BoxTracker(model, refine_first=0)
    tracker.step(model.frame(2, shapes=[(240, 320), (480, 640)]))
    tracker.step(model.frame(2, shapes=[(240, 320), (480, 640)]))
    np.testing.assert_allclose(model.calls[0][1], [[-0.5, -0.5, 320, 240], [-0.5, -0.5, 640, 480]])
    np.testing.assert_allclose(model.calls[1][1], [_box(100, 60), [-0.5, -0.5, 640, 480]])


def test_refining_passes_run_only_after_a_view_was_lost():
    # the model's joints shift by 10 px per call: each refining pass crops around the previous pass's joints
    model = _ScriptedModel(lambda call, v: _person(100 + 10 * call, 60))
    tracker = BoxTracker(model, refine_first=2)
    kp = tracker.step(model.frame(2))  # frame 0: both lost -> 1 + 2 calls
    assert [views for views, _ in model.calls] == [[0, 1], [0, 1], [0, 1]]
    np.testing.assert_allclose(model.calls[1][1], [_box(100, 60)] * 2)
    np.testing.assert_allclose(model.calls[2][1], [_box(110, 60)] * 2)
    np.testing.assert_array_equal(kp, np.stack([_person(120, 60)] * 2))  # the last pass's joints
    tracker.step(model.frame(2))  # tracked: one call, no refining
    assert len(model.calls) == 4
    # a view lost again: the extra passes redo that view only
    model = _ScriptedModel(lambda call, v: _person(0, 0, 0.0) if (call == 1 and v == 0) else _person(100, 60))
    tracker = BoxTracker(model, init_boxes=np.array([[0.0, 0, 300, 200]] * 2), refine_first=1)
    tracker.step(model.frame(2))  # calls 0 (both, init boxes) and 1 (refine both; view 0 loses the person)
    tracker.step(model.frame(2))  # call 2: view 0 lost -> init box; call 3: refine view 0 only
    assert [views for views, _ in model.calls] == [[0, 1], [0, 1], [0, 1], [0]]
    np.testing.assert_allclose(model.calls[2][1], [[0, 0, 300, 200], _box(100, 60)])
    np.testing.assert_allclose(model.calls[3][1], [_box(100, 60)])
    # no refining when the model finds nobody in the fresh box either
    model = _ScriptedModel(lambda call, v: _person(0, 0, 0.0))
    tracker = BoxTracker(model, refine_first=3)
    tracker.step(model.frame(2))
    assert len(model.calls) == 1


def test_restart_sets_the_previous_joints_and_none_loses_every_view():
    detected = []

    def detector(images):
        detected.append(len(images))
        return np.array([[0.0, 0.0, 320.0, 240.0]] * len(images))

    model = _ScriptedModel(lambda call, v: _person(100, 60))
    tracker = BoxTracker(model, detector=detector, refine_first=0)
    tracker.restart(np.stack([_person(30, 40), _person(70, 20)]))  # e.g. from a cache: no model call
    assert model.calls == []
    tracker.step(model.frame(2))
    np.testing.assert_allclose(model.calls[0][1], [_box(30, 40), _box(70, 20)])
    assert detected == []
    tracker.restart(None)
    tracker.step(model.frame(2))
    assert detected == [2]  # every view lost: the detector for all of them
    np.testing.assert_allclose(model.calls[1][1], [[0, 0, 320, 240]] * 2)


def test_missing_images_give_nan_keypoints_and_no_detection():
    from reconstruction.models2d.interface import KeypointModel2D

    pytest.importorskip("torch")

    class Fixed(KeypointModel2D):  # the real interface, crops -> joints at fixed crop pixels
        name, input_size = "fixed", 64
        joint_names = tuple(f"j{i}" for i in range(5))

        def predict_crops(self, crops, flip_test=False):
            kp = np.tile(np.array([[8.0, 8, 0.9], [56, 8, 0.9], [8, 56, 0.9], [56, 56, 0.9], [32, 32, 0.9]]),
                         (len(crops), 1, 1))
            return np.zeros((len(crops), 5, 16, 16)), kp

    detected = []

    def detector(images):
        detected.append([im is None for im in images])
        return np.array([[0.0, 0.0, 128.0, 128.0]] * len(images))

    tracker = BoxTracker(Fixed(), detector=detector, box_cfg=BoxConfig(min_size=10), refine_first=0)
    image = np.zeros((240, 320, 3), np.uint8)
    kp = tracker.step([image, None, image])
    assert detected == [[False, False]]  # the missing view is not looked for
    assert np.isnan(kp[1]).all() and np.isfinite(kp[[0, 2]]).all()
    # crop px (8, 8) of the detector's 128 px box at the origin (64 px crops): image px (16, 16)
    np.testing.assert_allclose(kp[0, :4, :2], [[16, 16], [112, 16], [16, 112], [112, 112]], atol=1e-9)
    kp = tracker.step([None, image, None])  # view 1 had no joints: found again; views 0 and 2 missing now
    assert detected[-1] == [False] and np.isnan(kp[[0, 2]]).all() and np.isfinite(kp[1]).all()
