"""Depth fusion: known answers from depth maps rendered of spheres in front of a plane."""
import numpy as np
import pytest

from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.fusion import fuse
from reconstruction.depth.offsets import apply_offsets, estimate_joint_offsets, joint_offsets
from reconstruction.depth.reading import lift_keypoints_with_depth, robust_window_depth
from reconstruction.depth.residuals import depth_residuals

DEPTH_SCALE = 0.001  # metres per unit, as RealSense D4xx


_RAYS = {}


def _pixel_rays(camera):
    """(H, W, 3) ray of each pixel with z = 1 (cached per camera: undistortion is the slow part)."""
    if id(camera) not in _RAYS:
        w, h = camera.image_size
        u, v = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
        xy = camera.undistort_points(np.stack([u, v], axis=-1), normalized=True)
        _RAYS[id(camera)] = (camera, np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1))
    return _RAYS[id(camera)][1]


def render_spheres(camera, centers, radii, wall_z=5.0):
    """Depth image (H, W) uint16 (mm, z along the optical axis) of spheres (N, 3) world with
    ``radii`` (N,) in front of a wall at camera depth ``wall_z``."""
    rays = _pixel_rays(camera)
    c = camera.world_to_camera(np.asarray(centers))  # (N, 3)
    # |s ray - c|^2 = r^2 -> a s^2 - 2 b s + (|c|^2 - r^2) = 0, nearest root s = z.
    a = np.sum(rays**2, axis=-1)[..., None]
    b = rays @ c.T
    disc = b**2 - a * (np.sum(c**2, axis=-1) - np.asarray(radii) ** 2)
    with np.errstate(invalid="ignore"):
        s = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    z = np.minimum(s.min(axis=-1), wall_z)
    return np.round(z / DEPTH_SCALE).astype(np.uint16)


def sphere_scene(rig, rng, n=6):
    """Spheres stacked along the vertical (no sphere hides another from the ring cameras)."""
    centers = np.column_stack([rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n), np.linspace(0.4, 1.6, n)])
    radii = rng.uniform(0.04, 0.09, n)
    return centers, radii


def test_lift_recovers_sphere_centres_noiseless(rig4, rng):
    centers, radii = sphere_scene(rig4, rng)
    depth = np.stack([render_spheres(c, centers, radii) for c in rig4.cameras])[None]  # (1, V, H, W)
    uv = rig4.project(centers)  # (N, V, 2)
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1).transpose(1, 0, 2)[None]  # (1, V, N, 3)
    cfg = DepthFusionConfig(window_px=2, window_fraction=0.0)  # the square window
    lift = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, cfg=cfg, offsets_m=radii)
    err = np.linalg.norm(lift.points[0] - centers[None], axis=-1)  # (V, N)
    visible = np.isfinite(err)
    assert visible.mean() > 0.8
    # Quantization 1 mm + sphere curvature inside a 5x5 window: a few millimetres.
    assert np.nanmax(err) < 0.006, err
    # Without the offset the surface is one radius short along the ray.
    surf_err = np.linalg.norm(lift.surface[0] - centers[None], axis=-1)
    np.testing.assert_allclose(surf_err[visible], np.broadcast_to(radii, surf_err.shape)[visible], atol=0.006)


def test_lift_covariance_along_the_ray_is_the_depth_noise_across_it_the_pixel_noise(rig4, rng):
    centers, radii = sphere_scene(rig4, rng)
    cam = rig4.cameras[0]
    depth = render_spheres(cam, centers, radii)[None, None]
    uv = cam.project(centers)
    kp = np.concatenate([uv, np.ones((len(uv), 1))], axis=-1)[None, None]
    from calibration.camera import Rig

    cfg = DepthFusionConfig(window_fraction=0.0)
    lift = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, Rig((cam,)), cfg=cfg, offsets_m=radii)
    cov = lift.covariance[0, 0, 0]
    ray = lift.points[0, 0, 0] - cam.center
    rng_m = np.linalg.norm(ray)
    ray /= rng_m
    z = cam.world_to_camera(lift.surface[0, 0, 0])[2]
    n_eff = min(cfg.independent_pixels, (2 * cfg.window_px + 1) ** 2)  # the window is all on the sphere
    expected_ray_sigma = np.hypot((cfg.noise_a_m + cfg.noise_b_per_m * z**2) * 1.2533 / np.sqrt(n_eff) * np.linalg.norm(
        cam.world_to_camera(lift.surface[0, 0, 0]) / z), cfg.offset_sigma_m)
    # the ray is an eigenvector: depth noise along it; the pixel noise at that range across it
    assert np.allclose(cov @ ray, expected_ray_sigma**2 * ray, rtol=1e-6, atol=1e-12)
    lateral = rng_m * cfg.pixel_sigma_px / (0.5 * (cam.K[0, 0] + cam.K[1, 1]))
    assert np.trace(cov) == pytest.approx(expected_ray_sigma**2 + 2 * lateral**2, rel=1e-6)


def test_window_prefers_the_nearest_cluster_over_background():
    cfg = DepthFusionConfig(window_px=3, min_valid_pixels=4, cluster_band_m=0.1)
    img = np.full((1, 40, 40), 4.0)
    img[0, :, :20] = 2.0  # person on the left half, background at 4 m on the right
    img[0, 10, 10] = 0.5  # one flying pixel in front
    uv = np.array([[[19.0, 15.0], [10.0, 10.0], [35.0, 35.0], [np.nan, np.nan]]])
    z = robust_window_depth(img, uv, cfg)
    np.testing.assert_allclose(z[0, :3], [2.0, 2.0, 4.0])
    assert np.isnan(z[0, 3])


def test_too_few_valid_pixels_gives_nan():
    cfg = DepthFusionConfig(window_px=1, min_valid_pixels=5)
    img = np.zeros((1, 10, 10))
    img[0, 5, 5] = img[0, 5, 4] = img[0, 4, 5] = 2.0
    assert np.isnan(robust_window_depth(img, np.array([[[5.0, 5.0]]]), cfg)[0, 0])


def _noisy_scene(rig4, rng, T=40, noise_px=3.0, depth_noise=(0.001, 0.0037)):
    """Spheres at random places per frame, noisy 2D in every view, noisy depth maps."""
    n = 4
    centers = np.stack([sphere_scene(rig4, rng, n)[0] + rng.normal(0, 0.05, 3) for _ in range(T)])  # (T, N, 3)
    radii = np.full(n, 0.06)
    depth = np.zeros((T, len(rig4), 480, 640), np.uint16)
    a, b = depth_noise
    for t in range(T):  # test fixture rendering, not library code
        for v, cam in enumerate(rig4.cameras):
            z = render_spheres(cam, centers[t], radii).astype(float) * DEPTH_SCALE
            z += rng.normal(size=z.shape) * (a + b * z**2)
            depth[t, v] = np.round(z / DEPTH_SCALE).astype(np.uint16)
    uv = rig4.project(centers).transpose(0, 2, 1, 3)  # (T, V, N, 2)
    uv = uv + rng.normal(0, noise_px, uv.shape)
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)
    return centers, radii, depth, kp


def _triangulate_dlt(kp, rig):
    """Plain DLT (T, V, J, 3) -> (T, J, 3), test reference only."""
    und = np.stack([c.undistort_points(kp[:, v, :, :2]) for v, c in enumerate(rig.cameras)], axis=1)
    P = rig.projection_matrices
    rows = np.concatenate([und[..., 0:1, None] * P[None, :, None, 2:3] - P[None, :, None, 0:1],
                           und[..., 1:2, None] * P[None, :, None, 2:3] - P[None, :, None, 1:2]], axis=-2)
    A = rows.transpose(0, 2, 1, 3, 4).reshape(kp.shape[0], kp.shape[2], -1, 4)
    X = np.linalg.svd(A)[2][..., -1, :]
    return X[..., :3] / X[..., 3:]


def test_fusion_by_inverse_covariance_reduces_error(rig4, rng):
    centers, radii, depth, kp = _noisy_scene(rig4, rng, T=10)
    # Triangulate from two adjacent views only (weak along their baseline), fuse all four depths.
    two = kp.copy()
    two[:, 2:] = np.nan
    from calibration.camera import Rig

    tri = _triangulate_dlt(kp[:, :2], Rig(rig4.cameras[:2]))
    lift = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, offsets_m=radii)
    result = fuse(tri, lift.points, lift.covariance, DepthFusionConfig(triangulation_sigma_floor_m=0.02))
    err_tri = np.linalg.norm(tri - centers, axis=-1)
    err_fused = np.linalg.norm(result.xyz - centers, axis=-1)
    assert np.all(np.isfinite(err_fused))
    assert np.mean(err_fused) < 0.7 * np.mean(err_tri), (np.mean(err_fused), np.mean(err_tri))
    # The covariance is honest: the error's Mahalanobis distance is of order 3 (3 dof).
    d = result.xyz - centers
    m2 = np.einsum("...i,...ij,...j->...", d, np.linalg.inv(result.covariance), d)
    assert 0.3 < np.median(m2) < 10


def test_joint_seen_by_one_rgbd_camera_is_reconstructed_metric(rig4, rng):
    centers, radii, depth, kp = _noisy_scene(rig4, rng, T=5, noise_px=1.0)
    single = kp.copy()
    single[:, 1:] = np.nan  # one view only: no triangulation possible
    tri = np.full(centers.shape, np.nan)
    lift = lift_keypoints_with_depth(single, depth, DEPTH_SCALE, rig4, offsets_m=radii)
    result = fuse(tri, lift.points, lift.covariance)
    err = np.linalg.norm(result.xyz - centers, axis=-1)
    assert np.all(np.isfinite(err))
    assert np.median(err) < 0.02
    assert result.depth_only_joints == err.size
    assert np.all(np.isfinite(result.covariance))
    assert np.all(np.isnan(result.disagreement_m))


def test_gating_rejects_a_depth_outlier(rig4):
    tri = np.array([[[0.0, 0.0, 1.0]]])
    pts = np.full((1, 2, 1, 3), np.nan)
    pts[0, 0, 0] = [0.003, 0.0, 1.0]  # agrees
    pts[0, 1, 0] = [0.5, 0.0, 1.0]  # an occluder half a metre away
    cov = np.broadcast_to(np.eye(3) * 0.01**2, (1, 2, 1, 3, 3)).copy()
    result = fuse(tri, pts, cov, DepthFusionConfig(triangulation_sigma_floor_m=0.01))
    assert result.depth_used[0].tolist() == [[True], [False]]
    np.testing.assert_allclose(result.xyz[0, 0], [0.0015, 0.0, 1.0], atol=1e-9)  # equal weights
    assert result.disagreement_m[0, 0] == pytest.approx(np.linalg.norm([0.2515, 0, 0]), abs=1e-3)


def test_offsets_table_and_estimation(rig4, rng):
    offsets = joint_offsets(["LHip", "nose", "unknown_joint"], DepthFusionConfig(default_offset_m=0.03))
    np.testing.assert_allclose(offsets, [0.08, 0.01, 0.03])
    custom = joint_offsets(["left_hip"], DepthFusionConfig(joint_offsets_m={"LHip": 0.11}))
    np.testing.assert_allclose(custom, [0.11])
    # Estimated from data: the surface is 5 cm in front of the true joints along each ray.
    T, J = 30, 3
    truth = rng.uniform(-0.4, 0.4, (T, J, 3)) + [0, 0, 1.0]
    true_off = np.array([0.05, 0.02, 0.08])
    centers = rig4.centers
    ray = truth[:, None] - centers[None, :, None]
    unit = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    surface = truth[:, None] - true_off[None, None, :, None] * unit
    est = estimate_joint_offsets(surface, truth, rig4, np.ones((T, J), bool), np.zeros(J))
    np.testing.assert_allclose(est, true_off, atol=1e-9)
    np.testing.assert_allclose(apply_offsets(surface, rig4, est), np.broadcast_to(truth[:, None], surface.shape))
    # Too few samples: the prior stays.
    few = estimate_joint_offsets(surface[:2], truth[:2], rig4, np.ones((2, J), bool), np.full(J, 0.04))
    np.testing.assert_allclose(few, 0.04)


def test_depth_residuals_are_ranges_along_the_rays_of_accepted_points(rig4, rng):
    centers, radii, depth, kp = _noisy_scene(rig4, rng, T=2, noise_px=0.5)
    lift = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, offsets_m=radii)
    result = fuse(centers, lift.points, lift.covariance)
    obs = depth_residuals(lift, result, rig4)
    assert obs.depth_m.shape == kp.shape[:3] and obs.ray_cam.shape == kp.shape[:3] + (3,)
    for v, cam in enumerate(rig4.cameras):
        X_true = cam.world_to_camera(centers)
        range_true = np.linalg.norm(X_true, axis=-1)
        used = result.depth_used[:, v]
        assert used.sum() > 0
        # the disc window's median lies a little behind a sphere's apex: within 3 cm
        np.testing.assert_allclose(obs.depth_m[:, v][used], range_true[used], atol=0.03)
        # the ray is the direction of the lifted point, within the 0.5 px noise of its pixel
        cos = np.sum(obs.ray_cam[:, v][used] * (X_true / range_true[..., None])[used], axis=-1)
        assert np.all(cos > np.cos(np.radians(0.5)))
        assert np.all(np.isnan(obs.depth_m[:, v][~used]))
        assert np.all((obs.sigma_m[:, v][used] > 0.002) & (obs.sigma_m[:, v][used] < 0.05))


def test_per_frame_list_with_missing_views_matches_array(rig4, rng):
    centers, radii = sphere_scene(rig4, rng)
    depth = np.stack([render_spheres(c, centers, radii) for c in rig4.cameras])
    uv = rig4.project(centers)
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1).transpose(1, 0, 2)[None]
    frames = [(depth[0], None, depth[2], depth[3])]
    lift = lift_keypoints_with_depth(kp, frames, [DEPTH_SCALE] * 4, rig4, offsets_m=radii)
    ref = lift_keypoints_with_depth(kp, depth[None], DEPTH_SCALE, rig4, offsets_m=radii)
    assert np.all(np.isnan(lift.points[0, 1]))
    np.testing.assert_array_equal(lift.points[0, [0, 2, 3]], ref.points[0, [0, 2, 3]])


def test_measure_depth_noise_separates_frame_noise_from_slow_bias(rig4):
    # Joints moving smoothly; depth points along each view's ray with white noise of 8 mm (joint 0)
    # and 30 mm (joint 1) while the model says 16 mm, and for joint 1 also a slow error (20 mm
    # sine over 3 s: sigma 14 mm). The triangulation has 5 mm white error, which it reports.
    from reconstruction.depth.noise import measure_depth_noise

    rng = np.random.default_rng(3)
    T, V, J = 600, len(rig4), 2
    t = np.arange(T) / 30.0
    truth = np.stack([np.stack([0.3 * np.sin(0.5 * t + k), 0.3 * np.cos(0.4 * t + k), 1.0 + 0.2 * np.sin(0.3 * t)], -1)
                      for k in range(J)], axis=1)  # (T, J, 3)
    ray = truth[:, None] - rig4.centers[None, :, None, :]
    u = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    white = np.array([0.008, 0.030])
    slow = np.stack([np.zeros(T), 0.02 * np.sin(2 * np.pi * t / 3.0)], axis=-1)  # (T, J)
    along = rng.normal(size=(T, V, J)) * white + slow[:, None, :]
    points = truth[:, None] + u * along[..., None]
    tri_xyz = truth + rng.normal(scale=0.005, size=truth.shape)
    tri_var = np.full((T, V, J), 0.005**2)
    white_var = np.full((T, V, J), 0.016**2)
    reliable = np.ones((T, J), dtype=bool)
    scale, bias = measure_depth_noise(points, white_var, tri_xyz, tri_var, reliable, rig4)
    np.testing.assert_allclose(scale, white / 0.016, rtol=0.12)
    assert bias[0] < 0.004  # the floor (3 mm): no slow error
    assert bias[1] == pytest.approx(0.02 / np.sqrt(2), rel=0.3)
    # too few samples: the model stands
    few = reliable & (np.arange(T) < 3)[:, None]
    points_few = np.where((np.arange(T) < 3)[:, None, None, None], points, np.nan)
    scale_few, bias_few = measure_depth_noise(points_few, white_var, tri_xyz, tri_var, few, rig4)
    np.testing.assert_array_equal(scale_few, 1.0)
    np.testing.assert_array_equal(bias_few, 0.003)
