"""Pinhole camera with OpenCV distortion, and a rig of cameras sharing one world frame.

Conventions (OpenCV): extrinsics map world -> camera, ``x_cam = R @ X_world + t``, metres.
Image points are pixels of the distorted image, origin at the centre of the top-left pixel.
Distortion coefficients are in OpenCV order ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

_DIST_LENGTHS = (0, 4, 5, 8)


def _as_float_array(value, shape: tuple[int, ...], what: str, camera: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"camera {camera!r}: {what} must be {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"camera {camera!r}: {what} contains NaN or infinity")
    return array


def rodrigues_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) in radians -> rotation matrices (..., 3, 3)."""
    rvec = np.asarray(rvec, dtype=np.float64)
    theta = np.linalg.norm(rvec, axis=-1, keepdims=True)
    safe = np.where(theta > 1e-12, theta, 1.0)
    axis = rvec / safe
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zeros = np.zeros_like(x)
    cross = np.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], axis=-1).reshape(rvec.shape[:-1] + (3, 3))
    theta = theta[..., None]
    eye = np.broadcast_to(np.eye(3), cross.shape)
    outer = axis[..., :, None] * axis[..., None, :]
    rotation = np.cos(theta) * eye + (1 - np.cos(theta)) * outer + np.sin(theta) * cross
    small = (theta[..., 0, 0] <= 1e-12)
    return np.where(small[..., None, None], eye, rotation)


def matrix_to_rodrigues(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> rotation vectors (..., 3) in radians (via scipy, stable at pi)."""
    from scipy.spatial.transform import Rotation

    rotation = np.asarray(rotation, dtype=np.float64)
    flat = rotation.reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(rotation.shape[:-2] + (3,))


def distort_normalized(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply OpenCV distortion to normalized image points (..., 2) -> (..., 2)."""
    if dist.size == 0 or not np.any(dist):
        return xy
    d = np.zeros(8)
    d[: dist.size] = dist
    k1, k2, p1, p2, k3, k4, k5, k6 = d
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera.

    Attributes:
        name: unique name in its rig (for RealSense cameras, usually the serial).
        image_size: (width, height) in pixels.
        K: (3, 3) intrinsic matrix in pixels.
        dist: (k,) OpenCV distortion, k in {0, 4, 5, 8}.
        R: (3, 3) rotation world -> camera.
        t: (3,) translation world -> camera, metres.
        serial: device serial number when known ("" otherwise), used to match recordings.
    """

    name: str
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    serial: str = ""

    def __post_init__(self):
        name = str(self.name)
        object.__setattr__(self, "name", name)
        size = tuple(int(round(float(v))) for v in np.asarray(self.image_size).ravel())
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"camera {name!r}: image_size must be (width, height) > 0, got {self.image_size}")
        object.__setattr__(self, "image_size", size)
        K = _as_float_array(self.K, (3, 3), "K", name)
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"camera {name!r}: focal lengths in K must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        object.__setattr__(self, "K", K)
        dist = np.asarray(self.dist, dtype=np.float64).ravel()
        if dist.size not in _DIST_LENGTHS:
            if dist.size < 8 and dist.size > 0:
                dist = np.concatenate([dist, np.zeros(_next_length(dist.size) - dist.size)])
            else:
                raise ValueError(f"camera {name!r}: dist must have 0, 4, 5 or 8 coefficients, got {dist.size}")
        object.__setattr__(self, "dist", _as_float_array(dist, dist.shape, "dist", name))
        R = _as_float_array(self.R, (3, 3), "R", name)
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError(f"camera {name!r}: R is not a rotation matrix (R R^T != I or det < 0)")
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", _as_float_array(np.ravel(self.t), (3,), "t", name))
        object.__setattr__(self, "serial", str(self.serial or ""))

    @property
    def width(self) -> int:
        return self.image_size[0]

    @property
    def height(self) -> int:
        return self.image_size[1]

    @property
    def rvec(self) -> np.ndarray:
        """Rotation vector (3,) of R, radians."""
        return matrix_to_rodrigues(self.R)

    @property
    def extrinsic(self) -> np.ndarray:
        """(3, 4) matrix [R | t] mapping world -> camera."""
        return np.hstack([self.R, self.t[:, None]])

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix K [R | t] (ignores distortion)."""
        return self.K @ self.extrinsic

    @property
    def center(self) -> np.ndarray:
        """Camera centre (3,) in world metres."""
        return -self.R.T @ self.t

    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera-frame points (..., 3), metres."""
        return np.asarray(X, dtype=np.float64) @ self.R.T + self.t

    def project(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) metres -> distorted pixels (..., 2). NaN in, NaN out.

        Points behind the camera project to NaN.
        """
        Xc = self.world_to_camera(X)
        z = Xc[..., 2:3]
        with np.errstate(invalid="ignore", divide="ignore"):
            xy = np.where(z > 0, Xc[..., :2] / z, np.nan)
        xy = distort_normalized(xy, self.dist)
        return xy @ self.K[:2, :2].T + self.K[:2, 2]

    def undistort_points(self, uv: np.ndarray, normalized: bool = False) -> np.ndarray:
        """Distorted pixels (..., 2) -> undistorted pixels (or normalized coordinates) (..., 2).

        NaN stays NaN. Uses OpenCV's iterative undistortion.
        """
        import cv2

        uv = np.asarray(uv, dtype=np.float64)
        shape = uv.shape
        flat = uv.reshape(-1, 2)
        out = np.full_like(flat, np.nan)
        valid = np.all(np.isfinite(flat), axis=1)
        if valid.any():
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
            und = cv2.undistortPoints(flat[valid][:, None, :], self.K, self.dist, R=None, P=None, criteria=criteria)
            und = und.reshape(-1, 2)
            out[valid] = und if normalized else und @ self.K[:2, :2].T + self.K[:2, 2]
        return out.reshape(shape)

    def with_pose(self, R: np.ndarray, t: np.ndarray) -> "Camera":
        """Copy with new extrinsics."""
        return replace(self, R=R, t=t)


def _next_length(n: int) -> int:
    return next(length for length in _DIST_LENGTHS if length >= n)


@dataclass(frozen=True, eq=False)
class Rig:
    """Ordered cameras in one world frame; the view axis ``V`` of every array follows this order."""

    cameras: tuple[Camera, ...]

    def __post_init__(self):
        cameras = tuple(self.cameras)
        if not cameras:
            raise ValueError("a rig needs at least one camera")
        names = [c.name for c in cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique in a rig, repeated: {', '.join(duplicates)}")
        object.__setattr__(self, "cameras", cameras)

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self):
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            return self.cameras[self.index(key)]
        return self.cameras[key]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"camera {name!r} is not in the rig (cameras: {', '.join(self.names)})") from None

    def find(self, name_or_serial: str) -> Camera | None:
        """Camera whose name or serial is ``name_or_serial``, else None."""
        for camera in self.cameras:
            if name_or_serial in (camera.name, camera.serial):
                return camera
        return None

    def match(self, name: str) -> Camera | None:
        """The camera a file or a view called ``name`` belongs to: by name or serial exactly, else by
        the one loose match of either (:func:`capture.names.match_name`: ``CAM_01``, ``cam01_json``
        and ``cam01`` are one camera); None when none or several match."""
        from capture.names import match_name

        exact = self.find(str(name))
        if exact is not None:
            return exact
        by_name = match_name(name, self.names)
        by_serial = match_name(name, [c.serial or "" for c in self.cameras])
        found = {i for i in (by_name, by_serial) if i is not None}
        return self.cameras[found.pop()] if len(found) == 1 else None

    def subset(self, names: list[str]) -> "Rig":
        """Rig of the named cameras in the given order; KeyError lists the missing names."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise KeyError(f"cameras not in the rig: {', '.join(missing)} (rig has: {', '.join(self.names)})")
        return Rig(tuple(self[n] for n in names))

    @property
    def projection_matrices(self) -> np.ndarray:
        """(V, 3, 4) matrices K [R | t]."""
        return np.stack([c.P for c in self.cameras])

    @property
    def centers(self) -> np.ndarray:
        """(V, 3) camera centres, world metres."""
        return np.stack([c.center for c in self.cameras])

    def project(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> distorted pixels (..., V, 2) in every camera."""
        return np.stack([c.project(X) for c in self.cameras], axis=-2)

    def transformed(self, R_new_old: np.ndarray, t_new_old: np.ndarray, scale: float = 1.0) -> "Rig":
        """Rig expressed in a new world frame where ``X_new = scale * R_new_old @ X_old + t_new_old``."""
        R_new_old = np.asarray(R_new_old, dtype=np.float64)
        t_new_old = np.asarray(t_new_old, dtype=np.float64)
        cameras = []
        for c in self.cameras:
            R = c.R @ R_new_old.T
            t = scale * c.t - R @ t_new_old
            cameras.append(c.with_pose(R, t))
        return Rig(tuple(cameras))
