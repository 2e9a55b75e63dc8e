"""PnP per view, the camera pose graph (chaining, disconnected groups) and the board world frame."""
import numpy as np
import pytest

from calibration.board import BoardSpec
from calibration.calibrate import calibrate_from_detections
from calibration.errors import CalibrationError
from calibration.extrinsics import (
    board_pose_pnp, estimate_board_poses, initial_board_poses, initial_camera_poses, world_from_board,
)
from reconstruction.simulation.boards import board_facing, projected_detections, random_board_poses
from reconstruction.simulation.rigs import ring_rig


SPEC = BoardSpec(squares=(7, 5), square_length=0.1, marker_length=0.075)


def _angle_deg(Ra, Rb):
    return np.degrees(np.arccos(np.clip((np.trace(Ra @ Rb.T) - 1) / 2, -1, 1)))


def test_pnp_recovers_board_pose(rig4):
    cam = rig4[1]
    R_board, t_board = board_facing(cam.center + 2.0 * cam.R[2], cam.center, (25, -10, 30), SPEC)
    dets = projected_detections(rig4.subset(["cam1"]), SPEC, [(R_board, t_board)], 0.0, np.random.default_rng(0))
    pose = board_pose_pnp(cam.K, cam.dist, dets["cam1"]["f0000"], SPEC)
    np.testing.assert_allclose(pose.R, cam.R @ R_board, atol=1e-7)
    np.testing.assert_allclose(pose.t, cam.R @ t_board + cam.t, atol=1e-7)
    assert pose.rms < 1e-6 and pose.n == SPEC.num_corners


def test_pose_graph_is_exact_without_noise(rig4):
    rng = np.random.default_rng(3)
    poses = random_board_poses(rig4, SPEC, 40, rng)
    dets = projected_detections(rig4, SPEC, poses, 0.0, rng)
    intr = {c.name: (c.K, c.dist) for c in rig4}
    board = estimate_board_poses(intr, dets, SPEC)
    cams, links = initial_camera_poses(rig4.names, board)
    truth = rig4.transformed(rig4[0].R, rig4[0].t)  # world = camera 0
    for cam in truth:
        R, t = cams[cam.name]
        np.testing.assert_allclose(R, cam.R, atol=1e-6)
        np.testing.assert_allclose(t, cam.t, atol=1e-6)
    assert len(links) == 3
    frames = initial_board_poses(cams, board)
    f0 = sorted(frames)[0]
    index = int(f0[1:])
    R_expected = rig4[0].R @ poses[index][0]
    np.testing.assert_allclose(frames[f0][0], R_expected, atol=1e-6)


def _ring6_without_opposite_links(rng, num_frames=150, noise=0.2):
    rig = ring_rig(6, radius=3.0, dist=(-0.05, 0.02, 0.0, 0.0, 0.0))
    poses = random_board_poses(rig, SPEC, num_frames, rng, near_fraction=0.4)
    dets = projected_detections(rig, SPEC, poses, noise / np.sqrt(2), rng)
    # Opposite cameras (i, i + 3) never see the board in the same frame.
    for i in range(3):
        a, b = f"cam{i}", f"cam{i + 3}"
        for frame in set(dets[a]) & set(dets[b]):
            del dets[b][frame]
    return rig, dets


def test_six_camera_ring_calibrates_through_the_graph(rng):
    rig, dets = _ring6_without_opposite_links(rng)
    for i in range(3):
        assert not set(dets[f"cam{i}"]) & set(dets[f"cam{i + 3}"])
    result = calibrate_from_detections(dets, {c.name: c.image_size for c in rig}, SPEC)
    linked = {frozenset((a, b)) for a, b, _ in result.report.links}
    assert not linked & {frozenset((f"cam{i}", f"cam{i + 3}")) for i in range(3)}
    truth = rig.transformed(rig[0].R, rig[0].t)
    for est, cam in zip(result.rig, truth):
        assert np.linalg.norm(est.center - cam.center) < 0.02, est.name
        assert _angle_deg(est.R, cam.R) < 0.3, est.name
        assert est.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.005)
    assert result.report.rms < 0.25


def test_disconnected_rig_names_the_groups(rig4):
    rng = np.random.default_rng(5)
    poses = random_board_poses(rig4, SPEC, 60, rng)
    dets = projected_detections(rig4, SPEC, poses, 0.1, rng)
    # cam0/cam1 and cam2/cam3 never see the board together.
    for a in ("cam0", "cam1"):
        for b in ("cam2", "cam3"):
            for frame in set(dets[a]) & set(dets[b]):
                del dets[b][frame]
    with pytest.raises(CalibrationError, match=r"group 1: cam0, cam1; group 2: cam2, cam3"):
        calibrate_from_detections(dets, {c.name: c.image_size for c in rig4}, SPEC)


def test_camera_without_board_is_named(rig4):
    intr = {c.name: (c.K, c.dist) for c in rig4}
    rng = np.random.default_rng(6)
    dets = projected_detections(rig4, SPEC, random_board_poses(rig4, SPEC, 30, rng), 0.0, rng)
    dets["cam3"] = {}
    board = estimate_board_poses(intr, dets, SPEC)
    with pytest.raises(CalibrationError, match="never saw the board: cam3"):
        initial_camera_poses(rig4.names, board)


def test_world_from_board_on_floor_is_z_up(rig4):
    # A board lying printed side up on the floor (world z = 0): board z points down.
    R_board = np.diag([1.0, -1.0, -1.0])
    t_board = np.array([0.2, -0.3, 0.0])
    # Express the rig in camera 0's frame, then move the world back onto the board.
    R0, t0 = rig4[0].R, rig4[0].t
    in_cam0 = rig4.transformed(R0, t0)
    R_b0, t_b0 = R0 @ R_board, R0 @ t_board + t0
    R_new, t_new = world_from_board(R_b0, t_b0, on_floor=True)
    back = in_cam0.transformed(R_new, t_new)
    expected = rig4.transformed(np.eye(3), -t_board)  # world origin at the board's corner
    for a, b in zip(back, expected):
        np.testing.assert_allclose(a.center, b.center, atol=1e-9)
        np.testing.assert_allclose(a.R, b.R, atol=1e-9)
    assert np.all(back.centers[:, 2] > 1.0)
