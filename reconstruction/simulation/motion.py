"""Procedural 3D motion of one person, with rigid bones of constant length, for any skeleton.

One canonical body is built as a kinematic chain of rigid segments (pelvis, torso, head, upper
arms, forearms, hands, thighs, shanks, feet), each rotating about a pivot joint of its parent with
joint angles that vary smoothly over time (sums of sinusoids with random phases). Every canonical
point is fixed in its segment, so the distance between two points of one segment, or between a
point and the pivot of its segment, never changes: every rigid bone of every built-in skeleton
keeps its length exactly (to float precision).

A skeleton's joints are mapped to canonical points by name (``canonical_body_map``). Joints whose
name is unknown are attached rigidly to a known neighbour along the skeleton's bones (a small fixed
offset in that neighbour's segment), or to the pelvis if they have none, so any skeleton YAML works.

World frame: metres, Z up; the person walks on a circle of radius 0.2-0.3 m around the origin,
slows down to stand now and then, swings and raises the arms, bends and turns the head; the lowest
foot point touches z = 0 (soft minimum, so the motion stays smooth). Body frame: x forward,
y left, z up.
"""
from __future__ import annotations

import numpy as np

# Segment dimensions as fractions of body height (after Winter's anthropometric tables).
_DIMENSIONS = {
    "hip_width": 0.108,  # between the hip joint centres
    "shoulder_width": 0.210,  # between the shoulder joint centres
    "torso": 0.288,  # pelvis centre (mid-hip) to neck base (mid-shoulder)
    "neck": 0.050,  # neck base (mid-shoulder) to upper neck, the head's pivot
    "head": 0.182,  # neck base to head top
    "upper_arm": 0.186,
    "forearm": 0.146,
    "hand": 0.060,  # wrist to index knuckle
    "thigh": 0.245,
    "shank": 0.246,
    "ankle_height": 0.039,
    "foot": 0.152,  # heel to toe tip
}

# Segment -> (parent, pivot canonical point or None for the root).
_SEGMENTS = {
    "pelvis": (None, None),
    "torso": ("pelvis", "pelvis"),
    "head": ("torso", "upper_neck"),
    "left_upper_arm": ("torso", "left_shoulder"),
    "left_forearm": ("left_upper_arm", "left_elbow"),
    "left_hand": ("left_forearm", "left_wrist"),
    "right_upper_arm": ("torso", "right_shoulder"),
    "right_forearm": ("right_upper_arm", "right_elbow"),
    "right_hand": ("right_forearm", "right_wrist"),
    "left_thigh": ("pelvis", "left_hip"),
    "left_shank": ("left_thigh", "left_knee"),
    "left_foot": ("left_shank", "left_ankle"),
    "right_thigh": ("pelvis", "right_hip"),
    "right_shank": ("right_thigh", "right_knee"),
    "right_foot": ("right_shank", "right_ankle"),
}


def _canonical_points(d: dict) -> dict[str, tuple[str, np.ndarray]]:
    """Canonical point -> (segment, position in the segment frame relative to the segment's pivot)."""
    H = d["head"] / _DIMENSIONS["head"]  # only used for small facial/foot offsets, scaled with the body
    pts = {
        "pelvis": ("pelvis", (0.0, 0.0, 0.0)),
        "neck_base": ("torso", (0.0, 0.0, d["torso"])),
        "upper_neck": ("torso", (0.0, 0.0, d["torso"] + d["neck"])),
        # head points relative to the head's pivot, the upper neck
        "head_top": ("head", (-0.01 * H, 0.0, d["head"] - d["neck"])),
        "nose": ("head", (0.058 * H, 0.0, 0.100 * H - d["neck"])),
        "mouth_center": ("head", (0.050 * H, 0.0, 0.078 * H - d["neck"])),
    }
    for side, s in (("left", 1.0), ("right", -1.0)):
        pts.update({
            f"{side}_hip": ("pelvis", (0.0, s * d["hip_width"] / 2, 0.0)),
            f"{side}_shoulder": ("torso", (0.0, s * d["shoulder_width"] / 2, d["torso"])),
            f"{side}_elbow": (f"{side}_upper_arm", (0.0, 0.0, -d["upper_arm"])),
            f"{side}_wrist": (f"{side}_forearm", (0.0, 0.0, -d["forearm"])),
            f"{side}_index": (f"{side}_hand", (0.25 * d["hand"], 0.0, -d["hand"])),
            f"{side}_pinky": (f"{side}_hand", (-0.30 * d["hand"], 0.0, -0.9 * d["hand"])),
            f"{side}_thumb": (f"{side}_hand", (0.45 * d["hand"], 0.0, -0.55 * d["hand"])),
            f"{side}_knee": (f"{side}_thigh", (0.0, 0.0, -d["thigh"])),
            f"{side}_ankle": (f"{side}_shank", (0.0, 0.0, -d["shank"])),
            f"{side}_heel": (f"{side}_foot", (-0.19 * d["foot"], 0.0, -d["ankle_height"])),
            f"{side}_big_toe": (f"{side}_foot", (0.78 * d["foot"], -s * 0.07 * d["foot"], -d["ankle_height"])),
            f"{side}_small_toe": (f"{side}_foot", (0.62 * d["foot"], s * 0.17 * d["foot"], -d["ankle_height"])),
            f"{side}_foot_index": (f"{side}_foot", (0.81 * d["foot"], 0.0, -d["ankle_height"])),
            f"{side}_eye": ("head", (0.050 * H, s * 0.018 * H, 0.118 * H - d["neck"])),
            f"{side}_eye_inner": ("head", (0.053 * H, s * 0.010 * H, 0.118 * H - d["neck"])),
            f"{side}_eye_outer": ("head", (0.045 * H, s * 0.027 * H, 0.118 * H - d["neck"])),
            f"{side}_ear": ("head", (-0.005 * H, s * 0.043 * H, 0.105 * H - d["neck"])),
            f"mouth_{side}": ("head", (0.048 * H, s * 0.014 * H, 0.076 * H - d["neck"])),
        })
    return {name: (seg, np.asarray(p, dtype=np.float64)) for name, (seg, p) in pts.items()}


CANONICAL_JOINTS: tuple[str, ...] = tuple(_canonical_points({k: v * 1.75 for k, v in _DIMENSIONS.items()}))

# Other names of canonical points (after reconstruction.skeleton.canonical_joint_name).
_ALIASES = {
    "mid_hip": "pelvis", "hip": "pelvis", "hips": "pelvis", "root": "pelvis", "pelvis_center": "pelvis",
    "thorax": "neck_base", "neck": "neck_base", "mid_shoulder": "neck_base",
    "head": "head_top", "headtop": "head_top", "top_head": "head_top",
    "mouth": "mouth_center",
    "left_foot": "left_foot_index", "right_foot": "right_foot_index",
    "left_toe": "left_big_toe", "right_toe": "right_big_toe",
    "left_hand": "left_index", "right_hand": "right_index",
}


def canonical_body_map(skeleton) -> list[str | None]:
    """Canonical point name for each joint of ``skeleton`` (a Skeleton or a name), None if unknown.

    "neck" means the upper neck (the head's pivot) in skeletons that also have a "head" or a
    "thorax" (MPII, HALPE, OpenPose BODY_25B, whose bones neck-head and neck-shoulders are both
    rigid), else the neck base between the shoulders (OpenPose BODY_25, COCO-like sets).
    """
    from reconstruction.skeleton import canonical_joint_name

    skeleton = _as_skeleton(skeleton)
    names = skeleton.joint_names
    upper_neck = bool({"thorax", "head", "head_top"} & {canonical_joint_name(n) for n in names})
    out = []
    for name in names:
        key = canonical_joint_name(name)
        if key == "neck" and upper_neck:
            key = "upper_neck"
        key = _ALIASES.get(key, key)
        out.append(key if key in CANONICAL_JOINTS else None)
    return out


def _as_skeleton(skeleton):
    from reconstruction.skeleton import Skeleton, load_skeleton

    return skeleton if isinstance(skeleton, Skeleton) else load_skeleton(skeleton)


def axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Right-handed rotations (T, 3, 3) about x (0), y (1) or z (2) by ``angle`` (T,) radians."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., j, j] = c
    R[..., i, j] = -s
    R[..., j, i] = s
    return R


def _joint_angles(t: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Local rotations (T, 3, 3) of every segment, and the root path, as smooth functions of time t (T,)."""
    ph = rng.uniform(0, 2 * np.pi, size=16)
    f_step = rng.uniform(0.8, 1.0)  # strides per second
    walk_period = rng.uniform(9.0, 13.0)  # walking <-> standing cycle
    # Walking intensity in [0.1, 1]: slows to (almost) standing periodically.
    a = 0.55 + 0.45 * np.sin(2 * np.pi * t / walk_period + ph[0])
    gait = 2 * np.pi * f_step * t + ph[1]
    rot = {}
    # Legs: hip flexion, knee flexion (always >= 0), ankle dorsiflexion.
    for side, shift in (("left", 0.0), ("right", np.pi)):
        g = gait + shift
        hip_flex = a * 0.35 * np.sin(g)
        knee = 0.08 + a * 0.55 * (0.5 + 0.5 * np.sin(g + 1.3)) ** 2
        ankle = a * 0.2 * np.sin(g + 0.6)
        s = 1.0 if side == "left" else -1.0
        rot[f"{side}_thigh"] = axis_rotation(0, s * (0.03 + 0.03 * np.sin(g))) @ axis_rotation(1, -hip_flex)
        rot[f"{side}_shank"] = axis_rotation(1, knee)
        rot[f"{side}_foot"] = axis_rotation(1, -ankle)
        # Arms swing against the legs; the arm is raised sideways and forwards now and then.
        k = 2 if side == "left" else 3
        raise_side = 0.12 + 1.0 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 5.0 + ph[k])) ** 3
        raise_fwd = 0.9 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 7.0 + ph[k + 2])) ** 4
        flex = -a * 0.4 * np.sin(g) + raise_fwd
        elbow = 0.25 + 0.9 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 3.3 + ph[k + 4])) ** 2
        twist = 0.3 * np.sin(2 * np.pi * t / 4.1 + ph[k + 6])
        rot[f"{side}_upper_arm"] = axis_rotation(0, s * raise_side) @ axis_rotation(1, -flex) @ axis_rotation(2, s * twist)
        rot[f"{side}_forearm"] = axis_rotation(1, -elbow)
        wrist = -0.2 * np.sin(2 * np.pi * t / 2.3 + ph[k + 8])
        rot[f"{side}_hand"] = axis_rotation(1, wrist) @ axis_rotation(0, np.full_like(t, s * 0.1))
    rot["torso"] = (
        axis_rotation(2, 0.12 * a * np.sin(gait) + 0.1 * np.sin(2 * np.pi * t / 8.0 + ph[12]))
        @ axis_rotation(1, 0.06 + 0.08 * np.sin(2 * np.pi * t / 6.0 + ph[13]))
        @ axis_rotation(0, 0.05 * np.sin(2 * np.pi * t / 5.5 + ph[14]))
    )
    rot["head"] = (
        axis_rotation(2, 0.5 * np.sin(2 * np.pi * t / 4.3 + ph[15]))
        @ axis_rotation(1, 0.12 + 0.15 * np.sin(2 * np.pi * t / 3.7 + ph[4]))
        @ axis_rotation(0, 0.06 * np.sin(2 * np.pi * t / 5.1 + ph[6]))
    )
    # Root: along a circle around the origin at a speed proportional to the walking intensity.
    radius = rng.uniform(0.2, 0.3)
    direction = rng.choice([-1.0, 1.0])
    omega = direction * 2 * np.pi / 9.0  # rad/s at full intensity
    # theta = integral of omega * a(t) dt, in closed form.
    w = 2 * np.pi / walk_period
    theta = ph[5] + omega * (0.55 * t - 0.45 / w * (np.cos(w * t + ph[0]) - np.cos(ph[0])))
    heading = theta + direction * np.pi / 2
    rot["pelvis"] = axis_rotation(2, heading) @ axis_rotation(1, 0.02 * np.sin(2 * gait)) @ axis_rotation(0, 0.03 * a * np.sin(gait))
    path = np.stack([radius * np.cos(theta), radius * np.sin(theta), np.zeros_like(t)], axis=-1)
    return rot, path


def procedural_motion(
    skeleton,
    num_frames: int,
    fps: float = 30.0,
    rng: np.random.Generator | None = None,
    height_m: float = 1.75,
    bone_lengths: dict[str, float] | None = None,
) -> np.ndarray:
    """3D joints (T, J, 3), world metres, Z up, of a person walking and moving the arms near the origin.

    Args:
        skeleton: a :class:`reconstruction.skeleton.Skeleton` or a skeleton name / YAML path.
        num_frames: T.
        fps: frames per second (the motion is defined in seconds).
        rng: random generator for the phases, path radius and direction (default: seed 0).
        height_m: body height; segment lengths scale with it.
        bone_lengths: optional overrides of segment dimensions in metres, by name: ``hip_width``,
            ``shoulder_width``, ``torso``, ``neck``, ``head``, ``upper_arm``, ``forearm``, ``hand``,
            ``thigh``, ``shank``, ``ankle_height``, ``foot``.

    Every rigid bone of the skeleton keeps a constant length over time.
    """
    skeleton = _as_skeleton(skeleton)
    rng = np.random.default_rng(0) if rng is None else rng
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    dims = {k: v * float(height_m) for k, v in _DIMENSIONS.items()}
    for key, value in (bone_lengths or {}).items():
        if key not in dims:
            raise ValueError(f"unknown bone length {key!r} (known: {', '.join(sorted(dims))})")
        dims[key] = float(value)
    points = _canonical_points(dims)
    t = np.arange(num_frames) / float(fps)
    rot, path = _joint_angles(t, rng)

    # Forward kinematics over segments (parents come first in _SEGMENTS).
    R_world, p_world = {}, {}
    for seg, (parent, pivot) in _SEGMENTS.items():
        if parent is None:
            R_world[seg] = rot[seg]
            p_world[seg] = path
        else:
            pivot_seg, pivot_local = points[pivot]
            assert pivot_seg == parent
            R_world[seg] = R_world[parent] @ rot[seg]
            p_world[seg] = p_world[parent] + np.einsum("tij,j->ti", R_world[parent], pivot_local)

    def world(seg: str, local: np.ndarray) -> np.ndarray:
        return p_world[seg] + np.einsum("tij,j->ti", R_world[seg], local)

    # Ground contact: lift the body so the soft minimum of the foot points' height is 0.
    feet = np.stack(
        [world(*points[f"{s}_{p}"])[:, 2] for s in ("left", "right") for p in ("heel", "big_toe", "small_toe")], -1
    )
    tau = 0.01  # softness of the minimum, metres
    low = feet.min(axis=-1, keepdims=True)
    lowest = low[:, 0] - tau * np.log(np.sum(np.exp(-(feet - low) / tau), axis=-1))
    lift = np.stack([np.zeros_like(lowest), np.zeros_like(lowest), -lowest], axis=-1)

    mapping = canonical_body_map(skeleton)
    placement: list[tuple[str, np.ndarray] | None] = [points[m] if m else None for m in mapping]
    _place_unknown(skeleton, placement, dims)
    if not placement:
        return np.zeros((num_frames, 0, 3))
    xyz = np.stack([world(seg, local) for seg, local in placement], axis=1)
    return xyz + lift[:, None, :]


def _place_unknown(skeleton, placement: list, dims: dict) -> None:
    """Attach joints of unknown name rigidly to a placed bone neighbour (breadth first), else to the pelvis."""
    offset = 0.1 * dims["torso"]  # about 3 cm for a 1.75 m body
    directions = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    neighbours = {j: [] for j in range(skeleton.num_joints)}
    for a, b in skeleton.bone_indices:
        neighbours[a].append(b)
        neighbours[b].append(a)
    changed = True
    while changed:
        changed = False
        for j, place in enumerate(placement):
            if place is not None:
                continue
            known = [k for k in neighbours[j] if placement[k] is not None]
            if known:
                seg, local = placement[known[0]]
                placement[j] = (seg, local + offset * directions[j % 6])
                changed = True
    for j, place in enumerate(placement):
        if place is None:
            placement[j] = ("pelvis", np.array([0.0, 0.0, offset * (1 + j % 5)]))
