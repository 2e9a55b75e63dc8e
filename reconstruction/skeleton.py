"""Skeleton definitions: joint names, bones, left/right pairs, rigid bones.

Built-in skeletons are YAML files in ``configs/skeletons/``; a user's own YAML file works the same:

    name: my_skeleton
    joints: [a, b, c]            # output order of the 2D model
    bones: [[a, b], [b, c]]      # pairs of joint names
    non_rigid: [[a, b]]          # bones whose length may change (default: none)
    left_right: [[l_x, r_x]]     # mirrored joints, swapped by flips and swap correction
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.config import load_yaml
from capture.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SKELETON_DIR = CONFIG_DIR / "skeletons"


@dataclass(frozen=True, eq=False)
class Skeleton:
    """Joint names and topology. ``J`` = len(joint_names), ``B`` = len(bones)."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[str, str], ...]
    left_right: tuple[tuple[str, str], ...] = ()
    non_rigid: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        names = tuple(str(n) for n in self.joint_names)
        object.__setattr__(self, "joint_names", names)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"skeleton {self.name!r}: joint names repeated: {', '.join(repeated)}")
        known = set(names)
        for field_name in ("bones", "left_right", "non_rigid"):
            pairs = tuple(tuple(str(j) for j in pair) for pair in getattr(self, field_name))
            for pair in pairs:
                if len(pair) != 2:
                    raise ValueError(f"skeleton {self.name!r}: {field_name} entry {list(pair)} must name two joints")
                unknown = [j for j in pair if j not in known]
                if unknown:
                    raise ValueError(
                        f"skeleton {self.name!r}: {field_name} entry {list(pair)} names unknown joint "
                        f"{unknown[0]!r} (joints: {', '.join(names)})"
                    )
            object.__setattr__(self, field_name, pairs)
        bone_set = {frozenset(b) for b in self.bones}
        for pair in self.non_rigid:
            if frozenset(pair) not in bone_set:
                raise ValueError(f"skeleton {self.name!r}: non_rigid entry {list(pair)} is not one of its bones")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint: str) -> int:
        try:
            return self.joint_names.index(joint)
        except ValueError:
            raise KeyError(f"joint {joint!r} is not in skeleton {self.name!r}") from None

    @property
    def bone_indices(self) -> np.ndarray:
        """(B, 2) joint indices of each bone."""
        return np.array([[self.index(a), self.index(b)] for a, b in self.bones], dtype=np.int64).reshape(-1, 2)

    @property
    def rigid_mask(self) -> np.ndarray:
        """(B,) True where the bone is a rigid segment."""
        flexible = {frozenset(p) for p in self.non_rigid}
        return np.array([frozenset(b) not in flexible for b in self.bones], dtype=bool)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) index permutation that swaps every left joint with its right twin."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            i, j = self.index(left), self.index(right)
            perm[i], perm[j] = j, i
        return perm

    def bone_lengths(self, xyz: np.ndarray) -> np.ndarray:
        """3D joints (..., J, 3) -> bone lengths (..., B), same unit; NaN where a joint is NaN."""
        idx = self.bone_indices
        return np.linalg.norm(xyz[..., idx[:, 0], :] - xyz[..., idx[:, 1], :], axis=-1)


def builtin_skeletons() -> list[str]:
    """Names of the skeletons shipped in configs/skeletons/."""
    return sorted(p.stem for p in SKELETON_DIR.glob("*.yaml"))


def skeleton_from_mapping(data, source: str) -> Skeleton:
    """Skeleton from a parsed YAML mapping; ``source`` names the file in messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a skeleton file must be a mapping with 'joints' and 'bones'")
    allowed = {"name", "joints", "bones", "left_right", "non_rigid"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(allowed))})")
    joints = data.get("joints")
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        raise ConfigError(f"{source}: 'joints' must be a non-empty list of joint names")
    for key in ("bones", "left_right", "non_rigid"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
            raise ConfigError(f"{source}: '{key}' must be a list of [joint, joint] pairs")
    try:
        return Skeleton(
            name=str(data.get("name") or Path(source).stem),
            joint_names=tuple(joints),
            bones=tuple(tuple(p) for p in data.get("bones", [])),
            left_right=tuple(tuple(p) for p in data.get("left_right", [])),
            non_rigid=tuple(tuple(p) for p in data.get("non_rigid", [])),
        )
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_skeleton(name_or_path: str | Path) -> Skeleton:
    """A built-in skeleton by name (``coco17``, ``body25b``, ...) or a skeleton YAML file."""
    key = str(name_or_path)
    normalized = key.lower().replace("-", "").replace("_", "")
    for builtin in builtin_skeletons():
        if normalized == builtin.replace("_", ""):
            path = SKELETON_DIR / f"{builtin}.yaml"
            return skeleton_from_mapping(load_yaml(path), str(path))
    path = Path(key)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return skeleton_from_mapping(load_yaml(path), str(path))
    raise ConfigError(
        f"unknown skeleton {key!r}: give a built-in name ({', '.join(builtin_skeletons())}) or a skeleton YAML file"
    )


_SIDE = {"l": "left", "r": "right"}


def canonical_joint_name(name: str) -> str:
    """Map other tools' joint names to ours: 'RShoulder' -> 'right_shoulder', 'LBigToe' -> 'left_big_toe',
    'r_knee' -> 'right_knee', 'Nose' -> 'nose'. Names already in our form are returned unchanged."""
    name = name.strip()
    match = re.fullmatch(r"([LR])([A-Z][A-Za-z]*)", name)
    if match:
        side, rest = match.groups()
        return f"{_SIDE[side.lower()]}_{_snake(rest)}"
    match = re.fullmatch(r"([lLrR])[_.]([A-Za-z_]+)", name)
    if match:
        side, rest = match.groups()
        return f"{_SIDE[side.lower()]}_{_snake(rest)}"
    return _snake(name)


def marker_name(joint: str) -> str:
    """Our joint name -> the marker name of TRC files and Pose2Sim's OpenSim marker sets:
    'left_shoulder' -> 'LShoulder', 'right_big_toe' -> 'RBigToe', 'nose' -> 'Nose'.
    :func:`canonical_joint_name` inverts it."""
    parts = [p for p in str(joint).strip().split("_") if p]
    side = {"left": "L", "right": "R"}.get(parts[0], "") if parts else ""
    if side and len(parts) > 1:
        parts = parts[1:]
    return side + "".join(p[:1].upper() + p[1:] for p in parts)


def _snake(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text)
    return text.lower()
