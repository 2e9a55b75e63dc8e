"""reconstruction/pipeline/outputs.py: the files of a reconstruction (3D, quality.json, plot, 2D per view, the
resolved config) from precomputed 2D."""
import json

import numpy as np
import pytest

from reconstruction.formats.keypoints2d import Keypoints2D
from reconstruction.pipeline import (
    Detections2D, ReconstructionConfig, load_reconstruction_config, reconstruct_session,
)
from tests.support import mpjpe as _mpjpe


T = 30


@pytest.fixture(scope="module")
def scene(rgbd_walk_scene):
    """The session's simulated 4-camera RGB-D walk (tests/conftest.py)."""
    return rgbd_walk_scene


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
