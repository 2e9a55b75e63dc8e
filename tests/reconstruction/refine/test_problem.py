"""reconstruction/refine/problem.py: depth terms of the refinement's cost: ranges along viewing rays, and the
depth of a joint pair's midpoint.

A static pose of the coco17 skeleton seen by the four ring cameras, noiseless 2D, free bones (no
length residuals), so each joint is held by its 2D, its depth and smoothness only: the known answers
are geometric.
"""
from dataclasses import replace

import numpy as np
import pytest

from reconstruction.depth.residuals import DepthObservations
from reconstruction.refine import RefinementConfig, refine_sequence
from reconstruction.simulation import procedural_motion, project_truth
from reconstruction.skeleton import load_skeleton
from reconstruction.triangulation import triangulate


FPS = 30.0
T = 8


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


def _static(rig, skeleton, seed=5):
    """(T, J, 3) truth of one pose held still, its noiseless 2D (T, V, J, 3) and triangulation."""
    pose = procedural_motion(skeleton, 1, FPS, np.random.default_rng(seed))[0]
    truth = np.repeat(pose[None], T, axis=0)
    kp = project_truth(truth, rig)
    return truth, kp, triangulate(kp, rig)


def _free(skeleton):
    return np.full(len(skeleton.bones), np.nan)


def _camera_ray(camera, X):
    """Unit ray (..., 3) to world points X (..., 3) in the camera frame, and its range."""
    Xc = camera.world_to_camera(X)
    r = np.linalg.norm(Xc, axis=-1)
    return Xc / r[..., None], r


def _off_axis_joint(rig, truth):
    """The joint farthest from camera 0's optical axis, and that angle (degrees)."""
    u, _ = _camera_ray(rig.cameras[0], truth[0])
    j = int(np.argmin(u[:, 2]))
    return j, float(np.degrees(np.arccos(u[j, 2])))


def _one_view_depth(rig, truth, j, step):
    """Depth of joint ``j`` in view 0 only: ``step`` m farther along view 0's ray than the truth, as a
    range with its camera-frame ray (sigma 0.1 mm: the 2D cannot move it)."""
    J, V = truth.shape[1], len(rig)
    u, r = _camera_ray(rig.cameras[0], truth[:, j])  # (T, 3), (T,)
    depth = np.full((T, V, J), np.nan)
    rays = np.full((T, V, J, 3), np.nan)
    depth[:, 0, j] = r + step
    rays[:, 0, j] = u
    return DepthObservations(depth_m=depth, sigma_m=1e-4, ray_cam=rays), u, r


def _constrained_optimum(rig, kp, X0, views, u, target):
    """Reference: the point minimising the plain squared reprojection error (undistorted pixels, as
    the refinement measures it) of ``views`` with view 0's range along ``u`` held at ``target``."""
    from scipy.optimize import least_squares

    cams = [rig.cameras[v] for v in views]
    obs = [c.undistort_points(kp[v, :2][None])[0] for c, v in zip(cams, views)]

    def residuals(X):
        res = []
        for c, o in zip(cams, obs):
            Xc = c.world_to_camera(X[None])[0]
            res.append((c.K[:2, :2] @ (Xc[:2] / Xc[2]) + c.K[:2, 2] - o) / 3.0)
        res.append([(u @ rig.cameras[0].world_to_camera(X[None])[0] - target) / 1e-4])
        return np.concatenate(res)

    return least_squares(residuals, X0, method="lm", xtol=1e-12, ftol=1e-12).x


def test_range_along_the_ray_moves_the_joint_along_that_ray(rig4, skeleton):
    truth, kp, tri = _static(rig4, skeleton)
    j, angle = _off_axis_joint(rig4, truth)
    assert angle > 10.0  # off the optical axis: a range and a camera z differ there
    obs, u, r = _one_view_depth(rig4, truth, j, 0.05)
    cfg = RefinementConfig(loss="linear")
    ref = refine_sequence(kp, rig4, skeleton, tri, cfg, bone_lengths=_free(skeleton), depth_residuals=obs, fps=FPS)
    cam = rig4.cameras[0]
    d = ref.xyz[:, j] - truth[:, j]  # (T, 3)
    cos = np.sum(d * (u @ cam.R), axis=-1) / np.linalg.norm(d, axis=-1)  # R^T u: the ray in the world
    assert np.all(cos > 0.95), cos
    _, r_ref = _camera_ray(cam, ref.xyz[:, j])
    np.testing.assert_allclose(r_ref, r + 0.05, atol=0.001)  # the tiny sigma wins over the 2D
    # The other three views see the 5 cm as a lateral shift and pull back across the ray: the result
    # is the constrained least-squares point of the four views' 2D (view 0 moves ~1.4 px, a camera-z
    # residual of the same target would move it ~3 px and leave cos ~0.94).
    ref_point = _constrained_optimum(rig4, kp[0, :, j], truth[0, j], range(4), u[0], r[0] + 0.05)
    assert np.max(np.linalg.norm(ref.xyz[:, j] - ref_point, axis=-1)) < 3e-4
    # the other joints, without depth, stay at the truth
    others = np.delete(np.arange(skeleton.num_joints), j)
    assert np.max(np.linalg.norm(ref.xyz[:, others] - truth[:, others], axis=-1)) < 1e-3


def test_range_along_the_ray_keeps_the_2d_of_a_joint_only_that_view_sees(rig4, skeleton):
    # The joint's 2D only in view 0 (the start is the 4-view triangulation): nothing pulls across the
    # ray, the joint slides along it to the observed range and view 0's 2D stays put.
    truth, kp, tri = _static(rig4, skeleton)
    j, _ = _off_axis_joint(rig4, truth)
    kp = kp.copy()
    kp[:, 1:, j] = np.nan
    used = tri.used.copy()
    used[:, 1:, j] = False
    tri = replace(tri, used=used)
    obs, u, r = _one_view_depth(rig4, truth, j, 0.05)
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), bone_lengths=_free(skeleton),
                          depth_residuals=obs, fps=FPS)
    cam = rig4.cameras[0]
    moved = np.linalg.norm(cam.project(ref.xyz[:, j]) - kp[:, 0, j, :2], axis=-1)
    assert np.all(moved < 0.05), moved
    _, r_ref = _camera_ray(cam, ref.xyz[:, j])
    np.testing.assert_allclose(r_ref, r + 0.05, atol=5e-4)


def test_range_without_its_ray_would_be_taken_as_camera_z(rig4, skeleton):
    # The same observation without ``ray_cam`` is a camera-frame z: the joint then goes to where its
    # z (not its range) is r + 5 cm, farther along the ray than r + 5 cm off the optical axis.
    truth, kp, tri = _static(rig4, skeleton)
    J, V = skeleton.num_joints, len(rig4)
    j, _ = _off_axis_joint(rig4, truth)
    cam = rig4.cameras[0]
    u, r = _camera_ray(cam, truth[:, j])
    depth = np.full((T, V, J), np.nan)
    depth[:, 0, j] = r + 0.05
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), bone_lengths=_free(skeleton),
                          depth_residuals=DepthObservations(depth_m=depth, sigma_m=1e-4), fps=FPS)
    z_ref = cam.world_to_camera(ref.xyz[:, j])[:, 2]
    np.testing.assert_allclose(z_ref, r + 0.05, atol=0.002)
    _, r_ref = _camera_ray(cam, ref.xyz[:, j])
    assert np.all(r_ref - (r + 0.05) > 0.005)


def _ears_case(rig, skeleton):
    """Ears each seen by one view only (left: view 0, right: view 1), starting 8 cm and 6 cm off the
    truth along those views' rays: nothing but a depth fixes how far along its ray each ear is."""
    truth, kp, tri = _static(rig, skeleton)
    a, b = skeleton.index("left_ear"), skeleton.index("right_ear")
    kp = kp.copy()
    kp[:, 1:, a] = np.nan
    kp[:, [0, 2, 3], b] = np.nan
    xyz, used, n_views = tri.xyz.copy(), tri.used.copy(), tri.n_views.copy()
    for joint, view, step in ((a, 0, 0.08), (b, 1, -0.06)):
        C = rig.cameras[view].center
        ray = truth[:, joint] - C
        xyz[:, joint] = truth[:, joint] + step * ray / np.linalg.norm(ray, axis=-1, keepdims=True)
        used[:, :, joint] = False
        used[:, view, joint] = True
        n_views[:, joint] = 1
    start = replace(tri, xyz=xyz, used=used, n_views=n_views)
    mid = 0.5 * (truth[:, a] + truth[:, b])  # (T, 3)
    V = len(rig)
    depth = np.full((T, V, 1), np.nan)
    rays = np.full((T, V, 1, 3), np.nan)
    for v in (0, 1):  # the head's depth measured by the two views that see an ear
        u, r = _camera_ray(rig.cameras[v], mid)
        depth[:, v, 0], rays[:, v, 0] = r, u
    return truth, kp, start, (a, b), depth, rays


def _midpoint_range(rig, xyz, pair, view, rays):
    Xc = rig.cameras[view].world_to_camera(0.5 * (xyz[:, pair[0]] + xyz[:, pair[1]]))
    return np.sum(Xc * rays[:, view, 0], axis=-1)


def test_midpoint_depth_places_the_ears(rig4, skeleton):
    truth, kp, start, pair, depth, rays = _ears_case(rig4, skeleton)
    J = skeleton.num_joints
    obs = DepthObservations(depth_m=np.full((T, len(rig4), J), np.nan), midpoint_joints=[list(pair)],
                            midpoint_depth_m=depth, midpoint_sigma_m=0.002, midpoint_ray_cam=rays)
    cfg = RefinementConfig()
    ref = refine_sequence(kp, rig4, skeleton, start, cfg, bone_lengths=_free(skeleton), depth_residuals=obs, fps=FPS)
    for v in (0, 1):
        np.testing.assert_allclose(_midpoint_range(rig4, ref.xyz, pair, v, rays), depth[:, v, 0], atol=0.003)
    err = np.linalg.norm(ref.xyz[:, list(pair)] - truth[:, list(pair)], axis=-1)
    assert np.max(err) < 0.005, err
    # Noiseless and consistent: Gauss-Newton with the exact Jacobian of the midpoint's range (along
    # its ray, 12 degrees off the optical axis) lands on the truth within 1 um in 3 iterations
    # (~20 um with the optical axis as the Jacobian's direction).
    quick = refine_sequence(kp, rig4, skeleton, start, RefinementConfig(max_iterations=3), bone_lengths=_free(skeleton),
                            depth_residuals=obs, fps=FPS)
    assert np.max(np.linalg.norm(quick.xyz[:, list(pair)] - truth[:, list(pair)], axis=-1)) < 2e-6
    # Without the midpoint's depth the ears stay where they started, centimetres off.
    plain = refine_sequence(kp, rig4, skeleton, start, cfg, bone_lengths=_free(skeleton), fps=FPS)
    off = np.abs(_midpoint_range(rig4, plain.xyz, pair, 0, rays) - depth[:, 0, 0])
    assert np.all(off > 0.02), off
    assert np.min(np.linalg.norm(plain.xyz[:, list(pair)] - truth[:, list(pair)], axis=-1)) > 0.04


def test_midpoint_depth_pcg_and_banded_agree(rig4, skeleton):
    truth, kp, start, pair, depth, rays = _ears_case(rig4, skeleton)
    J = skeleton.num_joints
    # observed 1 cm farther than the truth, so the solution is not the start of any term
    obs = DepthObservations(depth_m=np.full((T, len(rig4), J), np.nan), midpoint_joints=np.array([pair]),
                            midpoint_depth_m=depth + 0.01, midpoint_sigma_m=0.003, midpoint_ray_cam=rays)
    results = [refine_sequence(kp, rig4, skeleton, start, RefinementConfig(solver=s, max_iterations=10),
                               depth_residuals=obs, fps=FPS) for s in ("pcg", "banded")]
    assert np.nanmax(np.linalg.norm(results[0].xyz - results[1].xyz, axis=-1)) < 5e-4
    for ref in results:
        for v in (0, 1):
            np.testing.assert_allclose(_midpoint_range(rig4, ref.xyz, pair, v, rays), depth[:, v, 0] + 0.01,
                                       atol=0.004)
