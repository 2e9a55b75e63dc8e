"""BVH motion capture clips: forward kinematics, and retargeting to one of our skeletons
(the files themselves are read by :mod:`reconstruction.formats.bvh`).

A BVH file holds a joint hierarchy (offsets in the parent's rest frame, rotation channels in a per-joint
order) and one line of channel values per frame. Shape letters: ``T`` frames, ``J`` joints.

Retargeting (:func:`retarget_bvh`) turns a clip into 3D joints ``(T, J, 3)`` of a target skeleton in our
world (metres, Z up, floor at Z = 0), resampled to the requested frame rate, with every rigid bone of
the target skeleton at one FIXED length: each bone keeps the direction it has in the clip and gets the
subject's length, from the root of its chain outwards. Joints the BVH lacks (eyes, ears, heels, toes)
are synthesized from the head and foot frames with fixed offsets.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from capture.errors import ConfigError
from reconstruction.formats.bvh import BvhMotion
from reconstruction.simulation.motion import axis_rotation
from reconstruction.skeleton import Skeleton

log = logging.getLogger(__name__)

# CMU clips: 1 unit = (1/0.45) inch * 2.54 cm = 0.056444 m (bvh converted from the CMU .asf/.amc).
CMU_UNIT_M = 0.056444

_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}

# Our canonical joint -> BVH joint names that hold it, most specific first. Two naming families are
# common: MotionBuilder/CMU-"daz" style (LeftUpLeg, LeftLeg, LeftFoot, LeftArm = shoulder, LeftForeArm,
# LeftHand, where LeftShoulder is the COLLAR) and the CMU-"bvh11" style of ../shared/data/mocap/131_02.bvh
# (LeftHip, LeftKnee, LeftAnkle, LeftShoulder = shoulder after LeftCollar, LeftElbow, LeftWrist).
# The ordering puts LeftArm before LeftShoulder so that files having both pick the real shoulder.
BVH_JOINT_MAP: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips", "hip", "Pelvis"),
    "left_hip": ("LeftUpLeg", "LeftHip", "LHip", "LeftThigh", "lThigh"),
    "right_hip": ("RightUpLeg", "RightHip", "RHip", "RightThigh", "rThigh"),
    "left_knee": ("LeftLeg", "LeftKnee", "LKnee", "LeftShin", "lShin"),
    "right_knee": ("RightLeg", "RightKnee", "RKnee", "RightShin", "rShin"),
    "left_ankle": ("LeftFoot", "LeftAnkle", "LAnkle", "lFoot"),
    "right_ankle": ("RightFoot", "RightAnkle", "RAnkle", "rFoot"),
    "left_toe": ("LeftToeBase", "LeftToe", "LToe", "LeftToes"),
    "right_toe": ("RightToeBase", "RightToe", "RToe", "RightToes"),
    "left_shoulder": ("LeftArm", "LeftUpArm", "LeftShoulder", "LShoulder", "lShldr"),
    "right_shoulder": ("RightArm", "RightUpArm", "RightShoulder", "RShoulder", "rShldr"),
    "left_elbow": ("LeftForeArm", "LeftElbow", "LeftLowArm", "LElbow", "lForeArm"),
    "right_elbow": ("RightForeArm", "RightElbow", "RightLowArm", "RElbow", "rForeArm"),
    "left_wrist": ("LeftHand", "LeftWrist", "LWrist", "lHand"),
    "right_wrist": ("RightHand", "RightWrist", "RWrist", "rHand"),
    "neck": ("Neck", "Neck1", "neck"),
    "head": ("Head", "head"),
}

# Joints synthesized from a BVH joint's frame: (BVH source canonical joint, offset in metres in the
# character's REST axes: x = character's left, y = up, z = forward, the CMU rest pose).
SYNTHESIZED_OFFSETS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "nose": ("head", (0.0, 0.06, 0.10)),
    "left_eye": ("head", (0.032, 0.09, 0.085)),
    "right_eye": ("head", (-0.032, 0.09, 0.085)),
    "left_ear": ("head", (0.075, 0.07, 0.0)),
    "right_ear": ("head", (-0.075, 0.07, 0.0)),
    "head_top": ("head", (0.0, 0.19, 0.0)),
    "left_heel": ("left_ankle", (0.0, -0.06, -0.06)),
    "right_heel": ("right_ankle", (0.0, -0.06, -0.06)),
    "left_big_toe": ("left_ankle", (-0.02, -0.07, 0.17)),
    "right_big_toe": ("right_ankle", (0.02, -0.07, 0.17)),
    "left_small_toe": ("left_ankle", (0.04, -0.07, 0.14)),
    "right_small_toe": ("right_ankle", (-0.04, -0.07, 0.14)),
}


def forward_kinematics(bvh: BvhMotion) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions (T, J, 3) in file units and axes, and global rotations (T, J, 3, 3).

    Rotation channels compose in file order (``Zrotation Yrotation Xrotation`` -> Rz @ Ry @ Rx);
    a joint's position is its parent's position plus the parent's rotation applied to its offset.
    Vectorized over frames; the loop runs over the joints of the hierarchy.
    """
    T = bvh.num_frames
    J = len(bvh.joint_names)
    positions = np.zeros((T, J, 3))
    rotations = np.zeros((T, J, 3, 3))
    column = 0
    for j in range(J):
        local = np.broadcast_to(np.eye(3), (T, 3, 3)).copy()
        translation = np.zeros((T, 3))
        for name in bvh.channels[j]:
            values = bvh.motion[:, column]
            column += 1
            axis = _AXIS_INDEX[name[0]]
            if name.endswith("position"):
                translation[:, axis] = values
            else:
                local = local @ axis_rotation(axis, np.deg2rad(values))
        parent = bvh.parents[j]
        if parent < 0:
            positions[:, j] = translation + bvh.offsets[j]
            rotations[:, j] = local
        else:
            positions[:, j] = positions[:, parent] + rotations[:, parent] @ bvh.offsets[j] + translation
            rotations[:, j] = rotations[:, parent] @ local
    return positions, rotations


def _bvh_to_world(up: str) -> np.ndarray:
    """(3, 3) rotation from BVH axes to ours (Z up, right-handed)."""
    if up.lower() == "y":  # Y up, Z forward in rest: x -> X, y -> Z, z -> -Y
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    if up.lower() == "z":
        return np.eye(3)
    raise ConfigError(f"BVH up axis must be 'y' or 'z', got {up!r}")


def _find(bvh: BvhMotion, canonical: str) -> int | None:
    for candidate in BVH_JOINT_MAP.get(canonical, ()):
        if candidate in bvh.joint_names:
            return bvh.index(candidate)
    return None


def bvh_canonical_joints(
    bvh: BvhMotion, joint_names: Sequence[str], unit_m: float = CMU_UNIT_M, up: str = "y"
) -> np.ndarray:
    """Positions (T, J, 3) of the named canonical joints in our axes (metres, Z up), at the clip's rate.

    Joints the file has are mapped by :data:`BVH_JOINT_MAP`; eyes, ears, nose, heels and toes are placed
    at :data:`SYNTHESIZED_OFFSETS` in the frame of their head or ankle joint; ``mid_hip`` /
    ``mid_shoulder`` are midpoints. A joint we cannot place raises :class:`ConfigError`.
    """
    positions, rotations = forward_kinematics(bvh)
    positions = positions * unit_m
    to_world = _bvh_to_world(up)
    out = np.full((bvh.num_frames, len(joint_names), 3), np.nan)

    def place(name: str) -> np.ndarray:
        j = _find(bvh, name)
        if j is not None:
            return positions[:, j]
        if name in SYNTHESIZED_OFFSETS:
            base, offset = SYNTHESIZED_OFFSETS[name]
            k = _find(bvh, base)
            if k is not None:
                # CMU rest axes: x = left, y = up, z = forward; the base joint's frame carries them.
                local = np.asarray(offset) if up.lower() == "y" else np.array([offset[0], -offset[2], offset[1]])
                return positions[:, k] + rotations[:, k] @ local
        for mid, (a, b) in {"mid_hip": ("left_hip", "right_hip"), "mid_shoulder": ("left_shoulder", "right_shoulder")}.items():
            if name == mid:
                return 0.5 * (place(a) + place(b))
        if name == "neck":
            return 0.5 * (place("left_shoulder") + place("right_shoulder"))
        known = sorted(set(BVH_JOINT_MAP) | set(SYNTHESIZED_OFFSETS) | {"mid_hip", "mid_shoulder"})
        raise ConfigError(
            f"{bvh.source}: cannot place joint {name!r} of the target skeleton from this BVH "
            f"(joints it can place: {', '.join(known)}); choose another skeleton"
        )

    for j, name in enumerate(joint_names):
        out[:, j] = place(name)
    return out @ to_world.T


def _rigid_forest(skeleton: Skeleton) -> list[tuple[int, int, str]]:
    """Bones as (parent, child, kind) joint indices in an order where every parent is placed first.

    Each connected component of the rigid bones is walked breadth-first from its root: a left/right
    pair bone (shoulders, hips; kind ``pair``) when the component has one, so that both ends move
    symmetrically about their midpoint, else the joint with most rigid bones. Bones closing a loop are
    skipped. Joints with no rigid bone then follow a placed neighbour through a non-rigid bone
    (kind ``carry``: the bone's vector is kept).
    """
    J = skeleton.num_joints
    rigid = skeleton.rigid_mask
    idx = skeleton.bone_indices[rigid]
    neighbours: list[list[int]] = [[] for _ in range(J)]
    for a, b in idx:
        neighbours[a].append(b)
        neighbours[b].append(a)
    pairs = {frozenset((skeleton.index(a), skeleton.index(b))) for a, b in skeleton.left_right}
    placed = np.zeros(J, dtype=bool)
    order: list[tuple[int, int, str]] = []
    for start in sorted(range(J), key=lambda j: -len(neighbours[j])):
        if placed[start] or not neighbours[start]:
            continue
        component = {start}
        frontier = [start]
        while frontier:
            nxt = [n for j in frontier for n in neighbours[j] if n not in component]
            component.update(nxt)
            frontier = nxt
        pair_bones = [(a, b) for a, b in idx if a in component and frozenset((a, b)) in pairs]
        if pair_bones:
            a, b = pair_bones[0]
            order.append((a, b, "pair"))
            queue = [a, b]
            placed[a] = placed[b] = True
        else:
            root = max(component, key=lambda j: len(neighbours[j]))
            queue = [root]
            placed[root] = True
        while queue:
            nxt = []
            for j in queue:
                for n in neighbours[j]:
                    if not placed[n]:
                        placed[n] = True
                        order.append((j, n, "rigid"))
                        nxt.append(n)
            queue = nxt
    loose = skeleton.bone_indices[~rigid]
    changed = True
    while changed:
        changed = False
        for a, b in loose:
            for parent, child in ((a, b), (b, a)):
                if placed[parent] and not placed[child]:
                    placed[child] = True
                    order.append((parent, child, "carry"))
                    changed = True
    return order


def bone_lengths_array(skeleton: Skeleton, bone_lengths) -> np.ndarray:
    """(B,) bone lengths in the order of ``skeleton.bones`` from an array or a {(a, b): metres} mapping."""
    if isinstance(bone_lengths, Mapping):
        lengths = np.full(len(skeleton.bones), np.nan)
        for k, (a, b) in enumerate(skeleton.bones):
            value = bone_lengths.get((a, b), bone_lengths.get((b, a)))
            if value is not None:
                lengths[k] = float(value)
        return lengths
    lengths = np.asarray(bone_lengths, dtype=np.float64).ravel()
    if lengths.shape != (len(skeleton.bones),):
        raise ValueError(f"bone_lengths must have one value per bone ({len(skeleton.bones)}), got {lengths.shape}")
    return lengths


def impose_bone_lengths(xyz: np.ndarray, skeleton: Skeleton, bone_lengths) -> np.ndarray:
    """Joints (T, J, 3) -> joints whose rigid bones have exactly ``bone_lengths`` (B,) metres.

    Each rigid bone keeps its direction; its child is moved to ``parent + length * direction`` along the
    chain (see :func:`_rigid_forest`), so lengths are constant over frames. NaN lengths keep the input.
    """
    lengths = bone_lengths_array(skeleton, bone_lengths)
    lookup = {}
    for k, (a, b) in enumerate(skeleton.bone_indices):
        lookup[(a, b)] = lookup[(b, a)] = lengths[k]
    src = np.asarray(xyz, dtype=np.float64)
    out = src.copy()
    for parent, child, kind in _rigid_forest(skeleton):
        length = lookup[(parent, child)]
        if kind == "pair" and np.isfinite(length):  # both ends about the source midpoint
            mid = 0.5 * (src[:, parent] + src[:, child])
            direction = src[:, child] - src[:, parent]
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
            out[:, parent] = mid - 0.5 * length * direction
            out[:, child] = mid + 0.5 * length * direction
        elif kind == "rigid" and np.isfinite(length):
            direction = src[:, child] - src[:, parent]
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
            out[:, child] = out[:, parent] + length * direction
        elif kind != "pair":
            out[:, child] = out[:, parent] + (src[:, child] - src[:, parent])
    return out


def resample(xyz: np.ndarray, src_fps: float, fps: float, num_frames: int, start_s: float = 0.0) -> np.ndarray:
    """Linear resampling of (T, J, 3) from ``src_fps`` to ``num_frames`` frames at ``fps`` from ``start_s``."""
    times = (start_s + np.arange(num_frames) / fps) * src_fps
    lo = np.clip(np.floor(times).astype(np.int64), 0, xyz.shape[0] - 1)
    hi = np.clip(lo + 1, 0, xyz.shape[0] - 1)
    w = (times - lo)[:, None, None]
    return (1 - w) * xyz[lo] + w * xyz[hi]


def retarget_bvh(
    bvh: BvhMotion,
    skeleton: Skeleton,
    fps: float,
    num_frames: int | None = None,
    unit_m: float = CMU_UNIT_M,
    up: str = "y",
    bone_lengths=None,
    height_m: float | None = None,
    start_s: float = 0.0,
    center: bool = True,
) -> np.ndarray:
    """A BVH clip as 3D joints (T, J, 3) of ``skeleton``: world metres, Z up, resampled to ``fps``.

    Args:
        bvh: the parsed clip.
        skeleton: target skeleton; its joint names are mapped by :func:`bvh_canonical_joints`.
        fps: output frame rate.
        num_frames: output frames (default: the whole clip from ``start_s``); more than the clip holds
            raises :class:`ConfigError`.
        unit_m: metres per file unit (CMU: :data:`CMU_UNIT_M`).
        up: the file's up axis, ``"y"`` (most files) or ``"z"``.
        bone_lengths: the subject's rigid bone lengths, (B,) or {(a, b): metres}; default: the median
            lengths over the clip (scaled by ``height_m`` when given).
        height_m: scale the performer to this standing height (floor to top of the head in rest pose).
        start_s: clip time of the first output frame.
        center: move the clip so that its mean pelvis position is above the world origin.

    The floor (Z = 0) is the lowest point reached by the feet (toe end sites) over the clip.
    """
    xyz_src = bvh_canonical_joints(bvh, skeleton.joint_names, unit_m, up)
    positions, _ = forward_kinematics(bvh)
    world = positions * unit_m @ _bvh_to_world(up).T
    if height_m is not None:
        rest = _rest_positions(bvh) * unit_m @ _bvh_to_world(up).T
        scale = float(height_m) / float(np.ptp(rest[:, 2]))
        xyz_src = xyz_src * scale
        world = world * scale
    feet = [j for j, n in enumerate(bvh.joint_names) if "toe" in n.lower() or "foot" in n.lower()]
    floor = np.nanmin(world[:, feet, 2]) if feet else np.nanmin(xyz_src[..., 2])
    xyz_src[..., 2] -= floor
    if center:
        xyz_src[..., :2] -= np.nanmean(world[:, 0, :2], axis=0)
    available = int(np.floor((bvh.duration_s - start_s) * fps + 1e-9)) + 1
    if num_frames is None:
        num_frames = available
    if num_frames > available or start_s < 0:
        raise ConfigError(
            f"{bvh.source}: the clip lasts {bvh.duration_s:.2f} s; {num_frames} frames at {fps:g} fps from "
            f"{start_s:g} s need {(num_frames - 1) / fps + start_s:.2f} s: ask for at most "
            f"{(available - 1) / fps:.2f} s"
        )
    xyz = resample(xyz_src, bvh.fps, fps, num_frames, start_s)
    if bone_lengths is None:
        bone_lengths = np.nanmedian(skeleton.bone_lengths(xyz_src), axis=0)
    return impose_bone_lengths(xyz, skeleton, bone_lengths)


def _rest_positions(bvh: BvhMotion) -> np.ndarray:
    """Joint positions (J, 3) in the rest pose (all channels zero), file units."""
    rest = BvhMotion(bvh.joint_names, bvh.parents, bvh.offsets, bvh.channels, np.zeros((1, bvh.motion.shape[1])),
                     bvh.frame_time, bvh.source)
    return forward_kinematics(rest)[0][0]
