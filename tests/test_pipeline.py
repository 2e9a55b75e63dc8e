"""Offline pipeline: known answers on a small simulated RGB-D session (rendered in memory)."""
import json
from dataclasses import replace

import numpy as np
import pytest

from capture.errors import ConfigError
from reconstruction.depth.offsets import joint_offsets
from reconstruction.depth.reading import lift_keypoints_with_depth
from reconstruction.formats.keypoints2d import Keypoints2D
from reconstruction.pipeline import (
    DEFAULT_CONFIG,
    Detections2D,
    ReconstructionConfig,
    load_reconstruction_config,
    reconstruct_keypoints,
    reconstruct_session,
)

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


def _mpjpe(xyz, truth):
    return float(np.nanmean(np.linalg.norm(xyz - truth, axis=-1)))


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


def test_pipeline_depth_path_beats_the_same_pipeline_without_depth(scene):
    # The pipeline's own lift (depth read at the first 3D estimate, limb middles, the head): 6.1 vs
    # 8.3 mm on this 1 s clip (ratio 0.74; 0.70 on the 3 s benchmark session, 0.61-0.71 on 7 sessions).
    from reconstruction.pipeline.offline import lift_chunk_depth as lift_depth

    cfg = ReconstructionConfig()
    skeleton = scene["skeleton"]
    lift = lift_depth(scene["det"], scene["depth"], 0.001, scene["rig"], skeleton, cfg, 30.0,
                      joint_offsets(skeleton.joint_names, cfg.depth_fusion))
    with_depth = reconstruct_keypoints(scene["det"], scene["rig"], skeleton, cfg, 30.0, lift=lift)
    off = replace(cfg, depth_fusion=replace(cfg.depth_fusion, enabled=False))
    without = reconstruct_keypoints(scene["det"], scene["rig"], skeleton, off, 30.0)
    e_with, e_without = _mpjpe(with_depth.xyz, scene["xyz"]), _mpjpe(without.xyz, scene["xyz"])
    assert e_with < 0.0075 and e_with < 0.8 * e_without, (e_with, e_without)
    noise = with_depth.depth_noise.report(skeleton)
    assert noise["segment_points"] > 200 and noise["head_points"] > 50
    # the limbs' radii measured from the data: a few centimetres (the simulator's capsules: 2.8-4.4 cm);
    # a bone with too few reliable frames in this 1 s clip is not measured (NaN: no reading)
    radii = np.array(list(noise["segment_offsets_m"].values()), dtype=float)
    measured = radii[np.isfinite(radii)]
    assert len(measured) >= 3 and np.all((measured > 0.015) & (measured < 0.06)), radii


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


def test_default_config_file_loads_and_unknown_keys_are_named(tmp_path):
    cfg = load_reconstruction_config(DEFAULT_CONFIG)
    assert isinstance(cfg, ReconstructionConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("depth_fusion:\n  window_pixels: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*depth_fusion.*window_pixels"):
        load_reconstruction_config(bad)
    bad.write_text("chunk_frame: 10\n")
    with pytest.raises(ConfigError, match="chunk_frame"):
        load_reconstruction_config(bad)


def test_outputs_from_precomputed_2d(scene, tmp_path):
    from reconstruction.formats.points3d import read_points3d

    kp = Keypoints2D(scene["det"], tuple(scene["rig"].names), scene["skeleton"].joint_names, 30.0)
    cfg = ReconstructionConfig()
    out = reconstruct_session(None, cfg, tmp_path, detections=Detections2D(kp), rig=scene["rig"], progress=False,
                              truth=scene["xyz"])
    for name in ("points3d.npz", "points3d.trc", "points3d.c3d", "quality.json", "plot3d.png",
                 "reconstruction.yaml"):
        assert (tmp_path / name).is_file(), name
    for cam in scene["rig"].names:
        assert (tmp_path / "keypoints2d" / f"{cam}.npz").is_file()
    back = read_points3d(tmp_path / "points3d.c3d")
    np.testing.assert_allclose(back.xyz, out.result.xyz, atol=1e-3, equal_nan=True)
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert quality["completeness"] == pytest.approx(np.all(np.isfinite(out.result.xyz), axis=-1).mean())
    assert set(quality["reprojection_error_px"]["per_camera"]) == set(scene["rig"].names)
    assert quality["reprojection_error_px"]["median"] < 4.0  # 3 px noise
    assert quality["bone_length_std_m"]["median_rigid"] < 0.01
    assert quality["depth_fusion"] is False
    # The resolved config reloads to the same values.
    again = load_reconstruction_config(tmp_path / "reconstruction.yaml")
    assert again.depth_fusion == cfg.depth_fusion and again.chunk_frames == cfg.chunk_frames
    assert _mpjpe(out.result.xyz, scene["xyz"]) < 0.02
    # The ground-truth-free figures and the swap correction are in the report.
    seq = quality["sequence_quality"]
    assert seq["frames"] == T and seq["completeness"] == pytest.approx(quality["completeness"])
    assert quality["swaps"]["views_corrected"] <= 2  # clean labels: (almost) nothing to undo


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


def test_triangulate_cli_takes_the_frame_rate_and_reports_sequence_quality(scene, tmp_path):
    from calibration.rig_io import save_rig
    from reconstruction.cli import main
    from reconstruction.formats.keypoints2d import write_keypoints2d
    from reconstruction.formats.points3d import read_points3d

    kp_path = write_keypoints2d(tmp_path / "kp.npz", Keypoints2D(scene["det"], tuple(scene["rig"].names),
                                                                 scene["skeleton"].joint_names, 30.0))
    rig_path = save_rig(scene["rig"], tmp_path / "rig.yaml", "yaml")
    out = tmp_path / "out.trc"
    assert main(["triangulate", "--calibration", str(rig_path), "--keypoints", str(kp_path), "--fps", "60",
                 "--output", str(out)]) == 0
    assert read_points3d(out).fps == 60.0
    summary = json.loads((tmp_path / "out.trc.summary.json").read_text())
    seq = summary["sequence_quality"]
    assert seq["fps"] == 60.0 and seq["frames"] == T
    assert seq["completeness"] == pytest.approx(summary["completeness"])
    assert main(["triangulate", "--calibration", str(rig_path), "--keypoints", str(kp_path), "--fps", "0",
                 "--output", str(out)]) == 2


class _CountingModel:
    """A stand-in 2D model: the true joints of the simulated session (plus 1 px), counting its calls."""

    name = "fake"

    def __init__(self, truth_kp, joint_names):
        self.truth = truth_kp  # (T, V, J, 3)
        self.joint_names = joint_names
        self.calls = 0
        self.frame = 0

    def predict(self, images, boxes, flip_test=False):
        from types import SimpleNamespace

        self.calls += 1
        kp = self.truth[min(self.frame, len(self.truth) - 1)].copy()
        kp[..., :2] += 1.0
        kp[..., 2] = np.where(kp[..., 2] > 0.5, 0.9, np.nan)
        self.frame += 1
        return SimpleNamespace(keypoints=kp)


def test_model_path_is_chunked_and_resumable_from_the_cache(tmp_path, monkeypatch):
    from reconstruction import pipeline
    from reconstruction.simulation.session import SimulationConfig, simulate_session

    sim = simulate_session(tmp_path / "s", SimulationConfig(cameras=2, seconds=0.3, resolution=(320, 240),
                                                            clock_offsets_ms=(0.0, 0.0), seed=5))
    truth = np.load(sim.ground_truth)
    model = _CountingModel(truth["keypoints2d"], tuple(map(str, truth["joint_names"])))
    monkeypatch.setattr(pipeline.offline, "load_model2d", lambda name, cfg: model)
    cfg = ReconstructionConfig(chunk_frames=4, model2d=pipeline.Model2DConfig(detector="full"),
                               output=pipeline.OutputConfig(overlay_video=False))
    session = pipeline.open_session([sim.out_dir], sim.rig)
    first = reconstruct_session(session, cfg, tmp_path / "out", progress=False)
    T = len(truth["xyz"])
    assert model.calls >= T and first.keypoints2d.shape[0] == T  # + re-runs on a chunk's first frame
    assert len(list((tmp_path / "out" / "cache").glob("2d_*.npz"))) == 2 * int(np.ceil(T / 4))  # per view, chunk
    model.calls, model.frame = 0, 0
    again = reconstruct_session(session, cfg, tmp_path / "out", progress=False)
    assert model.calls == 0  # every chunk came from the cache
    np.testing.assert_array_equal(again.keypoints2d, first.keypoints2d)
    np.testing.assert_array_equal(again.result.xyz, first.result.xyz)
