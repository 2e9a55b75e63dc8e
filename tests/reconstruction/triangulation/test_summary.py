"""reconstruction/triangulation/summary.py: per camera / joint figures of a triangulation, JSON-ready."""
import json

from reconstruction.triangulation import triangulate, triangulation_summary
from tests.support import noiseless_keypoints as _truth


def test_summary_reports_cameras_joints_and_exclusions(rig4):
    xyz, kp = _truth(rig4, frames=6)
    kp[:, 1, :, :2] += 100.0  # camera 1 always wrong
    result = triangulate(kp, rig4)
    summary = triangulation_summary(result, rig4.names, [f"j{j}" for j in range(kp.shape[2])])
    json.dumps(summary)  # JSON-ready
    assert summary["completeness"] == 1.0
    assert summary["per_camera"]["cam1"]["exclusion_rate"] == 1.0
    assert summary["per_camera"]["cam0"]["exclusion_rate"] == 0.0
    assert summary["per_camera"]["cam0"]["median_px"] < 1e-3
    assert set(summary["per_joint"]) == {f"j{j}" for j in range(kp.shape[2])}
