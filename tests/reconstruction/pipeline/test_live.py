"""reconstruction/pipeline/live.py: the live stages (2D -> triangulation -> depth fusion -> one-euro filter) on a
rendered loop, frame set by frame set, against the truth."""
import numpy as np
import pytest

from capture.devices import CapturedFrame
from capture.live import LiveFrameSet
from reconstruction.pipeline.live import build_live_stages
from reconstruction.simulation.live import render_loop, simulated_detection_stage
from reconstruction.simulation.session import SimulationConfig, build_rig


FPS = 30


@pytest.fixture(scope="module")
def loop():
    """3 simulated D435 at 320x240 on a ring, 9 rendered frames (0.3 s) of a walking person."""
    rig = build_rig(SimulationConfig(cameras=3, resolution=(320, 240)))
    return rig, render_loop(rig, FPS, 0.3, 0)


def _run(rig, loop, use_depth, frames_have_depth):
    """Every stage's output per frame set: {"detect2d": (T, V, J, 3), "triangulate": (T, J, 3), ...}."""
    detect = simulated_detection_stage(loop.keypoints2d, rig, noise_px=1.0, outlier_rate=0.0, seed=0)
    stages = build_live_stages(rig, float(FPS), loop.skeleton, detect, depth=use_depth, depth_scale=loop.depth_scale)
    assert [name for name, _ in stages] == ["detect2d", "triangulate", "depth_fusion", "filter"]
    out = {name: [] for name, _ in stages}
    for k in range(loop.xyz.shape[0]):
        t_ms = 1000.0 * k / FPS
        frames = tuple(CapturedFrame(cam.serial, k + 1, t_ms, loop.color[v, k],
                                     loop.depth[v, k] if frames_have_depth else None, 0.0, sim_index=k)
                       for v, cam in enumerate(rig))
        result = None
        for name, fn in stages:
            result = fn(LiveFrameSet(k, t_ms, frames, 0.0), result)
            out[name].append(result[1].xyz[0] if name == "triangulate" else result[0] if name == "detect2d" else result)
    return {name: np.stack(v) for name, v in out.items()}


def _median_m(xyz, truth):
    return float(np.nanmedian(np.linalg.norm(xyz - truth, axis=-1)))


@pytest.mark.parametrize("use_depth, frames_have_depth", [(True, True), (False, True), (True, False)],
                         ids=["rgbd", "depth_off", "no_depth_frames"])
def test_live_stages_give_the_skeleton_frame_by_frame(loop, use_depth, frames_have_depth):
    rig, loop = loop
    out = _run(rig, loop, use_depth, frames_have_depth)
    truth, truth2d = loop.xyz, loop.keypoints2d
    T, J = truth.shape[:2]
    seen = truth2d[..., 2] > 0  # (T, V, J) visible joints: detected with 1 px noise
    err2d = np.linalg.norm(out["detect2d"][..., :2] - truth2d[..., :2], axis=-1)
    assert out["detect2d"].shape == (T, len(rig), J, 3) and np.all(np.isfinite(err2d[seen]))
    assert 0.5 < np.median(err2d[seen]) < 2.0
    tri = out["triangulate"]
    assert tri.shape == (T, J, 3) and np.isfinite(tri[..., 0]).mean() > 0.9
    assert _median_m(tri, truth) < 0.02
    for name in ("depth_fusion", "filter"):
        assert out[name].shape == (T, J, 3)
        assert _median_m(out[name], truth) < 0.04, name
    with_depth = use_depth and frames_have_depth
    if with_depth:
        # the depth is used: it moves the triangulated joints, and it places those only one camera saw
        both = np.isfinite(tri[..., 0])
        assert not np.allclose(out["depth_fusion"][both], tri[both], atol=1e-4)
        assert (~both).any() and np.all(np.isfinite(out["depth_fusion"]))
    else:
        np.testing.assert_array_equal(out["depth_fusion"], tri)  # the triangulation passes through
        assert _median_m(out["filter"], truth) < 0.03
    np.testing.assert_array_equal(np.isfinite(out["filter"]), np.isfinite(out["depth_fusion"]))
    np.testing.assert_allclose(out["filter"][0], out["depth_fusion"][0])  # the filter starts at its first input
    moved = np.linalg.norm(out["filter"][1:] - out["depth_fusion"][1:], axis=-1)
    assert np.nanmedian(moved) > 1e-4  # ... and then smooths (causally: it lags the moving person a little)
