"""reconstruction/depth/residuals.py: the depth observations the refinement consumes: ranges along the rays of
accepted points, shapes checked."""
import numpy as np
import pytest

from reconstruction.depth.fusion import fuse
from reconstruction.depth.reading import lift_keypoints_with_depth
from reconstruction.depth.residuals import DepthObservations, depth_residuals
from reconstruction.skeleton import load_skeleton
from tests.support import DEPTH_SCALE, noisy_sphere_scene as _noisy_scene


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


T = 8


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


def test_midpoint_depth_shape_is_checked(rig4, skeleton):
    J = skeleton.num_joints
    with pytest.raises(ValueError, match="midpoint_depth_m"):
        DepthObservations(depth_m=np.zeros((T, 4, J)), midpoint_joints=[[3, 4]], midpoint_depth_m=np.zeros((T, 4)))
