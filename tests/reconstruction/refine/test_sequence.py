"""reconstruction/refine/sequence.py: refine_sequence: known-answer tests on a synthetic walking person seen by
4 cameras (losses, solvers, chunks, gaps, bones, depth, real motion)."""
from dataclasses import replace

import numpy as np
import pytest

from reconstruction.bone_lengths import estimate_bone_lengths
from reconstruction.depth.residuals import DepthObservations
from reconstruction.refine import RefinementConfig, refine_sequence
from reconstruction.simulation import procedural_motion, project_truth, simulate_detections
from reconstruction.skeleton import load_skeleton
from reconstruction.triangulation import triangulate
from tests.support import mpjpe as _mpjpe


FPS = 30.0


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


def _case(rig, skeleton, T=120, noise=3.0, outliers=0.0, occlusion=0.0, seed=5):
    rng = np.random.default_rng(seed)
    truth = procedural_motion(skeleton, T, FPS, rng)
    true2d = project_truth(truth, rig, occlusion, rng, skeleton if occlusion else None)
    kp = simulate_detections(true2d, noise_px=noise, outlier_rate=outliers, rng=rng)
    return truth, kp, triangulate(kp, rig)


def _bone_std(xyz, skeleton):
    return float(np.nanmean(np.nanstd(skeleton.bone_lengths(xyz)[:, skeleton.rigid_mask], axis=0)))


def test_refinement_lowers_error_and_bone_length_spread(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton)
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), fps=FPS)
    assert type(ref) is type(tri)
    assert _mpjpe(ref.xyz, truth) < 0.6 * _mpjpe(tri.xyz, truth)
    assert _bone_std(tri.xyz, skeleton) > 0.008
    assert _bone_std(ref.xyz, skeleton) < 0.0015
    assert ref.reproj_error_px.shape == (len(truth), skeleton.num_joints)
    assert ref.covariance.shape == truth.shape + (3,)
    assert np.all(np.linalg.eigvalsh(ref.covariance) > 0)
    # the refined reprojection error stays at the noise level (3 px), it is not fitted to zero
    assert 1.5 < np.nanmedian(ref.reproj_error_px) < 6.0


@pytest.mark.parametrize("loss", ["huber", "cauchy", "linear"])
def test_every_loss_refines(rig4, skeleton, loss):
    truth, kp, tri = _case(rig4, skeleton, T=60)
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(loss=loss), fps=FPS)
    assert _mpjpe(ref.xyz, truth) < 0.6 * _mpjpe(tri.xyz, truth)


def test_noiseless_sequence_stays_put(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=60, noise=0.0)
    # weak smoothness: the exact answer; default smoothness: only its small bias (sub-millimetre)
    loose = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(accel_sigma_m_s2=50.0), fps=FPS)
    assert np.nanmax(np.linalg.norm(loose.xyz - truth, axis=-1)) < 5e-4
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), fps=FPS)
    assert _mpjpe(ref.xyz, truth) < 1e-3
    assert np.nanmax(np.linalg.norm(ref.xyz - truth, axis=-1)) < 6e-3


def test_pcg_and_banded_solvers_agree(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=40)
    a = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(solver="pcg"), fps=FPS)
    b = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(solver="banded"), fps=FPS)
    assert np.nanmax(np.abs(a.xyz - b.xyz)) < 2e-4


def test_outliers_and_occlusion_complete_and_never_readmit_rejected_views(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, outliers=0.1, occlusion=0.1)
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), fps=FPS)
    assert np.mean(np.isfinite(ref.xyz[..., 0])) == 1.0
    assert _mpjpe(ref.xyz, truth) < 0.6 * _mpjpe(tri.xyz, truth)
    assert _bone_std(ref.xyz, skeleton) < 0.002
    # views the triangulation rejected at a joint it did triangulate are never used again
    triangulated = np.isfinite(tri.xyz[..., 0])[:, None, :]
    assert not np.any(ref.used & ~tri.used & triangulated)


def test_nan_joints_filled_from_one_view_smoothness_and_bones(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=90)
    j_wrist, j_knee = skeleton.index("left_wrist"), skeleton.index("right_knee")
    xyz, used = tri.xyz.copy(), tri.used.copy()
    xyz[40:46, j_wrist] = np.nan  # triangulation failed: only one view saw it
    used[40:46, :, j_wrist] = False
    kp = kp.copy()
    kp[40:46, 1:, j_wrist] = np.nan
    xyz[20:60, j_knee] = np.nan  # unseen by every camera for 40 frames (> fill_max_gap)
    used[20:60, :, j_knee] = False
    kp[20:60, :, j_knee] = np.nan
    tri = replace(tri, xyz=xyz, used=used)
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(fill_max_gap=15), fps=FPS)
    err = np.linalg.norm(ref.xyz[40:46, j_wrist] - truth[40:46, j_wrist], axis=-1)
    assert np.all(err < 0.03)
    assert np.all(ref.n_views[40:46, j_wrist] == 1)
    # the knee no camera sees for 40 frames hangs between hip and ankle on its two rigid bones
    knee_err = np.linalg.norm(ref.xyz[20:60, j_knee] - truth[20:60, j_knee], axis=-1)
    assert np.all(np.isfinite(knee_err)) and np.median(knee_err) < 0.03 and np.max(knee_err) < 0.05
    assert np.all(ref.n_views[20:60, j_knee] == 0)
    # without the bones' filling, a joint unseen that long is not invented
    off = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(fill_max_gap=15, fill_from_bones=False), fps=FPS)
    assert np.all(np.isnan(off.xyz[20:60, j_knee]))
    assert np.all(np.isfinite(off.xyz[:20, j_knee])) and np.all(np.isfinite(off.xyz[60:, j_knee]))


def test_chunks_with_overlap_match_one_chunk(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=100)
    whole = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(chunk_frames=200), fps=FPS)
    chunked = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(chunk_frames=40, overlap_frames=10), fps=FPS)
    assert np.nanmean(np.linalg.norm(whole.xyz - chunked.xyz, axis=-1)) < 1e-3
    assert abs(_mpjpe(chunked.xyz, truth) - _mpjpe(whole.xyz, truth)) < 5e-4


def test_depth_residuals_pull_towards_measured_depth(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=60, noise=6.0)
    z = np.stack([cam.world_to_camera(truth)[..., 2] for cam in rig4], axis=1)  # (T, V, J)
    depth = DepthObservations(depth_m=z, sigma_m=0.002)
    plain = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), fps=FPS)
    fused = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), depth_residuals=depth, fps=FPS)
    assert _mpjpe(fused.xyz, truth) < 0.7 * _mpjpe(plain.xyz, truth)


def test_given_bone_lengths_are_used(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=60)
    true_lengths = estimate_bone_lengths(truth, skeleton)
    wrong = true_lengths.lengths_m * 1.05  # 5 % too long: the refined bones follow the given lengths
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), bone_lengths=wrong, fps=FPS)
    measured = np.nanmedian(skeleton.bone_lengths(ref.xyz), axis=0)[skeleton.rigid_mask]
    np.testing.assert_allclose(measured, wrong[skeleton.rigid_mask], atol=0.004)


def test_bad_input_raises(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=10)
    with pytest.raises(ValueError, match="views"):
        refine_sequence(kp[:, :3], rig4, skeleton, tri)
    with pytest.raises(ValueError, match="joints"):
        refine_sequence(kp[:, :, :5], rig4, skeleton, tri)
    with pytest.raises(ValueError):
        RefinementConfig(loss="l2")


def test_all_nan_input_gives_nan_not_an_error(rig4, skeleton):
    truth, kp, tri = _case(rig4, skeleton, T=10)
    kp = np.full_like(kp, np.nan)
    tri = replace(tri, xyz=np.full_like(tri.xyz, np.nan), used=np.zeros_like(tri.used))
    ref = refine_sequence(kp, rig4, skeleton, tri)
    assert np.all(np.isnan(ref.xyz))


def _bvh_case(shared_dir, rig, skeleton, T, outliers, occlusion, seed=0):
    from reconstruction.simulation.bvh import retarget_bvh
    from reconstruction.formats.bvh import load_bvh

    path = shared_dir / "data" / "mocap" / "131_02.bvh"
    if not path.is_file():
        pytest.skip(f"{path} not found (real motion capture clip from ../shared)")
    truth = retarget_bvh(load_bvh(path), skeleton, FPS, T)
    rng = np.random.default_rng(seed)
    true2d = project_truth(truth, rig, occlusion, rng, skeleton if occlusion else None)
    kp = simulate_detections(true2d, noise_px=3.0, outlier_rate=outliers, rng=rng)
    return truth, kp, triangulate(kp, rig)


@pytest.mark.parametrize("outliers, occlusion", [(0.0, 0.0), (0.1, 0.1)])
def test_real_motion_is_not_flattened(shared_dir, rig4, skeleton, outliers, occlusion):
    # CMU 131_02 (retargeted): feet reach 100-300 m/s^2 and 0.4 m per frame at 30 fps. The refinement
    # must not pull such fast but well-observed joints away from their triangulation.
    truth, kp, tri = _bvh_case(shared_dir, rig4, skeleton, 150, outliers, occlusion)
    assert np.nanmax(np.linalg.norm(np.diff(truth, 2, axis=0), axis=-1)) * FPS**2 > 100  # really fast motion
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), fps=FPS)
    err_tri = np.linalg.norm(tri.xyz - truth, axis=-1)
    err_ref = np.linalg.norm(ref.xyz - truth, axis=-1)
    assert np.mean(np.isfinite(err_ref)) >= np.mean(np.isfinite(err_tri))
    assert np.nanmean(err_ref) <= np.nanmean(err_tri)
    p95_tri = np.nanpercentile(err_tri, 95, axis=0)
    p95_ref = np.nanpercentile(err_ref, 95, axis=0)
    # no joint (ankles, wrists included) much worse than per-frame triangulation at its 95th percentile
    assert np.all(p95_ref <= 1.3 * p95_tri + 0.005), ((p95_ref * 1000).round(), (p95_tri * 1000).round())


def test_depth_of_a_dropped_detection_is_dropped_too(rig4, skeleton):
    # A wrong 2-view consensus (view 0 and 1 both on the wrong spot) with a confident depth read at the
    # same wrong detections: the spike test drops the detections, and their depth (gated with them,
    # and robust) must not keep the joint there.
    truth, kp, tri = _case(rig4, skeleton, T=60)
    j, t = skeleton.index("left_wrist"), 30
    axes = rig4.cameras[0].R[2] + rig4.cameras[1].R[2]  # away from both cameras: their depths change
    wrong = truth[t, j] + 0.3 * axes / np.linalg.norm(axes)
    kp = kp.copy()
    xyz, used = tri.xyz.copy(), tri.used.copy()
    for v, cam in enumerate(rig4):
        kp[t, v, j, :2] = cam.project(wrong[None])[0] if v < 2 else np.nan
    n_views = tri.n_views.copy()
    xyz[t, j], used[t, :, j], n_views[t, j] = wrong, np.array([True, True, False, False]), 2
    tri = replace(tri, xyz=xyz, used=used, n_views=n_views)
    z = np.full((60, len(rig4), skeleton.num_joints), np.nan)
    z[t, :2, j] = [cam.world_to_camera(wrong[None])[0, 2] for cam in list(rig4)[:2]]
    ref = refine_sequence(kp, rig4, skeleton, tri, RefinementConfig(), fps=FPS,
                          depth_residuals=DepthObservations(depth_m=z, sigma_m=0.005))
    assert np.linalg.norm(ref.xyz[t, j] - truth[t, j]) < 0.05
