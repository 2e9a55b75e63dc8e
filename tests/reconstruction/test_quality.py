"""Quality without ground truth: known answers on constructed sequences, JSON-ready output."""
import json

import numpy as np
import pytest

from reconstruction.quality import sequence_quality
from reconstruction.simulation import procedural_motion
from reconstruction.skeleton import load_skeleton


@pytest.fixture(scope="module")
def skeleton():
    return load_skeleton("coco17")


def test_rigid_constant_velocity_body_has_no_jitter_and_constant_bones(skeleton):
    pose = procedural_motion(skeleton, 1, 30.0)[0]
    T = 50
    xyz = pose[None] + np.arange(T)[:, None, None] * np.array([0.01, 0.0, 0.0])  # 0.3 m/s, no acceleration
    q = sequence_quality(xyz, skeleton, fps=30.0)
    assert q["jitter_m_s2"]["median"] == pytest.approx(0.0, abs=1e-6)
    assert q["bone_length_std_mm"]["max_rigid"] == pytest.approx(0.0, abs=1e-6)
    assert q["completeness"] == 1.0
    json.dumps(q)


def test_known_jitter_bone_spread_and_reprojection(skeleton, rng):
    T, J = 400, skeleton.num_joints
    pose = procedural_motion(skeleton, 1, 30.0)[0]
    xyz = np.repeat(pose[None], T, axis=0)
    j = skeleton.index("left_wrist")
    along = pose[j] - pose[skeleton.index("left_elbow")]
    along /= np.linalg.norm(along)  # +-1 mm along the forearm, alternating: |second difference| = 4 mm
    xyz[:, j] += 0.001 * (-1.0) ** np.arange(T)[:, None] * along
    q = sequence_quality(xyz, skeleton, fps=30.0, reproj_error_px=np.full((T, J), 2.5), n_views=np.full((T, J), 4))
    assert q["jitter_m_s2"]["per_joint_median"]["left_wrist"] == pytest.approx(0.004 * 900, rel=1e-6)
    assert q["jitter_m_s2"]["per_joint_median"]["nose"] == pytest.approx(0.0, abs=1e-9)
    assert q["bone_length_mm"]["left_elbow-left_wrist"]["std"] == pytest.approx(1.0, abs=1e-6)
    assert q["reprojection_error_px"]["median"] == 2.5
    assert q["views_used_mean"] == 4.0


def test_nan_joints_lower_completeness_and_stay_json(skeleton):
    xyz = np.zeros((10, skeleton.num_joints, 3))
    xyz[:5, 0] = np.nan
    q = sequence_quality(xyz, skeleton, fps=30.0, reproj_error_px=np.full((10, skeleton.num_joints), np.nan))
    assert q["completeness_per_joint"]["nose"] == 0.5
    assert q["reprojection_error_px"]["median"] is None
    text = json.dumps(q)
    assert "NaN" not in text


def test_wrong_joint_count_raises(skeleton):
    with pytest.raises(ValueError, match="joints"):
        sequence_quality(np.zeros((3, 5, 3)), skeleton, fps=30.0)
