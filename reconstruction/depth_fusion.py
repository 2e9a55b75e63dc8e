"""Depth fusion: lift 2D keypoints with the aligned depth of RGB-D views, fuse with triangulation.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``H``/``W`` image height/width. Depth images are
aligned to the colour camera of each view (the rig's camera), ``uint16`` raw units times the
view's depth scale = metres along the camera's optical axis (RealSense "z", not the ray length).

Three steps, each a pure vectorized function:

1. :func:`lift_keypoints_with_depth`: for each keypoint a robust depth (the median of the valid
   pixels of a small window that belong to the nearest depth cluster, i.e. the person in front of
   the background, and to the person's foreground mask when given), back-projected through the
   undistorted pixel, then moved *along the viewing ray* by the joint's offset behind the visible
   surface (a joint centre lies inside the limb). The covariance has a lateral part from the pixel
   noise and an along-ray part from the depth noise (RealSense: ``sigma_z = a + b z^2``) plus the
   uncertainty of the offset.
2. :func:`fuse`: inverse-covariance fusion of the triangulated point and the lifted points of every
   view, after gating each depth point by its Mahalanobis distance to the triangulated point (a
   depth sample on an occluder or the background is dropped). A joint that no RGB pair
   triangulated but one RGB-D view lifted is still reconstructed, metric, with its covariance.
3. :func:`depth_residuals`: the accepted depth points as camera-frame depths with their sigmas,
   the ``DepthObservations`` that ``refine_sequence`` adds to its cost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from reconstruction.nan_warnings import quiet_nan_warnings

log = logging.getLogger(__name__)

# Distance (m) from the visible skin to the joint centre, seen from the front, for adults: about
# half the limb's thickness at the joint (hip and trunk joints are deep, wrists and face shallow).
ANTHROPOMETRIC_OFFSETS_M = {
    "nose": 0.01,
    "left_eye": 0.01,
    "right_eye": 0.01,
    "left_ear": 0.01,
    "right_ear": 0.01,
    "head": 0.08,
    "head_top": 0.02,
    "neck": 0.05,
    "left_shoulder": 0.05,
    "right_shoulder": 0.05,
    "left_elbow": 0.035,
    "right_elbow": 0.035,
    "left_wrist": 0.025,
    "right_wrist": 0.025,
    "mid_hip": 0.10,
    "hip": 0.10,
    "left_hip": 0.08,
    "right_hip": 0.08,
    "left_knee": 0.05,
    "right_knee": 0.05,
    "left_ankle": 0.035,
    "right_ankle": 0.035,
    "left_heel": 0.02,
    "right_heel": 0.02,
    "left_big_toe": 0.015,
    "right_big_toe": 0.015,
    "left_small_toe": 0.015,
    "right_small_toe": 0.015,
}


@dataclass(frozen=True)
class DepthFusionConfig:
    """Depth lifting and fusion settings (section ``depth_fusion`` of the reconstruction config).

    Attributes:
        enabled: fuse depth at all (views without depth are always skipped).
        window_px: half-size of the square window around a keypoint (window side ``2 w + 1``); with
            ``window_fraction`` the smallest radius of the disc window.
        window_fraction: > 0: the window is a disc whose radius is this fraction of the joint's
            anthropometric depth offset (about the limb's radius: hips 8 cm, wrists 2.5 cm), in
            pixels at the joint's depth -- as many pixels of the limb as it has, so big joints get a
            precise depth and small ones do not take in their surroundings; 0: the square window.
        max_window_px: largest disc radius (pixels).
        min_valid_pixels: fewer valid pixels in the nearest cluster -> no depth for that keypoint.
        cluster_band_m: pixels within this distance behind the nearest surface of the window
            count as the person (the nearest depth cluster).
        min_depth_m / max_depth_m: depth outside this range is invalid.
        min_score: keypoints with a lower 2D score are not lifted.
        sample_at_estimate: read the depth (and cast the ray) at the reprojection of a first
            multi-view 3D estimate of the chunk (triangulation + refinement without depth) instead of
            at the view's own detection, where the two lie within ``sample_gate_px``: the
            reprojection is about twice as precise as one detection (3 px noise is 15 mm at 3 m, a
            wrist is 5 cm wide). Needs >= 2 views.
        sample_passes: how many times to read: pass 1 at the estimate without depth, each further
            pass at the estimate with the depth the previous pass read.
        sample_gate_px: farther than this from the detection, the detection's pixel is kept (a
            wrong detection or a swap is left to the fusion's gate).
        joints_without_depth: canonical joint names whose own depth refines no triangulation (their
            depth points are dropped where the joint is triangulated; where no pair of views sees it,
            depth alone still places it). Default: the face points. A nose, an eye or an
            ear is a small feature on a steep, curved surface: 3 px of 2D noise moves its window
            over 1-2 cm of depth, and how far the point lies behind what the camera sees changes with
            the head's pose; measured on the simulator, their own depth made them worse (12.2 vs
            10.7 mm). The head as a whole is measured instead (``head_depth``).
        head_depth: measure the head's depth: a disc of the head's surface around where the head
            centre (midpoint of the ears of the first 3D estimate) reprojects, in each view; the
            centre lies a head radius behind it (estimated from the data). The refinement gets the
            depth of the ears' midpoint: the face follows through its rigid bones. Needs both ears.
        head_radius_m: head radius for the disc's size and the expected surface (the offset used is
            re-estimated from the data).
        head_window_fraction: the disc's radius as a fraction of ``head_radius_m``.
        segment_depth: also measure the depth along each rigid limb bone (a disc of
            ``window_fraction`` times the thinner end's offset): the refinement gets the depth of
            points between the two joints, more readings per bone and view of a big, smooth surface.
        segment_points: where along each limb bone (fraction of the way from its second joint to
            its first: the point is ``w X_a + (1 - w) X_b``).
        expected_band_m: with that first estimate, only depth pixels within this distance (+ 3 noise
            sigmas) of the surface it predicts (its depth minus the joint's prior offset) are read.
        noise_a_m / noise_b_per_m: per-pixel depth noise ``sigma_z = a + b z^2`` (metres, z in
            metres); RealSense D4xx: error grows with the square of the distance, ``b = subpixel /
            (focal * baseline)`` = 0.08 / (430 px * 0.05 m) for a D435 at 848x480.
        independent_pixels: the window median's noise is ``1.25 sigma_z / sqrt(n)`` with ``n`` the
            cluster's pixels, capped at this many (neighbouring pixels' noise is correlated).
        pixel_sigma_px: 2D keypoint noise, gives the lateral uncertainty ``range * sigma / f``.
        joint_offsets_m: per canonical joint name, the joint centre's distance behind the visible
            surface along the ray; joints not listed use ``default_offset_m``. Empty means the
            anthropometric table of this module.
        default_offset_m: offset of joints not in the table.
        offset_sigma_m: uncertainty (1 sigma) of the offset, added along the ray (with
            ``measure_noise``: the least the measured slow variation of the offset may be).
        estimate_offsets: replace the table by per-joint offsets estimated from the data (the
            median over frames and views of triangulated range minus surface range, where the
            triangulation is reliable) when enough samples exist.
        min_offset_samples: samples a joint needs for its estimated offset to be used.
        gate_chi2: Mahalanobis distance squared (3 dof) above which a depth point is rejected
            against the triangulated point (16.3 = p 0.999).
        gate_distance_m: with no triangulated point, depth points farther than this from the
            median of the joint's depth points are rejected.
        temporal_window / temporal_gate_m: a depth point of a joint that has no triangulated point
            is also rejected when it lies farther than ``temporal_gate_m`` from the joint's median
            position over ``+- temporal_window`` frames (a wrong 2D detection seen by one camera
            only has nothing else to be checked against); 0 turns this off.
        triangulation_sigma_floor_m: added (in quadrature) to the triangulation's covariance, so a
            tiny reported covariance does not silence depth.
        measure_noise: measure from the data (:func:`measure_depth_noise`) how noisy each joint's
            depth is (frame-to-frame, relative to the sensor model) and how much its offset varies
            slowly, and weight the depth with that instead of the model and ``offset_sigma_m``.
    """

    enabled: bool = True
    window_px: int = 3
    window_fraction: float = 1.0
    max_window_px: int = 12
    min_valid_pixels: int = 4
    cluster_band_m: float = 0.12
    min_depth_m: float = 0.2
    max_depth_m: float = 8.0
    min_score: float = 0.1
    sample_at_estimate: bool = True
    sample_gate_px: float = 12.0
    sample_passes: int = 1
    expected_band_m: float = 0.01
    joints_without_depth: tuple[str, ...] = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    head_depth: bool = True
    head_radius_m: float = 0.09
    head_window_fraction: float = 0.5
    segment_depth: bool = True
    segment_points: tuple[float, ...] = (0.5,)
    noise_a_m: float = 0.001
    noise_b_per_m: float = 0.0037
    independent_pixels: float = 9.0
    pixel_sigma_px: float = 3.0
    joint_offsets_m: dict[str, float] = field(default_factory=dict)
    default_offset_m: float = 0.04
    offset_sigma_m: float = 0.005
    estimate_offsets: bool = True
    min_offset_samples: int = 20
    gate_chi2: float = 16.3
    gate_distance_m: float = 0.15
    temporal_window: int = 5
    temporal_gate_m: float = 0.2
    triangulation_sigma_floor_m: float = 0.005
    measure_noise: bool = True

    @property
    def reach_px(self) -> int:
        """Largest distance (pixels) from a keypoint that its depth window may read."""
        return max(self.window_px, self.max_window_px) if self.window_fraction > 0 else self.window_px

    def __post_init__(self):
        if self.window_px < 0:
            raise ValueError(f"window_px must be >= 0, got {self.window_px}")
        if self.max_window_px < self.window_px:
            raise ValueError(f"max_window_px must be >= window_px, got {self.max_window_px} < {self.window_px}")
        if self.min_valid_pixels < 1:
            raise ValueError(f"min_valid_pixels must be >= 1, got {self.min_valid_pixels}")
        if not 0 < self.min_depth_m < self.max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {self.min_depth_m}, {self.max_depth_m}")
        for name in ("noise_a_m", "noise_b_per_m", "pixel_sigma_px", "offset_sigma_m", "gate_chi2", "window_fraction",
                     "gate_distance_m", "triangulation_sigma_floor_m", "cluster_band_m", "sample_gate_px", "expected_band_m",
                     "head_radius_m", "head_window_fraction"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class DepthLift:
    """Keypoints lifted with depth.

    Attributes:
        points: (T, V, J, 3) world metres, joint centres (offset applied); NaN where no depth.
        covariance: (T, V, J, 3, 3) world m^2; NaN where no depth.
        surface: (T, V, J, 3) world metres of the visible surface (before the offset).
        offsets_m: (J,) offsets used along the ray.
        var_ray: (T, V, J) variance (m^2) along the viewing ray (depth noise + offset).
        at_estimate: (T, V, J) bool, read where a 3D estimate reprojects (``sample_uv``) rather than
            at the view's detection: its label is the estimate's, not the detection's.
        mid_pairs: (P, 2) joint pairs whose midpoint's depth was read (the ears: the head centre;
            a limb's two ends: its middle), see :func:`lift_midpoints_with_depth`; None without.
        mid_surface: (T, V, P, 3) world metres, the visible surface on each view's ray through them.
        mid_var: (T, V, P) m^2, the sensor model's variance of that surface's range.
        mid_radius: (P,) m, the body radius prior there (the midpoint's offset behind the surface
            until the data give one).
        mid_sin: (T, V, P) sine of the angle between each view's ray and the segment (1 for a
            sphere such as the head): a limb seen at an angle lies ``radius / sin`` behind its surface.
        mid_weights: (P,) ``w``: the point read is ``w X_a + (1 - w) X_b`` (0.5: the middle).
    """

    points: np.ndarray
    covariance: np.ndarray
    surface: np.ndarray
    offsets_m: np.ndarray
    var_ray: np.ndarray | None = None
    at_estimate: np.ndarray | None = None
    mid_pairs: np.ndarray | None = None
    mid_surface: np.ndarray | None = None
    mid_var: np.ndarray | None = None
    mid_radius: np.ndarray | None = None
    mid_sin: np.ndarray | None = None
    mid_weights: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class FusionResult:
    """Triangulation fused with depth.

    Attributes:
        xyz: (T, J, 3) fused joints, world metres; NaN where neither source has the joint.
        covariance: (T, J, 3, 3) m^2 of ``xyz``.
        disagreement_m: (T, J) distance between the depth-only estimate (all valid depth points)
            and the triangulated point; NaN where either is missing.
        depth_used: (T, V, J) bool, depth points that passed the gate and were fused.
        n_depth: (T, J) number of depth points fused.
        depth_only: (T, J, 3) inverse-covariance fusion of the accepted depth points alone.
        depth_only_covariance: (T, J, 3, 3).
        depth_only_joints: number of (frame, joint) reconstructed from depth without triangulation.
    """

    xyz: np.ndarray
    covariance: np.ndarray
    disagreement_m: np.ndarray
    depth_used: np.ndarray
    n_depth: np.ndarray
    depth_only: np.ndarray
    depth_only_covariance: np.ndarray
    depth_only_joints: int


def joint_offsets(joint_names: Sequence[str], cfg: DepthFusionConfig) -> np.ndarray:
    """(J,) offsets in metres for ``joint_names`` (canonicalized) from the config or the table."""
    from reconstruction.skeleton import canonical_joint_name

    table = dict(cfg.joint_offsets_m) if cfg.joint_offsets_m else ANTHROPOMETRIC_OFFSETS_M
    table = {canonical_joint_name(k): float(v) for k, v in table.items()}
    return np.array([table.get(canonical_joint_name(n), cfg.default_offset_m) for n in joint_names])


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
    depth_m: np.ndarray, uv: np.ndarray, cfg: DepthFusionConfig, mask: np.ndarray | None = None,
    return_count: bool = False, radius_px: np.ndarray | None = None, expected_z: np.ndarray | None = None,
    expected_tol: np.ndarray | None = None,
):
    """Robust depth (T, J) at pixels ``uv`` (T, J, 2) of depth images ``depth_m`` (T, H, W) metres.

    The window is the square of half-size ``cfg.window_px``, or, with ``radius_px`` (T, J), a disc of
    that radius (pixels, at least ``window_px``, at most ``max_window_px``) per keypoint. Its valid
    pixels (in range, in ``mask`` (T, H, W) when given) are sorted; the nearest cluster is those
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
    if mask is not None:
        valid &= mask[t_idx, rc, cc].astype(bool)
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
    keypoints2d,
    depth,
    depth_scale,
    rig,
    foreground_mask=None,
    cfg: DepthFusionConfig = DepthFusionConfig(),
    joint_names: Sequence[str] | None = None,
    offsets_m: np.ndarray | None = None,
    sample_uv: np.ndarray | None = None,
    window_offsets_m: np.ndarray | None = None,
    expected_xyz: np.ndarray | None = None,
    expected_cov: np.ndarray | None = None,
) -> DepthLift:
    """Lift 2D keypoints to 3D with each view's aligned depth.

    Args:
        keypoints2d: (T, V, J, 3) x, y, score in distorted pixels (NaN where missing), or a
            :class:`~reconstruction.keypoints2d_io.Keypoints2D` (its joint names are then used).
        depth: (T, V, H, W) raw depth (0 = no data), or a list of T frames each a sequence of V
            images (H, W) or None for a view without depth / absent.
        depth_scale: metres per depth unit, a scalar or (V,).
        rig: the :class:`~calibration.camera.Rig`, view order = V.
        foreground_mask: optional, same layout as ``depth``, True on the person.
        cfg: settings; ``joint_names`` pick the per-joint offsets (default offset otherwise), or
            ``offsets_m`` (J,) gives them directly.
        sample_uv: optional (T, V, J, 2) distorted pixels where the depth is read and the ray cast
            instead of the detection's, where finite (e.g. the reprojection of a multi-view 3D
            estimate, more precise than one view's detection); a keypoint still needs its
            detection (score >= ``min_score``) to be lifted.
        window_offsets_m: (J,) the offsets that size the disc windows (``window_fraction``);
            default ``offsets_m``.
        expected_xyz: optional (T, J, 3) world metres, a first 3D estimate: only depth pixels near
            the surface it predicts in each view are read (``expected_band_m``), widened by its
            uncertainty along each ray from ``expected_cov`` (T, J, 3, 3) m^2 when given (two
            opposite cameras know little of a joint's depth).

    Returns:
        :class:`DepthLift` with points (T, V, J, 3) and covariance (T, V, J, 3, 3), NaN where the
        keypoint is missing, under ``min_score`` or without enough valid depth.
    """
    if hasattr(keypoints2d, "keypoints"):
        joint_names = joint_names or keypoints2d.joint_names
        keypoints2d = keypoints2d.keypoints
    kp = np.asarray(keypoints2d, dtype=np.float64)
    T, V, J, _ = kp.shape
    if len(rig) != V:
        raise ValueError(f"keypoints have {V} views but the rig has {len(rig)} cameras")
    scale = np.broadcast_to(np.asarray(depth_scale, dtype=np.float64).ravel(), (V,)) if np.ndim(
        depth_scale) else np.full(V, float(depth_scale))
    if offsets_m is None:
        offsets_m = joint_offsets(joint_names, cfg) if joint_names is not None else np.full(J, cfg.default_offset_m)
    offsets_m = np.asarray(offsets_m, dtype=np.float64)
    window_offsets_m = offsets_m if window_offsets_m is None else np.asarray(window_offsets_m, dtype=np.float64)
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
        m = _stack_view(foreground_mask, v, T) if foreground_mask is not None else None
        uv = kp[:, v, :, :2].copy()
        if sample_uv is not None:
            better = np.all(np.isfinite(sample_uv[:, v]), axis=-1)
            uv[better] = sample_uv[:, v][better]
            at_estimate[:, v] = better
        with np.errstate(invalid="ignore"):
            uv[~(kp[:, v, :, 2] >= cfg.min_score)] = np.nan
        expected_z = expected_tol = None
        if expected_xyz is not None:
            X_cam = camera.world_to_camera(np.asarray(expected_xyz, dtype=np.float64))  # (T, J, 3)
            with np.errstate(invalid="ignore", divide="ignore"):
                expected_z = X_cam[..., 2] * (1.0 - window_offsets_m[None, :] / np.linalg.norm(X_cam, axis=-1))
                if expected_cov is not None:
                    axis = camera.R[2]  # the optical axis, world frame
                    # a well-triangulated joint (1-2 cm along the ray) keeps the band; a badly
                    # conditioned one (two facing cameras: decimetres) widens it by what exceeds 3 cm
                    sigma = np.sqrt(np.einsum("i,...ij,j->...", axis, np.asarray(expected_cov), axis))
                    expected_tol = np.maximum(sigma - 0.03, 0.0)
        z, n_pix = robust_window_depth(d_m, uv, cfg, m, return_count=True, expected_z=expected_z,
                                       expected_tol=expected_tol)  # (T, J)
        if cfg.window_fraction > 0:
            # The disc's radius in pixels follows the joint's depth (first read with the small window).
            f_px = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
            with np.errstate(invalid="ignore", divide="ignore"):
                radius = f_px * cfg.window_fraction * np.maximum(window_offsets_m, 0.0)[None, :] / z
            z2, n2 = robust_window_depth(d_m, uv, cfg, m, return_count=True, radius_px=radius, expected_z=expected_z,
                                         expected_tol=expected_tol)
            z = np.where(np.isfinite(z2), z2, z)
            n_pix = np.where(np.isfinite(z2), n2, n_pix)
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
        surface[:, v] = (X_surf - t) @ R  # R^T (X - t)
        points[:, v] = (X_joint - t) @ R
        cov[:, v] = R.T @ C_cam @ R
        ray_var[:, v] = var_ray
    at_estimate &= np.all(np.isfinite(surface), axis=-1)
    return DepthLift(points=points, covariance=cov, surface=surface, offsets_m=offsets_m, var_ray=ray_var,
                     at_estimate=at_estimate)


def lift_midpoints_with_depth(
    depth,
    depth_scale,
    rig,
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
    scale = np.broadcast_to(np.asarray(depth_scale, dtype=np.float64).ravel(), (V,)) if np.ndim(
        depth_scale) else np.full(V, float(depth_scale))
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


def lift_head_with_depth(
    depth,
    depth_scale,
    rig,
    head_xyz: np.ndarray,
    cfg: DepthFusionConfig = DepthFusionConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """The head's visible surface on each view's ray through the head centre ``head_xyz`` (T, 3)
    (:func:`lift_midpoints_with_depth` with ``head_radius_m`` and ``head_window_fraction``): surface
    (T, V, 3) world metres, NaN where no depth, and the model variance (T, V) m^2 of its range."""
    surface, var = lift_midpoints_with_depth(depth, depth_scale, rig, np.asarray(head_xyz, dtype=np.float64)[:, None],
                                             np.array([cfg.head_radius_m]), cfg.head_window_fraction, cfg)
    return surface[:, :, 0], var[:, :, 0]


def estimate_joint_offsets(
    surface: np.ndarray,
    triangulated: np.ndarray,
    rig,
    reliable: np.ndarray,
    prior_m: np.ndarray,
    cfg: DepthFusionConfig = DepthFusionConfig(),
) -> np.ndarray:
    """Per-joint offsets (J,) behind the surface from data: median over frames and views of the
    triangulated point's range minus the surface range, using (T, J) ``reliable`` triangulations
    only; joints with fewer than ``min_offset_samples`` samples keep ``prior_m`` (J,). Clipped to
    [-0.05, 0.2] m (a negative offset absorbs a bias of the depth sensor). How much the offset
    varies is measured by :func:`measure_depth_noise`.
    """
    centers = rig.centers  # (V, 3)
    r_surf = np.linalg.norm(surface - centers[None, :, None, :], axis=-1)  # (T, V, J)
    r_tri = np.linalg.norm(triangulated[:, None] - centers[None, :, None, :], axis=-1)
    diff = np.where(reliable[:, None, :], r_tri - r_surf, np.nan)
    with np.errstate(invalid="ignore"):
        # Gross mismatches (occluder in front, background) are not the offset.
        diff = np.where(np.abs(diff) < 0.3, diff, np.nan)
    flat = diff.reshape(-1, diff.shape[-1])
    enough = np.isfinite(flat).sum(axis=0) >= cfg.min_offset_samples
    with np.errstate(invalid="ignore"), quiet_nan_warnings():
        median = np.nanmedian(flat, axis=0)
    return np.where(enough, np.clip(median, -0.05, 0.2), prior_m)


def with_offsets(lift: "DepthLift", rig, offsets_m: np.ndarray) -> "DepthLift":
    """The lift with new per-joint offsets (J,) (the covariance is unchanged: see
    :func:`with_ray_variance`)."""
    return replace(lift, points=apply_offsets(lift.surface, rig, offsets_m), offsets_m=np.asarray(offsets_m))


def apply_offsets(surface: np.ndarray, rig, offsets_m: np.ndarray) -> np.ndarray:
    """Surface points (T, V, J, 3) moved by ``offsets_m`` (J,) along each view's ray -> (T, V, J, 3)."""
    centers = rig.centers[None, :, None, :]
    ray = surface - centers
    unit = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    return surface + offsets_m[None, None, :, None] * unit


def _safe_inv(cov: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse of (..., 3, 3) where ``valid``, zero elsewhere (NaN-safe, no exceptions)."""
    eye = np.eye(3)
    filled = np.where(valid[..., None, None], np.nan_to_num(cov), eye)
    info = np.linalg.inv(filled)
    return np.where(valid[..., None, None], info, 0.0)


def _info_fuse(points: np.ndarray, info: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-covariance fusion along ``axis``: points (..., K, ..., 3), info (..., K, ..., 3, 3)."""
    total = info.sum(axis=axis)
    weighted = (info @ np.nan_to_num(points)[..., None])[..., 0].sum(axis=axis)
    ok = np.abs(np.linalg.det(total)) > 0
    cov = _safe_inv(total, ok)
    xyz = (cov @ weighted[..., None])[..., 0]
    xyz = np.where(ok[..., None], xyz, np.nan)
    cov = np.where(ok[..., None, None], cov, np.nan)
    return xyz, cov


def _rolling_nanmedian(x: np.ndarray, half: int) -> np.ndarray:
    """NaN-aware median over frames ``t - half .. t + half`` of (T, ...) -> (T, ...)."""
    T = x.shape[0]
    pad = np.concatenate([np.full((half,) + x.shape[1:], np.nan), x, np.full((half,) + x.shape[1:], np.nan)])
    windows = np.stack([pad[k : k + T] for k in range(2 * half + 1)])  # (2h+1, T, ...)
    with quiet_nan_warnings():
        return np.nanmedian(windows, axis=0)


def fuse(
    triangulation,
    depth_points: np.ndarray,
    depth_cov: np.ndarray,
    cfg: DepthFusionConfig = DepthFusionConfig(),
    rig=None,
    var_ray: np.ndarray | None = None,
) -> FusionResult:
    """Fuse triangulated joints with depth-lifted joints by inverse covariance, with gating.

    Args:
        triangulation: a ``Triangulation3D`` (uses ``xyz`` (T, J, 3) and ``covariance``
            (T, J, 3, 3) when present, else an isotropic covariance from ``reproj_error_px``), or
            an array (T, J, 3) (covariance: ``triangulation_sigma_floor_m`` isotropic).
        depth_points: (T, V, J, 3) world metres, NaN where none.
        depth_cov: (T, V, J, 3, 3).
        rig, var_ray: with both, a depth point adds to a triangulated joint only its information
            *along its viewing ray* (``d d^T / var_ray``): its lateral position is that view's 2D
            detection, which the triangulation already used (counting it twice would drown the
            depth). Joints without a triangulated point use the full covariance.

    Returns:
        :class:`FusionResult`.
    """
    if isinstance(triangulation, np.ndarray):
        tri_xyz, tri_cov = triangulation, None
    else:
        tri_xyz = np.asarray(triangulation.xyz, dtype=np.float64)
        tri_cov = getattr(triangulation, "covariance", None)
    T, J, _ = tri_xyz.shape
    floor = cfg.triangulation_sigma_floor_m**2 * np.eye(3)
    tri_ok = np.all(np.isfinite(tri_xyz), axis=-1)
    tri_finite = tri_ok
    if tri_cov is None:
        tri_cov = np.broadcast_to(floor, (T, J, 3, 3)).copy()
    else:
        raw_tri_cov = np.asarray(tri_cov, dtype=np.float64)
        tri_cov = raw_tri_cov + floor
        # A triangulated point without a usable covariance still counts, with the floor only.
        bad = ~np.all(np.isfinite(tri_cov), axis=(-1, -2))
        tri_cov = np.where(bad[..., None, None], 25 * floor, tri_cov)
    depth_points = np.asarray(depth_points, dtype=np.float64)
    depth_cov = np.asarray(depth_cov, dtype=np.float64)
    d_ok = np.all(np.isfinite(depth_points), axis=-1) & np.all(np.isfinite(depth_cov), axis=(-1, -2))

    # Gate against the triangulated point (Mahalanobis with both covariances).
    diff = depth_points - tri_xyz[:, None]
    S = depth_cov + tri_cov[:, None]
    both = d_ok & tri_ok[:, None]
    S_inv = _safe_inv(S, both)
    m2 = np.einsum("...i,...ij,...j->...", np.nan_to_num(diff), S_inv, np.nan_to_num(diff))
    accept_tri = both & (m2 <= cfg.gate_chi2)
    # Without a triangulated point: gate against the median of the joint's depth points.
    with quiet_nan_warnings():
        med = np.nanmedian(np.where(d_ok[..., None], depth_points, np.nan), axis=1)  # (T, J, 3)
    dist = np.linalg.norm(depth_points - med[:, None], axis=-1)
    near_med = d_ok & (np.nan_to_num(dist, nan=np.inf) <= cfg.gate_distance_m)
    # A triangulated point that every depth point rejects while at least two depth points agree
    # with each other is a wrong triangulation (outliers in two views): depth replaces it.
    overruled = tri_ok & ~accept_tri.any(axis=1) & (near_med.sum(axis=1) >= 2) & (
        np.linalg.norm(np.nan_to_num(med) - tri_xyz, axis=-1) > cfg.gate_distance_m)
    tri_ok = tri_ok & ~overruled
    accept_tri &= tri_ok[:, None]
    accept_med = near_med & ~tri_ok[:, None]
    used = accept_tri | accept_med
    if cfg.temporal_window > 0 and cfg.temporal_gate_m > 0:
        # Temporal consistency for the joints depth alone reconstructs.
        rough, _ = _info_fuse(depth_points, _safe_inv(depth_cov, used), axis=1)
        rough = np.where(tri_ok[..., None], tri_xyz, rough)
        ref = _rolling_nanmedian(rough, cfg.temporal_window)
        far = np.linalg.norm(depth_points - ref[:, None], axis=-1) > cfg.temporal_gate_m
        used &= ~(far & ~tri_ok[:, None])  # NaN reference (no neighbours) keeps the point

    d_info = _safe_inv(depth_cov, used)
    if rig is not None and var_ray is not None:
        ray = depth_points - rig.centers[None, :, None, :]
        ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            along = (ray[..., :, None] * ray[..., None, :]) / np.asarray(var_ray)[..., None, None]
        rank1 = used & tri_ok[:, None] & np.isfinite(np.asarray(var_ray)) & (np.asarray(var_ray) > 0)
        d_info = np.where(rank1[..., None, None], np.nan_to_num(along), d_info)
    t_info = _safe_inv(tri_cov, tri_ok)  # an overruled triangulation gets no weight
    all_points = np.concatenate([depth_points, tri_xyz[:, None]], axis=1)
    all_info = np.concatenate([d_info, t_info[:, None]], axis=1)
    xyz, cov = _info_fuse(all_points, all_info, axis=1)

    depth_only, depth_only_cov = _info_fuse(depth_points, _safe_inv(depth_cov, used), axis=1)
    raw_depth, _ = _info_fuse(depth_points, _safe_inv(depth_cov, d_ok), axis=1)
    disagreement = np.linalg.norm(raw_depth - tri_xyz, axis=-1)
    n_depth = used.sum(axis=1)
    depth_only_joints = int(np.sum(~tri_finite & (n_depth > 0)))
    if overruled.any():
        log.info("depth overruled %d triangulated joints (all depth points disagreed with them)", int(overruled.sum()))
    return FusionResult(
        xyz=xyz, covariance=cov, disagreement_m=disagreement, depth_used=used, n_depth=n_depth,
        depth_only=depth_only, depth_only_covariance=depth_only_cov, depth_only_joints=depth_only_joints,
    )


def _rolling_sum(x: np.ndarray, half: int) -> np.ndarray:
    """Sum over frames ``t - half .. t + half`` of (T, ...) (zero-padded) -> (T, ...)."""
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    T = x.shape[0]
    hi = np.minimum(np.arange(T) + half + 1, T)
    lo = np.maximum(np.arange(T) - half, 0)
    return c[hi] - c[lo]


def measure_depth_noise(
    depth_points: np.ndarray,
    white_var: np.ndarray,
    tri_xyz: np.ndarray,
    tri_var_ray: np.ndarray,
    reliable: np.ndarray,
    rig,
    min_samples: int = 20,
    half_window: int = 5,
    limits: tuple[float, float] = (0.2, 5.0),
    bias_floor_m: float = 0.003,
) -> tuple[np.ndarray, np.ndarray]:
    """How noisy each joint's depth points are, measured from the data (no ground truth).

    Two parts, per joint (J,):

    - ``white_scale``: the frame-to-frame noise relative to the sensor model ``white_var``
      (T, V, J) m^2: the robust spread (1.4826 MAD) of the second temporal difference of each
      view's depth range, divided by ``sqrt(6)`` and by the model's sigma. Motion contributes
      little at 30 fps (3 m/s^2 is 3 mm per frame^2) and the MAD ignores the rare fast frames. This
      captures how many independent pixels the window median really averages, whatever the sensor's
      spatial correlation is.
    - ``bias_sigma`` (m): the slowly varying error (which part of the limb or head faces the
      camera), which the temporal difference cannot see: the robust spread of the depth-minus-
      triangulation range difference averaged over ``+- half_window`` frames of (T, J) ``reliable``
      triangulations, minus what the averaged white noise of both still contributes
      (``tri_var_ray`` (T, V, J) m^2), at least ``bias_floor_m``.

    Joints with fewer than ``min_samples`` samples keep 1 and ``bias_floor_m``.
    """
    centers = rig.centers[None, :, None, :]
    r_d = np.linalg.norm(depth_points - centers, axis=-1)  # (T, V, J)
    r_t = np.linalg.norm(tri_xyz[:, None] - centers, axis=-1)
    J = depth_points.shape[2]
    with np.errstate(invalid="ignore"):
        sig = np.sqrt(np.where(white_var > 0, white_var, np.nan))
        d2 = (r_d[2:] - 2 * r_d[1:-1] + r_d[:-2]) / sig[1:-1]  # (T-2, V, J), NaN unless 3 frames
        diff = np.where(reliable[:, None, :] & (np.abs(r_t - r_d) < 0.3), r_t - r_d, np.nan)
    white_scale = np.ones(J)
    bias_sigma = np.full(J, bias_floor_m)
    with quiet_nan_warnings():
        flat = d2.reshape(-1, J)
        enough = np.isfinite(flat).sum(axis=0) >= min_samples
        med = np.nanmedian(flat, axis=0)
        spread = 1.4826 * np.nanmedian(np.abs(flat - med), axis=0) / np.sqrt(6.0)
        white_scale = np.where(enough & np.isfinite(spread), np.clip(spread, *limits), 1.0)
        # The slow part: window means of the difference (each window needs most of its frames).
        ok = np.isfinite(diff)
        n = _rolling_sum(ok.astype(np.float64), half_window)
        mean = _rolling_sum(np.where(ok, diff, 0.0), half_window) / np.maximum(n, 1)
        full = ok & (n >= half_window + 1)
        noise = (np.nan_to_num(tri_var_ray) + white_scale[None, None, :] ** 2 * np.nan_to_num(white_var)) / np.maximum(n, 1)
        m = np.where(full, mean, np.nan).reshape(-1, J)
        m_med = np.nanmedian(m, axis=0)
        slow_var = (1.4826 * np.nanmedian(np.abs(m - m_med), axis=0)) ** 2
        slow_var -= np.nanmedian(np.where(full, noise, np.nan).reshape(-1, J), axis=0)
        # The offset (median) was estimated from the same differences: what is left of it is bias too.
        slow_var += np.nan_to_num(m_med) ** 2
        enough_b = np.isfinite(m).sum(axis=0) >= min_samples
    bias_sigma = np.where(enough_b & np.isfinite(slow_var), np.sqrt(np.maximum(np.nan_to_num(slow_var), bias_floor_m**2)),
                          bias_floor_m)
    return white_scale, bias_sigma


def with_ray_variance(lift: "DepthLift", rig, var_ray: np.ndarray) -> "DepthLift":
    """The lift with a new variance (T, V, J) m^2 along each viewing ray (lateral part kept)."""
    ray = lift.points - rig.centers[None, :, None, :]
    with np.errstate(invalid="ignore"):
        d = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    old = lift.var_ray if lift.var_ray is not None else np.zeros(var_ray.shape)
    cov = lift.covariance + (var_ray - old)[..., None, None] * (d[..., :, None] * d[..., None, :])
    return replace(lift, covariance=cov, var_ray=var_ray)


def depth_residuals(lift: DepthLift, fusion: FusionResult, rig):
    """The RGB-D slot of ``refine_sequence``: the range (T, V, J) along its viewing ray of every depth
    point that passed the gate (joint centre, offset applied), with its sigma along that ray and the
    ray itself in the camera frame. Rejected or missing points are NaN."""
    from reconstruction.refine import DepthObservations

    T, V, J, _ = lift.points.shape
    depth = np.full((T, V, J), np.nan)
    sigma = np.full((T, V, J), np.inf)
    rays = np.full((T, V, J, 3), np.nan)
    for v, camera in enumerate(rig.cameras):  # per view: its own extrinsics
        X = camera.world_to_camera(lift.points[:, v])  # (T, J, 3)
        rng = np.linalg.norm(X, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = X / rng[..., None]  # unit ray, camera frame
        if lift.var_ray is not None:
            var = np.asarray(lift.var_ray[:, v], dtype=np.float64)
        else:  # the covariance along the ray (world covariance rotated into the camera frame)
            C_cam = camera.R @ np.nan_to_num(lift.covariance[:, v]) @ camera.R.T
            var = np.einsum("...i,...ij,...j->...", np.nan_to_num(d), C_cam, np.nan_to_num(d))
        ok = fusion.depth_used[:, v] & np.isfinite(rng) & np.isfinite(var) & (var > 0)
        depth[:, v] = np.where(ok, rng, np.nan)
        sigma[:, v] = np.where(ok, np.sqrt(np.where(var > 0, var, 1.0)), np.inf)
        rays[:, v] = np.where(ok[..., None], d, np.nan)
    independent = None if lift.at_estimate is None else lift.at_estimate & np.isfinite(depth)
    return DepthObservations(depth_m=depth, sigma_m=sigma, independent=independent, ray_cam=rays)