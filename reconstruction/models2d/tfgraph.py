"""A TF.js graph model's feature extractor rebuilt op by op as torch layers (the loader machinery of
the TF.js models: MoveNet, and any other CNN whose graph uses these ops).

Only a fixed set of ops is mapped (``_FusedConv2D``, ``FusedDepthwiseConv2dNative``,
``DepthwiseConv2dNative``, ``AddV2``, ``ResizeBilinear``, the input normalisation ``Sub``/``Mul``);
any other op on the path to the requested outputs raises. The weights come from the TF.js files
(:mod:`reconstruction.models2d.tfjs`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from capture.errors import FileFormatError
from reconstruction.models2d.tfjs import TFJSGraphModel


def node_base(name: str) -> str:
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
        needed, stack = set(), [node_base(o) for o in outputs.values()]
        while stack:
            name = stack.pop()
            if name in needed or name not in nodes:
                continue
            needed.add(name)
            if nodes[name].op not in ("Const", "ResizeBilinear"):
                stack.extend(node_base(i) for i in nodes[name].inputs)
            elif nodes[name].op == "ResizeBilinear":
                stack.append(node_base(nodes[name].inputs[0]))
        self.convs = nn.ModuleDict()
        n_consts = 0
        steps = []
        w = graph.weights
        src = str(graph.path)
        for n in graph.nodes:  # TF.js graph files list nodes in topological order
            if n.name not in needed or n.op == "Const":
                continue
            ins = tuple(node_base(i) for i in n.inputs)
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
        missing = [o for o in outputs.values() if node_base(o) not in {s.out for s in steps}]
        if missing:
            raise FileFormatError(f"{src}: head outputs {missing} not reachable from the input")

    @staticmethod
    def _is_batch_axis(n, w) -> bool:
        if n.op == "Squeeze":
            return [int(i) for i in n.attr.get("squeeze_dims", {}).get("list", {}).get("i", [])] == [0]
        axis = w.get(node_base(n.inputs[1]))
        return axis is not None and int(np.asarray(axis).ravel()[0]) == 0

    @staticmethod
    def _resize_factor(n, nodes, w, src) -> float:
        """Up-sampling factor of a Keras UpSampling2D (shape * constant), or minus a constant square size."""
        size_name = node_base(n.inputs[1])
        if size_name in w:
            return -float(np.asarray(w[size_name]).ravel()[0])  # negative: the absolute output size
        mul = nodes.get(size_name)
        if mul is not None and mul.op == "Mul":
            consts = [np.asarray(w[node_base(i)]).ravel() for i in mul.inputs if node_base(i) in w]
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
        return {k: values[node_base(o)] for k, o in self.outputs.items()}
