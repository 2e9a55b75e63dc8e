"""reconstruction/depth/reading.py: reading depth: windows and disc windows, the expected-depth band,
lifting keypoints (and at a 3D estimate), the head's surface, depth crops for live use.

Known answers on synthetic depth images (steps, planes with an occluder) and on depth maps rendered of
spheres (``tests.support.render_spheres``: millimetre units, a wall at 5 m behind).
"""
import numpy as np
import pytest

from calibration.camera import Rig
from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.reading import lift_keypoints_with_depth, lift_midpoints_with_depth, robust_window_depth
from tests.support import DEPTH_SCALE, render_spheres, sphere_scene


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


def _head_surface(depth, depth_scale, rig, heads, cfg):
    """The head's visible surface (T, V, 3) and its variance (T, V) on each view's ray through the head
    centres ``heads`` (T, 3): the midpoint reading with the head's radius and disc fraction."""
    surface, var = lift_midpoints_with_depth(depth, depth_scale, rig, np.asarray(heads, dtype=float)[:, None],
                                             np.array([cfg.head_radius_m]), cfg.head_window_fraction, cfg)
    return surface[:, :, 0], var[:, :, 0]


def _disc_count(r: float) -> int:
    """Pixels of the disc window of radius ``r``: integer offsets with dx^2 + dy^2 <= r^2 + 0.5."""
    k = int(np.ceil(r))
    dy, dx = np.mgrid[-k : k + 1, -k : k + 1]
    return int(np.sum(dx**2 + dy**2 <= r**2 + 0.5))


@pytest.mark.parametrize("r", [3, 5, 8])
def test_disc_reads_only_the_pixels_within_its_radius(r):
    # 2 m inside the disc, a nearer surface (1.5 m: it would be the nearest cluster) just outside it.
    # The square of the same half-size reaches the step in its corners and reads it.
    H = W = 41
    c = 20
    dy, dx = np.mgrid[:H, :W] - c
    img = np.where(dx**2 + dy**2 <= r**2 + 0.5, 2.0, 1.5)[None]
    uv = np.array([[[float(c), float(c)]]])
    disc_cfg = DepthFusionConfig(window_px=1, max_window_px=12)
    z, n = robust_window_depth(img, uv, disc_cfg, return_count=True, radius_px=np.array([[float(r)]]))
    assert z[0, 0] == 2.0
    assert n[0, 0] == _disc_count(r)  # every pixel of the disc, and none outside
    square_cfg = DepthFusionConfig(window_px=r, window_fraction=0.0, max_window_px=r)
    assert robust_window_depth(img, uv, square_cfg)[0, 0] == 1.5


def test_disc_radius_is_clipped_to_window_px_and_max_window_px():
    img = np.full((1, 41, 41), 2.0)
    uv = np.array([[[20.0, 20.0], [20.0, 20.0], [20.0, 20.0]]])
    cfg = DepthFusionConfig(window_px=2, max_window_px=6)
    _, n = robust_window_depth(img, uv, cfg, return_count=True, radius_px=np.array([[0.5, 4.0, 30.0]]))
    assert n[0].tolist() == [_disc_count(2), _disc_count(4), _disc_count(6)]


def test_disc_on_a_rendered_sphere_reads_the_sphere_only(rig4):
    # A 9 cm sphere at 3 m spans ~18 px of radius; a 15 px disc lies on it entirely, the 31 x 31 square's
    # corners (21 px away) fall on the wall behind.
    cam = rig4.cameras[0]
    center = np.array([[0.0, 0.0, 1.0]])
    img = render_spheres(cam, center, [0.09]).astype(np.float64)[None] * DEPTH_SCALE
    uv = cam.project(center)[None]  # (1, 1, 2)
    r = 15.0
    cfg = DepthFusionConfig(window_px=3, max_window_px=20)
    z, n = robust_window_depth(img, uv, cfg, return_count=True, radius_px=np.array([[r]]))
    col, row = np.rint(uv[0, 0]).astype(int)
    dy, dx = np.mgrid[-15:16, -15:16]
    patch = img[0, row + dy, col + dx]
    inside = dx**2 + dy**2 <= r**2 + 0.5
    assert np.all(patch[inside] < 4.0)  # the disc is all sphere ...
    assert n[0, 0] == inside.sum()
    assert z[0, 0] == pytest.approx(np.median(patch[inside]), abs=1e-9)  # ... and its median is the answer
    square = DepthFusionConfig(window_px=15, window_fraction=0.0, max_window_px=15)
    _, n_sq = robust_window_depth(img, uv, square, return_count=True)
    assert np.sum(patch < 4.0) == n_sq[0, 0] < patch.size  # the square's corners met the wall


def _occluded_plane(rng, z_surface=2.0, z_occluder=1.8):
    """A plane at ``z_surface`` (2 mm noise, mm steps) with an occluder covering the left 40 % of the
    7 x 7 window around pixel (20, 20)."""
    img = z_surface + rng.normal(scale=0.002, size=(1, 41, 41))
    img[0, :, :20] = z_occluder  # columns 0..19: the window's columns 17..19 (3 of 7)
    return np.round(img, 3), np.array([[[20.0, 20.0]]])


def test_expected_depth_ignores_an_occluder_20_cm_in_front(rng):
    img, uv = _occluded_plane(rng)
    cfg = DepthFusionConfig(window_px=3, window_fraction=0.0)
    plain = robust_window_depth(img, uv, cfg)
    assert plain[0, 0] == pytest.approx(1.8, abs=1e-9)  # the nearest cluster is the occluder
    z = robust_window_depth(img, uv, cfg, expected_z=np.array([[2.0]]))
    assert z[0, 0] == pytest.approx(2.0, abs=0.002)
    # the expectation need not be exact: a surface 2 cm off still selects the plane
    assert robust_window_depth(img, uv, cfg, expected_z=np.array([[2.02]]))[0, 0] == pytest.approx(2.0, abs=0.002)
    # unknown expectation (NaN): as without
    assert robust_window_depth(img, uv, cfg, expected_z=np.array([[np.nan]]))[0, 0] == pytest.approx(1.8, abs=1e-9)


def test_expected_tolerance_widens_the_band(rng):
    img, uv = _occluded_plane(rng)
    cfg = DepthFusionConfig(window_px=3, window_fraction=0.0)
    ez = np.array([[2.0]])
    narrow = robust_window_depth(img, uv, cfg, expected_z=ez, expected_tol=np.array([[0.05]]))
    assert narrow[0, 0] == pytest.approx(2.0, abs=0.002)  # 3 cm + 3 sigma + 5 cm < 20 cm
    wide = robust_window_depth(img, uv, cfg, expected_z=ez, expected_tol=np.array([[0.25]]))
    assert wide[0, 0] == pytest.approx(1.8, abs=1e-9)  # the occluder is inside the band again
    # an unknown tolerance (NaN) is an infinitely wide band, not a zero one
    assert robust_window_depth(img, uv, cfg, expected_z=ez, expected_tol=np.array([[np.nan]]))[0, 0] == pytest.approx(
        1.8, abs=1e-9)


def test_nothing_within_the_band_gives_nan(rng):
    img, uv = _occluded_plane(rng)
    cfg = DepthFusionConfig(window_px=3, window_fraction=0.0)
    assert np.isnan(robust_window_depth(img, uv, cfg, expected_z=np.array([[3.0]]))[0, 0])


def test_depth_read_and_ray_cast_at_sample_uv(rig4, rng):
    centers, radii = sphere_scene(rig4, rng)
    N, V = len(centers), len(rig4)
    depth = np.stack([render_spheres(c, centers, radii) for c in rig4.cameras])[None]  # (1, V, H, W)
    true_uv = rig4.project(centers).transpose(1, 0, 2)[None]  # (1, V, N, 2)
    angle = rng.uniform(0, 2 * np.pi, (1, V, N))
    shifted = true_uv + 8.0 * np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # detections 8 px off
    kp = np.concatenate([shifted, np.ones((1, V, N, 1))], axis=-1)
    cfg = DepthFusionConfig(window_px=2, window_fraction=0.0)

    at_detection = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, cfg=cfg, offsets_m=radii)
    at_truth = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, cfg=cfg, offsets_m=radii, sample_uv=true_uv)
    err = np.linalg.norm(at_truth.points[0] - centers[None], axis=-1)  # (V, N)
    assert np.isfinite(err).mean() > 0.8
    assert np.nanmax(err) < 0.006  # as the noiseless lift at the true pixels
    # at the detections the rays are 8 px (~4 cm at 3 m) to the side of the centres
    d = at_detection.points[0] - centers[None]
    ray = at_detection.points[0] - rig4.centers[:, None, :]
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
    lateral = np.linalg.norm(d - np.sum(d * ray, axis=-1, keepdims=True) * ray, axis=-1)
    assert np.nanmin(lateral) > 0.02
    np.testing.assert_array_equal(at_truth.at_estimate[0], np.isfinite(err))
    assert not at_detection.at_estimate.any()


def test_at_estimate_only_where_sample_uv_was_used_and_depth_found(rig4, rng):
    centers, radii = sphere_scene(rig4, rng)
    N, V = len(centers), len(rig4)
    depth = np.stack([render_spheres(c, centers, radii) for c in rig4.cameras])[None]
    true_uv = rig4.project(centers).transpose(1, 0, 2)[None]
    kp = np.concatenate([true_uv + 5.0, np.ones((1, V, N, 1))], axis=-1)
    sample = true_uv.copy()
    sample[0, 1, :3] = np.nan  # no estimate there: read at the detection
    kp[0, 2, 0] = np.nan  # no detection: not lifted, whatever the estimate
    kp[0, 3, 1, 2] = 0.05  # a detection under min_score: the same
    sample[0, 0, 2] = [-40.0, -40.0]  # an estimate off the image: no depth there
    cfg = DepthFusionConfig(window_px=2, window_fraction=0.0)
    lift = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, cfg=cfg, offsets_m=radii, sample_uv=sample)
    plain = lift_keypoints_with_depth(kp, depth, DEPTH_SCALE, rig4, cfg=cfg, offsets_m=radii)
    found = np.all(np.isfinite(lift.surface[0]), axis=-1)
    expected = np.all(np.isfinite(sample[0]), axis=-1) & found
    np.testing.assert_array_equal(lift.at_estimate[0], expected)
    assert expected.sum() >= V * N - 6  # the check is not vacuous
    assert not found[2, 0] and not found[3, 1] and not found[0, 2]
    # where the estimate was missing, the lift is the detection's own
    np.testing.assert_array_equal(lift.points[0, 1, :3], plain.points[0, 1, :3])
    assert np.all(np.isfinite(plain.points[0, 1, :3]))


HEAD_RADIUS = 0.09


def _head_scene(rig, heads, hand=None):
    """Depth (T, V, H, W) of a head sphere (radius 9 cm) per frame (none where NaN), plus a hand."""
    depth = np.zeros((len(heads), len(rig), 480, 640), np.uint16)
    for t, head in enumerate(heads):
        if not np.all(np.isfinite(head)):
            continue
        for v, cam in enumerate(rig.cameras):
            if hand is None:
                depth[t, v] = render_spheres(cam, head[None], [HEAD_RADIUS])
            else:
                depth[t, v] = render_spheres(cam, np.stack([head, hand[v]]), [HEAD_RADIUS, 0.04])
    return depth


def _along_and_across(surface, rig, heads):
    """Range of each surface point (T, V) along the ray from the camera to the head centre, its
    distance from that ray, and the centre's range."""
    C = rig.centers[None]  # (1, V, 3)
    d = heads[:, None] - C
    r = np.linalg.norm(d, axis=-1)
    u = d / r[..., None]
    s = surface - C
    along = np.sum(s * u, axis=-1)
    across = np.linalg.norm(s - along[..., None] * u, axis=-1)
    return along, across, r


def test_head_surface_lies_on_the_ray_to_the_centre_one_radius_short(rig4):
    heads = np.array([[0.05, -0.1, 1.55], [0.2, 0.1, 1.4], [np.nan] * 3, [-0.15, 0.05, 1.6]])
    depth = _head_scene(rig4, heads)
    # A small disc (a quarter of the radius): the sphere's curvature inside it is ~1 mm.
    cfg = DepthFusionConfig(head_window_fraction=0.25)
    surface, var = _head_surface(depth, DEPTH_SCALE, rig4, heads, cfg)
    assert surface.shape == (4, 4, 3) and var.shape == (4, 4)
    along, across, r = _along_and_across(surface, rig4, heads)
    known = np.isfinite(heads[:, 0])
    assert np.all(np.isfinite(surface[known])) and np.all(np.isnan(surface[~known])) and np.all(np.isnan(var[~known]))
    assert np.all(across[known] < 1e-6)  # on the ray through the centre's reprojection
    np.testing.assert_allclose(along[known], r[known] - HEAD_RADIUS, atol=0.003)
    # the variance is the sensor model's for a median of >= 9 pixels, along the ray
    cam_z = np.stack([np.stack([c.world_to_camera(surface[t, v][None])[0, 2] for v, c in enumerate(rig4.cameras)])
                      for t in np.flatnonzero(known)])
    sigma_z = (cfg.noise_a_m + cfg.noise_b_per_m * cam_z**2) * 1.2533 / 3.0
    np.testing.assert_allclose(np.sqrt(var[known]), sigma_z * along[known] / cam_z, rtol=0.02)


def test_head_surface_with_the_default_disc_is_behind_by_the_curvature(rig4):
    # The default disc is half the head radius: its median lies deeper than the apex by about
    # rho_med^2 / (2 R) with rho_med^2 = (R / 2)^2 / 2, i.e. R / 16 = 5.6 mm (the pipeline estimates the
    # centre's offset from the data, so this bias does not reach the result).
    heads = np.array([[0.05, -0.1, 1.55], [0.2, 0.1, 1.4]])
    surface, _ = _head_surface(_head_scene(rig4, heads), DEPTH_SCALE, rig4, heads, DepthFusionConfig())
    along, across, r = _along_and_across(surface, rig4, heads)
    assert np.all(across < 1e-6)
    np.testing.assert_allclose(along, r - HEAD_RADIUS + HEAD_RADIUS / 16, atol=0.0025)


def test_head_surface_ignores_a_hand_in_front_of_the_face(rig4):
    # A 4 cm "hand" 15 cm in front of the head's surface, beside the ray: it covers part of the disc.
    heads = np.array([[0.05, -0.1, 1.55]])
    C = rig4.centers
    u = heads[0] - C
    r = np.linalg.norm(u, axis=-1, keepdims=True)
    u /= r
    side = np.cross(u, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side, axis=-1, keepdims=True)
    hand = C + (r - HEAD_RADIUS - 0.15) * u + 0.03 * side  # (V, 3)
    depth = _head_scene(rig4, heads, hand)
    cfg = DepthFusionConfig(head_window_fraction=0.25)
    surface, _ = _head_surface(depth, DEPTH_SCALE, rig4, heads, cfg)
    along, _, rr = _along_and_across(surface, rig4, heads)
    np.testing.assert_allclose(along, rr - HEAD_RADIUS, atol=0.003)
    # the hand is really in the window: the plain nearest cluster reads it
    for v, cam in enumerate(rig4.cameras):
        uv = cam.project(heads)[None]
        z = robust_window_depth(depth[:, v].astype(float) * DEPTH_SCALE, uv, cfg, radius_px=np.array([[5.0]]))
        assert z[0, 0] < cam.world_to_camera(heads)[0, 2] - HEAD_RADIUS - 0.1


def test_head_behind_the_camera_or_without_depth_is_nan(rig4):
    heads = np.array([[0.05, -0.1, 1.55]])
    one = Rig((rig4.cameras[0],))
    behind = 2 * one.centers[0] - heads[0]  # mirrored through the camera centre
    depth = _head_scene(one, heads)
    surface, var = _head_surface(depth, DEPTH_SCALE, one, behind[None], DepthFusionConfig())
    assert np.all(np.isnan(surface)) and np.all(np.isnan(var))
    surface, _ = _head_surface([[None]], DEPTH_SCALE, one, heads, DepthFusionConfig())
    assert np.all(np.isnan(surface))


def test_live_depth_crops_give_the_same_points_as_full_images():
    from reconstruction.depth.config import DepthFusionConfig
    from reconstruction.depth.reading import crop_depth_views, lift_keypoints_with_depth
    from reconstruction.simulation.live import render_loop
    from reconstruction.simulation.detections import simulate_detections
    from reconstruction.simulation.session import SimulationConfig, build_rig

    rig = build_rig(SimulationConfig(cameras=3, resolution=(320, 240)))
    frames = render_loop(rig, 30, 1 / 30, 0)
    kp = simulate_detections(frames.keypoints2d[:1], 2.0, 0.0, True, np.random.default_rng(0))
    depths = [frames.depth[v, 0] for v in range(3)]
    cfg = DepthFusionConfig(estimate_offsets=False, temporal_window=0)
    full = lift_keypoints_with_depth(kp, np.stack(depths)[None], 0.001, rig, cfg=cfg)
    kp_crop, crops, crop_rig = crop_depth_views(kp[0], depths, rig, cfg.reach_px + 2)
    assert all(c.size < d.size for c, d in zip(crops, depths))
    crop = lift_keypoints_with_depth(kp_crop[None], [crops], 0.001, crop_rig, cfg=cfg)
    assert np.isfinite(full.points).sum() > 20
    np.testing.assert_allclose(crop.points, full.points, atol=1e-9)
