"""MoveNet (Google, Apache-2.0) single-pose Lightning/Thunder and MultiPose as torch modules.

The network is the TF.js graph's feature extractor (MobileNetV2 + FPN) and its CenterNet heads,
rebuilt op by op as torch layers from the graph topology (:mod:`reconstruction.models2d.tfgraph`);
the weights come from the TF.js files (:mod:`reconstruction.models2d.tfjs`). The graph's
own post-processing (``ArgMax``, ``GatherNd``, ...) is not executed: :func:`decode_singlepose` and
:func:`decode_multipose` implement it here in torch.

Shapes: ``B`` crops (views x frames), ``S`` input size (192 Lightning, 256 Thunder), ``G = S/4``
heatmap grid, ``J = 17`` COCO joints.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from capture.errors import FileFormatError
from reconstruction.models2d.interface import KeypointModel2D, average_flip, flip_heatmaps, flip_keypoints
from reconstruction.models2d.tfgraph import TFGraphNet, node_base
from reconstruction.models2d.tfjs import TFJSGraphModel, load_tfjs_graph_model

log = logging.getLogger(__name__)

COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# Pairs swapped by a horizontal flip.
COCO17_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

_HEADS = ("kpt_heatmap_0", "center_0", "kpt_regress_0", "kpt_offset_0", "box_scale_0", "box_offset_0")


def _head_outputs(graph: TFJSGraphModel) -> dict:
    """Last conv node of each CenterNet head scope (``kpt_heatmap_0/...``): the head's logits."""
    out = {}
    consumers: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            consumers.setdefault(node_base(i), []).append(n)
    for n in graph.nodes:
        if n.op != "_FusedConv2D":
            continue
        for head in _HEADS:
            if f"/{head}/" in f"/{n.name}" and not any(c.op == "_FusedConv2D" for c in consumers.get(n.name, [])):
                out[head] = n.name
    return out


def _head_net(graph: TFJSGraphModel, kind: str) -> TFGraphNet:
    """The graph's feature extractor up to the four CenterNet heads MoveNet decodes."""
    heads = _head_outputs(graph)
    need = ("kpt_heatmap_0", "center_0", "kpt_regress_0", "kpt_offset_0")
    if any(h not in heads for h in need):
        raise FileFormatError(f"{graph.path}: not a MoveNet {kind} graph (heads found: {sorted(heads)})")
    return TFGraphNet(graph, {h: heads[h] for h in need})


@dataclass(frozen=True, eq=False)
class MoveNetHeads:
    """Raw heads for ``B`` crops: ``heatmaps (B, J, G, G)`` and ``center (B, 1, G, G)`` after sigmoid,
    ``regress (B, 2J, G, G)`` and ``offset (B, 2J, G, G)`` (y, x interleaved per joint, grid cells)."""

    heatmaps: torch.Tensor
    center: torch.Tensor
    regress: torch.Tensor
    offset: torch.Tensor


class MoveNetSinglePose(nn.Module):
    """MoveNet single-pose (Lightning 192 px, Thunder 256 px) with its own decoding.

    ``forward(x (B, 3, S, S) float RGB 0..255)`` returns :class:`MoveNetHeads`;
    :meth:`decode` turns them into ``(B, J, 3)`` = x, y (crop pixels), score.
    """

    def __init__(self, graph: TFJSGraphModel):
        super().__init__()
        self.net = _head_net(graph, "single-pose")
        dims = graph.signature.get("inputs", {})
        dims = next(iter(dims.values()))["tensorShape"]["dim"] if dims else None
        self.input_size = int(dims[1]["size"]) if dims else 192
        self.grid = self.input_size // 4
        w = graph.weights
        # Decoding constants from the file: the centre prior (inverse distance to the crop centre)
        # and the +1.8 added to the joint-to-regressed-point distance.
        prior = [v for k, v in w.items() if k.endswith("truediv_2_recip")]
        eps = [v for k, v in w.items() if k.endswith("add_5/y")]
        if not prior or prior[0].size != self.grid * self.grid:
            raise FileFormatError(f"{graph.path}: centre weighting constant (truediv_2_recip) missing or mis-sized")
        self.register_buffer("center_prior", torch.from_numpy(prior[0].reshape(1, 1, self.grid, self.grid).copy()))
        self.distance_eps = float(eps[0]) if eps else 1.8
        self.num_joints = 17

    @classmethod
    def from_tfjs(cls, path: str | Path) -> "MoveNetSinglePose":
        return cls(load_tfjs_graph_model(path)).eval()

    def forward(self, x: torch.Tensor) -> MoveNetHeads:
        h = self.net(x)
        return MoveNetHeads(
            heatmaps=torch.sigmoid(h["kpt_heatmap_0"]), center=torch.sigmoid(h["center_0"]),
            regress=h["kpt_regress_0"], offset=h["kpt_offset_0"],
        )

    def decode(self, heads: MoveNetHeads) -> torch.Tensor:
        """MoveNet's decoding in torch: ``(B, J, 3)`` x, y in crop pixels (0..S), score."""
        return decode_singlepose(heads, self.center_prior, self.distance_eps, self.input_size)


def decode_singlepose(heads: MoveNetHeads, center_prior: torch.Tensor, distance_eps: float, input_size: int) -> torch.Tensor:
    """Centre argmax (weighted by ``center_prior``) -> regressed joints -> nearest heatmap peak -> + offset.

    Returns ``(B, J, 3)`` x, y in input pixels (0..S) and the heatmap score at the chosen cell.
    """
    hm = heads.heatmaps.float()
    B, J, G, _ = hm.shape
    center = heads.center.float() * center_prior.float()
    idx = center.reshape(B, -1).argmax(dim=1)
    cy, cx = idx // G, idx % G
    b = torch.arange(B, device=hm.device)
    reg = heads.regress.float()[b, :, cy, cx].reshape(B, J, 2)
    ry = cy[:, None].float() + reg[..., 0]
    rx = cx[:, None].float() + reg[..., 1]
    grid = torch.arange(G, device=hm.device, dtype=torch.float32)
    dist = torch.sqrt((grid[None, None, :, None] - ry[..., None, None]) ** 2
                      + (grid[None, None, None, :] - rx[..., None, None]) ** 2) + distance_eps
    kidx = (hm / dist).reshape(B, J, -1).argmax(dim=2)
    ky, kx = kidx // G, kidx % G
    jj = torch.arange(J, device=hm.device)
    off = heads.offset.float().reshape(B, J, 2, G, G)[b[:, None], jj[None, :], :, ky, kx]
    score = hm[b[:, None], jj[None, :], ky, kx]
    scale = input_size / G
    x = (kx.float() + off[..., 1]) * scale
    y = (ky.float() + off[..., 0]) * scale
    return torch.stack([x, y, score], dim=-1)


@dataclass(frozen=True, eq=False)
class MultiPoseResult:
    """Up to ``P`` people per image: ``keypoints (B, P, J, 3)`` x, y (input px), score;
    ``boxes (B, P, 5)`` x0, y0, x1, y1 (input px), score; rows with score 0 are empty."""

    keypoints: torch.Tensor
    boxes: torch.Tensor


class MoveNetMultiPose(nn.Module):
    """MoveNet MultiPose Lightning: people found as centre-heatmap peaks, joints regressed from each
    centre and snapped to the nearest keypoint-heatmap peak (the single-pose decoding per person).

    Input ``(B, 3, H, W)`` float RGB 0..255, H and W multiples of 32 (256 x 256 is the published size).
    Boxes are the extent of the person's joints above ``box_joint_threshold``.
    """

    def __init__(self, graph: TFJSGraphModel, max_people: int = 6):
        super().__init__()
        self.net = _head_net(graph, "multi-pose")
        self.max_people = max_people
        self.distance_eps = 1.8

    @classmethod
    def from_tfjs(cls, path: str | Path, max_people: int = 6) -> "MoveNetMultiPose":
        return cls(load_tfjs_graph_model(path), max_people=max_people).eval()

    def forward(self, x: torch.Tensor) -> MoveNetHeads:
        h = self.net(x)
        return MoveNetHeads(
            heatmaps=torch.sigmoid(h["kpt_heatmap_0"]), center=torch.sigmoid(h["center_0"]),
            regress=h["kpt_regress_0"], offset=h["kpt_offset_0"],
        )

    def decode(self, heads: MoveNetHeads, stride: float = 4.0, center_threshold: float = 0.1,
               box_joint_threshold: float = 0.2) -> MultiPoseResult:
        """People in input pixels (``stride`` = input px per heatmap cell, 4 for these graphs)."""
        hm = heads.heatmaps.float()
        B, J, Gh, Gw = hm.shape
        center = heads.center.float()
        P = min(self.max_people, Gh * Gw)
        # centre peaks: 3x3 non-maximum suppression, then the top P
        peak = center * (center >= F.max_pool2d(center, 3, 1, 1)).float()
        score, idx = peak.reshape(B, -1).topk(P, dim=1)
        cy, cx = idx // Gw, idx % Gw  # (B, P)
        b = torch.arange(B, device=hm.device)[:, None]
        reg = heads.regress.float()[b, :, cy, cx].reshape(B, P, J, 2)
        ry = cy[..., None].float() + reg[..., 0]
        rx = cx[..., None].float() + reg[..., 1]
        gy = torch.arange(Gh, device=hm.device, dtype=torch.float32)
        gx = torch.arange(Gw, device=hm.device, dtype=torch.float32)
        dist = torch.sqrt((gy[:, None] - ry[..., None, None]) ** 2 + (gx[None, :] - rx[..., None, None]) ** 2)
        kidx = (hm[:, None] / (dist + self.distance_eps)).reshape(B, P, J, -1).argmax(dim=3)
        ky, kx = kidx // Gw, kidx % Gw
        jj = torch.arange(J, device=hm.device)
        off = heads.offset.float().reshape(B, J, 2, Gh, Gw)[b[..., None], jj, :, ky, kx]
        kscore = hm[b[..., None], jj, ky, kx]
        # a snapped peak far from the regressed joint belongs to someone else: keep the regression
        far = dist.reshape(B, P, J, -1).gather(3, kidx[..., None])[..., 0] > max(Gh, Gw) / 8
        y = torch.where(far, ry, ky.float() + off[..., 0])
        x = torch.where(far, rx, kx.float() + off[..., 1])
        kscore = torch.where(far, torch.zeros_like(kscore), kscore)
        kp = torch.stack([x * stride, y * stride, kscore], dim=-1)
        good = kp[..., 2] >= box_joint_threshold
        inf = torch.tensor(float("inf"), device=hm.device)
        x0 = torch.where(good, kp[..., 0], inf).amin(dim=2)
        y0 = torch.where(good, kp[..., 1], inf).amin(dim=2)
        x1 = torch.where(good, kp[..., 0], -inf).amax(dim=2)
        y1 = torch.where(good, kp[..., 1], -inf).amax(dim=2)
        valid = (score >= center_threshold) & (good.sum(dim=2) >= 3)
        boxes = torch.stack([x0, y0, x1, y1, torch.where(valid, score, torch.zeros_like(score))], dim=-1)
        boxes = torch.where(valid[..., None], boxes, torch.zeros_like(boxes))
        kp = torch.where(valid[..., None, None], kp, torch.zeros_like(kp))
        return MultiPoseResult(keypoints=kp, boxes=boxes)



class MoveNet2D(KeypointModel2D):
    """MoveNet single-pose behind the :class:`~reconstruction.models2d.interface.KeypointModel2D` interface.

    Build with :func:`load_movenet`; ``predict(images, boxes)`` gives keypoints in image pixels.
    The flip test averages the decoded joints of the crop and of its mirror (MoveNet's decoding
    is not linear in the heatmaps, so heatmap averaging would not do).
    """

    joint_names = COCO17_JOINTS
    flip_pairs = COCO17_FLIP_PAIRS

    def __init__(self, net: MoveNetSinglePose, name: str, device: str = "cpu", half: bool | None = None,
                 batch_size: int = 16):
        super().__init__(device=device, half=half, batch_size=batch_size)
        self.name = name
        self.input_size = net.input_size
        net = net.to(self.device).eval()
        if self.half:
            net = net.half()
            net.center_prior.data = net.center_prior.data.float()
        self.net = net.to(memory_format=torch.channels_last)  # ~30 % faster on CPU

    def _run(self, crops: np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2)
        x = x.to(torch.float16 if self.half else torch.float32).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            heads = self.net(x)
            kp = self.net.decode(heads)
        return heads.heatmaps.float().cpu().numpy(), kp.cpu().numpy().astype(np.float64)

    def predict_crops(self, crops: np.ndarray, flip_test: bool = False):
        if not flip_test:
            return self._run(crops)
        B = len(crops)
        hm, kp = self._run(np.concatenate([crops, crops[:, :, ::-1]]))
        back = flip_keypoints(kp[B:], self.flip_pairs, self.input_size)
        return (hm[:B] + flip_heatmaps(hm[B:], self.flip_pairs)) / 2, average_flip(kp[:B], back)


def load_movenet(path: str | Path, device: str = "cpu", half: bool | None = None, batch_size: int = 16) -> MoveNet2D:
    """Load a MoveNet single-pose TF.js model (``movenet-lightning.json`` / ``movenet-thunder.json``)."""
    path = Path(path)
    return MoveNet2D(MoveNetSinglePose.from_tfjs(path), name=path.stem, device=device, half=half,
                     batch_size=batch_size)


class MultiPoseDetector:
    """Person boxes from MoveNet MultiPose on whole frames: ``detect(images) -> (B, 4)`` x, y, w, h
    image px of the best person (NaN where none); ``people(images)`` gives all of them.

    Frames are resized (aspect kept, zero padded) so that the long side is ``long_side`` px, and
    run ``batch_size`` at a time: a whole frame at 512 px costs about 300 MB of activations on the
    CPU (4 views at once: 1.2 GB), so one at a time keeps the peak memory low at little cost (the
    detector runs only where the tracker has no box).
    """

    def __init__(self, path: str | Path, device: str = "cpu", long_side: int = 512, max_people: int = 6,
                 batch_size: int = 1):
        from reconstruction.models2d.allocator import keep_freed_memory

        keep_freed_memory()
        self.device = torch.device(device)
        self.net = MoveNetMultiPose.from_tfjs(path, max_people=max_people).to(self.device)
        self.long_side = int(long_side) // 32 * 32
        self.batch_size = max(1, int(batch_size))

    def people(self, images) -> np.ndarray:
        """``(B, P, 5)`` boxes x0, y0, x1, y1 (image px), score; rows of zeros are empty."""
        images = list(images)
        if len(images) > self.batch_size:
            return np.concatenate([self._people(images[i:i + self.batch_size])
                                   for i in range(0, len(images), self.batch_size)])
        return self._people(images)

    def _people(self, images) -> np.ndarray:
        import cv2

        L = self.long_side
        batch = np.zeros((len(images), L, L, 3), np.uint8)
        scales = []
        for i, img in enumerate(images):
            s = L / max(img.shape[:2])
            w, h = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
            batch[i, :h, :w] = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_AREA)
            scales.append((img.shape[1] / w, img.shape[0] / h))
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            res = self.net.decode(self.net(x))
        boxes = res.boxes.cpu().numpy().astype(np.float64)
        sc = np.asarray(scales)
        # input pixel edges (0..L) -> image coordinates with pixel centres at integers
        boxes[..., [0, 2]] = boxes[..., [0, 2]] * sc[:, None, 0:1] - 0.5
        boxes[..., [1, 3]] = boxes[..., [1, 3]] * sc[:, None, 1:2] - 0.5
        boxes[boxes[..., 4] <= 0] = 0.0
        return boxes

    def detect(self, images, previous: np.ndarray | None = None, margin: float = 0.25) -> np.ndarray:
        from reconstruction.models2d.boxes import boxes_from_multipose

        b = boxes_from_multipose(self.people(images), previous=previous)
        grow = margin * np.maximum(b[:, 2], b[:, 3])
        return np.stack([b[:, 0] - grow, b[:, 1] - grow, b[:, 2] + 2 * grow, b[:, 3] + 2 * grow], axis=1)
