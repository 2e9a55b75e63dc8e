"""capture/json_io.py: strict JSON out of numpy values, NaN and infinities as null, paths as text, atomic."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from capture.json_io import dumps, json_safe, write_json


def _strict(text):
    """json.loads that refuses NaN / Infinity (what a strict reader in another language does)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_numpy_values_become_plain_python():
    data = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "a": np.arange(3, dtype=np.int16),
            "m": np.array([[1.5, 2.0]]), "t": (1, np.uint8(2)), 7: "key"}
    out = json_safe(data)
    assert out == {"i": 3, "f": 0.5, "b": True, "a": [0, 1, 2], "m": [[1.5, 2.0]], "t": [1, 2], "7": "key"}
    assert type(out["i"]) is int and type(out["f"]) is float and type(out["b"]) is bool
    assert all(type(v) is int for v in out["a"]) and type(out["t"]) is list


def test_nan_and_infinities_become_null_and_paths_text():
    data = {"nan": float("nan"), "inf": np.inf, "ninf": np.float64(-np.inf), "arr": np.array([1.0, np.nan, np.inf]),
            "path": Path("/data/session") / "rig.yaml", "nested": [{"x": np.float32("nan")}], "ok": 2.5}
    text = dumps(data)
    back = _strict(text)
    assert back == {"nan": None, "inf": None, "ninf": None, "arr": [1.0, None, None], "path": "/data/session/rig.yaml",
                    "nested": [{"x": None}], "ok": 2.5}
    with pytest.raises(ValueError, match="NaN"):
        _strict('{"x": NaN}')  # the reader used here would catch a NaN
    assert dumps({"a": 1}, indent=None) == '{"a": 1}'


def test_write_json_is_strict_and_complete_when_it_appears(tmp_path, monkeypatch):
    import capture.atomic

    seen = []
    real_replace = capture.atomic.os.replace

    def observed_replace(src, dst):  # the moment the file appears under its name
        seen.append((Path(dst).exists(), Path(src).read_text()))
        return real_replace(src, dst)

    monkeypatch.setattr(capture.atomic.os, "replace", observed_replace)
    path = write_json(tmp_path / "out" / "quality.json", {"error_m": np.float64(math.nan), "n": np.int32(4)})
    assert path == tmp_path / "out" / "quality.json"
    text = path.read_text()
    assert text.endswith("}\n") and _strict(text) == {"error_m": None, "n": 4}
    # it appeared by one rename of the finished text, not written in place
    assert seen == [(False, text)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["quality.json"]  # no temp file left
    # a value that cannot be written leaves the previous file whole, and no temp file
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert _strict(path.read_text()) == {"error_m": None, "n": 4}
    assert sorted(p.name for p in path.parent.iterdir()) == ["quality.json"]
