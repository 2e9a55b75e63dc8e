"""TF.js graph-model reading: weight decoding (float16, affine uint8, int32), errors, and the
graph-to-torch mapping of a small synthetic graph against a numpy reference of TF's semantics."""
import base64
import json

import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.models2d.tfjs import decode_weights, load_tfjs_graph_model


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _write_model(tmp_path, nodes, weights: dict, quant: dict | None = None):
    """Write model.json + one shard; ``quant`` maps a weight name to 'float16' or 'uint8'."""
    quant = quant or {}
    entries, chunks = [], []
    for name, arr in weights.items():
        arr = np.asarray(arr)
        e = {"name": name, "shape": list(arr.shape), "dtype": "int32" if arr.dtype.kind == "i" else "float32"}
        q = quant.get(name)
        if q == "float16":
            e["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            chunks.append(arr.astype("<f2").tobytes())
        elif q == "uint8":
            lo, hi = float(arr.min()), float(arr.max())
            scale = (hi - lo) / 255
            e["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
            chunks.append(np.round((arr - lo) / scale).astype(np.uint8).tobytes())
        else:
            chunks.append(arr.astype("<i4" if arr.dtype.kind == "i" else "<f4").tobytes())
        entries.append(e)
    (tmp_path / "m.bin").write_bytes(b"".join(chunks))
    doc = {"format": "graph-model", "modelTopology": {"node": nodes},
           "weightsManifest": [{"paths": ["m.bin"], "weights": entries}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    return tmp_path / "m.json"


def test_decode_float16_uint8_int32(tmp_path, rng):
    a = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    b = rng.uniform(-2, 5, size=(7,)).astype(np.float32)
    c = np.arange(6, dtype=np.int32).reshape(2, 3)
    path = _write_model(tmp_path, [], {"a": a, "b": b, "c": c}, {"a": "float16", "b": "uint8"})
    m = load_tfjs_graph_model(path)
    assert m.weights["a"].dtype == np.float32 and m.weights["a"].shape == (3, 3, 2, 4)
    np.testing.assert_allclose(m.weights["a"], a, rtol=1e-3, atol=1e-3)  # float16: 11-bit mantissa
    np.testing.assert_allclose(m.weights["b"], b, atol=7 / 255 / 2 + 1e-6)  # half a quantization step
    np.testing.assert_array_equal(m.weights["c"], c)


def test_truncated_shard_names_the_weight():
    with pytest.raises(FileFormatError, match="'w'.*truncated"):
        decode_weights([{"name": "w", "shape": [10], "dtype": "float32"}], b"\0" * 12, source="x.json")


def test_missing_shard_and_not_a_graph(tmp_path):
    path = _write_model(tmp_path, [], {"a": np.zeros(2, np.float32)})
    (tmp_path / "m.bin").unlink()
    with pytest.raises(FileFormatError, match="shard 'm.bin'"):
        load_tfjs_graph_model(path)
    (tmp_path / "l.json").write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    with pytest.raises(FileFormatError, match="graph-model"):
        load_tfjs_graph_model(tmp_path / "l.json")
    with pytest.raises(FileFormatError, match="no such model file"):
        load_tfjs_graph_model(tmp_path / "absent.json")


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


@pytest.mark.parametrize("name", ["lightning", "thunder", "multipose"])
def test_real_movenet_files(shared_dir, name):
    path = shared_dir / "weights" / "movenet" / f"movenet-{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = load_tfjs_graph_model(path)
    ops = m.ops()
    assert ops["_FusedConv2D"] >= 50 and ops["ResizeBilinear"] == 3
    assert all(np.isfinite(v).all() for v in m.weights.values() if v.dtype.kind == "f")
    assert m.weights[[k for k in m.weights if k.endswith("Conv1/Conv2D_weights")][0]].shape[:3] == (3, 3, 3)
