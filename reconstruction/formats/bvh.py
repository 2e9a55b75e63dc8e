"""BVH files: the clip's joint hierarchy and its motion channels, read and written (no kinematics here).

A BVH file holds a joint hierarchy (offsets in the parent's rest frame, rotation channels in a
per-joint order) and one line of channel values per frame. Shape letters: ``T`` frames, ``J``
joints, ``C`` channels. :func:`load_bvh` / :func:`write_bvh` are a round trip of :class:`BvhMotion`.
Forward kinematics and retargeting: :mod:`reconstruction.simulation.bvh`; our 3D joints as a BVH
clip: :mod:`reconstruction.kinematics.bvh_export`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class BvhMotion:
    """A parsed BVH clip.

    Attributes:
        joint_names: (J,) joint names; End Sites are joints named ``<parent>_end``.
        parents: (J,) index of each joint's parent, -1 for the root; parents come before children.
        offsets: (J, 3) offset from the parent in the parent's rest frame, file units.
        channels: per joint, its channel names in file order (``Xposition``, ``Zrotation``, ...).
        motion: (T, C) channel values per frame (rotations in degrees).
        frame_time: seconds between frames.
        source: file name, for messages.
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    motion: np.ndarray
    frame_time: float
    source: str = "<bvh>"

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def duration_s(self) -> float:
        return (self.num_frames - 1) * self.frame_time

    def index(self, name: str) -> int:
        return self.joint_names.index(name)


def load_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file; a malformed file raises :class:`FileFormatError` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise FileFormatError(f"{path}: BVH file not found") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read BVH file ({exc.strerror})") from None
    return parse_bvh(text, str(path))


def parse_bvh(text: str, source: str = "<bvh>") -> BvhMotion:
    """Parse BVH text (HIERARCHY then MOTION)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip().upper() != "HIERARCHY":
        raise FileFormatError(f"{source}: not a BVH file (it must start with HIERARCHY)")
    names, parents, offsets, channels, i = _parse_hierarchy(lines, i + 1, source)
    motion, frame_time = _parse_motion(lines, i, sum(len(c) for c in channels), source)
    return BvhMotion(
        joint_names=tuple(names),
        parents=np.array(parents, dtype=np.int64),
        offsets=np.array(offsets, dtype=np.float64),
        channels=tuple(channels),
        motion=motion,
        frame_time=frame_time,
        source=source,
    )


def _parse_hierarchy(lines: list[str], i: int, source: str):
    """The joints of the HIERARCHY from line ``i``: (names, parents, offsets, channels, the line after
    MOTION)."""
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    pending: int | None = None  # joint declared, its "{" not read yet

    def fail(message: str, line_no: int) -> FileFormatError:
        return FileFormatError(f"{source}: line {line_no + 1}: {message}")

    while i < len(lines):
        tokens = lines[i].split()
        i += 1
        if not tokens:
            continue
        key = tokens[0]
        if key in ("ROOT", "JOINT", "End"):
            if key == "End" and not stack:
                raise fail("End Site outside of a joint", i - 1)
            if key != "End" and len(tokens) < 2:
                raise fail(f"{key} without a name", i - 1)
            if key == "JOINT" and not stack:
                raise fail("JOINT outside of ROOT", i - 1)
            names.append(f"{names[stack[-1]]}_end" if key == "End" else tokens[1])
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = len(names) - 1
        elif key == "{":
            if pending is None:
                raise fail("'{' without a joint", i - 1)
            stack.append(pending)
            pending = None
        elif key == "}":
            if not stack:
                raise fail("unbalanced '}'", i - 1)
            stack.pop()
        elif key == "OFFSET":
            if not stack or len(tokens) != 4:
                raise fail("OFFSET needs 3 numbers inside a joint", i - 1)
            try:
                offsets[stack[-1]] = [float(v) for v in tokens[1:]]
            except ValueError:
                raise fail(f"OFFSET values are not numbers: {' '.join(tokens[1:])}", i - 1) from None
        elif key == "CHANNELS":
            if not stack:
                raise fail("CHANNELS outside of a joint", i - 1)
            channels[stack[-1]] = _channels(tokens, fail, i - 1)
        elif key.upper() == "MOTION":
            break
        else:
            raise fail(f"unexpected {key!r} in HIERARCHY", i - 1)
    else:
        raise FileFormatError(f"{source}: no MOTION section (the file is truncated?)")
    if stack or not names:
        raise FileFormatError(f"{source}: HIERARCHY is not closed (unbalanced braces)")
    return names, parents, offsets, channels, i


def _channels(tokens: list[str], fail, line_no: int) -> tuple[str, ...]:
    try:
        count = int(tokens[1])
    except (IndexError, ValueError):
        raise fail("CHANNELS needs a count", line_no) from None
    names = tuple(tokens[2:])
    if len(names) != count or not all(
        len(c) == 9 and c[0] in "XYZ" and c[1:] in ("position", "rotation") for c in names
    ):
        raise fail(f"bad CHANNELS line: {' '.join(tokens)}", line_no)
    return names


def _parse_motion(lines: list[str], i: int, num_channels: int, source: str) -> tuple[np.ndarray, float]:
    """(T, C) channel values and the frame time (s) of the MOTION section from line ``i``."""

    def header(prefix: str) -> str:
        nonlocal i
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or not lines[i].strip().startswith(prefix):
            raise FileFormatError(f"{source}: line {i + 1}: expected '{prefix}' in the MOTION section")
        i += 1
        return lines[i - 1].split(":", 1)[1]

    try:
        num_frames = int(header("Frames:"))
        frame_time = float(header("Frame Time:"))
    except ValueError:
        raise FileFormatError(f"{source}: line {i}: Frames / Frame Time must be numbers") from None
    if frame_time <= 0:
        raise FileFormatError(f"{source}: Frame Time must be positive, got {frame_time}")
    try:
        values = np.array(" ".join(lines[i:]).split(), dtype=np.float64)
    except ValueError:
        raise FileFormatError(f"{source}: MOTION data contains text that is not a number") from None
    available = values.size // max(num_channels, 1)
    if available < num_frames:
        log.warning("%s: %d frames declared, %d present (truncated file); using those", source, num_frames, available)
        num_frames = available
    if num_frames < 1:
        raise FileFormatError(f"{source}: no complete frame of motion data ({num_channels} channels per frame)")
    return values[: num_frames * num_channels].reshape(num_frames, num_channels), frame_time


def write_bvh(path: str | Path, bvh: BvhMotion) -> Path:
    """Write a BVH file (temporary file, then renamed); End Sites are the joints without channels
    or children (named ``<parent>_end`` by :func:`parse_bvh`)."""
    path = Path(path)
    text = bvh_text(bvh)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


def bvh_text(bvh: BvhMotion) -> str:
    """The BVH text of a clip (HIERARCHY, then MOTION with 6 significant decimals)."""
    parents = np.asarray(bvh.parents)
    children = {j: [int(c) for c in np.flatnonzero(parents == j)] for j in range(len(bvh.joint_names))}
    roots = [int(j) for j in np.flatnonzero(parents < 0)]
    if len(roots) != 1:
        raise ValueError(f"a BVH clip has one root joint, got {len(roots)}")
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        offset = " ".join(f"{v:.6f}" for v in bvh.offsets[j])
        if not bvh.channels[j] and not children[j]:
            lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad}\tOFFSET {offset}", f"{pad}}}"])
            return
        keyword = "ROOT" if parents[j] < 0 else "JOINT"
        lines.extend([f"{pad}{keyword} {bvh.joint_names[j]}", f"{pad}{{", f"{pad}\tOFFSET {offset}",
                      f"{pad}\tCHANNELS {len(bvh.channels[j])} {' '.join(bvh.channels[j])}"])
        for c in children[j]:
            emit(c, depth + 1)
        lines.append(f"{pad}}}")

    emit(roots[0], 0)
    lines += ["MOTION", f"Frames: {bvh.num_frames}", f"Frame Time: {bvh.frame_time:.8f}"]
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.asarray(bvh.motion, dtype=np.float64))
    return "\n".join(lines) + "\n" + body + "\n"
