"""Reading depth at keypoints: a robust depth per joint from a window of each view's depth image.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``P`` joint pairs, ``H``/``W`` image size. Depth
images are aligned to the colour camera of each view (the rig's camera), ``uint16`` raw units times
the view's depth scale = metres along the camera's optical axis (RealSense "z", not the ray length).

For each keypoint: the median of the valid pixels of a small window (a disc sized by the limb)
that belong to the nearest depth cluster (the person in front of the background) and, with a
first 3D estimate, lie near the surface it predicts; back-projected through the undistorted pixel,
then moved *along the viewing ray* by the joint's offset behind the visible surface. The
covariance has a lateral part from the pixel noise and an along-ray part from the depth noise
(RealSense: ``sigma_z = a + b z^2``) plus the uncertainty of the offset.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from calibration.camera import Rig
from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.lift import DepthEstimate, DepthLift
from reconstruction.skeleton import Skeleton, canonical_joint_name


def _stack_view(depth, v: int, num_frames: int) -> np.ndarray | None:
    """(T, H, W) float depth of view ``v`` from an array (T, V, H, W) or a per-frame list of per-view
    images (None for a missing view: zeros); None when the view has no depth at all."""
    if isinstance(depth, np.ndarray):
        return depth[:, v]
    images = [frame[v] if frame is not None and v < len(frame) else None for frame in depth]
    shapes = {img.shape for img in images if img is not None}
    if not shapes:
        return None
    if len(shapes) > 1:
        raise ValueError(f"view {v}: depth images change size within the sequence: {sorted(shapes)}")
    shape = shapes.pop()
    out = np.zeros((num_frames,) + shape, dtype=np.float32)
    for t, img in enumerate(images):  # a copy per frame, no per-joint work
        if img is not None:
            out[t] = img
    return out


def _window_offsets(w: int) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = np.mgrid[-w : w + 1, -w : w + 1]
    return dy.ravel(), dx.ravel()


def robust_window_depth(
    depth_m: np.ndarray, uv: np.ndarray, cfg: DepthFusionConfig, return_count: bool = False,
    radius_px: np.ndarray | None = None, expected_z: np.ndarray | None = None, expected_tol: np.ndarray | None = None,
):
    """Robust depth (T, J) at pixels ``uv`` (T, J, 2) of depth images ``depth_m`` (T, H, W) metres.

    The window is the square of half-size ``cfg.window_px``, or, with ``radius_px`` (T, J), a disc of
    that radius (pixels, at least ``window_px``, at most ``max_window_px``) per keypoint. Its valid
    pixels (in range) are sorted; the nearest cluster is those
    within ``cluster_band_m`` + 3 noise sigmas of the third-nearest pixel (robust to a couple of
    flying pixels); its median is returned when it has ``min_valid_pixels`` pixels, else NaN.
    With ``return_count`` also the (T, J) number of pixels in that cluster. With ``expected_z``
    (T, J) metres (NaN: unknown), only pixels within ``expected_band_m`` (+ 3 noise sigmas, + the
    (T, J) ``expected_tol`` metres: how uncertain that expectation is) of it count: an occluder in
    front (a hand over the hip) or the background is not the joint's surface.
    """
    T, H, W = depth_m.shape
    J = uv.shape[1]
    if radius_px is None:
        dy, dx = _window_offsets(cfg.window_px)
        in_disc = None
    else:
        reach = int(np.ceil(np.nanmax(radius_px, initial=cfg.window_px)))
        reach = min(max(reach, cfg.window_px), max(cfg.max_window_px, cfg.window_px))
        dy, dx = _window_offsets(reach)
        r = np.clip(np.nan_to_num(radius_px, nan=cfg.window_px), cfg.window_px, max(cfg.max_window_px, cfg.window_px))
        in_disc = (dy**2 + dx**2)[None, None, :] <= (r**2 + 0.5)[..., None]  # (T, J, K)
    finite = np.all(np.isfinite(uv), axis=-1)
    col = np.where(finite, np.rint(np.nan_to_num(uv[..., 0])), -10**6).astype(np.int64)
    row = np.where(finite, np.rint(np.nan_to_num(uv[..., 1])), -10**6).astype(np.int64)
    rows = row[..., None] + dy  # (T, J, K)
    cols = col[..., None] + dx
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    t_idx = np.broadcast_to(np.arange(T)[:, None, None], rows.shape)
    rc, cc = np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1)
    values = depth_m[t_idx, rc, cc].astype(np.float64)
    valid = inside & (values >= cfg.min_depth_m) & (values <= cfg.max_depth_m)
    if in_disc is not None:
        valid &= in_disc
    if expected_z is not None:
        ez = np.asarray(expected_z, dtype=np.float64)[..., None]
        with np.errstate(invalid="ignore"):
            reach_m = cfg.expected_band_m + 3.0 * (cfg.noise_a_m + cfg.noise_b_per_m * np.nan_to_num(ez) ** 2)
            if expected_tol is not None:
                reach_m = reach_m + np.nan_to_num(np.asarray(expected_tol, dtype=np.float64), nan=np.inf)[..., None]
            valid &= ~np.isfinite(ez) | (np.abs(values - ez) <= reach_m)
    values = np.where(valid, values, np.inf)
    ordered = np.sort(values, axis=-1)
    count = valid.sum(axis=-1)
    anchor_idx = np.clip(np.minimum(2, count - 1), 0, None)
    anchor = np.take_along_axis(ordered, anchor_idx[..., None], axis=-1)[..., 0]
    # The band widens with the sensor noise at that depth (3 sigma), or noisy pixels of the person
    # itself would fall out of its cluster and bias the median towards the camera.
    with np.errstate(invalid="ignore"):
        band = cfg.cluster_band_m + 3.0 * (cfg.noise_a_m + cfg.noise_b_per_m * np.where(np.isfinite(anchor), anchor, 0) ** 2)
    in_cluster = np.isfinite(ordered) & (ordered <= (anchor + band)[..., None]) & (
        ordered >= (anchor - band)[..., None]
    )
    n_cluster = in_cluster.sum(axis=-1)
    # ``ordered`` is sorted and the cluster is contiguous from its first member: median by index.
    first = np.argmax(in_cluster, axis=-1)
    lo = first + (n_cluster - 1) // 2
    hi = first + n_cluster // 2
    K = ordered.shape[-1]
    lo_v = np.take_along_axis(ordered, np.clip(lo, 0, K - 1)[..., None], axis=-1)[..., 0]
    hi_v = np.take_along_axis(ordered, np.clip(hi, 0, K - 1)[..., None], axis=-1)[..., 0]
    ok = finite & (n_cluster >= cfg.min_valid_pixels)
    with np.errstate(invalid="ignore"):
        z = np.where(ok, 0.5 * (lo_v + hi_v), np.nan).reshape(T, J)
    return (z, np.where(ok, n_cluster, 0)) if return_count else z


def lift_keypoints_with_depth(
    keypoints2d: np.ndarray,
    depth,
    depth_scale,
    rig: Rig,
    cfg: DepthFusionConfig = DepthFusionConfig(),
    offsets_m: np.ndarray | None = None,
    sample_uv: np.ndarray | None = None,
    expected_xyz: np.ndarray | None = None,
    expected_cov: np.ndarray | None = None,
) -> DepthLift:
    """Lift 2D keypoints to 3D with each view's aligned depth.

    Args:
        keypoints2d: (T, V, J, 3) x, y, score in distorted pixels (NaN where missing).
        depth: (T, V, H, W) raw depth (0 = no data), or a list of T frames each a sequence of V
            images (H, W) or None for a view without depth / absent.
        depth_scale: metres per depth unit, a scalar or (V,).
        rig: the rig, view order = V.
        cfg: settings; ``offsets_m`` (J,) the joints' offsets behind the surface (they also size the
            disc windows); default ``cfg.default_offset_m`` for every joint.
        sample_uv: optional (T, V, J, 2) distorted pixels where the depth is read and the ray cast
            instead of the detection's, where finite (e.g. the reprojection of a multi-view 3D
            estimate, more precise than one view's detection); a keypoint still needs its
            detection (score >= ``min_score``) to be lifted.
        expected_xyz: optional (T, J, 3) world metres, a first 3D estimate: only depth pixels near
            the surface it predicts in each view are read (``expected_band_m``), widened by its
            uncertainty along each ray from ``expected_cov`` (T, J, 3, 3) m^2 when given (two
            opposite cameras know little of a joint's depth).

    Returns:
        :class:`DepthLift` with points (T, V, J, 3) and covariance (T, V, J, 3, 3), NaN where the
        keypoint is missing, under ``min_score`` or without enough valid depth.
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    T, V, J, _ = kp.shape
    if len(rig) != V:
        raise ValueError(f"keypoints have {V} views but the rig has {len(rig)} cameras")
    scale = _scales(depth_scale, V)
    offsets_m = np.full(J, cfg.default_offset_m) if offsets_m is None else np.asarray(offsets_m, dtype=np.float64)
    surface = np.full((T, V, J, 3), np.nan)
    points = np.full((T, V, J, 3), np.nan)
    cov = np.full((T, V, J, 3, 3), np.nan)
    ray_var = np.full((T, V, J), np.nan)
    at_estimate = np.zeros((T, V, J), dtype=bool)
    for v, camera in enumerate(rig.cameras):  # views differ in image size and intrinsics
        d_raw = _stack_view(depth, v, T)
        if d_raw is None or not np.isfinite(scale[v]) or scale[v] <= 0:
            continue
        d_m = d_raw.astype(np.float32) * np.float32(scale[v])
        uv = kp[:, v, :, :2].copy()
        if sample_uv is not None:
            better = np.all(np.isfinite(sample_uv[:, v]), axis=-1)
            uv[better] = sample_uv[:, v][better]
            at_estimate[:, v] = better
        with np.errstate(invalid="ignore"):
            uv[~(kp[:, v, :, 2] >= cfg.min_score)] = np.nan
        expected_z, expected_tol = _expected_depth(camera, expected_xyz, expected_cov, offsets_m)
        z, n_pix = _disc_depth(d_m, uv, camera, cfg, offsets_m, expected_z, expected_tol)
        surface[:, v], points[:, v], cov[:, v], ray_var[:, v] = _back_project(camera, uv, z, n_pix, offsets_m, cfg)
    at_estimate &= np.all(np.isfinite(surface), axis=-1)
    return DepthLift(points=points, covariance=cov, surface=surface, offsets_m=offsets_m, var_ray=ray_var,
                     at_estimate=at_estimate)


def _scales(depth_scale, V: int) -> np.ndarray:
    """(V,) metres per depth unit from a scalar or a sequence."""
    if np.ndim(depth_scale):
        return np.broadcast_to(np.asarray(depth_scale, dtype=np.float64).ravel(), (V,))
    return np.full(V, float(depth_scale))


def _expected_depth(camera, expected_xyz, expected_cov, offsets_m: np.ndarray):
    """(T, J) camera depth of the surface a first estimate predicts (its joint minus the offset along
    the ray) and (T, J) how much wider than 3 cm its depth uncertainty is; (None, None) without one."""
    if expected_xyz is None:
        return None, None
    X_cam = camera.world_to_camera(np.asarray(expected_xyz, dtype=np.float64))  # (T, J, 3)
    expected_tol = None
    with np.errstate(invalid="ignore", divide="ignore"):
        expected_z = X_cam[..., 2] * (1.0 - offsets_m[None, :] / np.linalg.norm(X_cam, axis=-1))
        if expected_cov is not None:
            axis = camera.R[2]  # the optical axis, world frame
            # a well-triangulated joint (1-2 cm along the ray) keeps the band; a badly
            # conditioned one (two facing cameras: decimetres) widens it by what exceeds 3 cm
            sigma = np.sqrt(np.einsum("i,...ij,j->...", axis, np.asarray(expected_cov), axis))
            expected_tol = np.maximum(sigma - 0.03, 0.0)
    return expected_z, expected_tol


def _disc_depth(d_m: np.ndarray, uv: np.ndarray, camera, cfg: DepthFusionConfig, offsets_m: np.ndarray,
                expected_z, expected_tol) -> tuple[np.ndarray, np.ndarray]:
    """(T, J) depth and pixel count at ``uv``: the small square window first, then (``window_fraction``)
    a disc whose radius follows the joint's depth, where it finds enough pixels."""
    z, n_pix = robust_window_depth(d_m, uv, cfg, return_count=True, expected_z=expected_z, expected_tol=expected_tol)
    if cfg.window_fraction > 0:
        f_px = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            radius = f_px * cfg.window_fraction * np.maximum(offsets_m, 0.0)[None, :] / z
        z2, n2 = robust_window_depth(d_m, uv, cfg, return_count=True, radius_px=radius, expected_z=expected_z,
                                     expected_tol=expected_tol)
        z = np.where(np.isfinite(z2), z2, z)
        n_pix = np.where(np.isfinite(z2), n2, n_pix)
    return z, n_pix


def _back_project(camera, uv: np.ndarray, z: np.ndarray, n_pix: np.ndarray, offsets_m: np.ndarray,
                  cfg: DepthFusionConfig):
    """World surface (T, J, 3), joint centre (T, J, 3), its covariance (T, J, 3, 3) m^2 and variance
    along the ray (T, J) m^2 of depth ``z`` (T, J) read at distorted pixels ``uv`` (T, J, 2)."""
    xy = camera.undistort_points(uv, normalized=True)  # (T, J, 2)
    ray = np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1)  # z = 1
    X_surf = ray * z[..., None]  # camera frame
    norm = np.linalg.norm(ray, axis=-1, keepdims=True)
    direction = ray / norm  # unit viewing ray
    X_joint = X_surf + offsets_m[None, :, None] * direction
    rng = np.linalg.norm(X_joint, axis=-1)  # range along the ray
    # Along the ray: depth noise (z error scales the whole ray, so range error = sigma_z * |ray|)
    # and the offset's uncertainty. Across: pixel noise at that range.
    # The median of n pixels with independent noise has sigma ~ 1.25 sigma / sqrt(n); real sensors'
    # noise is spatially correlated, so at most ``independent_pixels`` count.
    n_eff = np.clip(n_pix, 1, cfg.independent_pixels)
    sigma_z = (cfg.noise_a_m + cfg.noise_b_per_m * z**2) * 1.2533 / np.sqrt(n_eff)
    var_ray = (sigma_z * norm[..., 0]) ** 2 + cfg.offset_sigma_m**2
    f = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
    var_lat = (rng * cfg.pixel_sigma_px / f) ** 2
    ddT = direction[..., :, None] * direction[..., None, :]
    C_cam = var_lat[..., None, None] * (np.eye(3) - ddT) + var_ray[..., None, None] * ddT
    R, t = camera.R, camera.t
    return (X_surf - t) @ R, (X_joint - t) @ R, R.T @ C_cam @ R, var_ray  # world = R^T (X - t)


def lift_midpoints_with_depth(
    depth,
    depth_scale,
    rig: Rig,
    mid_xyz: np.ndarray,
    radius_m: np.ndarray,
    window_fraction,
    cfg: DepthFusionConfig = DepthFusionConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """The visible surface on each view's ray through points between joints (a limb's middle, the
    head's centre between the ears).

    Args:
        depth: like :func:`lift_keypoints_with_depth` (T frames, V views).
        depth_scale: metres per depth unit, scalar or (V,).
        rig: the rig, V cameras.
        mid_xyz: (T, P, 3) world metres, the points of a first 3D estimate (NaN: unknown).
        radius_m: (P,) body radius there: the disc read has ``window_fraction`` (scalar or (P,)) times
            this radius at the point's depth (within ``window_px`` .. ``max_window_px``), and only
            pixels within ``expected_band_m`` of the expected surface (the point minus its radius)
            count, so a hand in front of the thigh or the wall behind are not read.

    Returns:
        surface (T, V, P, 3) world metres (NaN where no depth) and the sensor model's variance
        (T, V, P) m^2 of its range.
    """
    mid_xyz = np.asarray(mid_xyz, dtype=np.float64)
    radius_m = np.asarray(radius_m, dtype=np.float64)
    frac = np.broadcast_to(np.asarray(window_fraction, dtype=np.float64), radius_m.shape)
    T, P = mid_xyz.shape[:2]
    V = len(rig)
    scale = _scales(depth_scale, V)
    surface = np.full((T, V, P, 3), np.nan)
    var = np.full((T, V, P), np.nan)
    for v, camera in enumerate(rig.cameras):
        d_raw = _stack_view(depth, v, T)
        if d_raw is None or not np.isfinite(scale[v]) or scale[v] <= 0:
            continue
        d_m = d_raw.astype(np.float32) * np.float32(scale[v])
        X = camera.world_to_camera(mid_xyz)  # (T, P, 3)
        uv = camera.project(mid_xyz)  # (T, P, 2)
        f_px = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            radius = f_px * frac[None, :] * radius_m[None, :] / X[..., 2]
            expected = X[..., 2] * (1.0 - radius_m[None, :] / np.linalg.norm(X, axis=-1))
        uv[~(X[..., 2] > cfg.min_depth_m)] = np.nan
        z, n = robust_window_depth(d_m, uv, cfg, return_count=True, radius_px=radius, expected_z=expected)
        xy = camera.undistort_points(uv, normalized=True)
        ray = np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1)  # (T, P, 3)
        n_eff = np.clip(n, 1, cfg.independent_pixels)
        sigma_z = (cfg.noise_a_m + cfg.noise_b_per_m * z**2) * 1.2533 / np.sqrt(n_eff)
        surface[:, v] = (ray * z[..., None] - camera.t) @ camera.R
        var[:, v] = (sigma_z * np.linalg.norm(ray, axis=-1)) ** 2
    return surface, var


def read_depth(
    keypoints2d: np.ndarray,
    depth,
    depth_scale,
    rig: Rig,
    skeleton: Skeleton,
    cfg: DepthFusionConfig,
    offsets_m: np.ndarray,
    estimate: DepthEstimate | None = None,
) -> DepthLift:
    """Depth points (T, V, J) of a chunk of 2D keypoints ``(T, V, J, 3)`` and its depth images.

    Without ``estimate``: at each view's detections (:func:`lift_keypoints_with_depth`). With a
    first 3D estimate of the chunk: where it reprojects, when that lies within ``sample_gate_px``
    of the detection and >= 2 views measured the joint (a more precise spot than one view's
    detection), only from pixels near the surface it predicts; and the depth of the midpoints of
    :func:`midpoint_pairs` (the head's centre between the ears, the middle of each limb bone).
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    if estimate is None:
        return lift_keypoints_with_depth(kp, depth, depth_scale, rig, cfg=cfg, offsets_m=offsets_m)
    uv = np.moveaxis(rig.project(estimate.xyz), -2, 1)  # (T, V, J, 2)
    with np.errstate(invalid="ignore"):
        close = (np.linalg.norm(uv - kp[..., :2], axis=-1) <= cfg.sample_gate_px) & estimate.measured[:, None, :]
    sample = np.where(close[..., None], uv, np.nan)
    lift = lift_keypoints_with_depth(kp, depth, depth_scale, rig, cfg=cfg, offsets_m=offsets_m, sample_uv=sample,
                                     expected_xyz=estimate.xyz, expected_cov=estimate.covariance)
    pairs, radii, fractions, weights = midpoint_pairs(skeleton, cfg, offsets_m)
    if not len(pairs):
        return lift
    xyz = estimate.xyz
    w = weights[None, :, None]
    mids = w * xyz[:, pairs[:, 0]] + (1.0 - w) * xyz[:, pairs[:, 1]]  # (T, P, 3)
    surface, var = lift_midpoints_with_depth(depth, depth_scale, rig, mids, radii, fractions, cfg)
    # A limb is a cylinder: seen at an angle, its axis lies radius / sin(angle) behind its
    # surface along the ray. The head (a sphere) keeps sin = 1.
    axis = xyz[:, pairs[:, 1]] - xyz[:, pairs[:, 0]]
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
        ray = mids[:, None] - rig.centers[None, :, None, :]
        ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
        sin = np.sqrt(np.clip(1.0 - np.einsum("tvpi,tpi->tvp", ray, axis) ** 2, 0.0, 1.0))
    sphere = np.zeros(len(pairs), dtype=bool)
    if cfg.head_depth and ear_indices(skeleton) is not None:
        sphere[0] = True
    sin = np.where(sphere[None, None, :], 1.0, sin)
    return replace(lift, mid_pairs=pairs, mid_surface=surface, mid_var=var, mid_radius=radii, mid_sin=sin,
                   mid_weights=weights)


def midpoint_pairs(skeleton: Skeleton, dcfg: DepthFusionConfig, offsets_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Joint pairs (P, 2) between which depth is read, their body radius (P,) m, disc fraction (P,)
    and the point's weight (P,) (``w X_a + (1 - w) X_b``):
    the ears (the head, ``head_depth``) first, then the rigid limb bones (``segment_depth``; not
    between a left and a right joint, not the face's or those of ``joints_without_depth``)."""
    pairs, radii, fractions, weights = [], [], [], []
    ears = ear_indices(skeleton)
    if dcfg.head_depth and ears is not None:
        pairs.append(ears)
        radii.append(dcfg.head_radius_m)
        fractions.append(dcfg.head_window_fraction)
        weights.append(0.5)
    if dcfg.segment_depth:
        skip = {canonical_joint_name(n) for n in dcfg.joints_without_depth}
        names = [canonical_joint_name(n) for n in skeleton.joint_names]
        mirror = skeleton.flip_permutation
        for (a, b), rigid in zip(skeleton.bone_indices, skeleton.rigid_mask):
            # limbs only: the middle of shoulder to shoulder is in front of the chest or behind
            # the back depending on the view, no cylinder's axis
            if rigid and names[a] not in skip and names[b] not in skip and mirror[a] != b:
                for w in dcfg.segment_points:
                    pairs.append((int(a), int(b)))
                    radii.append(float(min(offsets_m[a], offsets_m[b])))
                    fractions.append(dcfg.window_fraction)
                    weights.append(float(w))
    return (np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(radii, dtype=np.float64),
            np.array(fractions, dtype=np.float64), np.array(weights, dtype=np.float64))


def ear_indices(skeleton: Skeleton) -> tuple[int, int] | None:
    """Indices of the left and right ear in ``skeleton`` (canonical names), or None."""
    names = [canonical_joint_name(n) for n in skeleton.joint_names]
    if "left_ear" in names and "right_ear" in names:
        return names.index("left_ear"), names.index("right_ear")
    return None


def crop_depth_views(kp: np.ndarray, depths, rig: Rig, margin: int):
    """Crop each view's depth image to its keypoints' box (+ ``margin`` px): the live depth lift then
    reads a few thousand pixels instead of whole images. A crop is a camera whose principal point is
    shifted by the crop's corner (distortion acts on normalized coordinates, so it is unchanged).

    ``kp`` (V, J, 3), ``depths`` V images (H, W) or None. Returns the keypoints in crop pixels
    (V, J, 3), the V crops (None where no depth or no keypoint) and the rig of cropped cameras.
    """
    kp = np.array(kp, dtype=np.float64)
    crops, cams = [], []
    for v, (cam, d) in enumerate(zip(rig.cameras, depths)):
        xy = kp[v, :, :2]
        ok = np.all(np.isfinite(xy), axis=1)
        if d is None or not ok.any():
            crops.append(None)
            cams.append(cam)
            continue
        h, w = d.shape
        x0 = int(np.clip(np.floor(xy[ok, 0].min()) - margin, 0, w - 1))
        x1 = int(np.clip(np.ceil(xy[ok, 0].max()) + margin + 1, x0 + 1, w))
        y0 = int(np.clip(np.floor(xy[ok, 1].min()) - margin, 0, h - 1))
        y1 = int(np.clip(np.ceil(xy[ok, 1].max()) + margin + 1, y0 + 1, h))
        crops.append(d[y0:y1, x0:x1])
        K = cam.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        cams.append(replace(cam, K=K, image_size=(x1 - x0, y1 - y0)))
        kp[v, :, 0] -= x0
        kp[v, :, 1] -= y0
    return kp, crops, Rig(tuple(cams))
