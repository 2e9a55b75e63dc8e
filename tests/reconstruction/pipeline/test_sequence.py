"""reconstruction/pipeline/sequence.py: reconstruct_keypoints (swaps, triangulation, depth fusion, refinement)
on a small simulated RGB-D session rendered in memory: known answers against its ground truth."""
from dataclasses import replace

import numpy as np
import pytest

from reconstruction.depth.offsets import joint_offsets
from reconstruction.depth.reading import lift_keypoints_with_depth
from reconstruction.pipeline import ReconstructionConfig, reconstruct_keypoints
from tests.support import mpjpe as _mpjpe


T = 30


@pytest.fixture(scope="module")
def scene(rgbd_walk_scene):
    """The session's simulated 4-camera RGB-D walk (tests/conftest.py)."""
    return rgbd_walk_scene


def _lift(scene, cfg, views=None):
    rig, det, depth = scene["rig"], scene["det"], scene["depth"]
    if views is not None:
        from calibration.camera import Rig

        rig, det, depth = Rig(tuple(rig.cameras[v] for v in views)), det[:, views], depth[:, views]
    offsets = joint_offsets(scene["skeleton"].joint_names, cfg.depth_fusion)
    return rig, det, lift_keypoints_with_depth(det, depth, 0.001, rig, cfg=cfg.depth_fusion, offsets_m=offsets)


def test_depth_fusion_improves_the_final_3d(scene):
    cfg = ReconstructionConfig()
    rig, det, lift = _lift(scene, cfg)
    with_depth = reconstruct_keypoints(det, rig, scene["skeleton"], cfg, 30.0, lift=lift)
    off = replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False))
    without = reconstruct_keypoints(det, rig, scene["skeleton"], off, 30.0, lift=lift)
    e_with, e_without = _mpjpe(with_depth.xyz, scene["xyz"]), _mpjpe(without.xyz, scene["xyz"])
    assert np.all(np.isfinite(with_depth.xyz))
    assert e_with < 0.012, e_with
    assert e_with < 0.9 * e_without, (e_with, e_without)
    # Fusion itself (before refinement) beats the robust triangulation it starts from.
    tri = with_depth.triangulation.xyz
    both = np.all(np.isfinite(tri), axis=-1)
    err_tri = np.linalg.norm(tri - scene["xyz"], axis=-1)[both]
    err_fused = np.linalg.norm(with_depth.fused - scene["xyz"], axis=-1)[both]
    assert np.median(err_fused) < 0.85 * np.median(err_tri)
    assert with_depth.fusion is not None and without.fusion is None
    # Offsets estimated from the data: about the simulated body's radii (hips 8-10 cm, wrists 3.5 cm).
    names = scene["skeleton"].joint_names
    assert 0.05 < with_depth.offsets_m[names.index("left_hip")] < 0.11
    assert 0.015 < with_depth.offsets_m[names.index("left_wrist")] < 0.06


def test_single_rgbd_camera_gives_metric_depth_only_3d(scene):
    cfg = ReconstructionConfig()
    rig, det, lift = _lift(scene, cfg, views=[0])
    result = reconstruct_keypoints(det, rig, scene["skeleton"], cfg, 30.0, lift=lift)
    assert np.all(np.isnan(result.triangulation.xyz))  # one view: nothing to triangulate
    seen = np.isfinite(det[:, 0, :, 0])
    finite = np.all(np.isfinite(result.xyz), axis=-1)
    assert finite[seen].mean() > 0.9
    assert _mpjpe(result.xyz, scene["xyz"]) < 0.04
    assert result.fusion.depth_only_joints > 0.8 * seen.sum()


def test_two_cameras_complete_and_accurate(scene):
    cfg = ReconstructionConfig()
    rig, det, lift = _lift(scene, cfg, views=[0, 2])  # opposite cameras: triangulation is weak
    result = reconstruct_keypoints(det, rig, scene["skeleton"], cfg, 30.0, lift=lift)
    seen = np.isfinite(det[..., 0]).any(axis=1)
    finite = np.all(np.isfinite(result.xyz), axis=-1)
    assert finite[seen].mean() > 0.97
    assert _mpjpe(result.xyz, scene["xyz"]) < 0.03


def _swap_lr(det, skeleton, frames, views):
    out = det.copy()
    perm = skeleton.flip_permutation
    for v in views:
        out[frames, v] = det[frames][:, v][:, perm]
    return out


def test_a_left_right_swap_in_one_view_is_undone(scene):
    skeleton = scene["skeleton"]
    cfg = ReconstructionConfig()
    frames = slice(5, 21)
    clean = scene["det"]
    swapped = _swap_lr(clean, skeleton, frames, [1])
    rig = scene["rig"]
    offsets = joint_offsets(skeleton.joint_names, cfg.depth_fusion)
    # The depth is looked up at the (swapped) 2D, as the pipeline does.
    lift = lift_keypoints_with_depth(swapped, scene["depth"], 0.001, rig, cfg=cfg.depth_fusion, offsets_m=offsets)
    fixed = reconstruct_keypoints(swapped, rig, skeleton, cfg, 30.0, lift=lift)
    assert fixed.swapped[frames, 1].mean() > 0.9
    others = np.ones((T, 4), bool)
    others[frames, 1] = False
    assert fixed.swapped[others].sum() <= 2
    assert not fixed.flipped_3d.any()
    # The corrected 2D is the clean one where the swap was undone.
    undone = fixed.swapped[:, 1] & (np.arange(T) >= 5) & (np.arange(T) < 21)
    np.testing.assert_array_equal(fixed.keypoints2d[undone, 1], clean[undone, 1])
    off = replace(cfg, swaps=replace(cfg.swaps, per_view=False), depth_fusion=replace(cfg.depth_fusion, enabled=False))
    on = replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False))
    e_fixed = _mpjpe(reconstruct_keypoints(swapped, rig, skeleton, on, 30.0).xyz, scene["xyz"])
    e_swapped = _mpjpe(reconstruct_keypoints(swapped, rig, skeleton, off, 30.0).xyz, scene["xyz"])
    e_clean = _mpjpe(reconstruct_keypoints(clean, rig, skeleton, on, 30.0).xyz, scene["xyz"])
    assert e_fixed < e_clean + 0.002 and e_fixed < e_swapped, (e_fixed, e_clean, e_swapped)
    assert _mpjpe(fixed.xyz, scene["xyz"]) < 0.012


def test_frames_swapped_in_every_view_are_flipped_back(scene):
    skeleton = scene["skeleton"]
    cfg = replace(ReconstructionConfig(), depth_fusion=replace(ReconstructionConfig().depth_fusion, enabled=False))
    det = _swap_lr(scene["det"], skeleton, slice(10, 15), [0, 1, 2, 3])
    result = reconstruct_keypoints(det, scene["rig"], skeleton, cfg, 30.0)
    assert result.flipped_3d[10:15].all() and result.flipped_3d.sum() == 5
    assert _mpjpe(result.xyz, scene["xyz"]) < 0.02
    off = replace(cfg, swaps=replace(cfg.swaps, per_frame=False))
    left = skeleton.joint_names.index("left_ankle")
    wrong = reconstruct_keypoints(det, scene["rig"], skeleton, off, 30.0).xyz[12, left]
    truth = scene["xyz"][12, left]
    assert np.linalg.norm(result.xyz[12, left] - truth) < np.linalg.norm(wrong - truth)
