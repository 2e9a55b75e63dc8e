"""Ray-cast rendering: known depths of capsules and spheres, occlusion, noise model, edge holes."""
import numpy as np
import pytest

from calibration.camera import Camera
from reconstruction.simulation.render import CameraRenderer, RenderSettings, _ray_capsule, body_model
from reconstruction.skeleton import Skeleton, load_skeleton


NOISELESS = RenderSettings(noise=0.0, dropout_rate=0.0)


def front_camera(width=160, height=120, f=150.0, dist=()):
    """Camera at the world origin looking along +Y (world Z up): camera z = world y."""
    R = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    K = [[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]]
    return Camera("front", (width, height), K, np.asarray(dist, float), R, np.zeros(3))


def test_ray_capsule_known_distances():
    rays = np.array([[0, 0, 1.0], [0.3, 0, 0.9], [0, 0.05, 1.0], [0, 0.3, 1.0]], dtype=np.float32)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    a, b = np.array([-1.0, 0, 2.0]), np.array([1.0, 0, 2.0])  # horizontal capsule 2 m ahead, r = 0.1
    t = _ray_capsule(rays, a, b, 0.1)
    assert t[0] == pytest.approx(1.9, abs=1e-5)
    # oblique ray in the plane of the axis: meets the cylinder at z = 1.9 -> t = 1.9 / cos
    assert t[1] == pytest.approx(1.9 / rays[1, 2], abs=1e-5)
    # ray slightly above the axis: distance from the axis line y = 2 t sin(a)... solved exactly
    s = rays[2]
    expected = (2.0 * s[2] - np.sqrt((2.0 * s[2]) ** 2 - (4.0 - 0.01))) / 1.0
    assert t[2] == pytest.approx(expected, abs=1e-5)
    assert np.isinf(t[3])  # passes 0.6 m above


def test_capsule_end_cap_is_a_sphere():
    rays = np.array([[0, 0, 1.0]], dtype=np.float32)
    t = _ray_capsule(rays, np.array([0, 0, 3.0]), np.array([0, 0, 4.0]), 0.2)  # along the axis: cap at a
    assert t[0] == pytest.approx(2.8, abs=1e-5)


def two_ball_skeleton():
    return Skeleton("balls", ("left_knee", "right_knee"), ())


def test_sphere_depth_and_occlusion():
    camera = front_camera()
    renderer = CameraRenderer(camera, body_model(two_ball_skeleton()), NOISELESS)
    radius = renderer.body.joint_radius
    xyz = np.array([[0.0, 2.0, 0.0], [0.0, 3.0, 0.0]])  # second ball right behind the first
    frame = renderer.render(xyz)
    row, col = int(round(camera.K[1, 2])), int(round(camera.K[0, 2]))
    assert frame.depth_m.shape == (120, 160)
    # the pixel centre is half a pixel off the axis: depth within 1 mm of 2 - r
    assert frame.depth_m[row, col] == pytest.approx(2.0 - radius[0], abs=1e-3)
    assert frame.depth[row, col] == pytest.approx((2.0 - radius[0]) * 1000, abs=1.5)
    np.testing.assert_array_equal(frame.keypoints2d[:, 2], [1, 0])
    # moved aside, the rear ball is seen
    xyz[1, 0] = 0.8
    frame = renderer.render(xyz)
    np.testing.assert_array_equal(frame.keypoints2d[:, 2], [1, 1])
    uv = camera.project(xyz)
    np.testing.assert_allclose(frame.keypoints2d[:, :2], uv)


def test_noiseless_body_depth_lies_within_radius_of_visible_joints(rng):
    from reconstruction.simulation.motion import procedural_motion

    skeleton = load_skeleton("coco17")
    body = body_model(skeleton)
    camera = front_camera(320, 240, 300.0, dist=(-0.05, 0.02, 0.0, 0.0, 0.0))
    renderer = CameraRenderer(camera, body, NOISELESS)
    xyz = procedural_motion(skeleton, 5, 30.0, rng) + np.array([0.0, 3.0, -0.9])
    frames = [renderer.render(x) for x in xyz]
    gaps = []
    for x, frame in zip(xyz, frames):
        kp = frame.keypoints2d
        vis = kp[:, 2] == 1
        z = camera.world_to_camera(x)[:, 2]
        d = frame.depth_m[np.rint(kp[vis, 1]).astype(int), np.rint(kp[vis, 0]).astype(int)]
        gaps.append((z[vis] - d) / body.joint_radius[vis])
    gaps = np.concatenate(gaps)
    assert gaps.size > 20
    # the surface seen at a visible joint is in front of it, by at most the body's radius
    assert np.all(gaps >= -1.0) and np.all(gaps <= 1.0 + 1e-3)
    assert np.median(gaps) > 0.3


def test_depth_noise_follows_the_realsense_model(rng):
    camera = front_camera(160, 120, 150.0)
    settings = RenderSettings(noise=1.0, dropout_rate=0.0, room_half_size_m=3.0)
    renderer = CameraRenderer(camera, body_model(two_ball_skeleton()), settings)
    frame = renderer.render(np.full((2, 3), np.nan), rng)  # no body: the wall 3 m ahead
    wall = (frame.depth > 0) & (np.abs(frame.depth_m - 3.0) < 1e-3)
    assert wall.sum() > 1000
    error = frame.depth[wall] * settings.depth_scale - frame.depth_m[wall]
    expected = renderer.noise_coeff * 9.0
    assert np.std(error) == pytest.approx(expected, rel=0.1)
    assert abs(np.mean(error)) < 0.1 * expected
    # at 3 m a D435 is off by about 3 cm RMS at 848 px wide; at 160 px the focal is smaller, more noise
    assert 0.02 < expected < 0.3


def test_holes_at_silhouette_edges_and_dropouts(rng):
    camera = front_camera()
    settings = RenderSettings(noise=0.0, dropout_rate=0.01, edge_px=2)
    renderer = CameraRenderer(camera, body_model(two_ball_skeleton()), settings)
    frame = renderer.render(np.array([[0.0, 2.0, 0.0], [np.nan, np.nan, np.nan]]), rng)
    body = frame.depth_m < 1.99 + 0.1
    row = int(round(camera.K[1, 2]))
    first = int(np.argmax(body[row]))  # leftmost body pixel on the centre row
    assert np.all(frame.depth[row, first - 2:first] == 0)  # shadow band left of the body
    assert frame.depth[row, first] > 0
    holes = frame.depth == 0
    far = ~body
    far[:, max(first - 10, 0):] = False
    assert 0.002 < holes[far].mean() < 0.03  # random dropouts only, away from the body


def test_body_model_exposes_radii():
    skeleton = load_skeleton("coco17")
    body = body_model(skeleton)
    assert body.joint_radius.shape == (17,)
    assert body.joint_radius[skeleton.index("nose")] == pytest.approx(0.095)
    assert body.joint_radius[skeleton.index("left_wrist")] < body.joint_radius[skeleton.index("left_hip")]
    face = [k for k, (a, b) in enumerate(skeleton.bones) if "eye" in a + b or "nose" in a + b]
    assert np.all(np.isnan(body.bone_radius[face]))
    limbs = skeleton.bones.index(("left_knee", "left_ankle"))
    assert body.bone_radius[limbs] == pytest.approx(0.8 * 0.045)
