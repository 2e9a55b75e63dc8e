"""reconstruction/models2d/tfjs.py: TF.js graph-model reading: weight decoding (float16, affine uint8, int32),
errors, the real MoveNet files."""
import json

import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.models2d.tfjs import decode_weights, load_tfjs_graph_model
from tests.support import write_tfjs_model as _write_model


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
