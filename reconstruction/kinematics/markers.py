"""Our 3D joints as the markers an OpenSim marker set expects.

Shapes: ``T`` frames, ``J`` joints, ``M`` markers. Pose2Sim's marker sets name markers as its TRC
files do (``LShoulder``, ``RBigToe``, ``Neck``, ``Hip``); our joints map onto them by
:func:`reconstruction.skeleton.marker_name`, plus a few aliases (``mid_hip`` is Pose2Sim's ``CHip``,
BlazePose's ``foot_index`` its ``BigToe``). Markers a skeleton lacks but Pose2Sim derives the same way
are derived: ``Neck`` = the mid-point of the shoulders (COCO-17 has no neck), ``Hip`` / ``CHip`` = the
mid-point of the hips.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from capture.errors import FileFormatError
from reconstruction.skeleton import canonical_joint_name, marker_name

# marker (canonical form) -> our joints that are that point, in order of preference
ALIASES = {
    "chip": ("mid_hip", "hip", "pelvis"),  # canonical_joint_name("CHip")
    "hip": ("mid_hip", "chip", "pelvis"),
    "left_big_toe": ("left_foot_index",),
    "right_big_toe": ("right_foot_index",),
}
# marker -> the two markers whose mid-point it is, where the data lacks it (as Pose2Sim derives them)
DERIVED = {"Neck": ("LShoulder", "RShoulder"), "Hip": ("LHip", "RHip"), "CHip": ("LHip", "RHip")}


class MarkerMismatchError(FileFormatError):
    """The 3D points lack markers the marker set expects."""


@dataclass(frozen=True, eq=False)
class MarkerData:
    """The points arranged as a marker set's markers.

    Attributes:
        xyz: (T, M, 3) metres in our world frame (Z up), NaN where missing.
        names: (M,) marker names, in the marker set's order.
        derived: markers computed as mid-points (not measured).
        unused: our joints no marker takes.
    """

    xyz: np.ndarray
    names: tuple[str, ...]
    derived: tuple[str, ...]
    unused: tuple[str, ...]


def read_marker_set(path: str | Path) -> tuple[str, ...]:
    """The marker names of an OpenSim marker-set XML file (``<Marker name="...">``)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise FileFormatError(f"{path}: not a readable OpenSim marker set ({exc})") from None
    names = tuple(m.get("name") for m in root.iter("Marker") if m.get("name"))
    if not names:
        raise FileFormatError(f"{path}: no <Marker name=...> in this marker set")
    return names


def _source_index(marker: str, joints: Sequence[str]) -> int | None:
    canonical = canonical_joint_name(marker)
    for candidate in (canonical,) + ALIASES.get(canonical, ()):
        if candidate in joints:
            return joints.index(candidate)
    names = [marker_name(j) for j in joints]
    return names.index(marker) if marker in names else None


def markers_from_points(xyz: np.ndarray, joint_names: Sequence[str], markers: Sequence[str],
                        source: str, marker_file: str) -> MarkerData:
    """``xyz`` (T, J, 3) of ``joint_names`` as the ``markers`` of a marker set.

    Raises :class:`MarkerMismatchError` naming the missing markers (and what the data has) where
    one can be neither found nor derived.
    """
    joints = list(joint_names)
    T = xyz.shape[0]
    out = np.full((T, len(markers), 3), np.nan)
    found: dict[str, int] = {}
    for m, marker in enumerate(markers):
        j = _source_index(marker, joints)
        if j is not None:
            out[:, m] = xyz[:, j]
            found[marker] = j
    derived, missing = [], []
    for m, marker in enumerate(markers):
        if marker in found:
            continue
        pair = DERIVED.get(marker)
        ends = [_source_index(p, joints) for p in pair] if pair else [None]
        if None in ends:
            missing.append(marker)
            continue
        out[:, m] = 0.5 * (xyz[:, ends[0]] + xyz[:, ends[1]])
        derived.append(marker)
    if missing:
        raise MarkerMismatchError(
            f"{source}: the marker set {marker_file} expects markers the data lacks: {', '.join(missing)} "
            f"(the data has: {', '.join(marker_name(j) for j in joints)}); choose the marker set of the "
            "points' skeleton (--markers coco17, body25b, halpe26, blazepose) or give your own marker-set XML")
    used = set(found.values())
    unused = tuple(j for i, j in enumerate(joints) if i not in used)
    return MarkerData(xyz=out, names=tuple(markers), derived=tuple(derived), unused=unused)
