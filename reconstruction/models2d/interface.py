"""The 2D model interface: images + person boxes in, heatmaps and keypoints in image pixels out.

``B`` is the batch of crops (views x frames flattened by the caller), ``J`` joints, ``S`` the model
input size, ``h, w`` the heatmap grid. A box is ``(x, y, w, h)`` in pixels of the original image;
it is made square around its centre (the models expect undistorted aspect ratios) and cropped
with zero padding where it leaves the image. Keypoints come back as ``(B, J, 3)`` = x, y in the
original image's pixels, score in 0..1.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Pose2DOutput:
    """``heatmaps (B, J, h, w)`` float32 on the crop grid, ``keypoints (B, J, 3)`` x, y image px, score,
    ``crop_boxes (B, 4)`` the square crops actually used (x, y, w, h image px)."""

    heatmaps: np.ndarray
    keypoints: np.ndarray
    crop_boxes: np.ndarray


def square_boxes(boxes: np.ndarray, scale: float = 1.0, aspect: float = 1.0) -> np.ndarray:
    """``(B, 4)`` x, y, w, h -> boxes with the same centre, width/height ``aspect`` (1: squares),
    grown (never shrunk) to hold the box, times ``scale``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h = np.maximum(boxes[:, 3], boxes[:, 2] / aspect) * scale
    w = h * aspect
    cx = boxes[:, 0] + boxes[:, 2] / 2
    cy = boxes[:, 1] + boxes[:, 3] / 2
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)


def _wh(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def crop_images(images: Sequence[np.ndarray], boxes: np.ndarray, size) -> np.ndarray:
    """Crop ``boxes (B, 4)`` (x, y, w, h; image pixel centres at integers) from ``images`` (B of (H, W, 3) uint8)
    and resize to ``(B, size_h, size_w, 3)`` uint8 (``size`` an int or (w, h)), zero outside the image."""
    import cv2

    ow, oh = _wh(size)
    out = np.zeros((len(images), oh, ow, 3), dtype=np.uint8)
    for i, (img, (x, y, w, h)) in enumerate(zip(images, boxes)):
        sx, sy = ow / w, oh / h
        # The box's edges map to the crop's edges: crop pixel u (centre u + 0.5) samples image
        # point x + (u + 0.5) / sx, image pixel centres at integers (OpenCV).
        M = np.array([[sx, 0.0, -x * sx - 0.5], [0.0, sy, -y * sy - 0.5]])
        interp = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
        if max(sx, sy) < 0.5:  # warpAffine has no area filter: shrink the source first
            k = int(1 / max(sx, sy))
            small = cv2.resize(np.ascontiguousarray(img), None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA)
            M = M.copy()
            M[:, :2] *= k
            M[:, 2] += 0.5 * (k - 1) * np.array([sx, sy])
            img, interp = small, cv2.INTER_LINEAR
        out[i] = cv2.warpAffine(np.ascontiguousarray(img), M, (ow, oh), flags=interp,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def crop_to_image(keypoints: np.ndarray, boxes: np.ndarray, size) -> np.ndarray:
    """Map ``(B, J, 3)`` crop-pixel keypoints (0..size from edge to edge; size int or (w, h)) back
    to image pixels."""
    ow, oh = _wh(size)
    kp = np.array(keypoints, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    kp[..., 0] = boxes[:, None, 0] + kp[..., 0] * boxes[:, None, 2] / ow
    kp[..., 1] = boxes[:, None, 1] + kp[..., 1] * boxes[:, None, 3] / oh
    return kp


class KeypointModel2D:
    """Base class of the 2D models: subclasses set ``name``, ``joint_names``, ``flip_pairs``,
    ``input_size`` (an int for square crops, or (w, h)) and implement :meth:`predict_crops`.

    ``device`` is ``"cpu"`` or ``"cuda"``; ``half`` (default: True on CUDA) runs in float16.
    """

    name: str = ""
    joint_names: tuple = ()
    flip_pairs: tuple = ()
    input_size: int = 0

    def __init__(self, device: str = "cpu", half: bool | None = None, batch_size: int = 16):
        import torch

        from reconstruction.models2d.allocator import keep_freed_memory

        keep_freed_memory()  # activations reused between calls instead of page-faulted in again

        if device.startswith("cuda") and not torch.cuda.is_available():
            from capture.errors import DeviceError

            raise DeviceError(f"device {device!r} asked for but torch sees no CUDA GPU; use device='cpu'")
        self.device = torch.device(device)
        self.half = (self.device.type == "cuda") if half is None else bool(half)
        self.batch_size = int(batch_size)

    def predict_crops(self, crops: np.ndarray, flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``crops (B, Sh, Sw, 3)`` uint8 RGB -> ``heatmaps (B, J, h, w)``, ``keypoints (B, J, 3)`` crop px."""
        raise NotImplementedError

    def predict(self, images: Sequence[np.ndarray], boxes: np.ndarray | None = None,
                flip_test: bool = False, box_scale: float = 1.0) -> Pose2DOutput:
        """Run on ``images`` (B of (H, W, 3) uint8 RGB, frames or views) inside ``boxes (B, 4)``
        (x, y, w, h image px; None = the whole image, padded to a square).

        Rows with a NaN box or a None image (a view missing from a frame set) give NaN keypoints
        and zero heatmaps.
        """
        B = len(images)
        present = np.array([im is not None for im in images], dtype=bool)
        if boxes is None:
            boxes = np.array([[-0.5, -0.5, im.shape[1], im.shape[0]] if im is not None else [np.nan] * 4
                              for im in images], dtype=np.float64)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(B, 4)
        ok = present & np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 1) & (boxes[:, 3] > 1)
        blank = np.zeros((2, 2, 3), np.uint8)
        images = [im if im is not None else blank for im in images]
        S = self.input_size
        w, h = _wh(S)
        crop_boxes = square_boxes(np.where(ok[:, None], boxes, [0, 0, 2, 2]), box_scale, aspect=w / h)
        heat, kps = [], []
        for s in range(0, B, self.batch_size):
            sl = slice(s, min(s + self.batch_size, B))
            crops = crop_images(images[sl], crop_boxes[sl], S)
            h, k = self.predict_crops(crops, flip_test=flip_test)
            heat.append(h)
            kps.append(k)
        heatmaps = np.concatenate(heat) if heat else np.zeros((0, len(self.joint_names), 1, 1), np.float32)
        kp = crop_to_image(np.concatenate(kps), crop_boxes, S) if kps else np.zeros((0, len(self.joint_names), 3))
        kp[~ok] = np.nan
        heatmaps[~ok] = 0
        crop_boxes[~ok] = np.nan
        return Pose2DOutput(heatmaps=heatmaps, keypoints=kp, crop_boxes=crop_boxes)


def flip_keypoints(keypoints: np.ndarray, flip_pairs: Sequence, width: float) -> np.ndarray:
    """Keypoints ``(..., J, 3)`` found on a horizontally mirrored image of ``width`` px (edge
    convention) -> keypoints of the original image: x -> width - x and left/right swapped."""
    kp = np.array(keypoints, copy=True)
    kp[..., 0] = width - kp[..., 0]
    perm = np.arange(kp.shape[-2])
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return kp[..., perm, :]


def flip_heatmaps(heatmaps: np.ndarray, flip_pairs: Sequence) -> np.ndarray:
    """Heatmaps ``(..., J, h, w)`` of a mirrored image -> those of the original (mirror + swap)."""
    hm = heatmaps[..., ::-1]
    perm = np.arange(hm.shape[-3])
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return np.ascontiguousarray(hm[..., perm, :, :])


def average_flip(kp: np.ndarray, kp_flipped_back: np.ndarray) -> np.ndarray:
    """Score-weighted mean of keypoints from the image and (mapped back) from its mirror."""
    w1, w2 = kp[..., 2:3], kp_flipped_back[..., 2:3]
    tot = np.maximum(w1 + w2, 1e-9)
    xy = (kp[..., :2] * w1 + kp_flipped_back[..., :2] * w2) / tot
    return np.concatenate([xy, (w1 + w2) / 2], axis=-1)
