"""One person tracked through a multi-view sequence by the 2D model's own boxes: the box tracker the
offline pipeline and the live view share.

Shapes: ``V`` views, ``J`` joints, ``T`` frames. Each view's crop comes from that view's joints in
the previous frame (:func:`~reconstruction.models2d.boxes.boxes_from_keypoints`). Where there is none
(first frame, person lost) it comes from the person detector (``detector(images) -> (V, 4)``, e.g.
MoveNet MultiPose), else from ``init_boxes (V, 4)``, else the whole frame; the model then runs
``refine_first`` extra times on that frame with boxes from its own joints, so that the first crop
need not be tight.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from reconstruction.models2d.boxes import BoxConfig, boxes_from_keypoints
from reconstruction.models2d.interface import KeypointModel2D


class BoxTracker:
    """The model's crops follow the person from frame to frame (see the module docstring).

    Feed the views' images of each frame in order to :meth:`step`; :meth:`restart` sets the previous
    frame's keypoints (e.g. from a cache) without running the model.
    """

    def __init__(self, model: KeypointModel2D, detector: Callable | None = None, init_boxes: np.ndarray | None = None,
                 box_cfg: BoxConfig | None = None, refine_first: int = 2, flip_test: bool = False):
        self.model = model
        self.detector = detector
        self.init_boxes = None if init_boxes is None else np.asarray(init_boxes, dtype=np.float64)
        self.cfg = box_cfg or BoxConfig()
        self.refine_first = int(refine_first)
        self.flip_test = flip_test
        self.previous: np.ndarray | None = None

    def restart(self, previous: np.ndarray | None) -> None:
        """The (V, J, 3) keypoints of the frame before the next :meth:`step` (None: none known)."""
        self.previous = None if previous is None else np.asarray(previous, dtype=np.float64)

    def step(self, images: Sequence[np.ndarray | None]) -> np.ndarray:
        """Keypoints (V, J, 3) in image pixels of one frame: V images (H, W, 3) uint8 RGB, None for a
        view missing from the frame (its keypoints NaN)."""
        V = len(images)
        cfg = self.cfg
        boxes = boxes_from_keypoints(self.previous, cfg) if self.previous is not None else np.full((V, 4), np.nan)
        lost = ~np.isfinite(boxes).all(axis=1) & np.array([im is not None for im in images])
        if lost.any():
            boxes[lost] = self._fresh_boxes(images, lost)
        kp = self.model.predict(images, boxes, flip_test=self.flip_test).keypoints
        for _ in range(self.refine_first if lost.any() else 0):
            again = boxes_from_keypoints(kp, cfg)
            redo = lost & np.isfinite(again).all(axis=1)
            if not redo.any():
                break
            idx = np.flatnonzero(redo)
            kp[idx] = self.model.predict([images[v] for v in idx], again[idx], flip_test=self.flip_test).keypoints
        self.previous = kp
        return kp

    def _fresh_boxes(self, images: Sequence[np.ndarray | None], lost: np.ndarray) -> np.ndarray:
        """(n_lost, 4) boxes for the views where the person is lost."""
        if self.detector is not None:
            return np.asarray(self.detector([images[v] for v in np.flatnonzero(lost)]), dtype=np.float64)
        if self.init_boxes is not None:
            return self.init_boxes[lost]
        return np.array([[-0.5, -0.5, images[v].shape[1], images[v].shape[0]] for v in np.flatnonzero(lost)])


def detect_sequence(model: KeypointModel2D, frames: Iterable[Sequence[np.ndarray | None]], init_boxes=None,
                    detector: Callable | None = None, box_cfg: BoxConfig | None = None, refine_first: int = 2,
                    flip_test: bool = False, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Keypoints ``(T, V, J, 3)`` of a multi-view sequence (``frames`` yields V images per frame, None
    for a missing view) with a :class:`BoxTracker`; ``progress(n)`` after each frame (a tqdm ``update``)."""
    tracker = BoxTracker(model, detector, init_boxes, box_cfg, refine_first, flip_test)
    out = []
    for images in frames:
        out.append(tracker.step(images))
        if progress is not None:
            progress(1)
    if not out:
        return np.zeros((0, 0, len(model.joint_names), 3))
    return np.stack(out)
