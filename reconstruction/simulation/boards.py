"""Images of a calibration board as a camera sees it, with the true corner pixels (tests, simulator).

The board image from :func:`calibration.board.render_board` is mapped into the camera by ray casting:
each pixel of the distorted image is undistorted to a ray, the ray meets the board plane (a
homography), and ``cv2.remap`` samples the board texture there. Supersampling anti-aliases edges.
"""
from __future__ import annotations

import numpy as np

from calibration.board import BoardSpec, board_scale, render_board
from calibration.camera import Camera, Rig


def board_corners_world(spec: BoardSpec, R_board: np.ndarray, t_board: np.ndarray) -> np.ndarray:
    """(N, 3) world positions of the inner corners of a board at pose ``X_world = R_board @ X_board + t_board``."""
    return spec.object_points() @ np.asarray(R_board, dtype=np.float64).T + np.asarray(t_board, dtype=np.float64)


_GRID_CACHE: dict = {}


def _normalized_grid(camera: Camera, supersample: int) -> np.ndarray:
    """(H s, W s, 2) normalized undistorted coordinates of the (sub)pixel centres; cached per
    intrinsics (undistorting every pixel is the slow part of rendering)."""
    key = (camera.image_size, camera.K.tobytes(), camera.dist.tobytes(), supersample)
    if key not in _GRID_CACHE:
        if len(_GRID_CACHE) > 8:
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = _compute_grid(camera, supersample)
    return _GRID_CACHE[key]


def _compute_grid(camera: Camera, supersample: int) -> np.ndarray:
    w, h = camera.image_size
    s = supersample
    u = (np.arange(w * s) + 0.5) / s - 0.5
    v = (np.arange(h * s) + 0.5) / s - 0.5
    uu, vv = np.meshgrid(u, v)
    uv = np.stack([uu, vv], axis=-1).reshape(-1, 2)
    if camera.dist.size and np.any(camera.dist):
        return camera.undistort_points(uv, normalized=True).reshape(h * s, w * s, 2)
    xy = (uv - camera.K[:2, 2]) @ np.linalg.inv(camera.K[:2, :2]).T
    return xy.reshape(h * s, w * s, 2)


def _board_bbox(camera: Camera, spec: BoardSpec, R_board, t_board, margin_m: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel box around the board's projected outline (the whole image when part
    of the board is behind the camera)."""
    w, h = camera.image_size
    width, height = spec.size_m
    u = np.linspace(-margin_m, width + margin_m, 25)
    v = np.linspace(-margin_m, height + margin_m, 25)
    edges = np.concatenate([
        np.stack([u, np.full_like(u, v[0])], 1), np.stack([u, np.full_like(u, v[-1])], 1),
        np.stack([np.full_like(v, u[0]), v], 1), np.stack([np.full_like(v, u[-1]), v], 1)])
    X = np.concatenate([edges, np.zeros((len(edges), 1))], axis=1) @ np.asarray(R_board).T + t_board
    Xc = camera.world_to_camera(X)
    if np.any(Xc[:, 2] < 0.05):
        return 0, 0, w, h
    # Far outside the field of view a distortion polynomial can fold points back into the image.
    corners = camera.undistort_points(np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float), normalized=True)
    if np.max(np.linalg.norm(Xc[:, :2] / Xc[:, 2:], axis=1)) > 1.5 * np.max(np.linalg.norm(corners, axis=1)):
        return 0, 0, w, h
    uv = camera.project(X)
    x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 3
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 4
    x0, x1 = int(np.clip(x0, 0, w)), int(np.clip(x1, 0, w))
    y0, y1 = int(np.clip(y0, 0, h)), int(np.clip(y1, 0, h))
    return x0, y0, max(x0, x1), max(y0, y1)


def render_board_view(
    camera: Camera,
    spec: BoardSpec,
    R_board: np.ndarray,
    t_board: np.ndarray,
    background: int | np.ndarray = 128,
    supersample: int = 2,
    blur_sigma: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey image (H, W) uint8 of the board at world pose (R_board, t_board) seen by ``camera``.

    ``background`` is a grey level or an (H, W) uint8 image. Returns ``(image, corners, visible)``:
    the true distorted pixels (N, 2) of every inner corner (NaN behind the camera) and whether each
    lies inside the image and on the side of the board facing the camera.
    """
    import cv2

    R_board = np.asarray(R_board, dtype=np.float64)
    t_board = np.asarray(t_board, dtype=np.float64)
    w, h = camera.image_size
    # Board -> camera: x_cam = Rc @ x_board + tc.
    Rc = camera.R @ R_board
    tc = camera.R @ t_board + camera.t
    # Texture resolution: about two texels per image pixel at the board's nearest corner.
    depth = np.min((spec.object_points() @ Rc.T + tc)[:, 2])
    focal = max(camera.K[0, 0], camera.K[1, 1]) * supersample
    max_texture = 4096 / max(spec.size_m)  # bounded memory when the board is very close or behind
    px_per_m = float(np.clip(2.0 * focal / max(depth, 1e-3), min(200.0, max_texture), max_texture))
    px_per_m, _, margin_px = board_scale(spec, px_per_m, margin_m=spec.square_length / 2)  # white border as on a print
    texture = render_board(spec, px_per_m=px_per_m, margin_m=spec.square_length / 2)

    xy = _normalized_grid(camera, supersample)
    s = supersample
    # Only the pixels around the board's outline need ray casting.
    x0, y0, x1, y1 = _board_bbox(camera, spec, R_board, t_board, margin_m=spec.square_length / 2)
    sub = xy[y0 * s:y1 * s, x0 * s:x1 * s]
    # Ray (x, y, 1) meets the plane z_board = 0 where (X, Y, 1) ~ H^-1 (x, y, 1), H = [r1 r2 tc].
    Hinv = np.linalg.inv(np.column_stack([Rc[:, 0], Rc[:, 1], tc]))
    board_h = sub[..., :1] * Hinv[:, 0] + sub[..., 1:2] * Hinv[:, 1] + Hinv[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        bx = board_h[..., 0] / board_h[..., 2]
        by = board_h[..., 1] / board_h[..., 2]
    # The ray hits the plane in front of the camera when the homogeneous scale is positive.
    in_front = board_h[..., 2] > 0
    map_x = np.where(in_front, bx * px_per_m + margin_px - 0.5, -1e6).astype(np.float32)
    map_y = np.where(in_front, by * px_per_m + margin_px - 0.5, -1e6).astype(np.float32)
    if np.isscalar(background) or np.ndim(background) == 0:
        image = np.full((h * s, w * s), float(background), np.float32)
    else:
        bg = np.asarray(background, dtype=np.float32)
        if bg.shape != (h, w):
            raise ValueError(f"background must be ({h}, {w}), got {bg.shape}")
        image = cv2.resize(bg, (w * s, h * s), interpolation=cv2.INTER_NEAREST)
    if sub.size:
        sampled = cv2.remap(texture.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
        region = image[y0 * s:y1 * s, x0 * s:x1 * s]
        region[...] = np.where(sampled >= 0, sampled, region)
    if supersample > 1:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    corners = camera.project(board_corners_world(spec, R_board, t_board))
    facing = (Rc[:, 2] @ tc) > 0  # camera on the printed side (board z points away from it)
    inside = np.all(np.isfinite(corners), axis=1) & (corners[:, 0] >= 0) & (corners[:, 1] >= 0) \
        & (corners[:, 0] <= w - 1) & (corners[:, 1] <= h - 1)
    return image, corners, inside & facing


def board_facing(position: np.ndarray, toward: np.ndarray, tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 spec: BoardSpec | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Board pose (R_board, t_board), board -> world, with the board's centre at ``position`` and its
    printed side facing the point ``toward``, then rotated by ``tilt_deg`` (x, y, z degrees, board axes)."""
    from scipy.spatial.transform import Rotation

    from reconstruction.simulation.rigs import look_at

    position = np.asarray(position, dtype=np.float64)
    R_look, _ = look_at(position, np.asarray(toward, dtype=np.float64))
    # look_at rows: right, down, forward (towards ``toward``); board z must point away from the viewer.
    R_board = np.stack([-R_look[0], R_look[1], -R_look[2]], axis=1)
    R_board = R_board @ Rotation.from_euler("xyz", tilt_deg, degrees=True).as_matrix()
    centre = spec.object_points().mean(axis=0) if spec is not None else np.zeros(3)
    return R_board, position - R_board @ centre


def random_board_poses(rig, spec: BoardSpec, num_frames: int, rng: np.random.Generator,
                       centre=(0.0, 0.0, 1.0), spread: tuple[float, float, float] = (0.8, 0.8, 0.4),
                       max_tilt_deg: float = 40.0, near_fraction: float = 0.5,
                       near_distance: tuple[float, float] = (1.2, 2.2)) -> list[tuple[np.ndarray, np.ndarray]]:
    """Board poses as someone walks a board through the volume around ``centre``, randomly tilted by
    up to ``max_tilt_deg``: a ``near_fraction`` of the frames close to one camera
    (``near_distance`` m) facing it and spread across its image (seen by that camera only: they
    pin down its intrinsics), the others in the middle facing one camera or the midpoint of two
    neighbours (seen by one, two or more cameras: they link the cameras)."""
    centres = rig.centers
    V = len(centres)
    centre = np.asarray(centre, dtype=np.float64)
    poses = []
    for _ in range(num_frames):
        k = int(rng.integers(V))
        tilt = rng.uniform(-max_tilt_deg, max_tilt_deg, 3) * np.array([1.0, 1.0, 2.0])
        if rng.random() < near_fraction:
            cam = rig[k]
            distance = rng.uniform(*near_distance)
            # A random point of the image (away from the border) pushed out to ``distance``.
            w, h = cam.image_size
            uv = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
            ray = np.append(cam.undistort_points(uv, normalized=True), 1.0)
            position = cam.R.T @ (ray / np.linalg.norm(ray) * distance - cam.t)
            poses.append(board_facing(position, cam.center, tuple(tilt), spec))
        else:
            position = centre + rng.uniform(-1, 1, 3) * np.asarray(spread)
            toward = centres[k] if rng.random() < 0.4 else 0.5 * (centres[k] + centres[(k + 1) % V])
            poses.append(board_facing(position, toward, tuple(tilt), spec))
    return poses


def projected_detections(rig, spec: BoardSpec, poses: list, noise_px: float, rng: np.random.Generator,
                         min_corners: int = 6, max_incidence_deg: float = 70.0) -> dict:
    """{camera: {frame: Detection}} of the board corners projected at each pose with Gaussian noise
    (``noise_px`` per axis); a view counts when the printed side faces the camera within
    ``max_incidence_deg`` and at least ``min_corners`` corners fall inside the image. Frames are
    named ``f0000``, ``f0001``, ... Views that do not count are absent."""
    from calibration.detect import Detection

    detections = {c.name: {} for c in rig}
    for f, (R_board, t_board) in enumerate(poses):
        X = board_corners_world(spec, R_board, t_board)
        normal = -R_board[:, 2]  # printed side's outward normal
        for cam in rig:
            view = cam.center - X.mean(axis=0)
            cos = normal @ view / np.linalg.norm(view)
            if cos < np.cos(np.radians(max_incidence_deg)):
                continue
            uv = cam.project(X)
            w, h = cam.image_size
            inside = np.all(np.isfinite(uv), axis=1) & (uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] <= h - 1)
            if inside.sum() < min_corners:
                continue
            ids = np.flatnonzero(inside)
            noisy = uv[ids] + rng.normal(scale=noise_px, size=(len(ids), 2))
            detections[cam.name][f"f{f:04d}"] = Detection(ids, noisy, cam.image_size)
    return detections


def write_board_images(rig, spec: BoardSpec, poses: list, root, background: int = 128,
                       noise_sigma: float = 0.0, rng: np.random.Generator | None = None,
                       only_visible: bool = True, min_corners: int = 6) -> dict:
    """Render ``ROOT/<camera>/fNNNN.png`` for every (camera, pose); returns the true corner pixels
    {camera: {frame: (ids (N,), corners (N, 2))}} of the views where the board faces the camera
    with at least ``min_corners`` corners inside. With ``only_visible`` other views are not written.
    ``noise_sigma`` adds Gaussian grey-level noise."""
    import cv2
    from pathlib import Path

    rng = rng or np.random.default_rng(0)
    root = Path(root)
    truth: dict = {c.name: {} for c in rig}
    for cam in rig:
        (root / cam.name).mkdir(parents=True, exist_ok=True)
    for f, (R_board, t_board) in enumerate(poses):
        frame = f"f{f:04d}"
        for cam in rig:
            image, corners, visible = render_board_view(cam, spec, R_board, t_board, background=background)
            seen = visible.sum() >= min_corners
            if only_visible and not seen:
                continue
            if noise_sigma > 0:
                image = np.clip(image + rng.normal(scale=noise_sigma, size=image.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / cam.name / f"{frame}.png"), image)
            if seen:
                ids = np.flatnonzero(visible)
                truth[cam.name][frame] = (ids, corners[ids])
    return truth


BOARD_KEY_S = 0.5  # seconds between two key poses of the simulated board


def board_tour(rig: Rig, spec, num_frames: int, fps: float, rng: np.random.Generator):
    """Smooth board motion through the volume that shows the board to every camera, with views
    shared by neighbours: key poses ``BOARD_KEY_S`` apart face camera 0, the midpoint of cameras
    0 and 1 (seen by both, about 45 degrees from each on a ring), camera 1, the midpoint of 1 and
    2, ... in turn, at random places of the volume around (0, 0, 1.1) m and randomly tilted (up to
    20 degrees out of plane, 30 in plane); interpolated (slerp for the rotation, linear for the
    centre). With one camera every key faces it. Returns R (T, 3, 3), t (T, 3), board -> world."""
    from scipy.spatial.transform import Rotation, Slerp

    centres = rig.centers
    V = len(centres)
    duration = (num_frames - 1) / fps
    keys = int(np.ceil(duration / BOARD_KEY_S)) + 1 if num_frames > 1 else 1
    step = np.arange(keys)
    cam = (step // 2) % V
    toward = np.where((step % 2 == 1)[:, None] & (V > 1), 0.5 * (centres[cam] + centres[(cam + 1) % V]), centres[cam])
    positions = np.array([0.0, 0.0, 1.1]) + rng.uniform(-1, 1, (keys, 3)) * np.array([0.5, 0.5, 0.3])
    tilts = rng.uniform(-1, 1, (keys, 3)) * np.array([20.0, 20.0, 30.0])
    poses = [board_facing(positions[i], toward[i], tuple(tilts[i]), spec) for i in range(keys)]  # a few keys
    R_keys = np.stack([R for R, _ in poses])
    centre = spec.object_points().mean(axis=0)
    c_keys = np.stack([t + R @ centre for R, t in poses])
    times = np.arange(num_frames) / fps
    if keys == 1:
        return np.repeat(R_keys, num_frames, axis=0), np.repeat(c_keys - R_keys @ centre, num_frames, axis=0)
    key_times = step * BOARD_KEY_S
    R = Slerp(key_times, Rotation.from_matrix(R_keys))(times).as_matrix()
    c = np.stack([np.interp(times, key_times, c_keys[:, i]) for i in range(3)], axis=1)
    return R, c - R @ centre
