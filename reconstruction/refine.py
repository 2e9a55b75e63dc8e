"""Sequence refinement: one sparse robust least-squares problem per chunk of frames.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` bones. 2D keypoints ``(T, V, J, 3)`` = x, y,
score in pixels of the distorted image; 3D ``(T, J, 3)`` metres in the world frame.

The unknowns are the 3D joints of every frame of a chunk. The cost is a sum of

- reprojection residuals ``(project(X) - x) / reproj_sigma_px`` of the detections the robust
  triangulation *used* (``initial.used``; rejected detections are never re-admitted), weighted by the
  detection score and passed through a robust loss (soft-L1, Huber or Cauchy, scale ``loss_scale_px``);
- bone-length residuals ``(|X_a - X_b| - L_b) / bone_sigma_m`` for the skeleton's rigid bones, with
  the subject's lengths ``L`` (given, or estimated robustly from the triangulation first);
- temporal acceleration residuals ``(X[t-1] - 2 X[t] + X[t+1]) * fps^2 / accel_sigma_m_s2``, through
  a robust loss (``accel_loss``, soft-L1): real joints reach tens of m/s^2 (feet and hands 100-300 m/s^2
  in a kick), and a quadratic term would flatten that motion; the robust term bounds its pull;
- optional depth residuals (the RGB-D slot, :class:`DepthObservations`): a measured camera-frame depth
  per (frame, view, joint) with its sigma, ``(z_cam(X) - z) / sigma``, robust (``loss`` at
  ``depth_loss_scale`` sigmas), counted only while the view's detection is used.

Every residual touches one joint, two joints of one frame or one joint at three consecutive frames,
so the Gauss-Newton normal matrix is block-banded once the unknowns are ordered frame-major
(bandwidth ``6 J``). Each Levenberg-Marquardt step (iteratively reweighted for the robust loss) is
solved by conjugate gradients preconditioned with the exact inverse of every frame's ``(3 J, 3 J)``
block (data, bones, acceleration diagonal), all frames at once: ~0.4-1 ms per frame for 17 joints and
4 views on 2 cores, 100x faster than aniposelib's finite-difference ``least_squares``. An exact banded
Cholesky (``solver="banded"``) is there to check it.

Gross triangulation errors (a wrong consensus of outliers) are found first: a joint farther than
``spike_gate_m`` plus ``spike_speed_factor`` times its local speed (m per frame) from the median of the
6 frames around it restarts from interpolation and keeps only those of its used detections that lie
within ``single_view_gate_px`` of that start -- unless its own measurement vouches for it: >= 3 views
within ``spike_consistent_px`` mean reprojection error, or every rigid bone to a triangulated
neighbour within ``spike_bone_gate_m`` of the subject's length, or >= 2 of its views' depth within
``spike_depth_sigmas``. Fast real motion is thus kept, and only doubtful joints are restarted.

Long recordings are cut into chunks of ``chunk_frames`` with ``overlap_frames`` in common, solved
independently (bounded memory) and cross-faded linearly over the overlap.

Missing joints: a joint the triangulation left NaN is filled when (a) it lies inside a gap of at
most ``fill_max_gap`` frames between finite frames (smoothness and bones carry it, plus any single
detection within ``single_view_gate_px`` of the interpolated position), (b) it has at least one
such gated detection and a finite frame within ``fill_max_gap`` frames on one side (sequence ends),
or (c) it is in a run of at most ``fill_edge_frames`` frames at the start or end of the sequence
(extrapolated by smoothness and bones alone), or (d) ``fill_from_bones``: it has >= ``fill_min_bones``
bones to reconstructed joints in that frame (its start keeps its offset from them, the rigid bones
place it, however long no camera sees it). Everything else stays NaN: a joint no camera saw for
longer is not invented. Single detections of a NaN joint are the only detections admitted beyond
``initial.used``; the gate keeps out the outliers that made the triangulation give up.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from calibration.camera import Rig
from reconstruction.skeleton import Skeleton

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RefinementConfig:
    """Weights and solver settings of :func:`refine_sequence` (these defaults are the only defaults).

    Attributes:
        reproj_sigma_px: expected 2D detection noise; reprojection residuals are divided by it.
        loss: robust loss on the reprojection residual of each detection ("linear" = plain squares).
        loss_scale_px: residual (pixels) where the robust loss starts to flatten.
        use_scores: weight each detection by its score (confidence).
        bone_sigma_m: allowed frame-to-frame deviation of a rigid bone from the subject's length.
        accel_sigma_m_s2: scale of joint acceleration (m/s^2); smaller = smoother.
        accel_loss: robust loss on each joint's acceleration (soft-L1: quadratic below
            ``accel_sigma_m_s2``, linear above, so a foot strike or a kick is not flattened).
        depth_loss_scale: depth residuals (in sigmas) beyond which their robust loss (``loss``)
            flattens.
        fps: frame rate that turns ``accel_sigma_m_s2`` into per-frame second differences; pipelines
            pass the recording's rate to :func:`refine_sequence` (argument ``fps``) instead.
        chunk_frames, overlap_frames: frames per solved chunk and frames shared by consecutive chunks.
        max_iterations: Gauss-Newton / Levenberg-Marquardt iterations per chunk.
        tolerance_m: stop when no joint moves more than this in an iteration...
        tolerance_cost: ... or when the cost decreased by less than this fraction.
        solver: "pcg" (conjugate gradients, per-frame block preconditioner; fast) or "banded"
            (exact banded Cholesky; slower, for checking).
        fill_max_gap: longest gap (frames) of a NaN joint that smoothness and bones may bridge.
        fill_edge_frames: longest unseen run at the start or end of the sequence that smoothness and
            bones may extrapolate.
        fill_from_bones: place a joint no camera sees, however long, when >= ``fill_min_bones`` of its
            bones reach reconstructed joints (see :func:`_anchor_by_bones`).
        fill_min_bones: see ``fill_from_bones``.
        admit_single_views: let a NaN joint use its single detections (gated, see module docstring).
        single_view_gate_px: gate for those detections around the interpolated position.
        min_score: detections with a lower score are never used for single-view filling.
        spike_gate_m: a triangulated joint farther than this from the median of the 6 frames around
            it is treated as a gross error (see the module docstring); below 30 fps the gate grows as
            30 / fps and the window shrinks to ~0.1 s each side.
        spike_speed_factor: the gate grows by this times the joint's local speed (m per frame).
        spike_consistent_px: a joint >= 3 views triangulated within this mean reprojection error is
            never a spike.
        spike_bone_gate_m: a joint whose rigid bones to triangulated neighbours are all within this
            of the subject's lengths is never a spike (0: off).
        spike_depth_sigmas: a joint whose depth (>= 2 of its used views) agrees with it within this
            many sigmas is never a spike.
    """

    reproj_sigma_px: float = 3.0
    loss: Literal["soft_l1", "huber", "cauchy", "linear"] = "soft_l1"
    loss_scale_px: float = 6.0
    use_scores: bool = True
    bone_sigma_m: float = 0.002
    accel_sigma_m_s2: float = 7.0
    accel_loss: Literal["soft_l1", "huber", "cauchy", "linear"] = "soft_l1"
    fps: float = 30.0
    chunk_frames: int = 240
    overlap_frames: int = 24
    max_iterations: int = 6
    tolerance_m: float = 1e-5
    tolerance_cost: float = 1e-3
    solver: Literal["pcg", "banded"] = "pcg"
    fill_max_gap: int = 15
    fill_edge_frames: int = 3
    fill_from_bones: bool = True
    fill_min_bones: int = 2
    admit_single_views: bool = True
    single_view_gate_px: float = 40.0
    min_score: float = 0.1
    depth_loss_scale: float = 1.0
    spike_gate_m: float = 0.1
    spike_speed_factor: float = 1.0
    spike_consistent_px: float = 4.5
    spike_bone_gate_m: float = 0.03
    spike_depth_sigmas: float = 3.0

    def __post_init__(self):
        for name in ("reproj_sigma_px", "loss_scale_px", "bone_sigma_m", "accel_sigma_m_s2", "fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.loss not in ("soft_l1", "huber", "cauchy", "linear"):
            raise ValueError(f"loss must be soft_l1, huber, cauchy or linear, got {self.loss!r}")
        if self.accel_loss not in ("soft_l1", "huber", "cauchy", "linear"):
            raise ValueError(f"accel_loss must be soft_l1, huber, cauchy or linear, got {self.accel_loss!r}")
        if self.solver not in ("pcg", "banded"):
            raise ValueError(f"solver must be pcg or banded, got {self.solver!r}")
        if self.chunk_frames < 3:
            raise ValueError(f"chunk_frames must be >= 3, got {self.chunk_frames}")
        if not 0 <= self.overlap_frames < self.chunk_frames:
            raise ValueError(f"overlap_frames must be in [0, chunk_frames), got {self.overlap_frames}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")


@dataclass(frozen=True, eq=False)
class DepthObservations:
    """The RGB-D slot: measured camera-frame depth of joints.

    Attributes:
        depth_m: (T, V, J) depth ``z`` of the joint in camera ``v``'s frame, metres; NaN where none.
            The producer (depth fusion) corrects for the skin-to-joint-centre offset.
        sigma_m: (T, V, J) or scalar, one standard deviation of that depth, metres.
        midpoint_joints, midpoint_depth_m, midpoint_sigma_m: optional depth of the midpoint of joint
            pairs (P, 2): (T, V, P) camera-frame ``z`` of ``(X_a + X_b) / 2`` and its sigma (e.g. the
            head centre between the ears, measured on the head's surface: a big, well-measured
            sphere, where each face point alone sits on a steep, small feature).
        midpoint_weights: optional (P,) ``w``: the point is ``w X_a + (1 - w) X_b`` (default 0.5).
        ray_cam, midpoint_ray_cam: optional (T, V, J, 3) / (T, V, P, 3) unit viewing rays in the camera
            frame: ``depth_m`` / ``midpoint_depth_m`` are then ranges along these rays (what a depth
            pixel measures: the residual pulls along the ray, and the lateral position stays the 2D's).
        independent: optional (T, V, J) bool: depth read where the joint's 3D estimate reprojects, not
            at the view's 2D detection; it counts even when that detection is dropped as an outlier.
    """

    depth_m: np.ndarray
    sigma_m: np.ndarray | float = 0.02
    independent: np.ndarray | None = None
    midpoint_joints: np.ndarray | None = None
    midpoint_depth_m: np.ndarray | None = None
    midpoint_sigma_m: np.ndarray | None = None
    ray_cam: np.ndarray | None = None
    midpoint_ray_cam: np.ndarray | None = None
    midpoint_weights: np.ndarray | None = None

    def __post_init__(self):
        depth = np.asarray(self.depth_m, dtype=np.float64)
        if depth.ndim != 3:
            raise ValueError(f"depth_m must be (T, V, J), got {depth.shape}")
        sigma = np.broadcast_to(np.asarray(self.sigma_m, dtype=np.float64), depth.shape)
        object.__setattr__(self, "depth_m", depth)
        object.__setattr__(self, "sigma_m", sigma)
        if self.midpoint_joints is not None:
            pairs = np.asarray(self.midpoint_joints, dtype=np.int64).reshape(-1, 2)
            mid = np.asarray(self.midpoint_depth_m, dtype=np.float64)
            if mid.shape != depth.shape[:2] + (len(pairs),):
                raise ValueError(f"midpoint_depth_m must be {depth.shape[:2] + (len(pairs),)}, got {mid.shape}")
            object.__setattr__(self, "midpoint_joints", pairs)
            object.__setattr__(self, "midpoint_depth_m", mid)
            object.__setattr__(self, "midpoint_sigma_m",
                               np.broadcast_to(np.asarray(self.midpoint_sigma_m, dtype=np.float64), mid.shape))
            weights = np.full(len(pairs), 0.5) if self.midpoint_weights is None else np.asarray(
                self.midpoint_weights, dtype=np.float64).reshape(len(pairs))
            object.__setattr__(self, "midpoint_weights", weights)


def _robust_weight(z: np.ndarray, loss: str) -> np.ndarray:
    """rho'(z) for z = (r / scale)^2 (scipy's convention): the IRLS weight."""
    if loss == "soft_l1":
        return 1.0 / np.sqrt(1.0 + z)
    if loss == "huber":
        return np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0)))
    if loss == "cauchy":
        return 1.0 / (1.0 + z)
    return np.ones_like(z)


def _robust_rho(z: np.ndarray, loss: str) -> np.ndarray:
    if loss == "soft_l1":
        return 2.0 * (np.sqrt(1.0 + z) - 1.0)
    if loss == "huber":
        return np.where(z <= 1.0, z, 2.0 * np.sqrt(np.maximum(z, 1.0)) - 1.0)
    if loss == "cauchy":
        return np.log1p(z)
    return z


@dataclass(frozen=True, eq=False)
class _Problem:
    """One chunk's fixed data (all arrays already sliced to the chunk)."""

    obs: np.ndarray  # (T, V, J, 2) undistorted pixels
    w_obs: np.ndarray  # (T, V, J) score / sigma^2, 0 where unused
    R: np.ndarray  # (V, 3, 3)
    t: np.ndarray  # (V, 3)
    K2: np.ndarray  # (V, 2, 2)
    c: np.ndarray  # (V, 2)
    active: np.ndarray  # (T, J)
    bones: np.ndarray  # (Br, 2) rigid bones with a known length
    lengths: np.ndarray  # (Br,)
    w_bone: np.ndarray | float  # (Br,) or scalar: 1 / sigma^2 of each bone's length residual
    w_acc: float
    depth: np.ndarray | None  # (T, V, J)
    w_depth: np.ndarray | None  # (T, V, J)
    loss: str
    scale: float  # robust scale in pixels
    accel_loss: str = "linear"
    depth_scale: float = 2.0  # robust scale of the depth residuals, in sigmas
    mid_pairs: np.ndarray | None = None  # (P, 2) joint pairs whose midpoint has a depth
    mid_depth: np.ndarray | None = None  # (T, V, P)
    w_mid: np.ndarray | None = None  # (T, V, P)
    ray: np.ndarray | None = None  # (T, V, J, 3) camera-frame unit rays: depth is the range along them
    mid_ray: np.ndarray | None = None  # (T, V, P, 3)
    mid_w: np.ndarray | None = None  # (P,) the point is w X_a + (1 - w) X_b

    @property
    def coupled(self) -> np.ndarray:
        """(Br + P, 2) joint pairs with an off-diagonal normal block: the rigid bones, then the midpoint pairs."""
        if self.mid_pairs is None or not len(self.mid_pairs):
            return self.bones
        return np.concatenate([self.bones.reshape(-1, 2), self.mid_pairs])

    @property
    def incidence(self) -> np.ndarray:
        """(J, Br) +1 where the joint is a bone's first end, -1 where it is its second."""
        J = self.active.shape[1]
        inc = np.zeros((J, len(self.bones)))
        inc[self.bones[:, 0], np.arange(len(self.bones))] = 1.0
        inc[self.bones[:, 1], np.arange(len(self.bones))] = -1.0
        return inc


def _evaluate(p: _Problem, x: np.ndarray, need_jacobian: bool):
    """Cost at x (T, J, 3) (inactive joints must be finite, e.g. 0), and optionally the normal
    equations: diagonal blocks (T, J, 3, 3), gradient (T, J, 3), bone off-diagonal blocks (T, Br, 3, 3)
    and the acceleration band coefficients."""
    T, J = p.active.shape
    Xc = np.moveaxis(np.tensordot(x, p.R, axes=([2], [2])), 2, 1) + p.t[None, :, None, :]  # (T, V, J, 3)
    z = Xc[..., 2]
    front = z > 1e-6
    safe_z = np.where(front, z, 1.0)
    xn = Xc[..., :2] / safe_z[..., None]
    K = p.K2[None, :, None]  # (1, V, 1, 2, 2)
    proj = xn[..., :1] * K[..., 0] + xn[..., 1:] * K[..., 1] + p.c[None, :, None, :]
    r = proj - p.obs
    w0 = np.where(front, p.w_obs, 0.0)
    r = np.where(w0[..., None] > 0, r, 0.0)
    s2 = p.scale * p.scale
    zz = np.sum(r * r, axis=-1) / s2
    cost = np.sum(w0 * s2 * _robust_rho(zz, p.loss))

    idx_a, idx_b = p.bones[:, 0], p.bones[:, 1]
    if len(p.bones):
        d = x[:, idx_a] - x[:, idx_b]
        norm = np.linalg.norm(d, axis=-1)
        bone_ok = p.active[:, idx_a] & p.active[:, idx_b] & (norm > 1e-9)
        rb = np.where(bone_ok, norm - p.lengths, 0.0)
        cost += np.sum(p.w_bone * rb * rb)

    acc_ok = p.active[:-2] & p.active[1:-1] & p.active[2:]  # (T-2, J)
    acc = (x[:-2] - 2.0 * x[1:-1] + x[2:]) * acc_ok[..., None]
    za = p.w_acc * np.sum(acc * acc, axis=-1)  # (T-2, J): (|acceleration| / accel_sigma)^2
    cost += np.sum(_robust_rho(za, p.accel_loss))

    if p.depth is not None:
        wd = np.where(front & np.isfinite(p.depth) & p.active[:, None, :], p.w_depth, 0.0)
        along = z if p.ray is None else np.sum(Xc * p.ray, axis=-1)
        rd = np.where(wd > 0, along - np.nan_to_num(p.depth), 0.0)
        # robust: a depth read on an occluder or a flying pixel must not pin the joint
        zd = wd * rd * rd / p.depth_scale**2
        cost += np.sum(p.depth_scale**2 * _robust_rho(zd, p.loss))

    if p.mid_pairs is not None and len(p.mid_pairs):
        ma, mb = p.mid_pairs[:, 0], p.mid_pairs[:, 1]
        w_a = np.full(len(ma), 0.5) if p.mid_w is None else p.mid_w
        w_b = 1.0 - w_a
        if p.mid_ray is None:
            z_mid = w_a * z[:, :, ma] + w_b * z[:, :, mb]  # (T, V, P): z is linear in X
        else:
            z_mid = np.sum((w_a[:, None] * Xc[:, :, ma] + w_b[:, None] * Xc[:, :, mb]) * p.mid_ray, axis=-1)
        ok_mid = front[:, :, ma] & front[:, :, mb] & (p.active[:, ma] & p.active[:, mb])[:, None, :]
        wm = np.where(ok_mid & np.isfinite(p.mid_depth), p.w_mid, 0.0)
        rm = np.where(wm > 0, z_mid - np.nan_to_num(p.mid_depth), 0.0)
        zm = wm * rm * rm / p.depth_scale**2
        cost += np.sum(p.depth_scale**2 * _robust_rho(zm, p.loss))

    if not need_jacobian:
        return cost, None

    w = w0 * _robust_weight(zz, p.loss)
    iz = 1.0 / safe_z
    # d(pixels)/dX = K2 @ d(xn)/d(Xc) @ R, written out: rows G0, G1 of d(xn)/dX (T, V, J, 3).
    Rv = p.R[None, :, None]  # (1, V, 1, 3, 3)
    G0 = iz[..., None] * (Rv[..., 0, :] - xn[..., :1] * Rv[..., 2, :])
    G1 = iz[..., None] * (Rv[..., 1, :] - xn[..., 1:] * Rv[..., 2, :])
    A0 = K[..., 0, :1] * G0 + K[..., 0, 1:] * G1
    A1 = K[..., 1, :1] * G0 + K[..., 1, 1:] * G1
    Aw0, Aw1 = A0 * w[..., None], A1 * w[..., None]
    Hd = np.sum(Aw0[..., :, None] * A0[..., None, :] + Aw1[..., :, None] * A1[..., None, :], axis=1)
    g = np.sum(Aw0 * r[..., :1] + Aw1 * r[..., 1:], axis=1)

    if p.depth is not None:
        wdr = wd * _robust_weight(zd, p.loss)
        if p.ray is None:
            r2 = p.R[:, 2, :]  # (V, 3)
            Hd += np.einsum("tvj,vi,vk->tjik", wdr, r2, r2)
            g += np.einsum("tvj,vi->tji", wdr * rd, r2)
        else:
            a_w = np.einsum("tvjk,vki->tvji", p.ray, p.R)  # world direction R^T u
            Hd += np.einsum("tvj,tvji,tvjk->tjik", wdr, a_w, a_w)
            g += np.einsum("tvj,tvji->tji", wdr * rd, a_w)

    H_bone = None
    if len(p.bones):
        safe = np.where(bone_ok, norm, 1.0)
        u = d / safe[..., None] * bone_ok[..., None]
        wb = np.broadcast_to(np.asarray(p.w_bone, dtype=np.float64), (len(p.bones),))
        uu = wb[None, :, None, None] * u[..., :, None] * u[..., None, :]  # (T, Br, 3, 3)
        gb = wb[None, :, None] * u * rb[..., None]
        inc = p.incidence  # (J, Br): +1 at a, -1 at b
        Hd += np.einsum("jb,tbik->tjik", np.abs(inc), uu)
        g += np.einsum("jb,tbi->tji", inc, gb)
        H_bone = -uu
    if p.mid_pairs is not None and len(p.mid_pairs):
        # r = u . (w X_a + (1 - w) X_b) - d: d r / d X_a = w a, d r / d X_b = (1 - w) a, a = R^T u.
        wmr = wm * _robust_weight(zm, p.loss)  # (T, V, P)
        if p.mid_ray is None:
            a_m = np.broadcast_to(p.R[None, :, None, 2, :], p.mid_depth.shape + (3,))
        else:
            a_m = np.einsum("tvpk,vki->tvpi", p.mid_ray, p.R)
        block = np.einsum("tvp,tvpi,tvpk->tpik", wmr, a_m, a_m)  # (T, P, 3, 3), times the weights below
        grad = np.einsum("tvp,tvpi->tpi", wmr * rm, a_m)  # (T, P, 3)
        np.add.at(Hd, (slice(None), ma), (w_a**2)[None, :, None, None] * block)
        np.add.at(Hd, (slice(None), mb), (w_b**2)[None, :, None, None] * block)
        np.add.at(g, (slice(None), ma), w_a[None, :, None] * grad)
        np.add.at(g, (slice(None), mb), w_b[None, :, None] * grad)
        empty = np.zeros((T, 0, 3, 3))
        H_bone = np.concatenate([empty if H_bone is None else H_bone, (w_a * w_b)[None, :, None, None] * block], axis=1)

    # (T-2, J): IRLS weight of each acceleration residual; the robust loss lets real fast motion
    # (foot strikes, hand swings: tens of m/s^2) through with a bounded pull.
    wa = p.w_acc * acc_ok * _robust_weight(za, p.accel_loss)
    g[:-2] += wa[..., None] * acc
    g[1:-1] += -2.0 * wa[..., None] * acc
    g[2:] += wa[..., None] * acc
    return cost, _Normal(Hd, g, H_bone, wa)


@dataclass(frozen=True, eq=False)
class _Normal:
    """Gauss-Newton normal equations of one chunk, kept in their structured form."""

    Hd: np.ndarray  # (T, J, 3, 3) diagonal blocks without the acceleration term
    g: np.ndarray  # (T, J, 3) gradient
    H_bone: np.ndarray | None  # (T, Br + P, 3, 3) off-diagonal blocks of ``_Problem.coupled`` pairs
    wa: np.ndarray  # (T-2, J) acceleration residual weights

    def accel_diagonal(self) -> np.ndarray:
        """(T, J) diagonal of the acceleration term D^T W D."""
        T, J = self.Hd.shape[:2]
        d0 = np.zeros((T, J))
        d0[:-2] += self.wa
        d0[1:-1] += 4.0 * self.wa
        d0[2:] += self.wa
        return d0

    def full_diagonal_blocks(self) -> np.ndarray:
        Hd = self.Hd.copy()
        Hd[..., [0, 1, 2], [0, 1, 2]] += self.accel_diagonal()[..., None]
        return Hd


def _damped_blocks(p: _Problem, normal: _Normal, lam: float) -> np.ndarray:
    """Diagonal blocks (T, J, 3, 3) of H + lam diag(H) (acceleration included), identity where inactive."""
    Hd = normal.full_diagonal_blocks()
    diag = Hd[..., [0, 1, 2], [0, 1, 2]]
    scale = float(np.mean(diag[p.active])) if p.active.any() else 1.0
    Hd[..., [0, 1, 2], [0, 1, 2]] = diag * (1.0 + lam) + 1e-9 * scale
    Hd[~p.active] = np.eye(3)
    return Hd


def _solve_banded(p: _Problem, normal: _Normal, lam: float, cache: dict | None = None) -> np.ndarray:
    """Solve (H + lam diag(H)) dx = -g exactly with a banded Cholesky (bandwidth 6 J); dx (T, J, 3)."""
    from scipy.linalg import solveh_banded

    T, J = p.active.shape
    m = 3 * J
    n = T * m
    u = min(2 * m, n - 1)
    ab = np.zeros((u + 1, n))
    Hd = _damped_blocks(p, normal, lam)
    base = (np.arange(T)[:, None] * m + 3 * np.arange(J)[None, :]).ravel()
    for c1 in range(3):
        for c2 in range(c1, 3):
            ab[u + c1 - c2, base + c2] = Hd[..., c1, c2].ravel()
    if normal.H_bone is not None:
        pairs = p.coupled
        lo = np.minimum(pairs[:, 0], pairs[:, 1])
        hi = np.maximum(pairs[:, 0], pairs[:, 1])
        frame = np.arange(T)[:, None] * m
        for c1 in range(3):
            for c2 in range(3):
                rows = frame + 3 * lo + c1
                cols = frame + 3 * hi + c2
                # a pair may repeat (a bone that also has a midpoint depth): accumulate, not overwrite
                np.add.at(ab, (u + rows - cols, cols), normal.H_bone[..., c1, c2])
    wa = normal.wa
    if T > 2:
        d1 = np.zeros((T - 1, J))
        d1[:-1] += -2.0 * wa
        d1[1:] += -2.0 * wa
        if u >= m:
            ab[u - m, m:] += np.repeat(d1, 3, axis=1).ravel()
        if u >= 2 * m:
            ab[u - 2 * m, 2 * m:] += np.repeat(wa, 3, axis=1).ravel()
    rhs = -np.where(p.active[..., None], normal.g, 0.0).ravel()
    return solveh_banded(ab, rhs, lower=False, check_finite=False).reshape(T, J, 3)


def _solve_pcg(p: _Problem, normal: _Normal, lam: float, max_iter: int = 60, rtol: float = 1e-3,
               cache: dict | None = None) -> np.ndarray:
    """Solve (H + lam diag(H)) dx = -g with conjugate gradients, preconditioned by the exact inverse of
    each frame's (3 J, 3 J) block (data, bones, acceleration diagonal): cheap batched dense algebra,
    O(T J^2) per iteration instead of the banded factorisation's O(T J^2 * J)."""
    T, J = p.active.shape
    m = 3 * J
    Hd = _damped_blocks(p, normal, lam)
    # Per-frame dense matrix (3 J, 3 J): damped diagonal blocks (acceleration diagonal included)
    # and the bone blocks. The product with H is M v plus the acceleration term's off-diagonal part.
    M = np.zeros((T, J, 3, J, 3))
    jj = np.arange(J)
    M[:, jj, :, jj, :] = np.moveaxis(Hd, 0, 1)
    if normal.H_bone is not None:
        pairs = p.coupled
        a, b = pairs[:, 0], pairs[:, 1]
        for k in range(len(pairs)):  # a joint may be in several pairs: no fancy-index += here
            M[:, a[k], :, b[k], :] += normal.H_bone[:, k]
            M[:, b[k], :, a[k], :] += np.swapaxes(normal.H_bone[:, k], -1, -2)
    M = M.reshape(T, m, m)
    # The preconditioner need not be exact: the first one of a chunk serves its later iterations
    # (weights and damping change little), which saves most of the batched inversions.
    Minv = cache.get("Minv") if cache is not None else None
    if Minv is None:
        Minv = np.linalg.inv(M)
        if cache is not None:
            cache["Minv"] = Minv
    wa = normal.wa[..., None]
    acc_diag = np.where(p.active, normal.accel_diagonal(), 0.0)[..., None]

    def matvec(v):
        y = np.matmul(M, v.reshape(T, m, 1)).reshape(T, J, 3) - acc_diag * v
        if T > 2:
            dv = wa * (v[:-2] - 2.0 * v[1:-1] + v[2:])
            y[:-2] += dv
            y[1:-1] -= 2.0 * dv
            y[2:] += dv
        return y

    def precondition(r):
        return np.matmul(Minv, r.reshape(T, m, 1)).reshape(T, J, 3)

    b = -np.where(p.active[..., None], normal.g, 0.0)
    x = precondition(b)
    r = b - matvec(x)
    z = precondition(r)
    d = z.copy()
    rz = float(np.sum(r * z))
    stop = rtol * rtol * float(np.sum(b * precondition(b)))
    for _ in range(max_iter):
        if rz <= stop:
            break
        q = matvec(d)
        alpha = rz / float(np.sum(d * q))
        x += alpha * d
        r -= alpha * q
        z = precondition(r)
        rz_new = float(np.sum(r * z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x


def _solve_chunk(p: _Problem, x0: np.ndarray, cfg: RefinementConfig) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on one chunk; returns refined x (T, J, 3) and the final diagonal blocks."""
    from scipy.linalg import LinAlgError

    solve = _solve_banded if cfg.solver == "banded" else _solve_pcg
    x = np.where(p.active[..., None], x0, 0.0)
    cost, normal = _evaluate(p, x, True)
    lam = 1e-3
    cache: dict = {}
    for _ in range(cfg.max_iterations):
        accepted = False
        for _retry in range(6):
            try:
                dx = solve(p, normal, lam, cache=cache)
            except (LinAlgError, ValueError):
                lam *= 10.0
                continue
            trial = x + dx
            new_cost, _ = _evaluate(p, trial, False)
            if np.isfinite(new_cost) and new_cost <= cost:
                accepted = True
                break
            lam *= 10.0
        if not accepted:
            break
        x = trial
        step = float(np.max(np.abs(dx))) if dx.size else 0.0
        decrease = (cost - new_cost) / max(cost, 1e-300)
        cost, normal = _evaluate(p, x, True)
        lam = max(lam / 10.0, 1e-7)
        if step < cfg.tolerance_m or decrease < cfg.tolerance_cost:
            break
    return x, normal.full_diagonal_blocks()


def _nan_gaps(finite: np.ndarray):
    """For a (T, J) mask of finite joints: index of the previous and next finite frame (-1 / T if none)."""
    T = finite.shape[0]
    frames = np.arange(T)[:, None]
    prev = np.maximum.accumulate(np.where(finite, frames, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(finite, frames, T)[::-1], axis=0)[::-1]
    return prev, nxt


def _spikes(xyz: np.ndarray, gate_m: float, half_window: int = 3, speed_factor: float = 0.0) -> np.ndarray:
    """(T, J) True where a joint is farther than its gate from the median of the frames around it.

    The gate is ``gate_m`` plus ``speed_factor`` times the joint's local speed (metres per frame: the
    median step between consecutive frames of the window, the two steps touching the frame itself
    left out), so that fast real motion (a foot swinging 0.3 m per frame) is not taken for a spike.
    """
    import warnings

    T = xyz.shape[0]
    if T < 3:
        return np.zeros(xyz.shape[:2], dtype=bool)
    padded = np.pad(xyz, ((half_window, half_window), (0, 0), (0, 0)), constant_values=np.nan)
    window = np.stack([padded[k:k + T] for k in range(2 * half_window + 1) if k != half_window])
    gate = np.full(xyz.shape[:2], gate_m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        median = np.nanmedian(window, axis=0)
        if speed_factor > 0 and half_window >= 2:
            steps = np.linalg.norm(np.diff(padded, axis=0), axis=-1)  # (T + 2 h - 1, J); step k: k -> k+1
            # steps of the window around frame t (padded index t + h) except t-1 -> t and t -> t+1
            ks = [k for k in range(2 * half_window) if k not in (half_window - 1, half_window)]
            local = np.nanmedian(np.stack([steps[k:k + T] for k in ks]), axis=0)
            gate = gate + speed_factor * np.nan_to_num(local)
    with np.errstate(invalid="ignore"):
        return np.linalg.norm(xyz - median, axis=-1) > gate


def _bone_consistent(xyz: np.ndarray, bones: np.ndarray, lengths: np.ndarray, gate_m: float) -> np.ndarray:
    """(T, J) True where a joint has at least one rigid bone whose other end is finite and every such
    bone is within ``gate_m`` of its length."""
    T, J = xyz.shape[:2]
    if not len(bones) or gate_m <= 0:
        return np.zeros((T, J), dtype=bool)
    with np.errstate(invalid="ignore"):
        dev = np.abs(np.linalg.norm(xyz[:, bones[:, 0]] - xyz[:, bones[:, 1]], axis=-1) - lengths)  # (T, Br)
    known = np.isfinite(dev)
    bad = known & (dev > gate_m)
    n_known = np.zeros((T, J), dtype=int)
    n_bad = np.zeros((T, J), dtype=int)
    for end in (0, 1):  # both ends of each bone (two vectorized scatter-adds)
        np.add.at(n_known, (slice(None), bones[:, end]), known)
        np.add.at(n_bad, (slice(None), bones[:, end]), bad)
    return (n_known > 0) & (n_bad == 0)


def _interpolate(xyz: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of each joint's NaN frames; nearest value at the ends."""
    T, J, _ = xyz.shape
    out = xyz.copy()
    frames = np.arange(T)
    for j in range(J):  # per joint (few), each interpolation vectorized over frames
        ok = np.isfinite(xyz[:, j, 0])
        if ok.any() and not ok.all():
            for c in range(3):
                out[~ok, j, c] = np.interp(frames[~ok], frames[ok], xyz[ok, j, c])
    return out


def _carry_with_neighbours(ref_nb: np.ndarray, ref_joint: np.ndarray, cur_nb: np.ndarray) -> np.ndarray:
    """Place a joint (T, 3) where it was relative to its neighbours: ``ref_nb`` (T, K, 3) and
    ``ref_joint`` (T, 3) in a reference frame, ``cur_nb`` (T, K, 3) now. The rigid motion taking the
    reference neighbours onto the current ones (Kabsch with >= 3 neighbours; with 2, the smallest
    rotation turning their segment; with 1, a translation) is applied to the joint: an ear turns
    with the head instead of staying where the head was facing in the reference frame."""
    ref_c = ref_nb.mean(axis=1)
    cur_c = cur_nb.mean(axis=1)
    offset = ref_joint - ref_c  # (T, 3)
    K = ref_nb.shape[1]
    if K == 1:
        return cur_c + offset
    if K == 2:
        a = ref_nb[:, 1] - ref_nb[:, 0]
        b = cur_nb[:, 1] - cur_nb[:, 0]
        a = a / np.linalg.norm(a, axis=-1, keepdims=True)
        b = b / np.linalg.norm(b, axis=-1, keepdims=True)
        v = np.cross(a, b)
        c = np.sum(a * b, axis=-1)
        vx = np.zeros(v.shape[:-1] + (3, 3))
        vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
        vx = vx - np.swapaxes(vx, -1, -2)
        with np.errstate(invalid="ignore", divide="ignore"):
            R = np.eye(3) + vx + (vx @ vx) / (1.0 + c)[..., None, None]
        R = np.where((c > -0.999)[..., None, None], R, np.eye(3))  # opposite: no rotation guessed
    else:
        H = np.einsum("tki,tkj->tij", ref_nb - ref_c[:, None], cur_nb - cur_c[:, None])
        H = np.nan_to_num(H)
        U, _, Vt = np.linalg.svd(H)
        d = np.sign(np.linalg.det(Vt.transpose(0, 2, 1) @ U.transpose(0, 2, 1)))
        D = np.zeros_like(H)
        D[:, 0, 0] = D[:, 1, 1] = 1.0
        D[:, 2, 2] = d
        R = Vt.transpose(0, 2, 1) @ D @ U.transpose(0, 2, 1)
    return cur_c + np.einsum("tij,tj->ti", R, offset)


def _anchor_by_bones(x_init: np.ndarray, x_start: np.ndarray, active: np.ndarray, bones: np.ndarray,
                     min_bones: int, passes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Activate the NaN joint-frames held by >= ``min_bones`` ``bones`` (B, 2) to active joints (all of
    its bones when it has fewer: an ankle hangs from its knee).

    Such a joint, seen by no camera for longer than the gap filling bridges (a shoulder turned away
    from both cameras of a two-camera rig), is placed by the bones and smoothness. Its start is where
    it was relative to its neighbours in the nearest frame where all were found, carried by their
    motion since (:func:`_carry_with_neighbours`): the body moves, the limb keeps its shape (a joint
    never found with them in the clip starts amid them, its bones then place it). Joints are added
    in ``passes`` rounds, so one anchored joint can hold the next. Returns (x_start, active) updated.
    """
    T, J, _ = x_init.shape
    frames = np.arange(T)
    known = np.all(np.isfinite(x_init), axis=-1)
    x_start = x_start.copy()
    active = active.copy()
    neighbours = [np.concatenate([bones[bones[:, 0] == j, 1], bones[bones[:, 1] == j, 0]]) for j in range(J)]
    for _ in range(passes):
        added = False
        for j in range(J):  # per joint (few), vectorized over frames
            nb = neighbours[j]
            if not len(nb):
                continue
            # an end joint (a wrist, an ankle) has one bone: that one holds it
            todo = ~active[:, j] & (active[:, nb].sum(axis=1) >= min(min_bones, len(nb)))
            if not todo.any():
                continue
            ref = np.flatnonzero(known[:, j] & known[:, nb].all(axis=1))
            if len(ref):
                after = np.clip(np.searchsorted(ref, frames), 0, len(ref) - 1)
                before = np.clip(after - 1, 0, len(ref) - 1)
                pick = np.where(np.abs(ref[before] - frames) <= np.abs(ref[after] - frames), ref[before], ref[after])
                start = _carry_with_neighbours(x_init[pick][:, nb], x_init[pick, j], x_start[:, nb])
            elif len(nb) >= 2:
                # never found with its neighbours in this clip: start amid them, the bones place it
                start = x_start[:, nb].mean(axis=1)
            else:
                continue
            todo &= np.all(np.isfinite(start), axis=-1)
            x_start[todo, j] = start[todo]
            active[todo, j] = True
            added = added or bool(todo.any())
        if not added:
            break
    return x_start, active


def _bone_length_array(bone_lengths, skeleton: Skeleton, initial) -> tuple[np.ndarray, np.ndarray]:
    """(B,) lengths and (B,) their uncertainty (0 for a plain array), metres."""
    from reconstruction.bone_lengths import BoneLengths, complete_bone_lengths, estimate_bone_lengths

    if bone_lengths is None:
        bone_lengths = complete_bone_lengths(estimate_bone_lengths(
            initial.xyz, skeleton, n_views=initial.n_views, reproj_error_px=initial.reproj_error_px,
            covariance=getattr(initial, "covariance", None)), skeleton)
    if isinstance(bone_lengths, BoneLengths):
        if tuple(bone_lengths.bones) != tuple(skeleton.bones):
            raise ValueError(f"bone_lengths are not for skeleton {skeleton.name!r}'s bones")
        sigma = np.where(np.isfinite(bone_lengths.sigma_m), bone_lengths.sigma_m, 0.0)
        return bone_lengths.lengths_m, sigma
    lengths = np.asarray(bone_lengths, dtype=np.float64)
    if lengths.shape != (len(skeleton.bones),):
        raise ValueError(f"bone_lengths must be ({len(skeleton.bones)},) metres, got {lengths.shape}")
    return lengths, np.zeros(len(lengths))


def refine_sequence(
    keypoints2d: np.ndarray,
    rig: Rig,
    skeleton: Skeleton,
    initial,
    cfg: RefinementConfig = RefinementConfig(),
    bone_lengths=None,
    depth_residuals: DepthObservations | None = None,
    fps: float | None = None,
):
    """Refine a triangulated sequence with reprojection, bone-length and smoothness terms.

    Args:
        keypoints2d: (T, V, J, 3) x, y, score in distorted pixels, NaN where missing.
        rig: the V cameras, in the view order of ``keypoints2d``.
        skeleton: J joints; its rigid bones get length residuals.
        initial: the robust triangulation (``Triangulation3D``: xyz, used, n_views, reproj_error_px, ...).
        cfg: weights and solver settings.
        bone_lengths: ``BoneLengths``, a (B,) array in metres (NaN = free bone) or None to estimate them
            from ``initial`` (median of well-triangulated frames).
        depth_residuals: optional :class:`DepthObservations` (RGB-D).
        fps: frame rate of the sequence (default ``cfg.fps``).

    Returns:
        The same dataclass as ``initial`` with refined ``xyz``, and ``used``, ``n_views``,
        ``residual_px`` (every finite detection, distorted pixels), ``reproj_error_px`` (mean over used
        views) and ``covariance`` (conditional: inverse of each joint's own 3x3 information block)
        recomputed. Joints not filled (see the module docstring) stay NaN.
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    T, V, J = kp.shape[:3]
    if kp.shape[3] != 3:
        raise ValueError(f"keypoints2d must be (T, V, J, 3), got {kp.shape}")
    if V != len(rig):
        raise ValueError(f"keypoints2d has {V} views but the rig has {len(rig)} cameras")
    if J != skeleton.num_joints:
        raise ValueError(f"keypoints2d has {J} joints but skeleton {skeleton.name!r} has {skeleton.num_joints}")
    x_init = np.asarray(initial.xyz, dtype=np.float64)
    used0 = np.asarray(initial.used, dtype=bool)
    if x_init.shape != (T, J, 3) or used0.shape != (T, V, J):
        raise ValueError(f"initial xyz {x_init.shape} / used {used0.shape} do not match keypoints {kp.shape}")
    fps = float(fps or cfg.fps)

    lengths_all, length_sigma = _bone_length_array(bone_lengths, skeleton, initial)
    rigid = skeleton.rigid_mask & np.isfinite(lengths_all) & (lengths_all > 0)
    # A length known only roughly (from body height, 6 %) holds its bone loosely.
    w_bone = 1.0 / (cfg.bone_sigma_m**2 + length_sigma[rigid] ** 2)
    bones = skeleton.bone_indices[rigid]
    lengths = lengths_all[rigid]

    obs = np.stack([cam.undistort_points(kp[:, v, :, :2]) for v, cam in enumerate(rig)], axis=1)
    score = np.nan_to_num(kp[..., 2], nan=0.0)
    detected = np.all(np.isfinite(kp[..., :2]), axis=-1)
    base_w = (np.clip(score, 0.0, None) if cfg.use_scores else np.ones_like(score)) / cfg.reproj_sigma_px**2

    # Gross triangulation errors (a wrong consensus): far from the temporal median of their
    # neighbours. They restart from interpolation and keep only the used views that agree with it.
    finite0 = np.all(np.isfinite(x_init), axis=-1)
    # The window spans ~0.1 s each side; at low frame rates joints move farther between frames.
    spikes = _spikes(x_init, cfg.spike_gate_m * max(1.0, 30.0 / fps), int(np.clip(round(fps / 10), 1, 3)),
                     cfg.spike_speed_factor)
    # A joint that >= 3 views agree on (mean reprojection error within spike_consistent_px) is taken
    # as measured, however fast it moves: wrong consensus of outliers is (almost) always 2 views.
    n_views0 = np.asarray(initial.n_views)
    reproj0 = np.asarray(initial.reproj_error_px, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        consistent = (n_views0 >= 3) & (reproj0 <= cfg.spike_consistent_px)
    # ... and so is one whose rigid bones to its triangulated neighbours all keep the subject's
    # lengths: a wrong consensus (another joint's detections) breaks them, fast motion does not.
    spikes &= ~(consistent | _bone_consistent(x_init, bones, lengths, cfg.spike_bone_gate_m))
    if depth_residuals is not None and np.shape(depth_residuals.depth_m) == (T, V, J):
        # ... and so is one whose depth, read by >= 2 of its views at their own detections, agrees
        # with it: a 2-view triangulation with one outlier on the epipolar line has a small
        # reprojection error, but the outlier's depth (another body part, the background) disagrees.
        Xc_init = np.stack([cam.world_to_camera(x_init) for cam in rig], axis=1)  # (T, V, J, 3)
        z_init = Xc_init[..., 2] if depth_residuals.ray_cam is None else np.sum(Xc_init * depth_residuals.ray_cam, -1)
        with np.errstate(invalid="ignore"):
            agree = used0 & (np.abs(z_init - depth_residuals.depth_m)
                             <= cfg.spike_depth_sigmas * depth_residuals.sigma_m)
        spikes &= ~(agree.sum(axis=1) >= 2)
    x_init = np.where(spikes[..., None], np.nan, x_init)
    if spikes.any():
        log.info("refinement: %d joint-frames far from their temporal median restart from interpolation",
                 int(spikes.sum()))

    # Which NaN joints to fill, their starting point, and the single detections they may use.
    finite = np.all(np.isfinite(x_init), axis=-1)
    prev, nxt = _nan_gaps(finite)
    frames = np.arange(T)[:, None]
    interior = (prev >= 0) & (nxt < T) & (nxt - prev - 1 <= cfg.fill_max_gap)
    near = np.minimum(np.where(prev >= 0, frames - prev, T + 1), np.where(nxt < T, nxt - frames, T + 1))
    x_start = _interpolate(x_init)
    used = used0 & detected
    suspect_used = used & spikes[:, None, :]
    used &= ~suspect_used
    candidate = suspect_used
    if cfg.admit_single_views:
        candidate = candidate | ((~finite0)[:, None, :] & detected & (score >= cfg.min_score))
    candidate &= np.isfinite(x_start[:, None, :, 0])
    if candidate.any():
        reproj = rig.project(x_start)  # (T, J, V, 2)
        dist = np.linalg.norm(np.moveaxis(reproj, 2, 1) - kp[..., :2], axis=-1)
        used = used | (candidate & (dist <= cfg.single_view_gate_px))
    has_view = used.any(axis=1)
    edge = ((prev < 0) & (nxt < T) & (nxt <= cfg.fill_edge_frames)) | (
        (nxt >= T) & (prev >= 0) & (T - 1 - prev <= cfg.fill_edge_frames))
    active = finite | ((~finite) & (interior | edge)) | ((~finite) & has_view & (near <= cfg.fill_max_gap))
    if cfg.fill_from_bones and len(skeleton.bones):
        # Every bone of the skeleton holds (trunk sides and bones of unknown length too): the start
        # keeps the limb's shape, and the rigid bones with a length then place it.
        x_start, active = _anchor_by_bones(x_init, x_start, active, skeleton.bone_indices, cfg.fill_min_bones)
    used &= active[:, None, :]
    w_obs = np.where(used, base_w, 0.0)

    R = np.stack([c.R for c in rig])
    tv = np.stack([c.t for c in rig])
    K2 = np.stack([c.K[:2, :2] for c in rig])
    cc = np.stack([c.K[:2, 2] for c in rig])
    depth = w_depth = None
    if depth_residuals is not None:
        if depth_residuals.depth_m.shape != (T, V, J):
            raise ValueError(f"depth_residuals.depth_m must be {(T, V, J)}, got {depth_residuals.depth_m.shape}")
        depth = depth_residuals.depth_m
        with np.errstate(divide="ignore"):
            # sigma floored at 0.1 mm (a zero sigma would pin the joint); inf sigma = no observation
            w_depth = np.where(np.isfinite(depth), 1.0 / np.square(np.maximum(depth_residuals.sigma_m, 1e-4)), 0.0)
        # A depth point is read at a view's 2D detection: it counts only while that detection does
        # (a detection dropped as an outlier, e.g. by the spike test, takes its depth along).
        keep = used if depth_residuals.independent is None else used | (
            np.asarray(depth_residuals.independent, dtype=bool) & active[:, None, :])
        w_depth = np.where(keep, w_depth, 0.0)
    mid_pairs = mid_depth = w_mid = None
    if depth_residuals is not None and depth_residuals.midpoint_joints is not None:
        mid_pairs = depth_residuals.midpoint_joints
        mid_depth = depth_residuals.midpoint_depth_m
        with np.errstate(divide="ignore"):
            w_mid = np.where(np.isfinite(mid_depth),
                             1.0 / np.square(np.maximum(depth_residuals.midpoint_sigma_m, 1e-4)), 0.0)

    weight_sum = np.zeros((T, 1, 1))
    x_acc = np.zeros((T, J, 3))
    block_acc = np.zeros((T, J, 3, 3))
    step = cfg.chunk_frames - cfg.overlap_frames
    starts = list(range(0, max(T - cfg.overlap_frames, 1), step))
    for s in starts:
        e = min(s + cfg.chunk_frames, T)
        sl = slice(s, e)
        p = _Problem(
            obs=np.nan_to_num(obs[sl]), w_obs=w_obs[sl], R=R, t=tv, K2=K2, c=cc, active=active[sl],
            bones=bones, lengths=lengths, w_bone=w_bone,
            w_acc=(fps * fps / cfg.accel_sigma_m_s2) ** 2,
            depth=None if depth is None else depth[sl], w_depth=None if depth is None else w_depth[sl],
            loss=cfg.loss, scale=cfg.loss_scale_px, accel_loss=cfg.accel_loss, depth_scale=cfg.depth_loss_scale,
            mid_pairs=mid_pairs, mid_depth=None if mid_pairs is None else mid_depth[sl],
            w_mid=None if mid_pairs is None else w_mid[sl],
            ray=None if depth is None or depth_residuals.ray_cam is None else np.nan_to_num(depth_residuals.ray_cam[sl]),
            mid_ray=None if mid_pairs is None or depth_residuals.midpoint_ray_cam is None else np.nan_to_num(
                depth_residuals.midpoint_ray_cam[sl]),
            mid_w=None if mid_pairs is None else depth_residuals.midpoint_weights,
        )
        x_chunk, hd = _solve_chunk(p, np.nan_to_num(x_start[sl]), cfg)
        # Linear cross-fade over the overlaps with the previous and next chunk.
        n = e - s
        ramp = np.ones(n)
        if s > 0 and cfg.overlap_frames:
            k = min(cfg.overlap_frames, n)
            ramp[:k] = np.minimum(ramp[:k], (np.arange(k) + 1) / (k + 1))
        if e < T and cfg.overlap_frames:
            k = min(cfg.overlap_frames, n)
            ramp[n - k:] = np.minimum(ramp[n - k:], (k - np.arange(k)) / (k + 1))
        x_acc[sl] += ramp[:, None, None] * x_chunk
        block_acc[sl] += ramp[:, None, None, None] * hd
        weight_sum[sl] += ramp[:, None, None]
        if e == T:
            break
    x_out = x_acc / weight_sum
    blocks = block_acc / weight_sum[..., None]
    x_out[~active] = np.nan

    with np.errstate(all="ignore"):
        det = np.linalg.det(blocks)
        ok = active & np.isfinite(det) & (np.abs(det) > 0)
        cov = np.full((T, J, 3, 3), np.nan)
        cov[ok] = np.linalg.inv(blocks[ok])

    reproj = np.moveaxis(rig.project(x_out), 2, 1)  # (T, V, J, 2)
    residual = np.linalg.norm(reproj - kp[..., :2], axis=-1)
    residual = np.where(detected, residual, np.nan)
    n_views = used.sum(axis=1)
    with np.errstate(all="ignore"):
        err = np.where(n_views > 0, np.nansum(np.where(used, residual, 0.0), axis=1) / n_views, np.nan)
    err = np.where(active, err, np.nan)
    filled = int(np.sum(active & ~finite0))
    if filled:
        log.info("refinement filled %d joint-frames the triangulation left NaN", filled)
    return replace(initial, xyz=x_out, used=used, n_views=n_views.astype(np.asarray(initial.n_views).dtype),
                   residual_px=residual, reproj_error_px=err, covariance=cov)
