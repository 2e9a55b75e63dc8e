"""reconstruction/depth/fusion.py: inverse-covariance fusion of triangulation and depth, with gating: known
answers from depth maps rendered of spheres in front of a plane."""
import numpy as np
import pytest

from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.fusion import fuse
from reconstruction.depth.reading import lift_keypoints_with_depth
from tests.support import DEPTH_SCALE, noisy_sphere_scene as _noisy_scene


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
