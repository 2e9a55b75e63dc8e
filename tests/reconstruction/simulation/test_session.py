"""reconstruction/simulation/session.py: the simulator end to end: recordings read back with pyrealsense2 itself,
against the ground truth; BVH-driven motion, moving-board recordings, a given rig file."""
import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from reconstruction.simulation.session import SimulationConfig, simulate_session  # noqa: E402
from tests.support import read_with_pyrealsense2  # noqa: E402


@pytest.fixture(scope="module")
def small_session(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    cfg = SimulationConfig(cameras=2, seconds=12 / 30, resolution=(160, 120), drop_rate=0.15, seed=3)
    return simulate_session(out, cfg), cfg


def test_recordings_play_back_with_drops_and_offsets(small_session):
    result, cfg = small_session
    truth = np.load(result.ground_truth)
    T, V = 12, 2
    assert truth["timestamps_ms"].shape == (T, V)
    dropped = np.isnan(truth["timestamps_ms"])
    assert 0 < dropped.sum() < T * V  # this seed drops some frames
    assert list(truth["cameras"]) == result.rig.names
    for v, path in enumerate(result.recordings):
        frames, info = read_with_pyrealsense2(path)
        assert info["serial"] == result.rig.names[v] == path.stem
        assert info["depth_scale"] == pytest.approx(0.001)
        assert (info["intrinsics"].width, info["intrinsics"].height) == (160, 120)
        assert info["intrinsics"].fx == pytest.approx(result.rig[v].K[0, 0])
        kept = np.flatnonzero(~dropped[:, v])
        for kind in ("depth", "color"):
            numbers = [f[1] for f in frames[kind]]
            assert numbers == list(truth["frame_numbers"][kept]), kind  # gaps where dropped
            stamps = np.array([f[0] for f in frames[kind]])
            np.testing.assert_allclose(stamps, truth["timestamps_ms"][kept, v], atol=1e-3)
        assert frames["depth"][0][2].dtype == np.uint16 and frames["color"][0][2].shape == (120, 160, 3)
    # undoing the clock offsets leaves the true frame times plus jitter (<= 2 sigma)
    true_ms = np.arange(T)[:, None] * 1000.0 / cfg.fps
    residual = truth["timestamps_ms"] - truth["clock_offsets_ms"][None] - true_ms
    assert np.nanmax(np.abs(residual)) <= 2 * cfg.jitter_ms + 1e-9
    assert np.ptp(truth["clock_offsets_ms"]) > 1.0  # offsets differ between cameras


def test_rig_files_name_cameras_by_serial(small_session):
    from calibration.rig_io import load_rig

    result, _ = small_session
    for name in ("rig.yaml", "rig.toml"):
        rig = load_rig(result.out_dir / name)
        assert rig.names == result.rig.names
        for a, b in zip(rig, result.rig):
            np.testing.assert_allclose(a.K, b.K, atol=1e-9)
            np.testing.assert_allclose(a.R, b.R, atol=1e-9)
            np.testing.assert_allclose(a.t, b.t, atol=1e-9)


def test_ground_truth_keypoints_are_projections(small_session):
    result, _ = small_session
    truth = np.load(result.ground_truth)
    xyz, kp = truth["xyz"], truth["keypoints2d"]
    assert xyz.shape == (12, 17, 3) and kp.shape == (12, 2, 17, 3)
    assert list(truth["joint_names"])[:3] == ["nose", "left_eye", "right_eye"]
    for v, camera in enumerate(result.rig):
        np.testing.assert_allclose(kp[:, v, :, :2], camera.project(xyz), atol=1e-9)
    assert set(np.unique(kp[..., 2])) == {0.0, 1.0}
    # with a ring of cameras, every joint is seen by some camera in most frames
    assert np.mean(kp[..., 2].max(axis=1)) > 0.8


def depth_agreement(result):
    """(|recorded depth - joint depth| / body radius) at every visible joint, and the count of holes."""
    truth = np.load(result.ground_truth)
    ratios, signed, holes = [], [], 0
    for v, path in enumerate(result.recordings):
        frames, info = read_with_pyrealsense2(path)
        camera = result.rig[v]
        for _, number, depth in frames["depth"]:
            k = int(number) - 1
            kp = truth["keypoints2d"][k, v]
            visible = kp[:, 2] == 1
            z = camera.world_to_camera(truth["xyz"][k])[visible, 2]
            d = depth[np.rint(kp[visible, 1]).astype(int), np.rint(kp[visible, 0]).astype(int)] * info["depth_scale"]
            valid = d > 0
            holes += int((~valid).sum())
            radius = truth["joint_radius_m"][visible]
            ratios.append((np.abs(d - z) / radius)[valid])
            signed.append(((z - d) / radius)[valid])
    return np.concatenate(ratios), np.concatenate(signed), holes


def test_recorded_depth_agrees_with_joint_depth_within_body_radius(tmp_path):
    cfg = SimulationConfig(cameras=2, seconds=8 / 30, seed=5)  # the default 640x480, D435
    result = simulate_session(tmp_path / "noisy", cfg)
    ratios, _, holes = depth_agreement(result)
    assert ratios.size > 100
    assert np.median(ratios) <= 1.0  # the acceptance: median over joints and frames
    assert holes < 0.1 * ratios.size


def test_noiseless_recorded_depth_is_the_body_surface(tmp_path):
    cfg = SimulationConfig(cameras=2, seconds=6 / 30, resolution=(320, 240), seed=6, depth_noise=0.0, dropout_rate=0.0)
    result = simulate_session(tmp_path / "clean", cfg)
    _, signed, _ = depth_agreement(result)
    # the surface seen at a visible joint is in front of it by at most the radius (+1 mm rounding)
    assert np.mean((signed >= -0.05) & (signed <= 1.05)) > 0.97


def test_bvh_driven_session(tmp_path, shared_dir):
    cfg = SimulationConfig(cameras=2, seconds=4 / 30, resolution=(160, 120), motion="bvh",
                           bvh_path=str(shared_dir / "data" / "mocap" / "131_02.bvh"))
    result = simulate_session(tmp_path, cfg)
    truth = np.load(result.ground_truth)
    assert truth["xyz"].shape == (4, 17, 3)
    assert truth["keypoints2d"][..., 2].sum() > 0


@pytest.mark.slow
def test_acceptance_four_cameras_three_seconds(tmp_path):
    result = simulate_session(tmp_path, SimulationConfig(cameras=4, seconds=3.0, fps=30))
    for path in result.recordings:
        frames, _ = read_with_pyrealsense2(path)
        assert len(frames["depth"]) == 90 and len(frames["color"]) == 90


def test_moving_board_recordings(tmp_path):
    from calibration.board import load_board
    from calibration.detect import BoardDetector

    # 3 board frames at 5 fps (the board starts facing camera 0, then turns towards camera 1)
    cfg = SimulationConfig(cameras=2, seconds=3 / 30, board=True, board_seconds=0.6, board_fps=5, seed=1)
    result = simulate_session(tmp_path, cfg)
    board_dir = result.out_dir / "board"
    truth = np.load(board_dir / "board_truth.npz")
    spec = load_board(board_dir / "board.yaml")
    assert truth["corners2d"].shape == (3, 2, spec.num_corners, 2)
    # the board moves smoothly: its centre moves less than 3 m/s (60 cm between frames at 5 fps)
    assert np.all(np.linalg.norm(np.diff(truth["t_board"], axis=0), axis=1) < 0.6)
    detector = BoardDetector(spec)
    errors, depth_errors = [], []
    for v, camera in enumerate(result.rig):
        frames, info = read_with_pyrealsense2(board_dir / f"{camera.name}.db3")
        assert len(frames["color"]) == len(frames["depth"]) == 3
        for (_, number, color), (_, _, depth) in zip(frames["color"], frames["depth"]):
            k = number - 1
            found = detector.detect(color[..., 0])
            errors.append(np.linalg.norm(found.corners - truth["corners2d"][k, v][found.ids], axis=1))
            seen = truth["visible"][k, v]
            world = truth["object_points"][seen] @ truth["R_board"][k].T + truth["t_board"][k]
            uv = np.rint(truth["corners2d"][k, v][seen]).astype(int)
            d = depth[uv[:, 1], uv[:, 0]] * info["depth_scale"]
            depth_errors.append((d - camera.world_to_camera(world)[:, 2])[d > 0])
    errors = np.concatenate(errors)
    assert errors.size >= 12  # the board is detected in the simulated color images
    assert np.median(errors) < 0.5
    assert np.median(np.abs(np.concatenate(depth_errors))) < 0.05  # depth of the board plane, noise ~3 cm


def test_rig_file_cameras_take_serial_names(tmp_path):
    from calibration.rig_io import save_rig
    from reconstruction.simulation.rigs import ring_rig

    source = ring_rig(3, radius=2.5)
    rig_file = save_rig(source, tmp_path / "mine.toml", "toml")
    cfg = SimulationConfig(rig_file=str(rig_file), seconds=1 / 30, depth_noise=0.0)
    result = simulate_session(tmp_path / "out", cfg)
    assert len(result.recordings) == 3
    assert all(c.name == c.serial and len(c.serial) == 12 for c in result.rig)
    for a, b in zip(result.rig, source):
        np.testing.assert_allclose(a.center, b.center, atol=1e-9)
