"""True 2D projections with self-occlusion, and simulated 2D detections with their typical errors.

Occlusion model of :func:`project_truth` (used when no depth buffer is available):

- outside the image or behind the camera: not visible;
- body segments: when a skeleton is given, each of its bones is a capsule (limbs 4.5 cm radius,
  trunk bones 10 cm) and the trunk also gets a capsule from mid-shoulders to mid-hips (13 cm); a
  joint is hidden in a view when the camera ray towards it passes through a capsule that does not
  end at this joint, at least one radius in front of the joint;
- face points (nose, eyes, ears, mouth, ...) are hidden when they lie on the far side of the head:
  their direction from the head centre makes more than ~105 degrees with the direction to the
  camera (2D models still guess a point just past the silhouette);
- ``occlusion_rate``: on top of that, each (frame, view, joint) is hidden independently with this
  probability (objects, other people, motion blur).

:func:`simulate_detections` turns true 2D into what a 2D model reports: Gaussian pixel noise whose
size grows as the score drops (scores 0.55-1 for good detections), a fraction of confident wrong
detections (another joint's location, a point on the body or anywhere in the image, scored 0.6-1),
and occluded joints missing (NaN) or detected badly with a low score.
"""
from __future__ import annotations

import numpy as np

_FACE = {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_eye_inner", "right_eye_inner",
         "left_eye_outer", "right_eye_outer", "mouth_left", "mouth_right", "mouth_center"}
_FACE_HIDDEN_COS = -0.25  # a face point is hidden beyond ~105 degrees from the camera direction
_TRUNK = {"pelvis", "left_hip", "right_hip", "left_shoulder", "right_shoulder", "neck_base", "upper_neck"}


def _segment_distance(p0, p1, q0, q1):
    """Closest distance between segments p0-p1 and q0-q1 (broadcast (..., 3)); also the parameter s on p."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.einsum("...i,...i->...", d1, d1)
    e = np.einsum("...i,...i->...", d2, d2)
    f = np.einsum("...i,...i->...", d2, r)
    c = np.einsum("...i,...i->...", d1, r)
    b = np.einsum("...i,...i->...", d1, d2)
    denom = a * e - b * b
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(denom > 1e-12, np.clip((b * f - c * e) / denom, 0, 1), 0.0)
        t = (b * s + f) / np.where(e > 1e-12, e, 1.0)
        t_cl = np.clip(t, 0, 1)
        s = np.where(t != t_cl, np.clip((b * t_cl - c) / np.where(a > 1e-12, a, 1.0), 0, 1), s)
    closest = (p0 + s[..., None] * d1) - (q0 + t_cl[..., None] * d2)
    return np.linalg.norm(closest, axis=-1), s


def _capsules(skeleton, canonical):
    """(K, 2) joint index pairs and (K,) radii of the body capsules of ``skeleton``; -1 index means midpoint."""
    names = list(canonical)
    pairs, radii = [], []
    for a, b in skeleton.bone_indices:
        trunk = canonical[a] in _TRUNK and canonical[b] in _TRUNK
        face = canonical[a] in _FACE or canonical[b] in _FACE
        if face:
            continue  # the head is handled as a sphere
        pairs.append((a, b, -1, -1))
        radii.append(0.10 if trunk else 0.045)
    if all(n in names for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")):
        ls, rs, lh, rh = (names.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
        pairs.append((ls, lh, rs, rh))  # mid-shoulders -> mid-hips
        radii.append(0.13)
    return np.array(pairs, dtype=np.int64).reshape(-1, 4), np.array(radii)


def project_truth(
    xyz: np.ndarray,
    rig,
    occlusion_rate: float = 0.0,
    rng: np.random.Generator | None = None,
    skeleton=None,
) -> np.ndarray:
    """True 2D keypoints (T, V, J, 3) of 3D joints ``xyz`` (T, J, 3) in every camera of ``rig``.

    x, y are distorted pixels (NaN behind the camera or where xyz is NaN); the score is 1 where the
    joint is visible and 0 where it is occluded or outside the image (see the module docstring for
    the occlusion model; body capsules and the head need ``skeleton``, a Skeleton or a name).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    rng = np.random.default_rng(0) if rng is None else rng
    T, J, _ = xyz.shape
    V = len(rig)
    uv = np.moveaxis(rig.project(xyz), -2, 1)  # (T, V, J, 2)
    sizes = np.array([c.image_size for c in rig], dtype=np.float64)[None, :, None, :]
    visible = np.all(np.isfinite(uv), axis=-1) & np.all((uv >= -0.5) & (uv <= sizes - 0.5), axis=-1)
    if skeleton is not None:
        visible &= ~_self_occluded(xyz, rig, skeleton)
    if occlusion_rate > 0:
        visible &= rng.random((T, V, J)) >= occlusion_rate
    return np.concatenate([uv, visible[..., None].astype(np.float64)], axis=-1)


def _self_occluded(xyz: np.ndarray, rig, skeleton) -> np.ndarray:
    """(T, V, J) True where a body capsule or the head hides the joint from the camera."""
    from reconstruction.simulation.motion import _as_skeleton, canonical_body_map

    skeleton = _as_skeleton(skeleton)
    canonical = canonical_body_map(skeleton)
    T, J, _ = xyz.shape
    centers = rig.centers  # (V, 3)
    C = centers[None, :, None, :]  # (1, V, 1, 3)
    X = xyz[:, None, :, :]  # (T, 1, J, 3)
    ray_len = np.linalg.norm(X - C, axis=-1)  # (T, V, J)
    hidden = np.zeros((T, len(centers), J), dtype=bool)
    pairs, radii = _capsules(skeleton, canonical)
    for (a, b, a2, b2), radius in zip(pairs, radii):  # loop over capsules, vectorized over T, V, J
        A = xyz[:, a] if a2 < 0 else 0.5 * (xyz[:, a] + xyz[:, a2])
        B = xyz[:, b] if b2 < 0 else 0.5 * (xyz[:, b] + xyz[:, b2])
        dist, s = _segment_distance(C, X, A[:, None, None, :], B[:, None, None, :])
        in_front = s * ray_len < ray_len - radius
        own = np.zeros(J, dtype=bool)
        own[[a, b] + ([a2, b2] if a2 >= 0 else [])] = True
        hidden |= (dist < radius) & in_front & ~own[None, None, :]
    face = [j for j, c in enumerate(canonical) if c in _FACE]
    if len(face) >= 2:
        head = np.nanmean(xyz[:, face], axis=1)  # (T, 3)
        ears = [j for j, c in enumerate(canonical) if c in ("left_ear", "right_ear")]
        if len(ears) == 2:
            head = np.mean(xyz[:, ears], axis=1)
        outward = xyz[:, None, face] - head[:, None, None, :]  # (T, 1, F, 3)
        to_cam = C - xyz[:, None, face]  # (T, V, F, 3)
        with np.errstate(invalid="ignore"):
            cosine = np.einsum("tvfi,tvfi->tvf", np.broadcast_to(outward, to_cam.shape), to_cam) / (
                np.linalg.norm(outward, axis=-1) * np.linalg.norm(to_cam, axis=-1))
            hidden[:, :, face] |= cosine < _FACE_HIDDEN_COS
    return hidden


def simulate_detections(
    true2d: np.ndarray,
    noise_px: float = 3.0,
    outlier_rate: float = 0.1,
    miss_occluded: bool = True,
    rng: np.random.Generator | None = None,
    image_sizes=None,
) -> np.ndarray:
    """Noisy 2D detections (T, V, J, 3) from true 2D (T, V, J, 3) (score 1 visible, 0 occluded).

    Args:
        noise_px: standard deviation of the pixel noise per coordinate, on average; a detection with
            score s gets ``noise_px * (1.25 - 0.5 s) / 0.8625`` (less confident, less precise).
        outlier_rate: fraction of visible detections replaced by a confident wrong one (score
            0.6-1): half at another joint's true location in that view (plus noise), a quarter at a
            random point of the person's 2D bounding box, a quarter anywhere in the image.
        miss_occluded: occluded joints are NaN (else detected with 3x the noise and score 0.05-0.3).
        image_sizes: (V, 2) width, height per view for the "anywhere in the image" outliers (default:
            the person's bounding box grown 2x).
    """
    true2d = np.asarray(true2d, dtype=np.float64)
    rng = np.random.default_rng(0) if rng is None else rng
    T, V, J, _ = true2d.shape
    uv = true2d[..., :2]
    finite = np.all(np.isfinite(uv), axis=-1)
    visible = finite & (np.nan_to_num(true2d[..., 2]) >= 0.5)
    score = rng.uniform(0.55, 1.0, size=(T, V, J))
    sigma = noise_px * (1.25 - 0.5 * score) / 0.8625
    out_uv = uv + rng.normal(size=uv.shape) * sigma[..., None]
    out_score = score.copy()

    # Confident wrong detections.
    outlier = visible & (rng.random((T, V, J)) < outlier_rate)
    kind = rng.random((T, V, J))
    # (a) another joint's true location in the same view
    other = (np.arange(J)[None, None, :] + rng.integers(1, max(J, 2), size=(T, V, J))) % max(J, 1)
    other_uv = np.take_along_axis(uv, other[..., None].repeat(2, axis=-1), axis=2)
    other_uv = other_uv + rng.normal(size=other_uv.shape) * noise_px
    # (b) a point of the person's bounding box / (c) anywhere in the image
    with np.errstate(invalid="ignore"):
        valid_uv = np.where(finite[..., None], uv, np.nan)
        if finite.any(axis=-1).all():
            lo, hi = np.nanmin(valid_uv, axis=2), np.nanmax(valid_uv, axis=2)  # (T, V, 2)
        else:
            lo = np.nan_to_num(np.nanmin(np.where(finite[..., None], uv, np.inf), axis=2), posinf=0.0)
            hi = np.nan_to_num(np.nanmax(np.where(finite[..., None], uv, -np.inf), axis=2), neginf=1.0)
    box_uv = lo[:, :, None, :] + rng.random((T, V, J, 2)) * (hi - lo)[:, :, None, :]
    if image_sizes is not None:
        sizes = np.asarray(image_sizes, dtype=np.float64).reshape(1, V, 1, 2)
        image_uv = rng.random((T, V, J, 2)) * sizes
    else:
        mid, half = (lo + hi) / 2, (hi - lo)
        image_uv = (mid - half)[:, :, None, :] + rng.random((T, V, J, 2)) * (2 * half)[:, :, None, :]
    wrong_uv = np.where((kind < 0.5)[..., None] & np.isfinite(other_uv), other_uv,
                        np.where((kind < 0.75)[..., None], box_uv, image_uv))
    out_uv = np.where(outlier[..., None], wrong_uv, out_uv)
    out_score = np.where(outlier, rng.uniform(0.6, 1.0, size=(T, V, J)), out_score)

    # Occluded joints: missing, or a poor guess with a low score.
    occluded = finite & ~visible
    if miss_occluded:
        drop = ~visible
    else:
        out_uv = np.where(occluded[..., None], uv + rng.normal(size=uv.shape) * 3 * noise_px, out_uv)
        out_score = np.where(occluded, rng.uniform(0.05, 0.3, size=(T, V, J)), out_score)
        drop = ~finite
    out = np.concatenate([out_uv, out_score[..., None]], axis=-1)
    out[drop] = np.nan
    return out
