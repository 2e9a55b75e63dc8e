"""The robust triangulation (see the package docstring for the method): fast path, consensus,
re-solve with the inliers, optional Gauss-Newton, residuals and covariance.

Shapes: ``T`` frames, ``V`` views, ``J`` joints; ``N`` = ``T * J`` points inside.
"""
from __future__ import annotations

import logging
from itertools import combinations

import numpy as np

from calibration.camera import Rig
from reconstruction.triangulation.config import TriangulationConfig
from reconstruction.triangulation.result import Triangulation3D
from reconstruction.triangulation.views import Views, project_points, solve_sym3, sym6_to_full

log = logging.getLogger(__name__)

_FAST_PATH_GATE = 0.5  # all views within this fraction of their gate: the all-view solve is kept
_FAST_PATH_MANY_VIEWS = 5  # from this many agreeing views, one outlier cannot pull the solution far
_CHUNK_DETECTIONS = 1_000_000  # T * V * J per solved chunk (a few hundred MB of temporaries at most)


def triangulate(keypoints2d: np.ndarray, rig: Rig, cfg: TriangulationConfig = TriangulationConfig()) -> Triangulation3D:
    """Triangulate 2D keypoints (T, V, J, 3) (x, y, score; distorted pixels; NaN missing) seen by ``rig``.

    The view axis follows the rig's camera order. Returns a :class:`Triangulation3D`; points with fewer
    than ``cfg.min_views`` consistent views are NaN (counted, logged), never an exception.
    """
    kp = np.asarray(keypoints2d, dtype=np.float64)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise ValueError(f"keypoints must be (T, V, J, 3), got {kp.shape}")
    T, V, J, _ = kp.shape
    if V != len(rig):
        raise ValueError(f"keypoints have {V} views but the rig has {len(rig)} cameras ({', '.join(rig.names)})")
    chunk = max(1, _CHUNK_DETECTIONS // max(V * J, 1))
    if T > chunk:  # long recordings: bounded memory, chunks of frames solved one after the other
        parts = [triangulate(kp[i : i + chunk], rig, cfg) for i in range(0, T, chunk)]
        return Triangulation3D(*(np.concatenate([getattr(p, f) for p in parts]) for f in (
            "xyz", "reproj_error_px", "n_views", "used", "residual_px", "covariance")))
    N = T * J
    flat = np.ascontiguousarray(np.moveaxis(kp, 1, 0)).reshape(V, N, 3)
    views = Views(flat, rig, cfg)
    if cfg.method == "dlt":
        used = views.valid.copy()
        X = views.ray_solve(views.s)
        X = views.ray_solve(views.depth_weights(X, used))
    else:
        X, used = _robust_solve(views, cfg)
    enough = used.sum(axis=0) >= cfg.min_views
    X[~enough] = np.nan
    if cfg.refine:
        X = _refine(views, X, used, cfg)
    # Covariance: inverse of the information matrix sum_v (s_v / sigma^2) J_v^T J_v. Points whose
    # 1-sigma uncertainty exceeds max_uncertainty_m (nearly parallel or opposite rays) are dropped.
    finite = np.all(np.isfinite(X), axis=-1)
    weights = np.where(used & finite[None], views.s, 0.0) / cfg.pixel_sigma_px**2
    info, _ = views.normal_equations(X, weights, with_gradient=False)
    _, cov6 = solve_sym3(info, np.zeros((3, N)))
    with np.errstate(invalid="ignore"):
        too_uncertain = finite & ~(np.sqrt(cov6[0] + cov6[3] + cov6[5]) <= cfg.max_uncertainty_m)
    X[too_uncertain] = np.nan
    finite &= ~too_uncertain
    used &= finite[None, :]
    covariance = sym6_to_full(cov6)
    covariance[~finite] = np.nan

    # Residuals of every detected view in distorted pixels, with the full camera model.
    detected = np.all(np.isfinite(flat[..., :2]), axis=-1)
    residual_px = np.full((V, N), np.nan)
    for v, cam in enumerate(rig):
        m = detected[v] & finite
        if m.any():
            diff = project_points(cam, X[m]) - flat[v, m, :2]
            residual_px[v, m] = np.sqrt(np.einsum("ni,ni->n", diff, diff))
    n_used = used.sum(axis=0)
    with np.errstate(invalid="ignore"):
        reproj = np.where(n_used > 0, np.where(used, residual_px, 0.0).sum(axis=0) / np.maximum(n_used, 1), np.nan)

    result = Triangulation3D(
        xyz=X.reshape(T, J, 3),
        reproj_error_px=reproj.reshape(T, J),
        n_views=n_used.reshape(T, J).astype(np.int64),
        used=np.moveaxis(used.reshape(V, T, J), 0, 1),
        residual_px=np.moveaxis(residual_px.reshape(V, T, J), 0, 1),
        covariance=covariance.reshape(T, J, 3, 3),
    )
    if N:
        missing = result.num_missing
        few = int((views.n_valid < cfg.min_views).sum())
        if missing:
            log.info(
                "triangulation: %d of %d points (%.1f %%) not triangulated: %d seen by fewer than %d views, "
                "%d without %d consistent views", missing, N, 100.0 * missing / N, few, cfg.min_views,
                missing - few, cfg.min_views,
            )
    return result


def _robust_solve(views: Views, cfg: TriangulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """All-view solve for points whose views all agree; consensus over pairs of the best-scored views
    for the others, then gated weighted re-solves. Returns X (N, 3), used (V, N)."""
    V, N = views.V, views.N
    valid = views.valid
    # Per-view gate: less confident detections are noisier, so their gate widens as score^(-power/2).
    clipped = np.clip(np.where(valid, views.score, 1.0), 1e-3, 1.0)
    tau = float(cfg.reproj_threshold_px) / clipped ** (cfg.gate_score_power / 2)
    # Fast path: the weighted solve with every valid view. Where every view is inside its gate
    # (and, when they are few, inside half of it, so that a moderate outlier cannot hide by pulling
    # the solution of few views), this is the answer.
    X = views.ray_solve(views.s)
    X = views.ray_solve(views.depth_weights(X, valid))
    e = views.errors(np.where(np.isfinite(X), X, 0.0))
    with np.errstate(invalid="ignore"):
        gate = np.where(views.n_valid >= _FAST_PATH_MANY_VIEWS, 1.0, _FAST_PATH_GATE) * tau
        agree = np.all(~valid | (e < gate), axis=0)
    agree &= (views.n_valid >= cfg.min_views) & np.all(np.isfinite(X), axis=-1)
    used = valid & agree[None]
    # Many views: a few outliers pull the all-view solution only a little, so two rounds of
    # iteratively reweighted least squares (Cauchy weights at the gate) recover it; kept where a
    # strict majority of at least _FAST_PATH_MANY_VIEWS views ends inside its gate.
    many = np.flatnonzero(~agree & (views.n_valid > _FAST_PATH_MANY_VIEWS))
    if many.size:
        sub = views.subset(many)
        Xs, es, ts = X[many], e[:, many], tau[:, many]
        for _ in range(2):
            with np.errstate(invalid="ignore"):
                robust = 1.0 / (1.0 + (np.nan_to_num(es, nan=1e6) / ts) ** 2)
            Xs = sub.ray_solve(sub.depth_weights(Xs, sub.valid) * robust)
            es = sub.errors(np.where(np.isfinite(Xs), Xs, 0.0))
        with np.errstate(invalid="ignore"):
            inside = sub.valid & (es < ts)
        Xs = sub.ray_solve(sub.depth_weights(Xs, inside))
        n_in = inside.sum(axis=0)
        ok = (2 * n_in > sub.n_valid) & (n_in >= _FAST_PATH_MANY_VIEWS) & np.all(np.isfinite(Xs), axis=-1)
        X[many[ok]] = Xs[ok]
        used[:, many[ok]] = inside[:, ok]
        agree[many[ok]] = True
    X[~agree] = np.nan
    # The others: consensus over the pairs of their 3 best-scored views first (cheap at any number
    # of cameras); where that finds no strict majority of inliers, over the pairs of their
    # ``hypothesis_views`` best views, then (more cameras than that only) over the pairs of
    # ``random_rounds`` random draws of that many valid views. Each point keeps the round whose
    # best hypothesis has the lowest consensus cost.
    K = int(cfg.hypothesis_views)
    rounds = [("score", min(3, K))] + ([("score", K)] if K > 3 else [])
    if V > K:
        rounds += [("random", K)] * int(cfg.random_rounds)
    rng = np.random.default_rng(0)  # deterministic draws
    rest = np.flatnonzero(~agree & (views.n_valid >= 2))
    best_cost = np.full(N, np.inf)
    for r, (kind, k_views) in enumerate(rounds):
        if rest.size == 0:
            break
        sub = views.subset(rest)
        if kind == "score":
            order = np.argsort(-sub.s, axis=0, kind="stable")[:k_views]
        else:  # random valid views first
            keys = rng.random(sub.s.shape) + np.where(sub.valid, 0.0, 2.0)
            order = np.argsort(keys, axis=0)[:k_views]
        X_rest, used_rest, cost = _consensus(sub, tau[:, rest], cfg, order)
        n_in = used_rest.sum(axis=0)
        better = cost <= best_cost[rest]  # later rounds try more pairs: ties go to them
        X[rest[better]] = X_rest[better]
        used[:, rest[better]] = used_rest[:, better]
        best_cost[rest[better]] = cost[better]
        done = (2 * n_in > views.n_valid[rest]) & (n_in >= cfg.min_views + 1)
        rest = rest[~done]
    return X, used


def _consensus(
    views: Views, tau: np.ndarray, cfg: TriangulationConfig, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair hypotheses among the views ``order`` (K, N) of each point, MSAC scoring in every view,
    gated re-solves. Returns X (N, 3), used (V, N) and the MSAC cost (N,) of the chosen hypothesis."""
    N = views.N
    valid, d, C = views.valid, views.d, views.C
    K = order.shape[0]
    pairs = list(combinations(range(K), 2))
    H = np.empty((len(pairs), N, 3))
    ok = np.empty((len(pairs), N), dtype=bool)
    cols = np.arange(N)
    for p, (i, k) in enumerate(pairs):  # two-view midpoints, vectorized over points
        va, vb = order[i], order[k]
        da, db = d[va, cols], d[vb, cols]
        Ca, Cb = C[va], C[vb]
        w0 = Ca - Cb
        b = np.einsum("ni,ni->n", da, db)
        e_a = np.einsum("ni,ni->n", da, w0)
        e_b = np.einsum("ni,ni->n", db, w0)
        den = 1.0 - b * b
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = (b * e_b - e_a) / den
            mu = (e_b - b * e_a) / den
        ok[p] = valid[va, cols] & valid[vb, cols] & (den > 1e-10) & (lam > 0) & (mu > 0)
        H[p] = 0.5 * (Ca + lam[:, None] * da + Cb + mu[:, None] * db)
    H[~ok] = 0.0
    e = views.errors(H)  # (V, P, N)
    # MSAC: truncated quadratic of the gated error, summed over valid views (weighted by score^power).
    with np.errstate(invalid="ignore"):
        ratio = np.minimum(np.nan_to_num(e / tau[:, None, :], nan=1.0), 1.0)
    weight = np.where(valid, 1.0 + cfg.msac_score_weight * views.score, 0.0)
    cost = np.einsum("vpn,vn->pn", ratio * ratio, weight)
    cost[~ok] = np.inf
    best = np.argmin(cost, axis=0)  # (N,)
    X = H[best, cols]
    with np.errstate(invalid="ignore"):
        used = valid & (e[:, best, cols] < tau) & ok[best, cols][None]
    for _ in range(int(cfg.regate_iterations)):
        X_new = views.ray_solve(views.depth_weights(X, used))
        e_new = views.errors(np.where(np.isfinite(X_new), X_new, 0.0))
        with np.errstate(invalid="ignore"):
            regated = valid & (e_new < tau)
        keep = (regated.sum(axis=0) >= cfg.min_views) & np.all(np.isfinite(X_new), axis=-1)
        X = np.where(keep[:, None], X_new, X)
        used = np.where(keep[None], regated, used)
    X = views.ray_solve(views.depth_weights(X, used))
    return X, used, cost[best, cols]


def _robust_weight(e: np.ndarray, loss: str, scale: float) -> np.ndarray:
    if loss == "cauchy":
        return 1.0 / (1.0 + (e / scale) ** 2)
    if loss == "huber":
        return np.where(e <= scale, 1.0, scale / np.maximum(e, 1e-12))
    return np.ones_like(e)


def _refine(views: Views, X: np.ndarray, used: np.ndarray, cfg: TriangulationConfig) -> np.ndarray:
    """Gauss-Newton on the pixel reprojection error of the used views with a robust loss (IRLS)."""
    for _ in range(int(cfg.refine_iterations)):
        e = views.errors(np.where(np.isfinite(X), X, 0.0))
        robust = _robust_weight(np.nan_to_num(e), cfg.robust_loss, cfg.robust_scale_px)
        w = np.where(used & np.isfinite(e), views.s * robust, 0.0)
        H, grad = views.normal_equations(X, w, with_gradient=True)
        step, _ = solve_sym3(H, grad)
        X = np.where(np.isfinite(step), X - step, X)
    return X
