"""Solvers of one chunk's normal equations, and the Levenberg-Marquardt loop around them.

Shapes: ``T`` frames of the chunk, ``J`` joints. Unknowns ordered frame-major: the normal matrix is
block-banded (bandwidth ``6 J``). :func:`solve_pcg` (default) runs conjugate gradients preconditioned
with the exact inverse of every frame's ``(3 J, 3 J)`` block, all frames at once; :func:`solve_banded`
is the exact banded Cholesky, there to check it.
"""
from __future__ import annotations

import numpy as np

from reconstruction.refine.config import RefinementConfig
from reconstruction.refine.problem import Normal, Problem, evaluate


def damped_blocks(p: Problem, normal: Normal, lam: float) -> np.ndarray:
    """Diagonal blocks (T, J, 3, 3) of H + lam diag(H) (acceleration included), identity where inactive."""
    Hd = normal.full_diagonal_blocks()
    diag = Hd[..., [0, 1, 2], [0, 1, 2]]
    scale = float(np.mean(diag[p.active])) if p.active.any() else 1.0
    Hd[..., [0, 1, 2], [0, 1, 2]] = diag * (1.0 + lam) + 1e-9 * scale
    Hd[~p.active] = np.eye(3)
    return Hd


def solve_banded(p: Problem, normal: Normal, lam: float) -> np.ndarray:
    """Solve (H + lam diag(H)) dx = -g exactly with a banded Cholesky (bandwidth 6 J); dx (T, J, 3)."""
    from scipy.linalg import solveh_banded

    T, J = p.active.shape
    m = 3 * J
    n = T * m
    u = min(2 * m, n - 1)
    ab = np.zeros((u + 1, n))
    Hd = damped_blocks(p, normal, lam)
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


def solve_pcg(p: Problem, normal: Normal, lam: float, max_iter: int = 60, rtol: float = 1e-3,
               cache: dict | None = None) -> np.ndarray:
    """Solve (H + lam diag(H)) dx = -g with conjugate gradients, preconditioned by the exact inverse of
    each frame's (3 J, 3 J) block (data, bones, acceleration diagonal): cheap batched dense algebra,
    O(T J^2) per iteration instead of the banded factorisation's O(T J^2 * J)."""
    T, J = p.active.shape
    m = 3 * J
    Hd = damped_blocks(p, normal, lam)
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


def solve_chunk(p: Problem, x0: np.ndarray, cfg: RefinementConfig) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on one chunk; returns refined x (T, J, 3) and the final diagonal blocks."""
    from scipy.linalg import LinAlgError

    x = np.where(p.active[..., None], x0, 0.0)
    cost, normal = evaluate(p, x, True)
    lam = 1e-3
    cache: dict = {}
    for _ in range(cfg.max_iterations):
        accepted = False
        for _retry in range(6):
            try:
                dx = solve_banded(p, normal, lam) if cfg.solver == "banded" else solve_pcg(p, normal, lam, cache=cache)
            except (LinAlgError, ValueError):
                lam *= 10.0
                continue
            trial = x + dx
            new_cost, _ = evaluate(p, trial, False)
            if np.isfinite(new_cost) and new_cost <= cost:
                accepted = True
                break
            lam *= 10.0
        if not accepted:
            break
        x = trial
        step = float(np.max(np.abs(dx))) if dx.size else 0.0
        decrease = (cost - new_cost) / max(cost, 1e-300)
        cost, normal = evaluate(p, x, True)
        lam = max(lam / 10.0, 1e-7)
        if step < cfg.tolerance_m or decrease < cfg.tolerance_cost:
            break
    return x, normal.full_diagonal_blocks()
