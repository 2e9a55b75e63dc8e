"""calibration/rig_alignment.py: a rig moved onto a reference rig (rigid or with scale), and what differs."""
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.camera import Rig
from calibration.errors import CalibrationError
from calibration.rig_alignment import align_rig
from reconstruction.simulation.rigs import ring_rig


def test_align_rig_undoes_a_rigid_motion_and_reports_what_remains():
    from dataclasses import replace

    from scipy.spatial.transform import Rotation

    from calibration.camera import Rig
    from reconstruction.simulation.rigs import ring_rig
    from calibration.rig_alignment import align_rig

    truth = ring_rig(4, 3.0, 1.5)
    Q = Rotation.from_euler("xyz", [10, -20, 75], degrees=True).as_matrix()  # X_other = Q X_truth + s
    s = np.array([0.5, -1.0, 2.0])
    moved = [replace(c, R=c.R @ Q.T, t=c.t - c.R @ Q.T @ s) for c in truth.cameras]
    # one camera also off by 1 degree about its own optical axis (a centre error would move the fit)
    turn = Rotation.from_euler("z", 1.0, degrees=True).as_matrix()
    moved[2] = replace(moved[2], R=turn @ moved[2].R, t=turn @ moved[2].t)
    placed, acc = align_rig(Rig(tuple(reversed(moved))), truth)  # any order: matched by name
    assert placed.names == truth.names
    np.testing.assert_allclose(acc.position_m, 0.0, atol=1e-9)
    np.testing.assert_allclose(acc.rotation_deg, [0.0, 0.0, 1.0, 0.0], atol=1e-4)  # arccos near 1
    np.testing.assert_allclose(acc.R, Q.T, atol=1e-9)
    np.testing.assert_allclose(placed.cameras[0].R, truth.cameras[0].R, atol=1e-9)
    np.testing.assert_allclose(placed.cameras[0].t, truth.cameras[0].t, atol=1e-9)


def test_align_rig_with_scale_recovers_a_known_similarity():
    truth = ring_rig(4, 3.0, 1.5)
    # the same rig in a world 0.8 times as large, rotated and moved: X_other = s Q X_truth + d
    s, Q, d = 0.8, Rotation.from_euler("xyz", [-30, 15, 120], degrees=True).as_matrix(), np.array([1.0, 2.0, -0.5])
    other = truth.transformed(Q, d, s)
    np.testing.assert_allclose(other.centers, s * truth.centers @ Q.T + d, atol=1e-12)
    placed, acc = align_rig(other, truth, with_scale=True)
    assert acc.scale == pytest.approx(1 / s, rel=1e-9)
    np.testing.assert_allclose(acc.R, Q.T, atol=1e-9)
    np.testing.assert_allclose(acc.t, -Q.T @ d / s, atol=1e-9)
    np.testing.assert_allclose(acc.position_m, 0.0, atol=1e-9)
    np.testing.assert_allclose(acc.rotation_deg, 0.0, atol=1e-4)
    np.testing.assert_allclose(placed.centers, truth.centers, atol=1e-9)
    # rigid only: the scale stays 1 and the centres keep the size difference
    _, rigid = align_rig(other, truth)
    assert rigid.scale == 1.0 and rigid.position_m.max() > 0.5


def test_align_rig_needs_the_reference_cameras():
    truth = ring_rig(3)
    with pytest.raises(CalibrationError, match="do not match the reference"):
        align_rig(Rig(tuple(replace(c, name=f"x{i}") for i, c in enumerate(truth))), truth)
    with pytest.raises(CalibrationError, match="at least two cameras"):
        align_rig(truth, Rig((truth[0],)))
