"""Bundle adjustment of camera poses, board poses and (optionally) intrinsics.

Robust Levenberg-Marquardt (IRLS weights of a scipy-style loss: huber, soft_l1, cauchy, arctan)
on the sparse structure of the problem: an observation depends on one camera and one board pose
only, so the Jacobian is computed in blocks (central differences, one parameter of every camera or
every board at once, as scipy's ``jac_sparsity`` grouping does) and the board poses are eliminated
by a Schur complement, leaving a (15 V)-square system per iteration. scipy ``least_squares`` with
``jac_sparsity`` was measured first: on 4 cameras x 150 frames it needed 77 s and had not
converged after 200 evaluations (its LSMR inner solver struggles with the conditioning); this
solver converges in a few dozen iterations in well under a second.

The reference camera's pose is held fixed (it defines the world), which removes the gauge
freedom; the board's square length fixes the scale. Observations are flat arrays of length M.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from calibration.camera import matrix_to_rodrigues, rodrigues_to_matrix

log = logging.getLogger(__name__)

INTRINSIC_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
N_INTR = len(INTRINSIC_NAMES)



@dataclass(frozen=True)
class BundleAdjustConfig:
    """Attributes:
        refine_intrinsics: also refine fx, fy, cx, cy and distortion (k1, k2, p1, p2) of every
            camera; which of them stay fixed follows the intrinsics config (``hold`` argument).
        loss: scipy robust loss ("linear" is plain least squares).
        loss_scale: residual (px) where the robust loss starts to down-weight.
        outlier_px: after a first solve, drop observations whose error exceeds this many px and
            ``outlier_sigmas`` x the RMS, then solve again.
        outlier_sigmas: see outlier_px.
        max_iterations: cap on Levenberg-Marquardt iterations per solve.
    """

    refine_intrinsics: bool = True
    loss: Literal["linear", "huber", "soft_l1", "cauchy", "arctan"] = "huber"
    loss_scale: float = 1.0
    outlier_px: float = 3.0
    outlier_sigmas: float = 5.0
    max_iterations: int = 100


@dataclass(frozen=True, eq=False)
class Observations:
    """Board corners seen by cameras. ``camera`` (M,) and ``frame`` (M,) index the camera and
    board-pose lists, ``points`` (M, 3) board-frame corners, ``uv`` (M, 2) distorted pixels."""

    camera: np.ndarray
    frame: np.ndarray
    points: np.ndarray
    uv: np.ndarray


@dataclass(frozen=True, eq=False)
class BundleResult:
    """Refined parameters. Camera arrays are (V, ...), board poses (F, ...) board -> world;
    ``residuals`` (M, 2) px of every observation (NaN for those dropped as outliers); ``inlier`` (M,)."""

    R: np.ndarray
    t: np.ndarray
    K: np.ndarray
    dist: np.ndarray
    R_board: np.ndarray
    t_board: np.ndarray
    residuals: np.ndarray
    inlier: np.ndarray
    rms: float
    initial_rms: float
    evaluations: int


def _intr_vector(K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    d = np.zeros(5)
    d[: min(5, dist.size)] = dist[:5]
    return np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2], *d])


def project_observations(cam_rvec, cam_t, intr, board_rvec, board_t, obs: Observations) -> np.ndarray:
    """Pixels (M, 2) of the observations for cameras (V, 3), (V, 3), (V, 9) and boards (F, 3), (F, 3)."""
    Rc = rodrigues_to_matrix(cam_rvec)
    Rb = rodrigues_to_matrix(board_rvec)
    ci, fi = obs.camera, obs.frame
    Xw = np.einsum("mij,mj->mi", Rb[fi], obs.points) + board_t[fi]
    Xc = np.einsum("mij,mj->mi", Rc[ci], Xw) + cam_t[ci]
    xy = Xc[:, :2] / Xc[:, 2:3]
    p = intr[ci]
    fx, fy, cx, cy, k1, k2, p1, p2, k3 = p.T
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([fx * xd + cx, fy * yd + cy], axis=1)


# Parameters of one camera: rvec (3), t (3), fx, fy, cx, cy, k1, k2, p1, p2, k3.
N_CAM = 6 + N_INTR


def _huber_weights(err: np.ndarray, loss: str, scale: float) -> tuple[np.ndarray, float]:
    """IRLS weights (M,) and robust cost of 2D residual norms ``err`` (M,) px."""
    z = (err / scale) ** 2
    if loss == "linear":
        rho, drho = z, np.ones_like(z)
    elif loss == "huber":
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
        drho = np.where(z <= 1, 1.0, 1 / np.sqrt(np.maximum(z, 1e-300)))
    elif loss == "soft_l1":
        rho, drho = 2 * (np.sqrt(1 + z) - 1), 1 / np.sqrt(1 + z)
    elif loss == "cauchy":
        rho, drho = np.log1p(z), 1 / (1 + z)
    else:  # arctan
        rho, drho = np.arctan(z), 1 / (1 + z * z)
    return drho, float(0.5 * scale ** 2 * np.sum(rho))


def _project_params(cams: np.ndarray, boards: np.ndarray, obs: Observations) -> np.ndarray:
    return project_observations(cams[:, :3], cams[:, 3:6], cams[:, 6:], boards[:, :3], boards[:, 3:], obs)


def _jacobians(cams, boards, obs, cam_steps, board_steps):
    """Per-observation Jacobian blocks by central differences: (M, 2, 15) w.r.t. its camera and
    (M, 2, 6) w.r.t. its board pose. One parameter of every camera (or board) is perturbed at once:
    an observation depends on one camera and one board only, so the columns do not mix."""
    M = len(obs.uv)
    Jc = np.empty((M, 2, N_CAM))
    Jb = np.empty((M, 2, 6))
    for k in range(N_CAM):
        d = np.zeros_like(cams)
        d[:, k] = cam_steps[:, k]
        diff = _project_params(cams + d, boards, obs) - _project_params(cams - d, boards, obs)
        Jc[:, :, k] = diff / (2 * cam_steps[obs.camera, k])[:, None]
    for k in range(6):
        d = np.zeros_like(boards)
        d[:, k] = board_steps[k]
        diff = _project_params(cams, boards + d, obs) - _project_params(cams, boards - d, obs)
        Jb[:, :, k] = diff / (2 * board_steps[k])
    return Jc, Jb


def _levenberg_marquardt(cams, boards, obs, active, config, max_iterations):
    """Robust Levenberg-Marquardt with the board poses eliminated by a Schur complement.

    ``active`` (V, 15) marks the free camera parameters. Returns (cams, boards, iterations).
    """
    V, F = len(cams), len(boards)
    ci, fi = obs.camera, obs.frame
    pair = ci * F + fi
    flat_active = active.ravel()
    lam = 1e-3

    def cost_of(c, b):
        r = _project_params(c, b, obs) - obs.uv
        e = np.linalg.norm(r, axis=1)
        w, cost = _huber_weights(e, config.loss, config.loss_scale)
        return r, w, cost

    r, w, cost = cost_of(cams, boards)
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        cam_steps = np.maximum(1e-6 * np.abs(cams), 1e-7)
        Jc, Jb = _jacobians(cams, boards, obs, cam_steps, np.full(6, 1e-7))
        Jc = Jc * active[ci][:, None, :]
        wJc, wJb = Jc * w[:, None, None], Jb * w[:, None, None]
        A_cc = np.zeros((V, N_CAM, N_CAM))
        np.add.at(A_cc, ci, np.einsum("mik,mil->mkl", wJc, Jc))
        A_bb = np.zeros((F, 6, 6))
        np.add.at(A_bb, fi, np.einsum("mik,mil->mkl", wJb, Jb))
        A_cb = np.zeros((V * F, N_CAM, 6))
        np.add.at(A_cb, pair, np.einsum("mik,mil->mkl", wJc, Jb))
        A_cb = A_cb.reshape(V, F, N_CAM, 6)
        g_c = np.zeros((V, N_CAM))
        np.add.at(g_c, ci, np.einsum("mik,mi->mk", wJc, r))
        g_b = np.zeros((F, 6))
        np.add.at(g_b, fi, np.einsum("mik,mi->mk", wJb, r))
        while True:
            eye_c = np.eye(N_CAM)[None] * np.diagonal(A_cc, axis1=1, axis2=2)[:, None, :]
            eye_b = np.eye(6)[None] * np.diagonal(A_bb, axis1=1, axis2=2)[:, None, :]
            B = A_bb + lam * eye_b + 1e-12 * np.eye(6)
            B_inv = np.linalg.inv(B)
            Y = np.einsum("vfkl,flm->vfkm", A_cb, B_inv)
            S = np.zeros((V, N_CAM, V, N_CAM))
            S[np.arange(V), :, np.arange(V), :] = A_cc + lam * eye_c
            S -= np.einsum("afkl,bfml->akbm", Y, A_cb)
            rhs = g_c - np.einsum("vfkl,fl->vk", Y, g_b)
            S = S.reshape(V * N_CAM, V * N_CAM)[np.ix_(flat_active, flat_active)]
            d_cam = np.zeros(V * N_CAM)
            try:
                d_cam[flat_active] = np.linalg.solve(S, -rhs.ravel()[flat_active])
            except np.linalg.LinAlgError:
                d_cam[flat_active] = np.linalg.lstsq(S, -rhs.ravel()[flat_active], rcond=None)[0]
            d_cam = d_cam.reshape(V, N_CAM)
            d_board = -np.einsum("fkl,fl->fk", B_inv, g_b + np.einsum("vfkl,vk->fl", A_cb, d_cam))
            new_cams, new_boards = cams + d_cam, boards + d_board
            new_r, new_w, new_cost = cost_of(new_cams, new_boards)
            if np.isfinite(new_cost) and new_cost <= cost:
                break
            lam *= 10.0
            if lam > 1e12:
                return cams, boards, iterations
        improvement = (cost - new_cost) / max(cost, 1e-300)
        cams, boards, r, w, cost = new_cams, new_boards, new_r, new_w, new_cost
        lam = max(lam / 10.0, 1e-9)
        step = max(np.max(np.abs(d_cam)), np.max(np.abs(d_board)))
        if improvement < 1e-12 or step < 1e-12:
            break
    return cams, boards, iterations


def bundle_adjust(
    cam_R: np.ndarray, cam_t: np.ndarray, K: np.ndarray, dist: np.ndarray,
    board_R: np.ndarray, board_t: np.ndarray, obs: Observations,
    reference: int = 0, config: BundleAdjustConfig = BundleAdjustConfig(), hold: tuple = ("k3",),
) -> BundleResult:
    """Refine cameras (V: R (V,3,3), t (V,3), K (V,3,3), dist (V,k)) and board poses (F: R, t) to
    the observations; the reference camera's pose stays fixed, and so do the intrinsics named in
    ``hold`` (any of fx, fy, cx, cy, k1, k2, p1, p2, k3). Returns a :class:`BundleResult`."""
    V, M = len(cam_R), len(obs.uv)
    cams = np.zeros((V, N_CAM))
    cams[:, :3] = matrix_to_rodrigues(np.asarray(cam_R))
    cams[:, 3:6] = np.asarray(cam_t, dtype=np.float64)
    cams[:, 6:] = np.stack([_intr_vector(K[v], np.asarray(dist[v]).ravel()) for v in range(V)])
    boards = np.concatenate([matrix_to_rodrigues(np.asarray(board_R)), np.asarray(board_t, dtype=np.float64)], axis=1)
    active = np.ones((V, N_CAM), bool)
    active[reference, :6] = False
    if not config.refine_intrinsics:
        active[:, 6:] = False
    for name in hold:
        active[:, 6 + INTRINSIC_NAMES.index(name)] = False

    def rms_of(c, b, sub):
        e = np.linalg.norm(_project_params(c, b, sub) - sub.uv, axis=1)
        return e, float(np.sqrt(np.mean(e ** 2)))

    initial_rms = rms_of(cams, boards, obs)[1]
    cams, boards, evaluations = _levenberg_marquardt(cams, boards, obs, active, config, config.max_iterations)
    err, rms = rms_of(cams, boards, obs)
    inlier = err <= max(config.outlier_px, config.outlier_sigmas * rms)
    if not inlier.all():
        log.info("bundle adjustment: dropping %d of %d observations as outliers", int((~inlier).sum()), M)
        sub = Observations(obs.camera[inlier], obs.frame[inlier], obs.points[inlier], obs.uv[inlier])
        cams, boards, more = _levenberg_marquardt(cams, boards, sub, active, config, config.max_iterations)
        evaluations += more
    all_res = _project_params(cams, boards, obs) - obs.uv
    final_rms = float(np.sqrt(np.mean(np.sum(all_res[inlier] ** 2, axis=1))))
    all_res[~inlier] = np.nan
    intr = cams[:, 6:]
    Ks = np.zeros((V, 3, 3))
    Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = intr[:, 0], intr[:, 1], intr[:, 2], intr[:, 3], 1.0
    log.info("bundle adjustment: RMS %.3f -> %.3f px, %d iterations", initial_rms, final_rms, evaluations)
    R_out = rodrigues_to_matrix(cams[:, :3])
    R_out[reference] = cam_R[reference]  # exactly as given, not through a rotation vector
    return BundleResult(
        R=R_out, t=cams[:, 3:6], K=Ks, dist=intr[:, 4:9].copy(),
        R_board=rodrigues_to_matrix(boards[:, :3]), t_board=boards[:, 3:], residuals=all_res, inlier=inlier,
        rms=final_rms, initial_rms=initial_rms, evaluations=evaluations,
    )
