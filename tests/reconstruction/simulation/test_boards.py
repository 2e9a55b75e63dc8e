"""reconstruction/simulation/boards.py: the simulated board tour shows the board to every camera and to pairs of
neighbours."""
import numpy as np

from reconstruction.simulation.session import SimulationConfig


def test_board_motion_shows_the_board_to_every_camera_and_pairs_of_neighbours():
    from reconstruction.simulation.boards import projected_detections
    from capture.config import section_from_mapping
    from calibration.board import BoardSpec
    from reconstruction.simulation.boards import board_tour as _board_poses
    from reconstruction.simulation.session import SIMULATION_BOARD, build_rig

    cfg = SimulationConfig(cameras=4)
    rig = build_rig(cfg)
    spec = section_from_mapping(BoardSpec, SIMULATION_BOARD)
    R, t = _board_poses(rig, spec, cfg.num_board_frames, cfg.board_fps, np.random.default_rng(0))
    assert R.shape == (cfg.num_board_frames, 3, 3) and t.shape == (cfg.num_board_frames, 3)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    centres = t + R @ spec.object_points().mean(axis=0)
    assert np.all(np.abs(centres[:, :2]) < 0.8) and np.all((centres[:, 2] > 0.6) & (centres[:, 2] < 1.6))
    dets = projected_detections(rig, spec, list(zip(R, t)), 0.0, np.random.default_rng(0))
    seen = np.array([[f"f{k:04d}" in dets[c.name] for k in range(cfg.num_board_frames)] for c in rig])  # (V, T)
    assert np.all(seen.sum(axis=1) >= 10), seen.sum(axis=1)  # every camera sees the board often
    for v in range(4):  # and each pair of neighbours sees it at the same time
        assert (seen[v] & seen[(v + 1) % 4]).sum() >= 3, v
