"""One chunk's least-squares problem: the cost and its Gauss-Newton normal equations.

Shapes: ``T`` frames of the chunk, ``V`` views, ``J`` joints, ``Br`` rigid bones, ``P`` midpoint pairs.
Terms (see the package docstring): reprojection, rigid bone lengths, acceleration, the joints'
depth and the midpoints' depth, each robust where its docstring says; every term touches one joint,
two joints of one frame or one joint at three consecutive frames, so the normal matrix is
block-banded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def robust_weight(z: np.ndarray, loss: str) -> np.ndarray:
    """rho'(z) for z = (r / scale)^2 (scipy's convention): the IRLS weight."""
    if loss == "soft_l1":
        return 1.0 / np.sqrt(1.0 + z)
    if loss == "huber":
        return np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0)))
    if loss == "cauchy":
        return 1.0 / (1.0 + z)
    return np.ones_like(z)


def robust_rho(z: np.ndarray, loss: str) -> np.ndarray:
    """rho(z) for z = (r / scale)^2 (scipy's convention): the robust cost of a residual."""
    if loss == "soft_l1":
        return 2.0 * (np.sqrt(1.0 + z) - 1.0)
    if loss == "huber":
        return np.where(z <= 1.0, z, 2.0 * np.sqrt(np.maximum(z, 1.0)) - 1.0)
    if loss == "cauchy":
        return np.log1p(z)
    return z


@dataclass(frozen=True, eq=False)
class Problem:
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


@dataclass(frozen=True, eq=False)
class _Projected:
    """The joints of one evaluation in every camera: camera-frame points and reprojection residuals."""

    Xc: np.ndarray  # (T, V, J, 3) camera frame
    front: np.ndarray  # (T, V, J) in front of the camera
    safe_z: np.ndarray  # (T, V, J) depth, 1 behind the camera
    xn: np.ndarray  # (T, V, J, 2) normalized image coordinates
    r: np.ndarray  # (T, V, J, 2) reprojection residual, pixels (0 where unused)
    w0: np.ndarray  # (T, V, J) observation weight (0 behind the camera)
    zz: np.ndarray  # (T, V, J) (|r| / scale)^2


def _project(p: Problem, x: np.ndarray) -> _Projected:
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
    zz = np.sum(r * r, axis=-1) / (p.scale * p.scale)
    return _Projected(Xc, front, safe_z, xn, r, w0, zz)


def _bone_terms(p: Problem, x: np.ndarray):
    """(cost, differences (T, Br, 3), lengths (T, Br), valid (T, Br), residuals (T, Br)) of the rigid bones."""
    d = x[:, p.bones[:, 0]] - x[:, p.bones[:, 1]]
    norm = np.linalg.norm(d, axis=-1)
    bone_ok = p.active[:, p.bones[:, 0]] & p.active[:, p.bones[:, 1]] & (norm > 1e-9)
    rb = np.where(bone_ok, norm - p.lengths, 0.0)
    return np.sum(p.w_bone * rb * rb), d, norm, bone_ok, rb


def _accel_terms(p: Problem, x: np.ndarray):
    """(cost, valid (T-2, J), second differences (T-2, J, 3), (|acceleration| / sigma)^2 (T-2, J))."""
    acc_ok = p.active[:-2] & p.active[1:-1] & p.active[2:]  # (T-2, J)
    acc = (x[:-2] - 2.0 * x[1:-1] + x[2:]) * acc_ok[..., None]
    za = p.w_acc * np.sum(acc * acc, axis=-1)
    return np.sum(robust_rho(za, p.accel_loss)), acc_ok, acc, za


def _depth_terms(p: Problem, pr: _Projected):
    """(cost, weights (T, V, J), residuals (T, V, J) m, (residual / scale)^2) of the joints' depth."""
    wd = np.where(pr.front & np.isfinite(p.depth) & p.active[:, None, :], p.w_depth, 0.0)
    along = pr.Xc[..., 2] if p.ray is None else np.sum(pr.Xc * p.ray, axis=-1)
    rd = np.where(wd > 0, along - np.nan_to_num(p.depth), 0.0)
    # robust: a depth read on an occluder or a flying pixel must not pin the joint
    zd = wd * rd * rd / p.depth_scale**2
    return np.sum(p.depth_scale**2 * robust_rho(zd, p.loss)), wd, rd, zd


def _midpoint_terms(p: Problem, pr: _Projected):
    """(cost, weights of the two ends (P,) each, weights (T, V, P), residuals, (residual / scale)^2)
    of the midpoints' depth."""
    ma, mb = p.mid_pairs[:, 0], p.mid_pairs[:, 1]
    w_a = np.full(len(ma), 0.5) if p.mid_w is None else p.mid_w
    w_b = 1.0 - w_a
    if p.mid_ray is None:
        z = pr.Xc[..., 2]
        z_mid = w_a * z[:, :, ma] + w_b * z[:, :, mb]  # (T, V, P): z is linear in X
    else:
        z_mid = np.sum((w_a[:, None] * pr.Xc[:, :, ma] + w_b[:, None] * pr.Xc[:, :, mb]) * p.mid_ray, axis=-1)
    ok_mid = pr.front[:, :, ma] & pr.front[:, :, mb] & (p.active[:, ma] & p.active[:, mb])[:, None, :]
    wm = np.where(ok_mid & np.isfinite(p.mid_depth), p.w_mid, 0.0)
    rm = np.where(wm > 0, z_mid - np.nan_to_num(p.mid_depth), 0.0)
    zm = wm * rm * rm / p.depth_scale**2
    return np.sum(p.depth_scale**2 * robust_rho(zm, p.loss)), w_a, w_b, wm, rm, zm


def evaluate(p: Problem, x: np.ndarray, need_jacobian: bool) -> tuple[float, "Normal | None"]:
    """Cost at x (T, J, 3) (inactive joints must be finite, e.g. 0), and optionally the normal
    equations (:class:`Normal`): the terms' costs are summed in a fixed order, then each term adds
    its blocks and gradient."""
    pr = _project(p, x)
    s2 = p.scale * p.scale
    cost = np.sum(pr.w0 * s2 * robust_rho(pr.zz, p.loss))
    bones = _bone_terms(p, x) if len(p.bones) else None
    if bones is not None:
        cost += bones[0]
    acc = _accel_terms(p, x)
    cost += acc[0]
    depth = _depth_terms(p, pr) if p.depth is not None else None
    if depth is not None:
        cost += depth[0]
    mids = _midpoint_terms(p, pr) if p.mid_pairs is not None and len(p.mid_pairs) else None
    if mids is not None:
        cost += mids[0]
    if not need_jacobian:
        return cost, None
    Hd, g = _reprojection_normal(p, pr)
    if depth is not None:
        _add_depth_normal(p, depth, Hd, g)
    H_bone = _add_bone_normal(p, bones, Hd, g) if bones is not None else None
    if mids is not None:
        H_bone = _add_midpoint_normal(p, mids, Hd, g, H_bone)
    # (T-2, J): IRLS weight of each acceleration residual; the robust loss lets real fast motion
    # (foot strikes, hand swings: tens of m/s^2) through with a bounded pull.
    _, acc_ok, a, za = acc
    wa = p.w_acc * acc_ok * robust_weight(za, p.accel_loss)
    g[:-2] += wa[..., None] * a
    g[1:-1] += -2.0 * wa[..., None] * a
    g[2:] += wa[..., None] * a
    return cost, Normal(Hd, g, H_bone, wa)


def _reprojection_normal(p: Problem, pr: _Projected) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal blocks (T, J, 3, 3) and gradient (T, J, 3) of the reprojection term."""
    w = pr.w0 * robust_weight(pr.zz, p.loss)
    iz = 1.0 / pr.safe_z
    # d(pixels)/dX = K2 @ d(xn)/d(Xc) @ R, written out: rows G0, G1 of d(xn)/dX (T, V, J, 3).
    K = p.K2[None, :, None]  # (1, V, 1, 2, 2)
    Rv = p.R[None, :, None]  # (1, V, 1, 3, 3)
    G0 = iz[..., None] * (Rv[..., 0, :] - pr.xn[..., :1] * Rv[..., 2, :])
    G1 = iz[..., None] * (Rv[..., 1, :] - pr.xn[..., 1:] * Rv[..., 2, :])
    A0 = K[..., 0, :1] * G0 + K[..., 0, 1:] * G1
    A1 = K[..., 1, :1] * G0 + K[..., 1, 1:] * G1
    Aw0, Aw1 = A0 * w[..., None], A1 * w[..., None]
    Hd = np.sum(Aw0[..., :, None] * A0[..., None, :] + Aw1[..., :, None] * A1[..., None, :], axis=1)
    g = np.sum(Aw0 * pr.r[..., :1] + Aw1 * pr.r[..., 1:], axis=1)
    return Hd, g


def _add_depth_normal(p: Problem, depth, Hd: np.ndarray, g: np.ndarray) -> None:
    _, wd, rd, zd = depth
    wdr = wd * robust_weight(zd, p.loss)
    if p.ray is None:
        r2 = p.R[:, 2, :]  # (V, 3)
        Hd += np.einsum("tvj,vi,vk->tjik", wdr, r2, r2)
        g += np.einsum("tvj,vi->tji", wdr * rd, r2)
    else:
        a_w = np.einsum("tvjk,vki->tvji", p.ray, p.R)  # world direction R^T u
        Hd += np.einsum("tvj,tvji,tvjk->tjik", wdr, a_w, a_w)
        g += np.einsum("tvj,tvji->tji", wdr * rd, a_w)


def _add_bone_normal(p: Problem, bones, Hd: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Adds the bones' diagonal blocks and gradient; returns their off-diagonal blocks (T, Br, 3, 3)."""
    _, d, norm, bone_ok, rb = bones
    safe = np.where(bone_ok, norm, 1.0)
    u = d / safe[..., None] * bone_ok[..., None]
    wb = np.broadcast_to(np.asarray(p.w_bone, dtype=np.float64), (len(p.bones),))
    uu = wb[None, :, None, None] * u[..., :, None] * u[..., None, :]  # (T, Br, 3, 3)
    gb = wb[None, :, None] * u * rb[..., None]
    inc = p.incidence  # (J, Br): +1 at a, -1 at b
    Hd += np.einsum("jb,tbik->tjik", np.abs(inc), uu)
    g += np.einsum("jb,tbi->tji", inc, gb)
    return -uu


def _add_midpoint_normal(p: Problem, mids, Hd: np.ndarray, g: np.ndarray, H_bone: np.ndarray | None) -> np.ndarray:
    """Adds the midpoints' blocks and gradient; returns the off-diagonal blocks with theirs appended."""
    # r = u . (w X_a + (1 - w) X_b) - d: d r / d X_a = w a, d r / d X_b = (1 - w) a, a = R^T u.
    _, w_a, w_b, wm, rm, zm = mids
    ma, mb = p.mid_pairs[:, 0], p.mid_pairs[:, 1]
    wmr = wm * robust_weight(zm, p.loss)  # (T, V, P)
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
    empty = np.zeros((Hd.shape[0], 0, 3, 3))
    return np.concatenate([empty if H_bone is None else H_bone, (w_a * w_b)[None, :, None, None] * block], axis=1)


@dataclass(frozen=True, eq=False)
class Normal:
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
