"""Reading TensorFlow.js graph-model files (``model.json`` + ``.bin`` weight shards).

Only data is read: the graph topology (a list of nodes with op names, inputs and attributes)
and the weight tensors. Nothing in the file is executed; the torch modules that use these
weights (:mod:`reconstruction.models2d.movenet`) map a fixed, known set of ops themselves.

Weight encodings handled (tfjs-converter ``quantization``): plain float32/int32, float16,
and affine uint8/uint16 (``value = q * scale + min``).
"""
from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.errors import FileFormatError

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "float16": np.float16,
    "uint8": np.uint8,
    "uint16": np.uint16,
}


@dataclass(frozen=True, eq=False)
class TFJSNode:
    """One graph node: ``name``, ``op``, ``inputs`` (names, ``name:k`` for output k), ``attr`` (raw JSON)."""

    name: str
    op: str
    inputs: tuple
    attr: dict = field(default_factory=dict)

    def attr_ints(self, key: str) -> list[int]:
        return [int(v) for v in self.attr.get(key, {}).get("list", {}).get("i", [])]

    def attr_str(self, key: str) -> str:
        raw = self.attr.get(key, {}).get("s", "")
        return base64.b64decode(raw).decode() if raw else ""

    def attr_strs(self, key: str) -> list[str]:
        return [base64.b64decode(s).decode() for s in self.attr.get(key, {}).get("list", {}).get("s", [])]

    def attr_bool(self, key: str) -> bool:
        return bool(self.attr.get(key, {}).get("b", False))


@dataclass(frozen=True, eq=False)
class TFJSGraphModel:
    """A parsed TF.js graph model: nodes in file order, weights by node name, and metadata."""

    path: Path
    nodes: tuple
    weights: dict
    signature: dict
    generated_by: str

    def node(self, name: str) -> TFJSNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def ops(self) -> dict:
        counts: dict = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts


def decode_weights(manifest_entries: list, buffer: bytes, source: str = "<buffer>") -> dict:
    """Decode one weights-manifest group: ``entries`` (name, shape, dtype, quantization) from ``buffer``.

    Returns ``{name: np.ndarray}`` with float weights as float32 and int weights as int32.
    """
    out = {}
    offset = 0
    for entry in manifest_entries:
        name, shape, dtype = entry["name"], [int(s) for s in entry.get("shape", [])], entry["dtype"]
        count = int(np.prod(shape)) if shape else 1
        quant = entry.get("quantization")
        if dtype == "string":
            raise FileFormatError(f"{source}: weight {name!r} is a string tensor, which MoveNet files never hold")
        if quant:
            qdtype = quant["dtype"]
            if qdtype not in _DTYPES:
                raise FileFormatError(f"{source}: weight {name!r} has unknown quantization dtype {qdtype!r}")
            storage = np.dtype(_DTYPES[qdtype])
        else:
            if dtype not in _DTYPES:
                raise FileFormatError(f"{source}: weight {name!r} has unknown dtype {dtype!r}")
            storage = np.dtype(_DTYPES[dtype])
        nbytes = count * storage.itemsize
        if offset + nbytes > len(buffer):
            raise FileFormatError(
                f"{source}: weight shards end at byte {len(buffer)} but {name!r} needs bytes "
                f"{offset}..{offset + nbytes}; the .bin file is truncated or does not belong to this model.json"
            )
        raw = np.frombuffer(buffer, dtype=storage.newbyteorder("<"), count=count, offset=offset)
        offset += nbytes
        if quant and qdtype in ("uint8", "uint16"):
            values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
        else:
            values = raw
        target = np.int32 if dtype == "int32" else (np.bool_ if dtype == "bool" else np.float32)
        out[name] = np.array(values, dtype=target).reshape(shape)
    if offset != len(buffer):
        log.warning("%s: %d trailing bytes after the last weight", source, len(buffer) - offset)
    return out


def load_tfjs_graph_model(path: str | Path) -> TFJSGraphModel:
    """Read ``path`` (a TF.js ``model.json``) and the weight shards it names, next to it.

    Raises :class:`FileFormatError` naming the file and the field when the file is not a TF.js
    graph model or a shard is missing.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such model file; run `mocap models fetch` or pass --weights-dir") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not a JSON file ({exc})") from None
    if doc.get("format") not in (None, "graph-model") or "modelTopology" not in doc:
        raise FileFormatError(f"{path}: field 'format' is {doc.get('format')!r}, expected a TF.js 'graph-model'")
    topo = doc["modelTopology"]
    if "node" not in topo:
        raise FileFormatError(f"{path}: field 'modelTopology.node' is missing (a layers-model is not supported)")
    nodes = tuple(
        TFJSNode(name=n["name"], op=n["op"], inputs=tuple(n.get("input", [])), attr=n.get("attr", {}))
        for n in topo["node"]
    )
    weights: dict = {}
    for g, group in enumerate(doc.get("weightsManifest", [])):
        chunks = []
        for shard in group["paths"]:
            shard_path = path.parent / shard
            if not shard_path.is_file():
                raise FileFormatError(f"{path}: weightsManifest[{g}] names shard {shard!r}, not found at {shard_path}")
            chunks.append(shard_path.read_bytes())
        weights.update(decode_weights(group["weights"], b"".join(chunks), source=str(path)))
    return TFJSGraphModel(
        path=path, nodes=nodes, weights=weights, signature=doc.get("signature", {}),
        generated_by=str(doc.get("generatedBy", "")),
    )
