"""Interop on real data: Pose2Sim's 3D output reprojected through our import of the Qualisys rig
lands on the OpenPose 2D it was triangulated from."""
import logging

import numpy as np
import pytest

from calibration.rig_io import load_rig
from reconstruction.formats.keypoints2d import read_keypoints2d
from reconstruction.formats.points3d import read_points3d

log = logging.getLogger(__name__)
SESSION = "data/pose2sim_demo/S00_Demo_Session"
TRIAL = f"{SESSION}/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"


def reprojection_errors(rig, points, kp, shift: int = 0) -> np.ndarray:
    """(T', V, J') pixel distances between ``points`` projected through ``rig`` at frame f and the 2D
    at frame f + shift, over the joints both have (names matched)."""
    idx = [kp.joint_names.index(j) for j in points.joint_names]
    uv = np.swapaxes(rig.project(points.xyz), 1, 2)  # (T, V, J, 2)
    obs = kp.keypoints[:, :, idx, :2]
    T = min(len(uv), len(obs))
    if shift >= 0:
        a, b = uv[: T - shift], obs[shift:T]
    else:
        a, b = uv[-shift:T], obs[: T + shift]
    return np.linalg.norm(a - b, axis=-1)


@pytest.fixture
def demo(shared_dir):
    rig = load_rig(shared_dir / SESSION / "S00_Calibration/Calib.qca.txt")
    points = read_points3d(shared_dir / TRIAL / "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc")
    kp = read_keypoints2d(shared_dir / TRIAL / "pose-associated", cameras=rig.names, fps=points.fps)
    return rig, points, kp


def test_pose2sim_trc_reprojects_onto_openpose(demo):
    rig, points, kp = demo
    assert kp.cameras == tuple(rig.names)
    medians = {}
    for shift in (0, 1, -1):
        err = reprojection_errors(rig, points, kp, shift)
        medians[shift] = float(np.nanmedian(err))
        log.warning("shift %+d: median %.2f px over %d joint observations", shift, medians[shift],
                    np.isfinite(err).sum())
    assert medians[0] < 15.0
    # the TRC was triangulated from these very JSON: the same index is the best match
    assert medians[0] <= min(medians[1], medians[-1])
    # every view agrees, not just on average
    per_view = np.nanmedian(reprojection_errors(rig, points, kp), axis=(0, 2))
    assert np.all(per_view < 25.0)


def test_wrong_axis_mapping_would_be_caught(demo):
    """The TRC -> world mapping is checked by the data: reading TRC axes as world axes unchanged
    puts the points far from the 2D (so the test above can fail)."""
    from dataclasses import replace

    from reconstruction.formats.points3d import world_to_trc

    rig, points, kp = demo
    raw = replace(points, xyz=world_to_trc(points.xyz))  # TRC axes taken as world axes
    err = reprojection_errors(rig, raw, kp)
    assert not np.isfinite(err).any() or np.nanmedian(err) > 100
