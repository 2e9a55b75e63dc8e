"""reconstruction/pipeline/offline.py: the offline driver: the pipeline's depth lift (depth read at the first
3D estimate, limb middles, head), two RGB-D cameras complete and accurate, the 2D model path chunked
and resumable from its cache."""
from dataclasses import replace

import numpy as np
import pytest

from calibration.camera import Rig
from reconstruction.depth.offsets import joint_offsets
from reconstruction.pipeline import ReconstructionConfig, reconstruct_keypoints, reconstruct_session
from reconstruction.pipeline.offline import lift_chunk_depth as lift_depth
from tests.support import mpjpe as _mpjpe


T = 30
FPS = 30.0


@pytest.fixture(scope="module")
def scene(rgbd_walk_scene):
    """The session's simulated 4-camera RGB-D walk (tests/conftest.py)."""
    return rgbd_walk_scene


def _run(scene, views):
    """The pipeline's depth lift (reading at the first 3D estimate) and reconstruction of ``views``."""
    cfg = ReconstructionConfig()
    skeleton = scene["skeleton"]
    rig = Rig(tuple(scene["rig"].cameras[v] for v in views))
    det, depth = scene["det"][:, views], scene["depth"][:, views]
    offsets = joint_offsets(skeleton.joint_names, cfg.depth_fusion)
    lift = lift_depth(det, depth, 0.001, rig, skeleton, cfg, FPS, offsets)
    return lift, reconstruct_keypoints(det, rig, skeleton, cfg, FPS, lift=lift)


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


@pytest.mark.parametrize("views", [(0, 1), (0, 2)], ids=["90_degrees", "facing"])
def test_two_rgbd_cameras_are_complete_and_accurate(scene, views):
    lift, result = _run(scene, list(views))
    assert lift.at_estimate is not None and lift.at_estimate.any()  # read at the first estimate
    finite = np.all(np.isfinite(result.xyz), axis=-1)  # (T, J)
    # Every joint the two cameras detect in a few frames is there in every frame (bones and
    # smoothness carry it where no camera sees it). A joint seen in fewer frames is not invented:
    # with cameras 0 and 1 the left wrist is detected twice in 30 frames, once with the depth of
    # another surface, and stays NaN.
    frames_seen = np.isfinite(scene["det"][:, list(views), :, 0]).any(axis=1).sum(axis=0)  # (J,)
    seen = frames_seen >= 5
    assert finite[:, seen].all(), np.argwhere(~finite[:, seen])
    assert finite.mean() >= (0.94 if views == (0, 1) else 1.0)
    err = _mpjpe(result.xyz, scene["xyz"])
    assert err < 0.030, err


def test_four_rgbd_cameras_measure_the_head(scene):
    _, result = _run(scene, [0, 1, 2, 3])
    noise = result.depth_noise.report(scene["skeleton"]) if result.depth_noise is not None else None
    assert noise is not None and noise["head_points"] > 0
    assert noise["head_points"] <= T * 4
    # the head centre lies about a head radius behind its surface (the simulated head: ~9 cm)
    assert 0.04 < noise["head_offset_m"] < 0.14
    assert np.all(np.isfinite(result.xyz))
    assert _mpjpe(result.xyz, scene["xyz"]) < 0.015


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
