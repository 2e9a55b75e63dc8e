"""Render a simulated person into RealSense-like depth and color images, with true occlusion.

The body is a set of primitives (a capsule per bone, a sphere per joint, a head sphere, a torso and a
neck capsule), ray-cast analytically with numpy inside each primitive's bounding box only, over a
static room (floor and walls with a procedural texture) ray-cast once per camera. Depth is the
camera-frame Z (as RealSense z16), aligned to the color image: the simulated depth stream shares the
color camera's intrinsics and pose (depth-to-color extrinsics = identity).

Depth noise follows the RealSense RMS model ``sigma_z = z^2 * subpixel / (focal * baseline)``; depth
is invalid (0) on the far side of silhouette edges (the stereo "shadow" band to the left of near
objects) and at a few random pixels. Joint visibility comes from the noiseless depth buffer: a joint
is visible where its camera depth <= the rendered depth at its pixel + the body's radius there
(:attr:`BodyModel.joint_radius`).

Shapes: ``J`` joints, ``P`` primitives, images ``(H, W)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.camera import Camera, distort_normalized
from reconstruction.skeleton import Skeleton

# Body radius (metres) at a joint, by keyword of its canonical name; first match wins.
JOINT_RADII = (
    ("ear", 0.095), ("eye", 0.095), ("nose", 0.095), ("head", 0.095),
    ("neck", 0.06), ("shoulder", 0.06), ("elbow", 0.045), ("wrist", 0.035), ("hand", 0.04),
    ("pelvis", 0.10), ("mid_hip", 0.10), ("hip", 0.08), ("knee", 0.055), ("ankle", 0.045),
    ("heel", 0.035), ("toe", 0.03),
)
DEFAULT_JOINT_RADIUS = 0.04
HEAD_RADIUS = 0.095
FACE_WORDS = ("ear", "eye", "nose", "head")
FACE_SPHERE_RADIUS = 0.022
BONE_RADIUS_FACTOR = 0.8  # capsule radius of a bone / the smaller radius of its two joints
TORSO_RADIUS = 0.09  # nose / eye / ear bumps on the head sphere

# Depth noise model per preset: baseline (m) and focal length of the depth imager at 848x480 (px).
DEPTH_MODELS = {
    "D435": {"baseline_m": 0.050, "focal_px": 430.0},
    "D455": {"baseline_m": 0.095, "focal_px": 430.0},
}


def _joint_radius(name: str) -> float:
    for word, radius in JOINT_RADII:
        if word in name:
            return radius
    return DEFAULT_JOINT_RADIUS


def _is_face(name: str) -> bool:
    return any(word in name for word in FACE_WORDS)


@dataclass(frozen=True, eq=False)
class BodyModel:
    """Shape of the simulated body over a skeleton.

    Attributes:
        joint_names: (J,) the skeleton's joints.
        seg_a, seg_b: (P, J) weights: primitive ``p`` runs from ``seg_a[p] @ xyz`` to ``seg_b[p] @ xyz``
            (equal ends: a sphere).
        radii: (P,) primitive radii, metres.
        colors: (P, 3) albedo in [0, 1].
        joint_radius: (J,) body radius at each joint, metres: a joint is visible when its depth is
            within this of the rendered surface, and the recorded depth at a visible joint lies within
            this of the joint's depth. Face joints (nose, eyes, ears) use the head's radius.
        bone_radius: (B,) capsule radius of each bone of the skeleton (face bones: none, NaN).
    """

    joint_names: tuple[str, ...]
    seg_a: np.ndarray
    seg_b: np.ndarray
    radii: np.ndarray
    colors: np.ndarray
    joint_radius: np.ndarray
    bone_radius: np.ndarray

    @property
    def is_sphere(self) -> np.ndarray:
        return np.all(self.seg_a == self.seg_b, axis=1)


def body_model(skeleton: Skeleton) -> BodyModel:
    """Capsules per bone, spheres per joint, head sphere, torso and neck for ``skeleton``."""
    names = skeleton.joint_names
    J = len(names)
    radius = np.array([_joint_radius(n) for n in names])
    face = np.array([_is_face(n) for n in names])
    seg_a, seg_b, radii, colors = [], [], [], []
    skin, shirt, trousers = (0.85, 0.65, 0.52), (0.20, 0.45, 0.80), (0.25, 0.25, 0.30)

    def onehot(*joints: str) -> np.ndarray:
        w = np.zeros(J)
        for j in joints:
            w[names.index(j)] = 1.0 / len(joints)
        return w

    def add(a: np.ndarray, b: np.ndarray, r: float, color) -> None:
        seg_a.append(a)
        seg_b.append(b)
        radii.append(r)
        colors.append(color)

    def tint(name: str, color):
        shade = 1.1 if name.startswith("left") else 0.85 if name.startswith("right") else 1.0
        return tuple(min(1.0, c * shade) for c in color)

    def color_of(name: str):
        if any(w in name for w in ("hip", "knee", "ankle", "heel", "toe", "pelvis")):
            return tint(name, trousers)
        if any(w in name for w in ("wrist", "hand")) or _is_face(name):
            return skin
        return tint(name, shirt)

    bone_radius = np.full(len(skeleton.bones), np.nan)
    for k, (a, b) in enumerate(skeleton.bones):
        if face[names.index(a)] or face[names.index(b)]:
            continue
        # thinner than the joint spheres, so that a limb seen along its axis does not cover its own
        # end joint by more than that joint's radius
        r = BONE_RADIUS_FACTOR * min(radius[names.index(a)], radius[names.index(b)])
        bone_radius[k] = r
        add(onehot(a), onehot(b), r, color_of(b if "wrist" not in b else a))
    for j, name in enumerate(names):
        if face[j]:
            if name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
                add(onehot(name), onehot(name), FACE_SPHERE_RADIUS, (0.15, 0.12, 0.1) if "eye" in name else skin)
        else:
            add(onehot(name), onehot(name), radius[j], color_of(name))
    head_joints = [n for n in ("left_ear", "right_ear") if n in names] or [n for n in names if face[names.index(n)]]
    shoulders = [n for n in ("left_shoulder", "right_shoulder") if n in names]
    hips = [n for n in ("left_hip", "right_hip") if n in names]
    if head_joints:
        head = onehot(*head_joints)
        add(head, head, HEAD_RADIUS, skin)
        if shoulders:
            add(onehot(*shoulders), head, 0.05, skin)
    if shoulders and hips:
        add(onehot(*shoulders), onehot(*hips), TORSO_RADIUS, shirt)
    return BodyModel(
        joint_names=tuple(names),
        seg_a=np.array(seg_a),
        seg_b=np.array(seg_b),
        radii=np.array(radii),
        colors=np.array(colors),
        joint_radius=radius,
        bone_radius=bone_radius,
    )


@dataclass(frozen=True)
class RenderSettings:
    """How depth and color are degraded. ``noise`` scales the RealSense RMS model (0: noiseless)."""

    preset: str = "D435"
    noise: float = 1.0
    subpixel: float = 0.08
    edge_px: int = 2  # invalid band on the far side of a silhouette edge
    edge_threshold_m: float = 0.05
    dropout_rate: float = 0.002
    min_depth_m: float = 0.2
    max_depth_m: float = 10.0
    depth_scale: float = 0.001
    room_half_size_m: float = 5.0
    ceiling_m: float = 3.0


@dataclass(frozen=True, eq=False)
class Rendered:
    """One camera's images of one frame.

    Attributes:
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) uint16 depth in units of ``depth_scale`` (0 = invalid), with noise and holes.
        depth_m: (H, W) float32 noiseless rendered depth (camera Z, metres) of body and room.
        keypoints2d: (J, 3) true 2D (x, y, score): score 1 visible, 0 occluded or outside the image;
            x, y NaN behind the camera.
    """

    color: np.ndarray
    depth: np.ndarray
    depth_m: np.ndarray
    keypoints2d: np.ndarray


def _pixel_rays(camera: Camera) -> np.ndarray:
    """Unit rays (H, W, 3) float32 in the camera frame through each pixel centre (distorted image)."""
    w, h = camera.image_size
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    uv = np.stack([u, v], axis=-1).reshape(-1, 2)
    if np.any(camera.dist):
        xy = camera.undistort_points(uv, normalized=True)
    else:
        xy = (uv - camera.K[:2, 2]) / np.diag(camera.K)[:2]
    rays = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    return rays.reshape(h, w, 3).astype(np.float32)


def _background(camera: Camera, rays: np.ndarray, settings: RenderSettings) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) float32 camera Z and color (H, W, 3) uint8 of the textured room."""
    origin = camera.center
    world = rays.reshape(-1, 3).astype(np.float64) @ camera.R  # R^T applied to each ray
    half = max(settings.room_half_size_m, float(np.max(np.abs(origin[:2]))) + 1.0)
    ceiling = max(settings.ceiling_m, float(origin[2]) + 0.5)
    best = np.full(world.shape[0], np.inf)
    which = np.full(world.shape[0], -1)
    # planes: (axis, position)
    planes = [(2, 0.0), (2, ceiling), (0, -half), (0, half), (1, -half), (1, half)]
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (axis, position) in enumerate(planes):
            t = (position - origin[axis]) / world[:, axis]
            ok = (t > 1e-6) & (t < best)
            best[ok] = t[ok]
            which[ok] = k
    point = origin + best[:, None] * world
    depth = (best * rays.reshape(-1, 3)[:, 2]).astype(np.float32)
    # Texture: floor tiles of 0.5 m with a per-tile tone, walls with 0.25 m blocks and stripes.
    tile = np.floor(point / 0.5).astype(np.int64)
    hashed = ((tile[:, 0] * 73856093) ^ (tile[:, 1] * 19349663) ^ (tile[:, 2] * 83492791)) % 97 / 97.0
    checker = ((tile[:, 0] + tile[:, 1]) % 2).astype(np.float64)
    base = np.array([[0.55, 0.50, 0.45], [0.80, 0.80, 0.78], [0.70, 0.62, 0.55], [0.60, 0.68, 0.60],
                     [0.62, 0.60, 0.72], [0.72, 0.70, 0.58]])
    color = base[np.clip(which, 0, 5)]
    floor = which == 0
    color[floor] *= (0.75 + 0.25 * checker[floor] + 0.1 * hashed[floor])[:, None]
    walls = which >= 2
    fine = np.floor(point / 0.25).astype(np.int64)
    blocks = ((fine[:, 0] * 2654435761 + fine[:, 1] * 40503 + fine[:, 2] * 97) % 13) / 13.0
    stripes = 0.5 + 0.5 * np.sin(point[:, 2] * 25.0)
    color[walls] *= (0.7 + 0.2 * blocks[walls] + 0.1 * stripes[walls])[:, None]
    h, w = camera.height, camera.width
    return depth.reshape(h, w), np.clip(color * 255, 0, 255).astype(np.uint8).reshape(h, w, 3)


class CameraRenderer:
    """Renders frames of one camera; rays and the room are computed once at construction."""

    def __init__(self, camera: Camera, body: BodyModel, settings: RenderSettings = RenderSettings()):
        self.camera = camera
        self.body = body
        self.settings = settings
        self.rays = _pixel_rays(camera)
        self.background_depth, self.background_color = _background(camera, self.rays, settings)
        model = DEPTH_MODELS.get(settings.preset.split("_")[0].upper(), DEPTH_MODELS["D435"])
        # focal of the depth imager scales with the image width (the model's focal is at 848 px wide).
        focal = model["focal_px"] * camera.width / 848.0
        self.noise_coeff = settings.noise * settings.subpixel / (focal * model["baseline_m"])
        self._is_sphere = body.is_sphere

    def _bbox(self, a: np.ndarray, b: np.ndarray, r: float) -> tuple[int, int, int, int] | None:
        """Pixel box (x0, x1, y0, y1) holding the projection of a capsule, None if off-image or behind."""
        ends = np.stack([a, b])
        z = ends[:, 2]
        if np.any(z < r + 0.05):
            return None
        xy = distort_normalized(ends[:, :2] / z[:, None], self.camera.dist)
        uv = xy * np.diag(self.camera.K)[:2] + self.camera.K[:2, 2]
        pad = r * self.camera.K[0, 0] / np.min(z - r) * 1.15 + 2.0
        w, h = self.camera.image_size
        x0 = max(int(np.floor(uv[:, 0].min() - pad)), 0)
        x1 = min(int(np.ceil(uv[:, 0].max() + pad)) + 1, w)
        y0 = max(int(np.floor(uv[:, 1].min() - pad)), 0)
        y1 = min(int(np.ceil(uv[:, 1].max() + pad)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, x1, y0, y1

    def body_zbuffer(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ray-cast the body: depth (H, W) float32 (inf where no body), primitive index (H, W) (-1),
        and the primitives' camera-frame ends (P, 3), (P, 3)."""
        cam = self.camera
        Xc = np.asarray(xyz, dtype=np.float64) @ cam.R.T + cam.t
        finite = np.all(np.isfinite(Xc), axis=1)
        Xc = np.where(finite[:, None], Xc, 0.0)
        A = self.body.seg_a @ Xc
        B = self.body.seg_b @ Xc
        # a primitive needing a missing (NaN) joint is not drawn
        drawn = ((self.body.seg_a != 0) | (self.body.seg_b != 0)) @ ~finite == 0
        h, w = cam.height, cam.width
        zbuf = np.full((h, w), np.inf, dtype=np.float32)
        ids = np.full((h, w), -1, dtype=np.int16)
        for p in np.flatnonzero(drawn):
            r = float(self.body.radii[p])
            box = self._bbox(A[p], B[p], r)
            if box is None:
                continue
            x0, x1, y0, y1 = box
            rd = self.rays[y0:y1, x0:x1]
            if self._is_sphere[p]:
                c = A[p].astype(np.float32)
                bb = rd @ c  # ray origin at 0: |t rd - c|^2 = r^2
                disc = bb * bb - (float(c @ c) - r * r)
                with np.errstate(invalid="ignore"):
                    t = np.where(disc >= 0, bb - np.sqrt(disc), np.inf)
            else:
                t = _ray_capsule(rd, A[p], B[p], r)
            z = t * rd[..., 2]
            zb = zbuf[y0:y1, x0:x1]
            closer = (z < zb) & (t > 0)
            zb[closer] = z[closer]
            ids[y0:y1, x0:x1][closer] = p
        return zbuf, ids, A, B

    def render(self, xyz: np.ndarray, rng: np.random.Generator | None = None) -> Rendered:
        """Images of the body with joints ``xyz`` (J, 3) world metres (NaN: no body drawn)."""
        rng = rng or np.random.default_rng()
        zbuf, ids, A, B = self.body_zbuffer(xyz)
        on_body = zbuf < self.background_depth
        depth_m = np.where(on_body, zbuf, self.background_depth)

        # Color: Lambert shading of the body (light at the camera) over the room.
        color = self.background_color.copy()
        if on_body.any():
            rows, cols = np.nonzero(on_body)
            p = ids[rows, cols].astype(np.int64)
            rd = self.rays[rows, cols].astype(np.float64)
            point = rd * (depth_m[rows, cols] / rd[:, 2])[:, None]
            ab = B[p] - A[p]
            denom = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
            s_along = np.clip(np.einsum("ij,ij->i", point - A[p], ab) / denom, 0.0, 1.0)
            normal = point - (A[p] + s_along[:, None] * ab)
            normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
            lambert = np.clip(-np.einsum("ij,ij->i", normal, rd), 0.0, 1.0)
            shade = 0.25 + 0.75 * lambert
            color[rows, cols] = np.clip(self.body.colors[p] * shade[:, None] * 255, 0, 255).astype(np.uint8)

        depth = self.sensor_depth(depth_m, on_body, rng)
        return Rendered(color, depth, depth_m.astype(np.float32), self.keypoints(xyz, depth_m))

    def sensor_depth(self, depth_m: np.ndarray, on_object: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noiseless depth (H, W) metres -> z16 as the sensor reports it: noise growing with z^2,
        invalid bands at the edges of ``on_object`` (H, W) bool, random dropouts, out-of-range holes."""
        s = self.settings
        z = depth_m
        on_body = on_object
        if self.noise_coeff > 0:
            noisy = z + (self.noise_coeff * z * z) * rng.standard_normal(z.shape, dtype=np.float32)
        else:
            noisy = z.copy()
        holes = np.zeros(z.shape, dtype=bool)
        # Edges are depth jumps next to the body (silhouettes and self-occlusions), not the room's own
        # grazing floor, whose depth also jumps from row to row near the horizon.
        hjump = z[:, 1:] - z[:, :-1]
        hbody = on_body[:, 1:] | on_body[:, :-1]
        near_right = (hjump < -s.edge_threshold_m) & hbody  # x+1 nearer than x: x is in the shadow band
        for k in range(max(s.edge_px, 0)):
            holes[:, : z.shape[1] - 1 - k] |= near_right[:, k:]
        holes[:, 1:] |= (hjump > s.edge_threshold_m) & hbody  # mixed pixel on the far side, right of objects
        vjump = z[1:, :] - z[:-1, :]
        vbody = on_body[1:, :] | on_body[:-1, :]
        holes[1:, :] |= (vjump > s.edge_threshold_m) & vbody
        holes[:-1, :] |= (vjump < -s.edge_threshold_m) & vbody
        if s.dropout_rate > 0:
            count = rng.binomial(z.size, s.dropout_rate)
            holes.ravel()[rng.integers(0, z.size, size=count)] = True
        holes |= (noisy < s.min_depth_m) | (noisy > s.max_depth_m)
        depth = np.clip(np.rint(noisy / s.depth_scale), 0, 65535).astype(np.uint16)
        depth[holes] = 0
        return depth

    def keypoints(self, xyz: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """True 2D (J, 3): x, y in distorted pixels; score 1 where the joint is in the image and its
        depth <= the rendered depth at its pixel + the body radius, else 0."""
        cam = self.camera
        xyz = np.asarray(xyz, dtype=np.float64)
        uv = cam.project(xyz)
        z = cam.world_to_camera(xyz)[:, 2]
        col = np.rint(uv[:, 0])
        row = np.rint(uv[:, 1])
        inside = np.isfinite(uv).all(axis=1) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
        rendered = np.full(len(z), -np.inf)
        rendered[inside] = depth_m[row[inside].astype(np.int64), col[inside].astype(np.int64)]
        visible = inside & (z <= rendered + self.body.joint_radius)
        return np.concatenate([uv, visible[:, None].astype(np.float64)], axis=1)


def _ray_capsule(rd: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Distance along unit rays ``rd`` (..., 3) from the origin to a capsule (a, b, r); inf on a miss.

    Cylinder part then the two end spheres (after I. Quilez's capsule intersector), vectorized.
    """
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    ba = b - a
    oa = -a
    baba = float(ba @ ba)
    baoa = float(ba @ oa)
    oaoa = float(oa @ oa)
    bard = rd @ ba
    rdoa = rd @ oa
    qa = baba - bard * bard
    qb = baba * rdoa - baoa * bard
    qc = baba * oaoa - baoa * baoa - r * r * baba
    h = qb * qb - qa * qc
    hit = h >= 0
    out = np.full(rd.shape[:-1], np.inf, dtype=np.float32)
    if not hit.any():
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-qb - np.sqrt(np.where(hit, h, 0))) / qa
        y = baoa + t * bard
        body = hit & (y > 0) & (y < baba)
        out[body] = t[body]
        # caps: the nearer of the two end spheres (also when the ray runs along the axis, qa = 0)
        sel = hit & ~body
        if sel.any():
            rds = rd[sel]
            best = np.full(rds.shape[0], np.inf, dtype=np.float32)
            for center in (a, b):
                bb = rds @ center
                disc = bb * bb - (float(center @ center) - r * r)
                best = np.minimum(best, np.where(disc >= 0, bb - np.sqrt(np.maximum(disc, 0)), np.inf))
            out[sel] = best
    return out


def render_board_frame(renderer: CameraRenderer, spec, R_board: np.ndarray, t_board: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A calibration board at world pose ``X_world = R_board @ X_board + t_board`` seen by one camera.

    Returns color (H, W, 3) uint8 (the printed board, grey, over the room), z16 depth (H, W) with the
    sensor model of :meth:`CameraRenderer.sensor_depth`, the true corner pixels (N, 2) and whether each
    corner is in the image on the printed side (from :func:`reconstruction.simulation.boards.render_board_view`).
    """
    from reconstruction.simulation.boards import render_board_view

    cam = renderer.camera
    grey = renderer.background_color.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    # supersample 1: 4x faster than 2, and corners still detected within a fraction of a pixel
    image, corners, visible = render_board_view(cam, spec, R_board, t_board, background=grey.astype(np.uint8),
                                                supersample=1)
    # Depth of the board plane (with its white margin) by ray casting, in front of the room.
    Rc = cam.R @ np.asarray(R_board, dtype=np.float64)
    tc = cam.R @ np.asarray(t_board, dtype=np.float64) + cam.t
    normal = Rc[:, 2]
    rays = renderer.rays
    with np.errstate(divide="ignore", invalid="ignore"):  # rays parallel to the board: inf, no hit
        t = float(normal @ tc) / (rays @ normal.astype(np.float32))
        local = (t[..., None] * rays - tc) @ Rc  # board coordinates of each hit
    margin = spec.square_length / 2
    width, height = spec.size_m
    z = t * rays[..., 2]
    on = (t > 0) & (local[..., 0] >= -margin) & (local[..., 0] <= width + margin) \
        & (local[..., 1] >= -margin) & (local[..., 1] <= height + margin) & (z < renderer.background_depth)
    depth_m = np.where(on, z, renderer.background_depth).astype(np.float32)
    color = renderer.background_color.copy()
    color[on] = image[on][:, None]
    return color, renderer.sensor_depth(depth_m, on, rng), corners, visible
