"""Our 3D joints as a BVH clip: a hierarchy rooted at the pelvis, constant offsets, rotations per frame.

Shapes: ``T`` frames, ``J`` joints (ours), ``K`` BVH joints. The clip is Y up, the rest pose facing
+Z with the character's left on +X (what Blender, Unity and MotionBuilder expect); our world (Z up)
maps to it as the TRC does (``X = Y_world, Y = Z_world, Z = X_world``), in metres.

The hierarchy (built from the skeleton's bones, so any of our skeletons works):

- ``pelvis`` (root, 6 channels) at the mid-point of the hips; its rotation is the pelvis frame
  (X = right hip -> left hip, Y = towards the chest), which places both hips exactly at constant
  offsets (the hip width is a rigid bone);
- ``spine`` -> ``spine_mid`` -> ``chest`` (the mid-point of the shoulders): the trunk's length
  changes as the spine bends, so it is a two-segment chain of constant halves bent backwards by the
  amount that puts the chest exactly where it is; ``chest`` holds the shoulders as the pelvis holds
  the hips;
- every other joint hangs from the joint it shares a bone with (arms from the shoulders, legs from
  the hips, the head's joints from the chest), with the bone's length as a constant offset; a joint
  with several children keeps its rotation for the first and reaches the others through a
  zero-offset joint ``<joint>_to_<child>`` of their own, so every child is placed exactly; a link
  that is no rigid bone (a non-rigid bone, or the chest to the head for a skeleton without a neck)
  is a two-segment chain like the spine (``<child>_link``, ``<child>_link_mid``).

Offsets are the bones' median lengths, so for a reconstruction whose rigid bones have one length
(ours after refinement) the forward kinematics of the clip give back every joint; where a length
changes from frame to frame the joint moves by that change. Missing values (NaN) are interpolated
over time (the ends hold the nearest frame) before the export, a BVH has no "missing".
Rest directions: arms out sideways (T-pose), legs down, the rest as the mean pose.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from capture.errors import FileFormatError
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.formats.bvh import BvhMotion
from reconstruction.formats.points3d import world_to_trc
from reconstruction.skeleton import Skeleton

ROTATION_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
END_SITE_M = 0.05
_DOWN, _LEFT, _RIGHT, _UP = (0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
_TEMPLATE = {("shoulder", "elbow"): "side", ("elbow", "wrist"): "side", ("hip", "knee"): _DOWN,
             ("knee", "ankle"): _DOWN}


@dataclass
class _Node:
    name: str
    parent: int
    joint: int = -1  # our joint index (-1: virtual)
    children: list = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class BvhExport:
    """The clip and where our joints are in it: ``joint_index[j]`` is the BVH joint of our joint ``j``."""

    bvh: BvhMotion
    joint_index: np.ndarray


def _side(name: str) -> str:
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else ""


def _base(name: str) -> str:
    side = _side(name)
    return name[len(side) + 1:] if side else name


class _Tree:
    """The hierarchy being built, with each node's position over time (T, 3), Y up."""

    def __init__(self, T: int):
        self.nodes: list[_Node] = []
        self.pos: list[np.ndarray] = []
        self.T = T

    def add(self, name: str, parent: int, pos: np.ndarray, joint: int = -1) -> int:
        self.nodes.append(_Node(name, parent, joint))
        self.pos.append(pos)
        if parent >= 0:
            self.nodes[parent].children.append(len(self.nodes) - 1)
        return len(self.nodes) - 1


def _fill(xyz: np.ndarray) -> np.ndarray:
    from reconstruction.gaps import fill_gaps

    T = xyz.shape[0]
    filled = fill_gaps(xyz, T)
    flat = filled.reshape(T, -1)
    valid = np.isfinite(flat)
    first = np.argmax(valid, axis=0)
    last = T - 1 - np.argmax(valid[::-1], axis=0)
    cols = np.arange(flat.shape[1])
    t = np.arange(T)[:, None]
    flat = np.where(t < first, flat[first, cols], flat)
    flat = np.where(t > last, flat[last, cols], flat)
    return flat.reshape(xyz.shape)


def _chain(tree: _Tree, parent: int, child_pos: np.ndarray, name: str, bend: np.ndarray) -> int:
    """A two-segment chain from ``parent`` reaching ``child_pos`` (T, 3) exactly; returns the mid
    node (the caller hangs the child under it). ``bend`` (T, 3): the direction the chain bows to."""
    p = tree.pos[parent]
    d = child_pos - p
    dist = np.linalg.norm(d, axis=-1)
    half = 0.5 * float(np.max(dist)) * 1.0001 + 1e-6
    axis = d / np.maximum(dist, 1e-12)[:, None]
    n = bend - np.sum(bend * axis, axis=-1, keepdims=True) * axis
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    h = np.sqrt(np.maximum(half**2 - (0.5 * dist) ** 2, 0.0))
    base = tree.add(name, parent, p)
    return tree.add(f"{name}_mid", base, p + 0.5 * d + h[:, None] * n)


def _build(xyz: np.ndarray, skeleton: Skeleton) -> tuple[_Tree, np.ndarray]:
    """The hierarchy (see module) over (T, J, 3) Y-up positions, and the pelvis frame (T, 3, 3)."""
    names = skeleton.joint_names
    need = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
    missing = [n for n in need if n not in names]
    if missing:
        raise FileFormatError(f"a BVH needs the hips and shoulders; skeleton {skeleton.name!r} lacks {', '.join(missing)}")
    idx = {n: i for i, n in enumerate(names)}
    T = xyz.shape[0]
    tree = _Tree(T)
    mid_hip = 0.5 * (xyz[:, idx["left_hip"]] + xyz[:, idx["right_hip"]])
    mid_shoulder = 0.5 * (xyz[:, idx["left_shoulder"]] + xyz[:, idx["right_shoulder"]])
    pelvis_frame = _frame(xyz[:, idx["left_hip"]] - xyz[:, idx["right_hip"]], mid_shoulder - mid_hip)
    back = -pelvis_frame[..., 2]
    root = tree.add("pelvis", -1, mid_hip)
    placed = {}
    for side in ("left", "right"):
        placed[idx[f"{side}_hip"]] = tree.add(f"{side}_hip", root, xyz[:, idx[f"{side}_hip"]], idx[f"{side}_hip"])
    spine_mid = _chain(tree, root, mid_shoulder, "spine", back)
    chest = tree.add("chest", spine_mid, mid_shoulder)
    for side in ("left", "right"):
        j = idx[f"{side}_shoulder"]
        placed[j] = tree.add(f"{side}_shoulder", chest, xyz[:, j], j)
    rigid = {frozenset(b) for b, r in zip(skeleton.bones, skeleton.rigid_mask) if r}
    neighbours = {j: [] for j in range(len(names))}
    for a, b in skeleton.bone_indices:
        neighbours[int(a)].append(int(b))
        neighbours[int(b)].append(int(a))
    anchors = {idx["left_hip"]: root, idx["right_hip"]: root, idx["left_shoulder"]: chest,
               idx["right_shoulder"]: chest}
    queue = list(placed)
    while True:
        while queue:
            j = queue.pop(0)
            for k in neighbours[j]:
                if k in placed:
                    continue
                sided = _side(names[j])
                if sided and _side(names[k]) != sided:
                    if j not in anchors:
                        continue
                    parent, link = anchors[j], False  # an unsided joint next to a hip/shoulder: the trunk's
                else:
                    parent, link = placed[j], frozenset((names[j], names[k])) in rigid
                placed[k] = _attach(tree, parent, k, names[k], xyz[:, k], link, back)
                queue.append(k)
        rest = [k for k in range(len(names)) if k not in placed]
        if not rest:
            break
        with quiet_nan_warnings():  # a part no bone joins to the body (COCO's face): from the chest
            nearest = min(rest, key=lambda k: float(np.median(np.linalg.norm(xyz[:, k] - mid_shoulder, axis=-1))))
        placed[nearest] = _attach(tree, chest, nearest, names[nearest], xyz[:, nearest], False, back)
        queue.append(nearest)
    return tree, pelvis_frame


def _attach(tree: _Tree, parent: int, joint: int, name: str, pos: np.ndarray, rigid: bool, bend: np.ndarray) -> int:
    """Hang our joint under ``parent``: directly (its first child, rigid bone), through a branch
    joint (a further child of a real joint), or through a two-segment chain (no rigid bone)."""
    node = tree.nodes[parent]
    if not rigid:
        mid = _chain(tree, parent, pos, f"{name}_link", bend)
        return tree.add(name, mid, pos, joint)
    if node.children and node.joint >= 0:
        parent = tree.add(f"{node.name}_to_{name}", parent, tree.pos[parent])
    return tree.add(name, parent, pos, joint)


def _frame(x: np.ndarray, y_hint: np.ndarray) -> np.ndarray:
    """(T, 3, 3) columns X, Y, Z: X along ``x``, Y = ``y_hint`` made orthogonal, Z = X x Y."""
    X = x / np.linalg.norm(x, axis=-1, keepdims=True)
    Y = y_hint - np.sum(y_hint * X, axis=-1, keepdims=True) * X
    Y /= np.linalg.norm(Y, axis=-1, keepdims=True)
    return np.stack([X, Y, np.cross(X, Y)], axis=-1)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) smallest rotations taking unit ``a`` (3,) or (T, 3) onto unit ``b`` (T, 3)."""
    a = np.broadcast_to(a, b.shape)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    K = np.zeros(b.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        R = np.eye(3) + K + (K @ K) / (1.0 + c)[..., None, None]
    opposite = c < -1.0 + 1e-9  # half a turn about any axis normal to a
    if opposite.any():
        perp = np.cross(a[opposite], np.array([1.0, 0.0, 0.0]))
        weak = np.linalg.norm(perp, axis=-1) < 1e-6
        perp[weak] = np.cross(a[opposite][weak], np.array([0.0, 1.0, 0.0]))
        perp /= np.linalg.norm(perp, axis=-1, keepdims=True)
        R[opposite] = 2.0 * perp[..., :, None] * perp[..., None, :] - np.eye(3)
    return R


def _rest_direction(tree: _Tree, k: int, root_frame: np.ndarray) -> np.ndarray:
    """Unit rest direction of node ``k``'s offset: T-pose arms, legs down, else the mean direction
    of the bone in the pelvis frame."""
    node, parent = tree.nodes[k], tree.nodes[tree.nodes[k].parent]
    real = [n for n in (parent.name, node.name)]
    key = (_base(real[0]), _base(real[1]))
    template = _TEMPLATE.get(key)
    if template == "side":
        return np.array(_LEFT if _side(node.name) == "left" else _RIGHT)
    if template is not None:
        return np.array(template)
    d = tree.pos[k] - tree.pos[node.parent]
    local = np.einsum("tji,tj->ti", root_frame, d)
    mean = np.mean(local / np.maximum(np.linalg.norm(local, axis=-1, keepdims=True), 1e-12), axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 1e-6 else np.array(_UP)


def points_to_bvh(xyz_world: np.ndarray, skeleton: Skeleton, fps: float) -> BvhExport:
    """The BVH clip of our (T, J, 3) joints in metres (world frame, Z up); see the module."""
    xyz_world = np.asarray(xyz_world, dtype=np.float64)
    never = ~np.isfinite(xyz_world).all(axis=-1).any(axis=0)
    if never.any():
        raise FileFormatError("a BVH needs every joint in at least one frame; never present: "
                              + ", ".join(n for n, m in zip(skeleton.joint_names, never) if m))
    xyz = _fill(world_to_trc(xyz_world))
    tree, pelvis_frame = _build(xyz, skeleton)
    K, T = len(tree.nodes), xyz.shape[0]
    offsets = np.zeros((K, 3))
    rest = {}
    for k in range(1, K):
        length = float(np.median(np.linalg.norm(tree.pos[k] - tree.pos[tree.nodes[k].parent], axis=-1)))
        if length > 1e-9:
            rest[k] = _rest_direction(tree, k, pelvis_frame)
            offsets[k] = rest[k] * length
    hips = [k for k in tree.nodes[0].children if tree.nodes[k].joint >= 0]
    offsets[hips[0]] = np.array(_LEFT) * np.median(np.linalg.norm(xyz[:, tree.nodes[hips[0]].joint]
                                                                  - tree.pos[0], axis=-1))
    offsets[hips[1]] = np.array(_RIGHT) * np.median(np.linalg.norm(xyz[:, tree.nodes[hips[1]].joint]
                                                                   - tree.pos[0], axis=-1))
    glob = np.zeros((K, T, 3, 3))
    for k, node in enumerate(tree.nodes):
        glob[k] = _global_rotation(tree, k, node, glob, rest, offsets, xyz, pelvis_frame)
    return _clip(tree, glob, offsets, fps, len(skeleton.joint_names))


def _global_rotation(tree: _Tree, k: int, node: _Node, glob: np.ndarray, rest: dict, offsets: np.ndarray,
                     xyz: np.ndarray, pelvis_frame: np.ndarray) -> np.ndarray:
    """(T, 3, 3) global rotation of node ``k``: the pelvis/chest frames for the two nodes holding a
    left/right pair, a swing from the parent's rotation that aims the one child otherwise, the
    parent's rotation for a leaf."""
    if k == 0:
        return pelvis_frame
    parent_rot = glob[node.parent]
    if node.name == "chest":
        pair = [c for c in node.children if tree.nodes[c].joint >= 0]
        left, right = (tree.pos[pair[0]], tree.pos[pair[1]])
        frame = _frame(left - right, tree.pos[k] - tree.pos[0])
        for c, sign in zip(pair, (_LEFT, _RIGHT)):
            offsets[c] = np.array(sign) * np.median(np.linalg.norm(tree.pos[c] - tree.pos[k], axis=-1))
        return frame
    aimed = [c for c in node.children if c in rest]
    if not aimed:
        return parent_rot
    c = aimed[0]
    d = tree.pos[c] - tree.pos[k]
    d_local = np.einsum("tji,tj->ti", parent_rot, d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12))
    return parent_rot @ _swing(rest[c], d_local)


def _clip(tree: _Tree, glob: np.ndarray, offsets: np.ndarray, fps: float, num_joints: int) -> BvhExport:
    """BvhMotion from the global rotations: local Euler angles (Z, X, Y order) per joint, End Sites
    on the leaves."""
    from scipy.spatial.transform import Rotation

    names, parents, offs, channels, columns = [], [], [], [], []
    joint_index = np.full(num_joints, -1)
    bvh_of = {}
    for k, node in enumerate(tree.nodes):
        bvh_of[k] = len(names)
        names.append(node.name)
        parents.append(bvh_of[node.parent] if node.parent >= 0 else -1)
        offs.append(offsets[k])
        if node.joint >= 0:
            joint_index[node.joint] = bvh_of[k]
        local = glob[k] if node.parent < 0 else np.einsum("tji,tjk->tik", glob[node.parent], glob[k])
        euler = np.unwrap(Rotation.from_matrix(local).as_euler("ZXY", degrees=True), period=360.0, axis=0)
        if node.parent < 0:
            channels.append(("Xposition", "Yposition", "Zposition") + ROTATION_CHANNELS)
            columns.append(np.column_stack([tree.pos[k], euler]))
        else:
            channels.append(ROTATION_CHANNELS)
            columns.append(euler)
        if not node.children:
            parent_dir = offsets[k] / max(np.linalg.norm(offsets[k]), 1e-12)
            names.append(f"{node.name}_end")
            parents.append(bvh_of[k])
            offs.append(parent_dir * END_SITE_M if np.linalg.norm(offsets[k]) > 0 else np.array(_UP) * END_SITE_M)
            channels.append(())
    order = _depth_first(parents)
    remap = {old: new for new, old in enumerate(order)}
    bvh = BvhMotion(joint_names=tuple(names[i] for i in order),
                    parents=np.array([remap[parents[i]] if parents[i] >= 0 else -1 for i in order]),
                    offsets=np.array([offs[i] for i in order]), channels=tuple(channels[i] for i in order),
                    motion=np.concatenate([c for c in _ordered_columns(columns, channels, order)], axis=1),
                    frame_time=1.0 / fps, source="<export>")
    return BvhExport(bvh=bvh, joint_index=np.array([remap[i] if i >= 0 else -1 for i in joint_index]))


def _depth_first(parents: list) -> list:
    """Joint order of the BVH text (depth first, children in insertion order)."""
    children = {i: [] for i in range(len(parents))}
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)
    order, stack = [], [parents.index(-1)]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(children[i]))
    return order


def _ordered_columns(columns: list, channels: list, order: list) -> list:
    with_channels = [i for i in range(len(channels)) if channels[i]]
    by_node = dict(zip(with_channels, columns))
    return [by_node[i] for i in order if i in by_node]


def skeleton_for_joints(joint_names, skeleton: str | None = None) -> Skeleton:
    """The skeleton of these joints: ``skeleton`` (a name or YAML file) or the built-in one with
    exactly these joints, else the smallest built-in one holding them all, cut down to them (a
    Pose2Sim BODY_25B TRC has 21 of BODY_25B's 25 joints)."""
    from reconstruction.skeleton import builtin_skeletons, load_skeleton

    names = tuple(joint_names)
    candidates = [load_skeleton(skeleton)] if skeleton else [load_skeleton(n) for n in builtin_skeletons()]
    fitting = [s for s in candidates if set(names) <= set(s.joint_names)]
    if not fitting:
        raise FileFormatError(f"no skeleton holds the joints {', '.join(names)}"
                              + (f" ({skeleton!r} lacks some)" if skeleton else "; give one with --skeleton"))
    best = min(fitting, key=lambda s: s.num_joints)
    if best.joint_names == names:
        return best
    keep = set(names)

    def pairs(items):
        return tuple(p for p in items if set(p) <= keep)

    return Skeleton(name=best.name, joint_names=names, bones=pairs(best.bones), left_right=pairs(best.left_right),
                    non_rigid=pairs(best.non_rigid))


def write_points_bvh(path, points, skeleton: Skeleton | None = None):
    """Write our 3D points (:class:`~reconstruction.formats.points3d.Points3D`) as a BVH file;
    returns the :class:`BvhExport`."""
    from reconstruction.formats.bvh import write_bvh

    skeleton = skeleton or skeleton_for_joints(points.joint_names)
    export = points_to_bvh(points.xyz, skeleton, points.fps)
    write_bvh(path, export.bvh)
    return export
