"""Two RGB-D cameras: the full pipeline (depth read at the first 3D estimate, head depth, bone-held
filling) on a small simulated session rendered in memory, against its ground truth."""
import numpy as np
import pytest

from calibration.camera import Rig
from reconstruction.depth.offsets import joint_offsets
from reconstruction.pipeline import ReconstructionConfig, reconstruct_keypoints
from reconstruction.pipeline.offline import lift_chunk_depth as lift_depth

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


def _mpjpe(xyz, truth):
    return float(np.nanmean(np.linalg.norm(xyz - truth, axis=-1)))


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
