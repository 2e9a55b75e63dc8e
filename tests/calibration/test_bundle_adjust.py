"""calibration/bundle_adjust.py: converges from perturbed poses and intrinsics, holds the reference camera,
drops gross outliers."""
import numpy as np
import pytest

from calibration.board import BoardSpec
from calibration.bundle_adjust import BundleAdjustConfig, Observations, bundle_adjust, project_observations
from calibration.camera import matrix_to_rodrigues, rodrigues_to_matrix
from reconstruction.simulation.boards import projected_detections, random_board_poses


SPEC = BoardSpec(squares=(7, 5), square_length=0.1, marker_length=0.075)


def _problem(rig, rng, num_frames=40, noise=0.0):
    poses = random_board_poses(rig, SPEC, num_frames, rng)
    dets = projected_detections(rig, SPEC, poses, noise, rng)
    frames = sorted({f for d in dets.values() for f in d})
    index = {f: i for i, f in enumerate(frames)}
    obj = SPEC.object_points()
    ci, fi, pts, uv = [], [], [], []
    for v, cam in enumerate(rig.names):
        for f, d in dets[cam].items():
            ci.append(np.full(len(d), v))
            fi.append(np.full(len(d), index[f]))
            pts.append(obj[d.ids])
            uv.append(d.corners)
    obs = Observations(np.concatenate(ci), np.concatenate(fi), np.concatenate(pts), np.concatenate(uv))
    R_board = np.stack([poses[int(f[1:])][0] for f in frames])
    t_board = np.stack([poses[int(f[1:])][1] for f in frames])
    return obs, R_board, t_board


def _perturb_R(R, rng, deg):
    return rodrigues_to_matrix(matrix_to_rodrigues(R) + rng.normal(scale=np.radians(deg), size=R.shape[:-1]))


def test_projection_matches_camera_project(rig4, rng):
    obs, R_board, t_board = _problem(rig4, rng, 10)
    intr = np.array([[c.K[0, 0], c.K[1, 1], c.K[0, 2], c.K[1, 2], *c.dist[:5]] for c in rig4])
    uv = project_observations(np.stack([c.rvec for c in rig4]), np.stack([c.t for c in rig4]), intr,
                              matrix_to_rodrigues(R_board), t_board, obs)
    np.testing.assert_allclose(uv, obs.uv, atol=1e-9)


def test_converges_from_perturbed_start(rig4, rng):
    obs, R_board, t_board = _problem(rig4, rng)
    R = np.stack([c.R for c in rig4])
    t = np.stack([c.t for c in rig4])
    K = np.stack([c.K for c in rig4])
    R0, t0 = _perturb_R(R, rng, 1.0), t + rng.normal(scale=0.03, size=t.shape)
    R0[0], t0[0] = R[0], t[0]  # the reference camera defines the world
    K0 = K.copy()
    K0[:, 0, 0] *= 1.01
    K0[:, 1, 1] *= 0.99
    result = bundle_adjust(R0, t0, K0, [np.zeros(5)] * 4, _perturb_R(R_board, rng, 1.0),
                           t_board + rng.normal(scale=0.02, size=t_board.shape), obs)
    assert result.initial_rms > 5 and result.rms < 1e-6
    np.testing.assert_allclose(result.R, R, atol=1e-7)
    np.testing.assert_allclose(result.t, t, atol=1e-7)
    np.testing.assert_allclose(result.K, K, rtol=1e-7)
    np.testing.assert_allclose(result.dist, np.stack([c.dist for c in rig4]), atol=1e-7)
    assert result.inlier.all()


def test_fixed_intrinsics_and_reference_stay(rig4, rng):
    obs, R_board, t_board = _problem(rig4, rng, 20, noise=0.2)
    R = np.stack([c.R for c in rig4])
    t = np.stack([c.t for c in rig4])
    K = np.stack([c.K for c in rig4]) * np.array([1.002, 1.0, 1.0])[None, :, None]
    dist = [c.dist for c in rig4]
    result = bundle_adjust(R, t, K, dist, R_board, t_board, obs, reference=2,
                           config=BundleAdjustConfig(refine_intrinsics=False))
    np.testing.assert_array_equal(result.K, K)
    np.testing.assert_array_equal(result.R[2], R[2])
    np.testing.assert_array_equal(result.t[2], t[2])


def test_gross_outliers_are_dropped(rig4, rng):
    obs, R_board, t_board = _problem(rig4, rng, 30, noise=0.2)
    bad = rng.choice(len(obs.uv), size=15, replace=False)
    uv = obs.uv.copy()
    uv[bad] += rng.choice([-1, 1], size=(15, 2)) * rng.uniform(15, 40, size=(15, 2))
    obs_bad = Observations(obs.camera, obs.frame, obs.points, uv)
    R = np.stack([c.R for c in rig4])
    t = np.stack([c.t for c in rig4])
    K, dist = np.stack([c.K for c in rig4]), [c.dist for c in rig4]
    config = BundleAdjustConfig(refine_intrinsics=False)
    result = bundle_adjust(R, t, K, dist, R_board, t_board, obs_bad, config=config)
    clean = bundle_adjust(R, t, K, dist, R_board, t_board, obs, config=config)
    assert set(np.flatnonzero(~result.inlier)) == set(bad)
    assert np.isnan(result.residuals[bad]).all()
    assert result.rms == pytest.approx(0.2 * np.sqrt(2), rel=0.15)  # 0.2 px per axis
    centres = -np.einsum("vji,vj->vi", result.R, result.t)
    truth = np.stack([c.center for c in rig4])
    assert np.abs(centres - truth).max() < 0.01
    np.testing.assert_allclose(result.t, clean.t, atol=2e-3)
