"""Scale factors of an OpenSim model's bodies from the person's segment lengths (pure; no OpenSim).

Shapes: ``T`` frames, ``M`` markers, ``P`` marker pairs. The scaling set-up (Pose2Sim's
``Scaling_Setup_*.xml``) lists *measurements*: marker pairs (``LHip LKnee``, ``RHip RKnee``) and the
bodies they scale (``femur_r``, ``femur_l`` on X, Y, Z). As Pose2Sim does, a body axis is scaled by
the mean, over the pairs of the measurements that name it, of (the person's distance between the two
markers) / (the same distance on the unscaled model in its default pose), both sides together
(``symmetric``) or each side from its own pairs; the set-up's own manual scales are replaced by these
and the marker-distance measurements switched off, so OpenSim's ScaleTool only applies them.

The person's distance of a pair is the mean of the middle half of its values over the frames where
both markers are present (the interquartile mean: robust to outlying frames; Pose2Sim's 50 %
trimmed mean). Our reconstruction holds every rigid bone at one length over the whole motion (the
refinement's bone prior), so for our 3D this *is* that length, not an average of a length that
wobbles from frame to frame; the left and right factors of a segment then differ only by the person's own
asymmetry (both are reported).

A measurement whose pairs the data cannot measure (a joint missing in every frame) is scaled from
``height_m`` (anthropometric ratios, :func:`reconstruction.bone_lengths.bone_lengths_from_height`)
where given, else by the median factor of the measured ones; a person with no measurable pair at all
is an error.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from capture.errors import FileFormatError, MocapError
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.kinematics.markers import MarkerData


class ScalingError(MocapError):
    """The person's joints do not allow scaling the model."""


@dataclass(frozen=True)
class Measurement:
    """One measurement of a scaling set-up: marker pairs and the (body, axes) they scale."""

    name: str
    apply: bool
    pairs: tuple[tuple[str, str], ...]
    bodies: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class SegmentScale:
    """A measurement's factors: ``factor`` (the one applied), ``left``/``right`` (each side's own
    pairs; NaN where it has none), ``source``: ``points``, ``height`` or ``median`` (see module);
    ``spread``: how much the pairs' lengths change from frame to frame (1.4826 MAD / length, the
    median over the pairs; 0 for constant bones)."""

    name: str
    factor: float
    left: float
    right: float
    source: str
    spread: float = float("nan")


@dataclass(frozen=True)
class ScaleFactors:
    """Per body: its (3,) X, Y, Z factors; per measurement: :class:`SegmentScale`."""

    bodies: dict
    segments: tuple[SegmentScale, ...]


def read_scaling_setup(path: str | Path) -> tuple[Measurement, ...]:
    """The measurements of an OpenSim ScaleTool set-up file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise FileFormatError(f"{path}: not a readable OpenSim scaling set-up ({exc})") from None
    if root.find(".//ScaleTool") is None and root.tag != "ScaleTool":
        raise FileFormatError(f"{path}: no <ScaleTool> in this file; is it a scaling set-up?")
    out = []
    for m in root.iter("Measurement"):
        apply = (m.findtext("apply") or "true").strip().lower() == "true"
        pairs = tuple(tuple(p.findtext("markers", "").split()) for p in m.iter("MarkerPair"))
        bad = [p for p in pairs if len(p) != 2]
        if bad:
            raise FileFormatError(f"{path}: measurement {m.get('name')!r}: a MarkerPair must name two markers, got {bad[0]}")
        bodies = tuple((b.get("name"), tuple((b.findtext("axes") or "X Y Z").split())) for b in m.iter("BodyScale"))
        out.append(Measurement(name=str(m.get("name")), apply=apply, pairs=pairs, bodies=bodies))
    return tuple(out)


def pair_lengths(markers: MarkerData, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(P,) interquartile mean distance (m) of each marker pair over the frames where both are
    present, and (P,) its relative frame-to-frame spread (1.4826 MAD / length); NaN where a marker
    is not in the data or never present."""
    index = {n: i for i, n in enumerate(markers.names)}
    out = np.full(len(pairs), np.nan)
    spread = np.full(len(pairs), np.nan)
    for p, (a, b) in enumerate(pairs):
        if a in index and b in index:
            d = np.linalg.norm(markers.xyz[:, index[a]] - markers.xyz[:, index[b]], axis=-1)
            d = d[np.isfinite(d)]
            if d.size:
                d = np.sort(d)
                out[p] = float(np.mean(d[d.size // 4: d.size - d.size // 4]))
                spread[p] = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / max(out[p], 1e-12)
    return out, spread


def _side(pair: tuple[str, str]) -> str:
    sides = {m[:1] for m in pair if m[:1] in "LR" and m[1:2].isupper()}
    return sides.pop() if len(sides) == 1 else ""


def _height_lengths(pairs: Sequence[tuple[str, str]], height_m: float) -> np.ndarray:
    """(P,) anthropometric length of each pair for a body height (NaN where no ratio is known)."""
    from reconstruction.bone_lengths import bone_lengths_from_height
    from reconstruction.skeleton import Skeleton, canonical_joint_name

    out = np.full(len(pairs), np.nan)
    for p, (a, b) in enumerate(pairs):
        ends = (canonical_joint_name(a), canonical_joint_name(b))
        if ends[0] == ends[1]:
            continue
        lengths = bone_lengths_from_height(height_m, Skeleton("pair", ends, (ends,))).lengths_m
        out[p] = float(lengths[0]) if np.isfinite(lengths[0]) else np.nan
    return out


def scale_factors(measurements: Sequence[Measurement], markers: MarkerData, model_markers: Mapping[str, np.ndarray],
                  symmetric: bool = True, height_m: float | None = None, source: str = "points") -> ScaleFactors:
    """Each body's X, Y, Z factors from the person's pair lengths over the model's (see module).

    ``model_markers``: marker name -> (3,) position on the unscaled model in its default pose;
    ``source`` names the points in messages.
    """
    used = [m for m in measurements if m.apply and m.pairs]
    segments, ratios = [], {}
    for m in used:
        data, spread = pair_lengths(markers, m.pairs)
        model = np.array([np.linalg.norm(np.asarray(model_markers[a]) - np.asarray(model_markers[b]))
                          if a in model_markers and b in model_markers else np.nan for a, b in m.pairs])
        origin = "points"
        if not np.isfinite(data).any() and height_m:
            data, origin = _height_lengths(m.pairs, height_m), "height"
        ratios[m.name] = (data / np.where(model > 0, model, np.nan), origin, spread)
    measured = [float(np.nanmean(r)) for r, s, _ in ratios.values() if s == "points" and np.isfinite(r).any()]
    if not measured:
        pairs = sorted({" ".join(p) for m in used for p in m.pairs})
        raise ScalingError(
            f"{source}: too few joints to scale the model: none of the marker pairs of the scaling "
            f"set-up ({'; '.join(pairs)}) has both markers in any frame; the data's markers with values: "
            f"{', '.join(present_markers(markers)) or 'none'}")
    fallback = float(np.median(measured))
    bodies: dict = {}
    for m in used:
        r, origin, spread = ratios[m.name]
        sides = np.array([_side(p) for p in m.pairs])
        with quiet_nan_warnings():
            both = float(np.nanmean(r)) if np.isfinite(r).any() else np.nan
            left = float(np.nanmean(r[sides == "L"])) if np.isfinite(r[sides == "L"]).any() else np.nan
            right = float(np.nanmean(r[sides == "R"])) if np.isfinite(r[sides == "R"]).any() else np.nan
        if not np.isfinite(both):
            both, left, right, origin = fallback, np.nan, np.nan, "median"
        with quiet_nan_warnings():
            segments.append(SegmentScale(m.name, both, left, right, origin, float(np.nanmedian(spread))
                                         if origin == "points" and np.isfinite(spread).any() else np.nan))
        for body, axes in m.bodies:
            side_factor = right if body.endswith("_r") else left if body.endswith("_l") else both
            factor = both if symmetric or not np.isfinite(side_factor) else side_factor
            entry = bodies.setdefault(body, {})
            for axis in axes:
                entry.setdefault(axis, []).append(factor)
    body_scales = {b: np.array([np.mean(axes.get(a, [1.0])) for a in "XYZ"]) for b, axes in bodies.items()}
    return ScaleFactors(bodies=body_scales, segments=tuple(segments))


def present_markers(markers: MarkerData) -> list[str]:
    """Markers present in at least one frame."""
    seen = np.isfinite(markers.xyz).all(axis=-1).any(axis=0)
    return [n for n, s in zip(markers.names, seen) if s]


def write_scaling_setup(template: str | Path, out: str | Path, *, model_file: str | Path, output_model: str | Path,
                        factors: ScaleFactors, mass_kg: float, height_m: float | None) -> Path:
    """The ScaleTool set-up that applies ``factors`` to ``model_file`` and writes ``output_model``:
    the template's measurements switched off, its manual scales replaced, marker files unassigned
    (the factors are all the scaling), the marker placer off."""
    tree = ET.parse(template)
    root = tree.getroot()
    tool = root.find(".//ScaleTool") if root.tag != "ScaleTool" else root
    _set(tool, "mass", f"{mass_kg:g}")
    _set(tool, "height", f"{height_m:g}" if height_m else "-1")
    _set(tool.find("GenericModelMaker"), "model_file", str(model_file))
    _set(tool.find("GenericModelMaker"), "marker_set_file", "Unassigned")
    scaler = tool.find("ModelScaler")
    _set(scaler, "apply", "true")
    _set(scaler, "scaling_order", " manualScale")
    for m in scaler.iter("Measurement"):
        _set(m, "apply", "false")
    objects = scaler.find("ScaleSet/objects")
    if objects is None:
        objects = ET.SubElement(ET.SubElement(scaler, "ScaleSet"), "objects")
    for old in list(objects):
        objects.remove(old)
    for body, xyz in factors.bodies.items():
        scale = ET.SubElement(objects, "Scale")
        ET.SubElement(scale, "scales").text = " " + " ".join(repr(float(v)) for v in xyz)
        ET.SubElement(scale, "segment").text = body
        ET.SubElement(scale, "apply").text = "true"
    for element in tool.iter("marker_file"):
        element.text = "Unassigned"
    _set(scaler, "output_model_file", str(output_model))
    placer = tool.find("MarkerPlacer")
    if placer is not None:
        _set(placer, "apply", "false")
    tree.write(out, encoding="utf-8", xml_declaration=True)
    return Path(out)


def _set(parent, tag: str, text: str) -> None:
    element = parent.find(tag)
    if element is None:
        element = ET.SubElement(parent, tag)
    element.text = text
