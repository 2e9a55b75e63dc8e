"""The geometry of many points seen by many views at once: rays, weights, normal equations.

Shapes: ``V`` views, ``N`` points (``T * J`` flattened). Every method works on all points at once.
"""
from __future__ import annotations

import numpy as np

from calibration.camera import Rig, distort_normalized
from reconstruction.triangulation.config import TriangulationConfig

_MIN_RELATIVE_DET = 1e-12  # det(M) / trace(M)^3 below this: rays (nearly) parallel -> NaN


def solve_sym3(m: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def project_points(cam, X: np.ndarray) -> np.ndarray:
    """``cam.project`` (world (N, 3) -> distorted pixels (N, 2)) without BLAS; NaN behind the camera."""
    Xc = np.einsum("ni,ji->nj", X, cam.R) + cam.t
    z = Xc[:, 2:3]
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = np.where(z > 0, Xc[:, :2] / z, np.nan)
    xy = distort_normalized(xy, cam.dist)
    return np.einsum("ni,ji->nj", xy, cam.K[:2, :2]) + cam.K[:2, 2]


def sym6_to_full(m6: np.ndarray) -> np.ndarray:
    """(6, N) unique entries -> (N, 3, 3) symmetric matrices."""
    xx, xy, xz, yy, yz, zz = m6
    return np.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], axis=-1).reshape(-1, 3, 3)


class Views:
    """Per-view camera arrays and the undistorted detections of all points, layout (V, N)."""

    def __init__(self, flat: np.ndarray, rig: Rig, cfg: TriangulationConfig):
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

    def subset(self, idx: np.ndarray) -> "Views":
        """The same views restricted to points ``idx``."""
        sub = object.__new__(Views)
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
        X, _ = solve_sym3(m, rhs)
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
