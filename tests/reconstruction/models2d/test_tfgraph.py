"""reconstruction/models2d/tfgraph.py: the graph-to-torch mapping of a small synthetic graph against a numpy
reference of TF's semantics; unmapped ops refused."""
import base64

import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.models2d.tfjs import load_tfjs_graph_model
from tests.support import write_tfjs_model as _write_model


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _conv_node(name, inp, w, b, stride, padding, fused, op="_FusedConv2D"):
    return {"name": name, "op": op, "input": [inp, w] + ([b] if b else []), "attr": {
        "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}}, "padding": {"s": _b64(padding)},
        "data_format": {"s": _b64("NHWC")}, "fused_ops": {"list": {"s": [_b64(f) for f in fused]}}}}


def _tf_conv_reference(x, w, b, stride, depthwise=False):
    """Numpy TF conv: NHWC x (H, W, C), SAME padding with the extra pixel after."""
    H, W, C = x.shape
    kh, kw = w.shape[:2]
    oh, ow = -(-H // stride), -(-W // stride)
    ph = max((oh - 1) * stride + kh - H, 0)
    pw = max((ow - 1) * stride + kw - W, 0)
    xp = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = []
    for i in range(oh):
        row = []
        for j in range(ow):
            patch = xp[i * stride:i * stride + kh, j * stride:j * stride + kw]
            if depthwise:
                row.append(np.einsum("hwc,hwcm->cm", patch, w).reshape(-1))
            else:
                row.append(np.einsum("hwc,hwco->o", patch, w))
        out.append(row)
    return np.array(out) + (b if b is not None else 0)


def test_graph_to_torch_matches_tf_semantics(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from reconstruction.models2d.tfgraph import TFGraphNet

    w1 = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    b1 = rng.normal(size=(4,)).astype(np.float32)
    w2 = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
    b2 = rng.normal(size=(4,)).astype(np.float32)
    w3 = rng.normal(size=(1, 1, 4, 2)).astype(np.float32)
    b3 = rng.normal(size=(2,)).astype(np.float32)
    mean = np.full((1, 1, 1, 3), 100.0, np.float32)
    nodes = [
        {"name": "input", "op": "Placeholder"},
        {"name": "mean", "op": "Const"}, {"name": "w1", "op": "Const"}, {"name": "b1", "op": "Const"},
        {"name": "w2", "op": "Const"}, {"name": "b2", "op": "Const"}, {"name": "w3", "op": "Const"},
        {"name": "b3", "op": "Const"}, {"name": "size", "op": "Const"},
        {"name": "cast", "op": "Cast", "input": ["input"]},
        {"name": "sub", "op": "Sub", "input": ["cast", "mean"]},
        _conv_node("c1", "sub", "w1", "b1", 2, "SAME", ["BiasAdd", "Relu6"]),
        _conv_node("d1", "c1", "w2", "b2", 1, "SAME", ["BiasAdd", "Relu"], op="FusedDepthwiseConv2dNative"),
        {"name": "add", "op": "AddV2", "input": ["c1", "d1"]},
        {"name": "up", "op": "ResizeBilinear", "input": ["add", "size"],
         "attr": {"half_pixel_centers": {"b": True}, "align_corners": {"b": False}}},
        _conv_node("kpt_heatmap_0/out", "up", "w3", "b3", 1, "VALID", ["BiasAdd"]),
    ]
    path = _write_model(tmp_path, nodes, {"mean": mean, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3,
                                          "size": np.array([10, 10], np.int32)})
    net = TFGraphNet(load_tfjs_graph_model(path), {"out": "kpt_heatmap_0/out"}).eval()
    img = rng.uniform(0, 255, size=(10, 10, 3)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(img).permute(2, 0, 1)[None])["out"][0].permute(1, 2, 0).numpy()
    c1 = np.clip(_tf_conv_reference(img - 100.0, w1, b1, 2), 0, 6)  # (5, 5, 4): stride 2 pads after
    d1 = np.maximum(_tf_conv_reference(c1, w2, b2, 1, depthwise=True), 0)
    add = c1 + d1
    # half-pixel bilinear x2 along each axis, edges clamped (TF ResizeBilinear)
    src = np.clip((np.arange(10) + 0.5) / 2 - 0.5, 0, 4)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, 4)
    f = src - i0
    up = add[i0] * (1 - f)[:, None, None] + add[i1] * f[:, None, None]
    up = up[:, i0] * (1 - f)[None, :, None] + up[:, i1] * f[None, :, None]
    want = up @ w3[0, 0] + b3
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_unknown_op_is_refused(tmp_path):
    pytest.importorskip("torch")
    from reconstruction.models2d.tfgraph import TFGraphNet

    nodes = [{"name": "input", "op": "Placeholder"}, {"name": "kpt_heatmap_0/x", "op": "Erf", "input": ["input"]}]
    path = _write_model(tmp_path, nodes, {})
    with pytest.raises(FileFormatError, match="'Erf'.*not mapped"):
        TFGraphNet(load_tfjs_graph_model(path), {"out": "kpt_heatmap_0/x"})
