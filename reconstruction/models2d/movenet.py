"""MoveNet (Google, Apache-2.0) single-pose Lightning/Thunder and MultiPose as torch modules.

The network is the TF.js graph's feature extractor (MobileNetV2 + FPN) and its CenterNet heads,
rebuilt op by op as torch layers from the graph topology; the weights come from the TF.js files
(:mod:`reconstruction.models2d.tfjs`). Only a fixed set of ops is mapped (``_FusedConv2D``,
``FusedDepthwiseConv2dNative``, ``DepthwiseConv2dNative``, ``AddV2``, ``ResizeBilinear``, the
input normalisation ``Sub``/``Mul``); any other op on the path to the heads raises. The graph's
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


def _base(name: str) -> str:
    """Node name without the ``:k`` output index and the leading ``^`` of control inputs."""
    return name.lstrip("^").split(":")[0]


def _tf_same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) along one axis: the extra pixel goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class TFConv(nn.Module):
    """A TF conv node (dense or depthwise) with bias and fused activation, TF 'SAME'/'VALID' padding."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: str,
                 activation: str, depthwise: bool):
        super().__init__()
        kh, kw, cin, cm = weight.shape
        if depthwise:
            w = torch.from_numpy(np.ascontiguousarray(weight.transpose(2, 3, 0, 1).reshape(cin * cm, 1, kh, kw)))
            groups, cout = cin, cin * cm
        else:
            w = torch.from_numpy(np.ascontiguousarray(weight.transpose(3, 2, 0, 1)))
            groups, cout = 1, cm
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=stride, groups=groups, bias=bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(w)
            if bias is not None:
                self.conv.bias.copy_(torch.from_numpy(bias.reshape(-1)))
        self.k, self.s, self.same, self.activation = kh, stride, padding == "SAME", activation
        # Symmetric SAME padding (stride 1, odd kernel) goes into the conv itself, which is faster.
        if self.same and stride == 1 and kh % 2 == 1:
            self.conv.padding = (kh // 2, kw // 2)
            self.same = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            ph = _tf_same_pad(x.shape[-2], self.k, self.s)
            pw = _tf_same_pad(x.shape[-1], self.k, self.s)
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        x = self.conv(x)
        if self.activation == "Relu6":
            return F.hardtanh(x, 0.0, 6.0)
        if self.activation == "Relu":
            return F.relu(x)
        return x


@dataclass(frozen=True)
class _Step:
    kind: str  # conv | add | resize | alias | sub_const | rsub_const | mul_const | add_const
    out: str
    inputs: tuple
    module: str = ""  # the conv module's or the constant buffer's name
    factor: float = 0.0  # resize: up-sampling factor, or minus the fixed output size


class TFGraphNet(nn.Module):
    """The convolutional part of a TF.js graph, from its input to the named head outputs.

    ``forward(x)`` takes ``x (B, 3, S, S)`` float RGB in 0..255 and returns a dict head name ->
    ``(B, C, G, G)`` raw logits (no sigmoid).
    """

    def __init__(self, graph: TFJSGraphModel, outputs: dict):
        super().__init__()
        nodes = {n.name: n for n in graph.nodes}
        self.outputs = dict(outputs)
        needed, stack = set(), [_base(o) for o in outputs.values()]
        while stack:
            name = stack.pop()
            if name in needed or name not in nodes:
                continue
            needed.add(name)
            if nodes[name].op not in ("Const", "ResizeBilinear"):
                stack.extend(_base(i) for i in nodes[name].inputs)
            elif nodes[name].op == "ResizeBilinear":
                stack.append(_base(nodes[name].inputs[0]))
        self.convs = nn.ModuleDict()
        n_consts = 0
        steps = []
        w = graph.weights
        src = str(graph.path)
        for n in graph.nodes:  # TF.js graph files list nodes in topological order
            if n.name not in needed or n.op == "Const":
                continue
            ins = tuple(_base(i) for i in n.inputs)
            if n.op == "Placeholder":
                self.input_name = n.name
            elif n.op in ("Cast", "Identity") or (n.op == "Unpack" and int(n.attr["num"]["i"]) == 1) or (
                n.op in ("ExpandDims", "Squeeze") and self._is_batch_axis(n, w)
            ):
                # Lightning/Thunder wrap a no-op resize (input already at model size) in
                # unstack/expand/squeeze on the batch axis; with batches they are identities.
                steps.append(_Step("alias", n.name, ins[:1]))
            elif n.op in ("Sub", "Mul", "AddV2") and any(i in w for i in ins):
                # input normalisation: x*a+b with a NHWC constant broadcast over channels
                const = [i for i in ins if i in w][0]
                other = [i for i in ins if i not in w][0]
                c = torch.from_numpy(np.asarray(w[const], dtype=np.float32))
                if n.op == "Mul" and np.allclose(c.numpy(), 1 / 127.5, rtol=1e-3):
                    # The converter stored 1/127.5 as float16 (0.00784302); the model was trained
                    # with rgb/127.5-1, and the exact value matches the reference heads 10x closer.
                    c = torch.full_like(c, 1 / 127.5)
                if c.ndim == 4:
                    c = c.permute(0, 3, 1, 2)
                key = f"c{n_consts}"
                n_consts += 1
                self.register_buffer(key, c.contiguous(), persistent=False)
                kind = {"Sub": "sub_const" if ins[1] == const else "rsub_const", "Mul": "mul_const", "AddV2": "add_const"}[n.op]
                steps.append(_Step(kind, n.name, (other,), module=key))
            elif n.op in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
                fused = n.attr_strs("fused_ops")
                act = "Relu6" if "Relu6" in fused else ("Relu" if "Relu" in fused else "")
                unknown = [f for f in fused if f not in ("BiasAdd", "Relu", "Relu6")]
                if unknown or n.attr_str("data_format") not in ("", "NHWC"):
                    raise FileFormatError(f"{src}: node {n.name!r} fuses {unknown} / data_format, not supported")
                strides = n.attr_ints("strides") or [1, 1, 1, 1]
                if any(d != 1 for d in n.attr_ints("dilations")) or strides[1] != strides[2]:
                    raise FileFormatError(f"{src}: node {n.name!r} has dilations/strides {strides}, not supported")
                bias = w[ins[2]] if len(ins) > 2 else None
                mod = TFConv(w[ins[1]], bias, strides[1], n.attr_str("padding"), act, depthwise=n.op != "_FusedConv2D")
                key = f"m{len(self.convs)}"
                self.convs[key] = mod
                steps.append(_Step("conv", n.name, ins[:1], module=key))
            elif n.op == "AddV2":
                steps.append(_Step("add", n.name, ins[:2]))
            elif n.op == "ResizeBilinear":
                if n.attr_bool("align_corners") or not n.attr_bool("half_pixel_centers"):
                    raise FileFormatError(f"{src}: node {n.name!r}: only half-pixel-centre bilinear resize is mapped")
                steps.append(_Step("resize", n.name, ins[:1], factor=self._resize_factor(n, nodes, w, src)))
            else:
                raise FileFormatError(f"{src}: op {n.op!r} (node {n.name!r}) on the path to the heads is not mapped")
        self.steps = steps
        missing = [o for o in outputs.values() if _base(o) not in {s.out for s in steps}]
        if missing:
            raise FileFormatError(f"{src}: head outputs {missing} not reachable from the input")

    @staticmethod
    def _is_batch_axis(n, w) -> bool:
        if n.op == "Squeeze":
            return [int(i) for i in n.attr.get("squeeze_dims", {}).get("list", {}).get("i", [])] == [0]
        axis = w.get(_base(n.inputs[1]))
        return axis is not None and int(np.asarray(axis).ravel()[0]) == 0

    @staticmethod
    def _resize_factor(n, nodes, w, src) -> float:
        """Up-sampling factor of a Keras UpSampling2D (shape * constant), or minus a constant square size."""
        size_name = _base(n.inputs[1])
        if size_name in w:
            return -float(np.asarray(w[size_name]).ravel()[0])  # negative: the absolute output size
        mul = nodes.get(size_name)
        if mul is not None and mul.op == "Mul":
            consts = [np.asarray(w[_base(i)]).ravel() for i in mul.inputs if _base(i) in w]
            if consts:
                return float(consts[0][0])
        raise FileFormatError(f"{src}: node {n.name!r}: cannot work out the resize factor")

    def forward(self, x: torch.Tensor) -> dict:
        values = {self.input_name: x}
        for st in self.steps:
            a = values[st.inputs[0]]
            if st.kind == "conv":
                v = self.convs[st.module](a)
            elif st.kind == "alias":
                v = a
            elif st.kind == "add":
                v = a + values[st.inputs[1]]
            elif st.kind == "resize":
                if st.factor < 0:  # a fixed output size (single-pose graphs: fixed input size)
                    v = F.interpolate(a, size=(int(-st.factor),) * 2, mode="bilinear", align_corners=False)
                else:
                    v = F.interpolate(a, scale_factor=st.factor, mode="bilinear", align_corners=False)
            else:
                c = getattr(self, st.module).to(a.dtype)
                v = {"sub_const": lambda: a - c, "rsub_const": lambda: c - a, "mul_const": lambda: a * c,
                     "add_const": lambda: a + c}[st.kind]()
            values[st.out] = v
        return {k: values[_base(o)] for k, o in self.outputs.items()}


def _head_outputs(graph: TFJSGraphModel) -> dict:
    """Last conv node of each CenterNet head scope (``kpt_heatmap_0/...``): the head's logits."""
    out = {}
    consumers: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            consumers.setdefault(_base(i), []).append(n)
    for n in graph.nodes:
        if n.op != "_FusedConv2D":
            continue
        for head in _HEADS:
            if f"/{head}/" in f"/{n.name}" and not any(c.op == "_FusedConv2D" for c in consumers.get(n.name, [])):
                out[head] = n.name
    return out


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
        heads = _head_outputs(graph)
        need = ("kpt_heatmap_0", "center_0", "kpt_regress_0", "kpt_offset_0")
        if any(h not in heads for h in need):
            raise FileFormatError(f"{graph.path}: not a MoveNet single-pose graph (heads found: {sorted(heads)})")
        self.net = TFGraphNet(graph, {h: heads[h] for h in need})
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
        heads = _head_outputs(graph)
        need = ("kpt_heatmap_0", "center_0", "kpt_regress_0", "kpt_offset_0")
        if any(h not in heads for h in need):
            raise FileFormatError(f"{graph.path}: not a MoveNet multi-pose graph (heads found: {sorted(heads)})")
        self.net = TFGraphNet(graph, {h: heads[h] for h in need})
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

    Frames are resized (aspect kept, zero padded) so that the long side is ``long_side`` px.
    """

    def __init__(self, path: str | Path, device: str = "cpu", long_side: int = 512, max_people: int = 6):
        self.device = torch.device(device)
        self.net = MoveNetMultiPose.from_tfjs(path, max_people=max_people).to(self.device)
        self.long_side = int(long_side) // 32 * 32

    def people(self, images) -> np.ndarray:
        """``(B, P, 5)`` boxes x0, y0, x1, y1 (image px), score; rows of zeros are empty."""
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
