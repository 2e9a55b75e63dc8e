"""Robust, confidence-weighted multi-view triangulation of 2D keypoints, with per-view residuals
and a 3D uncertainty.

Shapes: ``T`` frames, ``V`` views (the rig's order), ``J`` joints; inside, the ``T * J`` points
are flattened to ``N``. Every step is vectorized over all points at once; Python loops run only over
views or over pairs of the best views.

Method (``method="robust"``, the default):

1. Undistort every detection to normalized camera coordinates (OpenCV, per view; a direct K^-1
   without distortion) and turn it into a world ray. Views with a NaN or a score below
   ``min_score`` are left out. Each view has a gate ``reproj_threshold_px / sqrt(score)``: less
   confident detections are noisier.
2. Fast path: the weighted linear solve with every view. Where every view's reprojection error is
   inside its gate (inside half of it when fewer than 5 views, so that a moderate outlier cannot
   hide by pulling the solution), this is the answer: most points of a clean recording. With more
   than 5 views, two rounds of iteratively reweighted least squares (Cauchy weights at the gate)
   follow, kept where a strict majority of at least 5 views ends inside its gate.
3. Consensus for the other points: the two-view midpoint of every pair among the point's 3
   best-scored views, each scored in every view with a truncated quadratic of its gated error
   (MSAC, one vote per view); the best gives the inliers. Where that finds no strict majority,
   again with the pairs among the ``hypothesis_views`` best views, then (more cameras than that)
   among ``random_rounds`` random draws of that many views. The cost grows linearly, not
   combinatorially, with the number of cameras.
4. Re-solve with the inliers: weighted linear least squares on the rays (weights ``score *
   (f / depth)^2``, so that the ray distance approximates the pixel error), gate again on every
   detected view and re-solve (``regate_iterations``).
5. Optional (``refine``): Gauss-Newton on the pixel reprojection error of the used views with a
   robust loss (IRLS), all points at once.
6. Residual of every detected view in distorted pixels, covariance ``(sum_v (s_v / sigma^2) J_v^T
   J_v)^-1`` with ``sigma = pixel_sigma_px`` the pixel noise of a score-1 detection and ``J_v`` the
   pinhole projection Jacobian.

``method="dlt"``: the same weighted linear solve with every valid view, no selection.

A point seen by fewer than ``min_views`` usable (inlier) views is NaN; so are degenerate
geometries (parallel rays) and points more uncertain than ``max_uncertainty_m`` (nearly opposite
cameras). ``Triangulation3D.completeness`` and the log tell how many.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np

from calibration.camera import distort_normalized

log = logging.getLogger(__name__)

_FAST_PATH_GATE = 0.5  # all views within this fraction of their gate: the all-view solve is kept
_FAST_PATH_MANY_VIEWS = 5  # from this many agreeing views, one outlier cannot pull the solution far
_CHUNK_DETECTIONS = 1_000_000  # T * V * J per solved chunk (a few hundred MB of temporaries at most)
_MIN_RELATIVE_DET = 1e-12  # det(M) / trace(M)^3 below this: rays (nearly) parallel -> NaN


@dataclass(frozen=True, eq=False)
class TriangulationConfig:
    """Settings of :func:`triangulate`; these defaults are the only defaults.

    Attributes:
        method: "robust" (consensus over view pairs + gating + re-solve) or "dlt" (all valid views).
        min_views: fewest (inlier) views a point needs; fewer -> NaN.
        min_score: detections scored below this are ignored.
        score_power: a view's weight is score ** score_power.
        reproj_threshold_px: a view whose reprojection error exceeds this is an outlier (for a
            score-1 detection; the gate of a view with score s is this / s ** (gate_score_power / 2)).
        gate_score_power: how much the gate widens for less confident detections (0: not at all).
        msac_score_weight: each view's vote in the consensus is 1 + msac_score_weight * score (0:
            one vote per view; confident wrong detections are as confident as right ones).
        hypothesis_views: pairs of this many best-scored views of each point are tried.
        random_rounds: with more cameras than hypothesis_views, rounds of random draws of that many
            views for points still without a majority consensus.
        regate_iterations: re-solve / re-gate rounds after the consensus.
        refine: Gauss-Newton refinement of each point on the pixel error with a robust loss.
        refine_iterations: Gauss-Newton steps.
        robust_loss: "cauchy", "huber" or "none" (least squares) for the refinement.
        robust_scale_px: scale of the robust loss, pixels.
        pixel_sigma_px: pixel noise (1 sigma) of a score-1 detection, for the covariance.
        max_uncertainty_m: a point whose 1-sigma 3D uncertainty (sqrt of the covariance trace)
            exceeds this is NaN: its views are nearly parallel or opposite, so its depth is a guess.
    """

    method: Literal["robust", "dlt"] = "robust"
    min_views: int = 2
    min_score: float = 0.05
    score_power: float = 1.0
    reproj_threshold_px: float = 15.0
    gate_score_power: float = 1.0
    msac_score_weight: float = 0.0
    hypothesis_views: int = 5
    random_rounds: int = 2
    regate_iterations: int = 1
    refine: bool = False
    refine_iterations: int = 2
    robust_loss: Literal["cauchy", "huber", "none"] = "cauchy"
    robust_scale_px: float = 10.0
    pixel_sigma_px: float = 3.0
    max_uncertainty_m: float = 0.15

    def __post_init__(self):
        if self.method not in ("robust", "dlt"):
            raise ValueError(f"method must be 'robust' or 'dlt', got {self.method!r}")
        if self.robust_loss not in ("cauchy", "huber", "none"):
            raise ValueError(f"robust_loss must be 'cauchy', 'huber' or 'none', got {self.robust_loss!r}")
        if int(self.min_views) < 2:
            raise ValueError(f"min_views must be >= 2 (a point needs two rays), got {self.min_views}")
        if int(self.hypothesis_views) < 2:
            raise ValueError(f"hypothesis_views must be >= 2, got {self.hypothesis_views}")
        for name in ("reproj_threshold_px", "robust_scale_px", "pixel_sigma_px", "max_uncertainty_m"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.regate_iterations < 0 or self.refine_iterations < 0:
            raise ValueError("regate_iterations and refine_iterations must be >= 0")


@dataclass(frozen=True, eq=False)
class Triangulation3D:
    """Triangulated joints and their quality.

    Attributes:
        xyz: (T, J, 3) metres, world frame; NaN where not triangulated.
        reproj_error_px: (T, J) mean reprojection error over the used views, distorted pixels.
        n_views: (T, J) int, number of views used.
        used: (T, V, J) bool, views used for each point.
        residual_px: (T, V, J) reprojection error of every view with a detection (used or not),
            NaN where there is no detection or no 3D point.
        covariance: (T, J, 3, 3) m^2, from the propagated pixel noise of the used views.
    """

    xyz: np.ndarray
    reproj_error_px: np.ndarray
    n_views: np.ndarray
    used: np.ndarray
    residual_px: np.ndarray
    covariance: np.ndarray

    @property
    def completeness(self) -> float:
        """Fraction of (frame, joint) with a 3D position."""
        finite = np.all(np.isfinite(self.xyz), axis=-1)
        return float(finite.mean()) if finite.size else 0.0

    @property
    def num_missing(self) -> int:
        """Number of (frame, joint) without a 3D position."""
        return int((~np.all(np.isfinite(self.xyz), axis=-1)).sum())

    @property
    def uncertainty_m(self) -> np.ndarray:
        """(T, J) 1-sigma 3D uncertainty, metres: sqrt of the covariance trace."""
        return np.sqrt(np.trace(self.covariance, axis1=-2, axis2=-1))


def _solve_sym3(m: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve symmetric 3x3 systems in closed form (adjugate); vectorized over N.

    ``m`` is the 6 unique entries (6, N) in the order xx, xy, xz, yy, yz, zz; ``rhs`` is (3, N).
    Returns x (N, 3) and the inverse's 6 unique entries (6, N); singular or ill-conditioned systems
    (det below ``_MIN_RELATIVE_DET * trace^3``) give NaN.
    """
    a, b, c, d, e, f = m
    A00, A01, A02 = d * f - e * e, c * e - b * f, b * e - c * d
    A11, A12, A22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * A00 + b * A01 + c * A02
    trace = a + d + f
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ok = det > _MIN_RELATIVE_DET * trace**3
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), np.nan)
    inverse = np.stack([A00, A01, A02, A11, A12, A22]) * inv_det
    i00, i01, i02, i11, i12, i22 = inverse
    r0, r1, r2 = rhs
    x = np.stack(
        [i00 * r0 + i01 * r1 + i02 * r2, i01 * r0 + i11 * r1 + i12 * r2, i02 * r0 + i12 * r1 + i22 * r2], axis=-1
    )
    return x, inverse


def _project(cam, X: np.ndarray) -> np.ndarray:
    """``cam.project`` (world (N, 3) -> distorted pixels (N, 2)) without BLAS; NaN behind the camera."""
    Xc = np.einsum("ni,ji->nj", X, cam.R) + cam.t
    z = Xc[:, 2:3]
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = np.where(z > 0, Xc[:, :2] / z, np.nan)
    xy = distort_normalized(xy, cam.dist)
    return np.einsum("ni,ji->nj", xy, cam.K[:2, :2]) + cam.K[:2, 2]


def _sym6_to_full(m6: np.ndarray) -> np.ndarray:
    """(6, N) unique entries -> (N, 3, 3) symmetric matrices."""
    xx, xy, xz, yy, yz, zz = m6
    return np.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], axis=-1).reshape(-1, 3, 3)


class _Views:
    """Per-view camera arrays and the undistorted detections of all points, layout (V, N)."""

    def __init__(self, flat: np.ndarray, rig, cfg: "TriangulationConfig"):
        V, N, _ = flat.shape
        cams = list(rig)
        self.V, self.N = V, N
        self.R = np.stack([c.R for c in cams])  # (V, 3, 3) world -> camera
        self.t = np.stack([c.t for c in cams])  # (V, 3)
        self.C = rig.centers  # (V, 3)
        self.focal = np.array([np.sqrt(c.K[0, 0] * c.K[1, 1]) for c in cams])  # pixels per normalized unit
        score = flat[..., 2]
        with np.errstate(invalid="ignore"):
            candidate = np.all(np.isfinite(flat), axis=-1) & (score >= cfg.min_score) & (score > 0)
        xn = np.zeros((V, N, 2))
        for v, cam in enumerate(cams):
            m = candidate[v]
            if not m.any():
                continue
            if np.any(cam.dist):
                xn[v, m] = cam.undistort_points(flat[v, m, :2], normalized=True)
            else:  # no distortion: invert K directly (much faster than OpenCV's iterative undistortion)
                K = cam.K
                y = (flat[v, m, 1] - K[1, 2]) / K[1, 1]
                xn[v, m, 0] = (flat[v, m, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
                xn[v, m, 1] = y
        self.valid = candidate & np.all(np.isfinite(xn), axis=-1)
        xn[~self.valid] = 0.0
        self.x, self.y = xn[..., 0], xn[..., 1]  # (V, N)
        self.score = np.where(self.valid, score, 0.0)
        self.s = self.score ** cfg.score_power if cfg.score_power != 1 else self.score
        # World ray directions R^T (x, y, 1), unit length, and d . C.
        h = np.empty((V, N, 3))
        h[..., 0], h[..., 1], h[..., 2] = self.x, self.y, 1.0
        d = np.einsum("vni,vij->vnj", h, self.R)  # row vectors h R = (R^T h)^T
        d *= (1.0 / np.sqrt(1.0 + self.x * self.x + self.y * self.y))[..., None]  # |R^T h| = |h|
        self.d = d  # (V, N, 3)
        self.dC = np.einsum("vni,vi->vn", d, self.C)
        self.n_valid = self.valid.sum(axis=0)

    def subset(self, idx: np.ndarray) -> "_Views":
        """The same views restricted to points ``idx``."""
        sub = object.__new__(_Views)
        sub.V, sub.N = self.V, int(idx.size)
        sub.R, sub.t, sub.C, sub.focal = self.R, self.t, self.C, self.focal
        for name in ("valid", "x", "y", "score", "s", "dC"):
            setattr(sub, name, getattr(self, name)[:, idx])
        sub.d = self.d[:, idx]
        sub.n_valid = self.n_valid[idx]
        return sub

    def depth(self, X: np.ndarray) -> np.ndarray:
        """Depth (V, ...) of points X (..., 3) in every camera."""
        return np.moveaxis(np.einsum("...i,vi->...v", X, self.R[:, 2, :]) + self.t[:, 2], -1, 0)

    def errors(self, X: np.ndarray) -> np.ndarray:
        """Pixel reprojection error (V, ..., N) of points X (..., N, 3) against every view's detection
        (undistorted, scaled by the focal length); NaN behind the camera."""
        lead = X.shape[:-1]
        Xt = np.ascontiguousarray(X.reshape(-1, 3).T)  # (3, M)
        # Rows (v, axis) of the camera coordinates, each contiguous. Products with a 3-long inner
        # axis stay out of BLAS (einsum): its threads only add contention on a busy machine.
        Xc = (np.einsum("ki,im->km", self.R.reshape(-1, 3), Xt) + self.t.reshape(-1, 1)).reshape((self.V, 3) + lead)
        z = Xc[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            iz = np.where(z > 1e-9, 1.0 / z, np.nan)
        shape = (self.V,) + (1,) * (len(lead) - 1) + (self.N,)
        ex = Xc[:, 0] * iz - self.x.reshape(shape)
        ey = Xc[:, 1] * iz - self.y.reshape(shape)
        out = np.sqrt(ex * ex + ey * ey)
        out *= self.focal.reshape((self.V,) + (1,) * len(lead))
        return out

    def ray_solve(self, w: np.ndarray) -> np.ndarray:
        """Weighted least-squares point closest to the rays, min sum_v w_v |(I - d d^T)(X - C_v)|^2.

        w: (V, N) weights (0 = unused). Returns X (N, 3), NaN where degenerate (parallel rays, < 2 views).
        """
        d = self.d
        wd = w[..., None] * d
        W = w.sum(axis=0)
        m = np.stack([
            W - np.einsum("vn,vn->n", wd[..., 0], d[..., 0]),
            -np.einsum("vn,vn->n", wd[..., 0], d[..., 1]),
            -np.einsum("vn,vn->n", wd[..., 0], d[..., 2]),
            W - np.einsum("vn,vn->n", wd[..., 1], d[..., 1]),
            -np.einsum("vn,vn->n", wd[..., 1], d[..., 2]),
            W - np.einsum("vn,vn->n", wd[..., 2], d[..., 2]),
        ])
        rhs = np.einsum("vn,vi->in", w, self.C) - np.einsum("vni,vn->in", wd, self.dC)
        X, _ = _solve_sym3(m, rhs)
        return X

    def depth_weights(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Weights s_v (f_v / z_v)^2 on the views in ``mask``: the ray distance then approximates pixels."""
        z = self.depth(np.where(np.isfinite(X), X, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            g = (self.focal[:, None] / np.where(z > 1e-9, z, np.nan)) ** 2
        return np.where(mask & np.isfinite(g), self.s * g, 0.0)

    def normal_equations(self, X: np.ndarray, w: np.ndarray, with_gradient: bool):
        """Gauss-Newton normal matrix (6, N) sum_v w J^T J of the pixel reprojection error, and the
        gradient (3, N) sum_v w J^T r (pinhole Jacobian in undistorted normalized coordinates x f)."""
        X0 = np.where(np.isfinite(X), X, 0.0)
        H = np.zeros((6, self.N))
        grad = np.zeros((3, self.N)) if with_gradient else None
        for v in range(self.V):
            wv = w[v]
            if not wv.any():
                continue
            R = self.R[v]
            Xc = np.einsum("ni,ji->nj", X0, R) + self.t[v]
            z = Xc[:, 2]
            with np.errstate(invalid="ignore", divide="ignore"):
                g = np.where(z > 1e-9, self.focal[v] / z, 0.0)
                iz = np.where(z > 1e-9, 1.0 / z, 0.0)
            px, py = Xc[:, 0] * iz, Xc[:, 1] * iz
            a = g[:, None] * (R[0] - px[:, None] * R[2])  # (N, 3) d(pixel x)/dX
            b = g[:, None] * (R[1] - py[:, None] * R[2])
            wa, wb = wv[:, None] * a, wv[:, None] * b
            H[0] += wa[:, 0] * a[:, 0] + wb[:, 0] * b[:, 0]
            H[1] += wa[:, 0] * a[:, 1] + wb[:, 0] * b[:, 1]
            H[2] += wa[:, 0] * a[:, 2] + wb[:, 0] * b[:, 2]
            H[3] += wa[:, 1] * a[:, 1] + wb[:, 1] * b[:, 1]
            H[4] += wa[:, 1] * a[:, 2] + wb[:, 1] * b[:, 2]
            H[5] += wa[:, 2] * a[:, 2] + wb[:, 2] * b[:, 2]
            if with_gradient:
                rx = self.focal[v] * (px - self.x[v])
                ry = self.focal[v] * (py - self.y[v])
                grad += (wa * rx[:, None] + wb * ry[:, None]).T
        return H, grad


def triangulate(keypoints2d: np.ndarray, rig, cfg: TriangulationConfig = TriangulationConfig()) -> Triangulation3D:
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
    views = _Views(flat, rig, cfg)
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
    _, cov6 = _solve_sym3(info, np.zeros((3, N)))
    with np.errstate(invalid="ignore"):
        too_uncertain = finite & ~(np.sqrt(cov6[0] + cov6[3] + cov6[5]) <= cfg.max_uncertainty_m)
    X[too_uncertain] = np.nan
    finite &= ~too_uncertain
    used &= finite[None, :]
    covariance = _sym6_to_full(cov6)
    covariance[~finite] = np.nan

    # Residuals of every detected view in distorted pixels, with the full camera model.
    detected = np.all(np.isfinite(flat[..., :2]), axis=-1)
    residual_px = np.full((V, N), np.nan)
    for v, cam in enumerate(rig):
        m = detected[v] & finite
        if m.any():
            diff = _project(cam, X[m]) - flat[v, m, :2]
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


def _robust_solve(views: _Views, cfg: TriangulationConfig) -> tuple[np.ndarray, np.ndarray]:
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
    views: _Views, tau: np.ndarray, cfg: TriangulationConfig, order: np.ndarray
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


def _refine(views: _Views, X: np.ndarray, used: np.ndarray, cfg: TriangulationConfig) -> np.ndarray:
    """Gauss-Newton on the pixel reprojection error of the used views with a robust loss (IRLS)."""
    for _ in range(int(cfg.refine_iterations)):
        e = views.errors(np.where(np.isfinite(X), X, 0.0))
        robust = _robust_weight(np.nan_to_num(e), cfg.robust_loss, cfg.robust_scale_px)
        w = np.where(used & np.isfinite(e), views.s * robust, 0.0)
        H, grad = views.normal_equations(X, w, with_gradient=True)
        step, _ = _solve_sym3(H, grad)
        X = np.where(np.isfinite(step), X - step, X)
    return X


def triangulation_summary(result: Triangulation3D, camera_names, joint_names) -> dict:
    """JSON-ready summary: completeness, reprojection error per camera and per joint (median and mean
    over used views, pixels), and how often each camera's detections were excluded."""
    used, res = result.used, result.residual_px  # (T, V, J)
    detected = np.isfinite(res)

    def stats(mask_axis_values):
        vals = mask_axis_values[np.isfinite(mask_axis_values)]
        if vals.size == 0:
            return {"median_px": None, "mean_px": None, "count": 0}
        return {"median_px": round(float(np.median(vals)), 3), "mean_px": round(float(np.mean(vals)), 3),
                "count": int(vals.size)}

    used_res = np.where(used, res, np.nan)
    per_camera = {}
    for v, name in enumerate(camera_names):
        n_det = int(detected[:, v].sum())
        n_excl = int((detected[:, v] & ~used[:, v]).sum())
        per_camera[str(name)] = {
            **stats(used_res[:, v]),
            "detections": n_det,
            "excluded": n_excl,
            "exclusion_rate": round(n_excl / n_det, 4) if n_det else None,
        }
    per_joint = {}
    finite = np.all(np.isfinite(result.xyz), axis=-1)
    for j, name in enumerate(joint_names):
        completeness = round(float(finite[:, j].mean()), 4) if finite.size else None
        per_joint[str(name)] = {**stats(used_res[:, :, j]), "completeness": completeness}
    return {
        "frames": int(result.xyz.shape[0]),
        "joints": int(result.xyz.shape[1]),
        "completeness": round(result.completeness, 4),
        "missing_points": result.num_missing,
        "reprojection_error_px": stats(used_res),
        "reprojection_error_all_detections_px": stats(res),
        "mean_views_used": round(float(result.n_views[finite].mean()), 3) if finite.any() else None,
        "per_camera": per_camera,
        "per_joint": per_joint,
    }
