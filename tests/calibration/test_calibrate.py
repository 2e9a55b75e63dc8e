"""calibration/calibrate.py: rig calibration end to end: known answers from simulated boards, bad inputs
with clear messages, the config section."""
import cv2
import numpy as np
import pytest

from calibration.board import BoardSpec
from calibration.calibrate import CalibrationConfig, calibrate, calibrate_from_detections
from calibration.camera import Rig
from calibration.errors import CalibrationError
from calibration.intrinsics import IntrinsicsConfig
from reconstruction.simulation.boards import projected_detections, random_board_poses, write_board_images
from reconstruction.simulation.rigs import ring_rig


RADIAL = (-0.05, 0.02, 0.0, 0.0, 0.0)


def rigid_errors(est: Rig, truth: Rig):
    """Per camera (position error m, rotation error deg) after the best rigid alignment of the
    estimated rig onto the truth (the world frame of a calibration is a choice, a gauge)."""
    def points(rig):
        axes = np.stack([c.R for c in rig])
        return np.concatenate([rig.centers, rig.centers + axes[:, 2], rig.centers + axes[:, 0]])

    A, B = points(est), points(truth)
    ca, cb = A.mean(axis=0), B.mean(axis=0)
    U, _, Vt = np.linalg.svd((B - cb).T @ (A - ca))
    R = U @ np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    aligned = est.transformed(R, cb - R @ ca)
    pos = np.linalg.norm(aligned.centers - truth.centers, axis=1)
    rot = np.array([np.degrees(np.arccos(np.clip((np.trace(a.R @ b.R.T) - 1) / 2, -1, 1))) for a, b in zip(aligned, truth)])
    return pos, rot


@pytest.mark.slow
def test_acceptance_simulated_charuco_four_cameras():
    """Issue acceptance: 4 cameras, ChArUco moving through the volume, 0.3 px corner noise (RMS of
    the 2D error), frames seen by one or two cameras: positions within 2 mm, rotations within
    0.1 degree, focal lengths within 0.3 %, final RMS within 20 % of the injected noise."""
    rng = np.random.default_rng(0)
    rig = ring_rig(4, dist=RADIAL)
    spec = BoardSpec(squares=(11, 8), square_length=0.06, marker_length=0.045)
    poses = random_board_poses(rig, spec, 300, rng, near_distance=(0.7, 1.3), max_tilt_deg=50)
    noise = 0.3
    dets = projected_detections(rig, spec, poses, noise / np.sqrt(2), rng)
    views = np.array([sum(f"f{i:04d}" in dets[c] for c in rig.names) for i in range(len(poses))])
    assert (views == 1).sum() > 50 and (views == 2).sum() > 50 and views.max() <= 3
    config = CalibrationConfig(intrinsics=IntrinsicsConfig(zero_tangent=True))
    result = calibrate_from_detections(dets, {c.name: c.image_size for c in rig}, spec, config=config)
    pos, rot = rigid_errors(result.rig, rig)
    focal = np.array([[e.K[0, 0] / c.K[0, 0] - 1, e.K[1, 1] / c.K[1, 1] - 1] for e, c in zip(result.rig, rig)])
    print(f"positions mm {np.round(pos * 1000, 2)}, rotations deg {np.round(rot, 3)}, "
          f"focal % {np.round(np.abs(focal).max(axis=1) * 100, 3)}, RMS {result.report.rms:.3f} px")
    assert pos.max() < 0.002
    assert rot.max() < 0.1
    assert np.abs(focal).max() < 0.003
    assert abs(result.report.rms - noise) < 0.2 * noise


def test_small_simulated_rig_known_answer(rig4):
    """Faster sibling of the acceptance test (distortion with tangential terms, 120 frames)."""
    rng = np.random.default_rng(7)
    spec = BoardSpec(squares=(9, 6), square_length=0.08, marker_length=0.06)
    poses = random_board_poses(rig4, spec, 120, rng, near_distance=(0.7, 1.3), max_tilt_deg=45)
    dets = projected_detections(rig4, spec, poses, 0.1 / np.sqrt(2), rng)
    result = calibrate_from_detections(dets, {c.name: c.image_size for c in rig4}, spec)
    pos, rot = rigid_errors(result.rig, rig4)
    assert pos.max() < 0.005 and rot.max() < 0.1
    for est, cam in zip(result.rig, rig4):
        assert est.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.003)
        np.testing.assert_allclose(est.dist[:4], cam.dist[:4], atol=0.01)
    assert result.report.rms == pytest.approx(0.1, rel=0.2)
    assert set(result.report.frame_rms) <= {f for d in dets.values() for f in d}
    assert [c.used for c in result.report.cameras] == [len(dets[n]) for n in rig4.names]
    # World frame: the first camera.
    np.testing.assert_allclose(result.rig[0].R, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(result.rig[0].t, 0, atol=1e-9)


def test_world_frame_on_the_board_is_metric_and_z_up(rig4):
    rng = np.random.default_rng(8)
    spec = BoardSpec(squares=(7, 5), square_length=0.1, marker_length=0.075)
    poses = random_board_poses(rig4, spec, 60, rng)
    # Frame "f0060": the board lying printed side up on the floor at the origin.
    floor = (np.diag([1.0, -1.0, -1.0]), np.zeros(3))
    dets = projected_detections(rig4, spec, poses + [floor], 0.0, rng, max_incidence_deg=80)
    assert sum("f0060" in d for d in dets.values()) >= 2
    config = CalibrationConfig(world="board", world_frame="f0060")
    result = calibrate_from_detections(dets, {c.name: c.image_size for c in rig4}, spec, config=config)
    np.testing.assert_allclose(result.rig.centers, rig4.centers, atol=1e-6)
    assert "f0060" in result.report.world


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Rendered board images ROOT/<camera>/fNNNN.png of 4 cameras (plus the truth)."""
    root = tmp_path_factory.mktemp("rendered") / "images"
    rig = ring_rig(4, dist=RADIAL)
    spec = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11)
    poses = random_board_poses(rig, spec, 24, np.random.default_rng(11), near_fraction=0.3,
                               near_distance=(1.2, 2.0), max_tilt_deg=30)
    truth = write_board_images(rig, spec, poses, root, noise_sigma=2.0)
    return root, rig, spec, truth


@pytest.mark.slow
def test_images_end_to_end_with_fixed_intrinsics(rendered, tmp_path):
    """Rendered images -> detection -> calibration (24 frames, 12-corner board: a pipeline check;
    the accuracy bar is the acceptance test's)."""
    root, rig, spec, truth = rendered
    result = calibrate(spec, images=root, fix_intrinsics=rig, report_dir=tmp_path / "report")
    pos, rot = rigid_errors(result.rig, rig)
    print(f"rendered images: positions mm {np.round(pos * 1000, 2)}, rotations deg {np.round(rot, 3)}, RMS {result.report.rms:.3f} px")
    assert pos.max() < 0.01 and rot.max() < 0.3
    for est, cam in zip(result.rig, rig):
        np.testing.assert_array_equal(est.K, cam.K)
        assert result.report.cameras[rig.index(cam.name)].intrinsics == "fixed"
    assert result.report.rms < 0.3
    for name in ("report.json", "report.txt", "rejected.json", "layout.png", "coverage_cam0.png"):
        assert (tmp_path / "report" / name).is_file(), name
    assert list((tmp_path / "report" / "cache").glob("*.npz"))


@pytest.fixture
def few_images(tmp_path):
    """Six rendered board images: 2 cameras x 3 frames."""
    rig = ring_rig(2, dist=RADIAL)
    spec = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11)
    poses = random_board_poses(rig, spec, 3, np.random.default_rng(2), near_fraction=1.0, near_distance=(1.5, 2.0))
    write_board_images(rig, spec, poses, tmp_path / "images", only_visible=False)
    return tmp_path / "images", rig, spec


def test_fixed_intrinsics_rig_must_name_the_cameras(few_images):
    root, rig, spec = few_images
    other = Rig(tuple(c.__class__(f"x{i}", c.image_size, c.K) for i, c in enumerate(rig)))
    with pytest.raises(CalibrationError, match="no camera named 'cam0'"):
        calibrate(spec, images=root, fix_intrinsics=other)


def test_empty_folder(tmp_path):
    (tmp_path / "cam0").mkdir()
    with pytest.raises(CalibrationError, match="no images found"):
        calibrate(BoardSpec(), images=tmp_path)
    with pytest.raises(CalibrationError, match="not found"):
        calibrate(BoardSpec(), images=tmp_path / "missing")


def test_images_without_a_board(tmp_path):
    for cam in ("cam0", "cam1"):
        (tmp_path / cam).mkdir()
        for f in range(2):
            cv2.imwrite(str(tmp_path / cam / f"f{f}.png"), np.full((120, 160), 90 + 40 * f, np.uint8))
    with pytest.raises(CalibrationError, match=r"not found in any of the 4 images.*squares.*dictionary"):
        calibrate(BoardSpec(), images=tmp_path)
    checker = BoardSpec(type="checkerboard", inner_corners=(9, 6), square_length=0.1)
    with pytest.raises(CalibrationError, match=r"not found in any of the 4 images.*inner_corners"):
        calibrate(checker, images=tmp_path)


def test_wrong_board_spec_suggests_squares_and_dictionary(few_images):
    root, rig, spec = few_images
    # The right spec finds the board in these images.
    from calibration.inputs import detect_folders, find_image_folders

    found, _ = detect_folders(find_image_folders(root), spec)
    assert sum(d.found for f in found.values() for d in f.values()) >= 3
    wrong = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11, dictionary="DICT_4X4_50")
    with pytest.raises(CalibrationError, match=r"board was not found.*Check that the squares.*dictionary") as info:
        calibrate(wrong, images=root)
    assert str(root) in str(info.value)


def test_images_of_different_sizes_within_one_camera(tmp_path):
    (tmp_path / "cam0").mkdir()
    cv2.imwrite(str(tmp_path / "cam0" / "a.png"), np.full((480, 640), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "cam0" / "b.png"), np.full((240, 320), 100, np.uint8))
    with pytest.raises(CalibrationError, match=r"camera 'cam0': images have different sizes \(a.png is 640x480; b.png is 320x240\)"):
        calibrate(BoardSpec(), images=tmp_path)


def _facing_poses(rig, spec, num_frames, seed):
    return random_board_poses(rig, spec, num_frames, np.random.default_rng(seed), near_fraction=0.0,
                              centre=(0.0, 0.0, 1.2), spread=(0.4, 0.4, 0.2), max_tilt_deg=20)


def test_realsense_recordings_use_factory_intrinsics(tmp_path):
    pytest.importorskip("pyrealsense2")
    from reconstruction.simulation.boards import render_board_view
    from capture.intrinsics import StreamIntrinsics
    from capture.recording_writer import RealSenseRecordingWriter

    rig = ring_rig(3, radius=2.5, dist=RADIAL)
    spec = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11)
    poses = _facing_poses(rig, spec, 12, 4)
    for cam in rig:
        K = cam.K
        intr = StreamIntrinsics(cam.width, cam.height, K[0, 0], K[1, 1], K[0, 2], K[1, 2], "brown_conrady", tuple(cam.dist[:5]))
        with RealSenseRecordingWriter(tmp_path / f"{cam.name}.db3", cam.serial, intr, None, fps=30) as writer:
            for k, pose in enumerate(poses):
                image = render_board_view(cam, spec, *pose)[0]
                writer.write(1000.0 + k * 1000 / 30, k + 1, np.repeat(image[:, :, None], 3, axis=2), None)
    result = calibrate(spec, recordings=tmp_path, config=CalibrationConfig(video_step=1))
    assert result.rig.names == [c.serial for c in rig]
    assert [c.intrinsics for c in result.report.cameras] == ["factory"] * 3
    for est, cam in zip(result.rig, rig):
        np.testing.assert_allclose(est.K, cam.K)
    truth = rig.transformed(rig[0].R, rig[0].t)
    assert np.abs(result.rig.centers - truth.centers).max() < 0.02


def test_videos_are_sampled_and_matched_by_frame_index(tmp_path):
    from calibration.inputs import detect_in_stream
    from reconstruction.simulation.boards import render_board_view

    rig = ring_rig(2, radius=2.5, dist=RADIAL)
    spec = BoardSpec(squares=(5, 4), square_length=0.15, marker_length=0.11)
    poses = _facing_poses(rig, spec, 6, 5)
    for cam in rig:
        writer = cv2.VideoWriter(str(tmp_path / f"{cam.name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, cam.image_size)
        assert writer.isOpened()
        for pose in poses:
            writer.write(cv2.cvtColor(render_board_view(cam, spec, *pose)[0], cv2.COLOR_GRAY2BGR))
        writer.release()
    detections, sizes, _ = detect_in_stream(tmp_path, spec, "videos", step=2)
    assert sorted(detections) == ["cam0", "cam1"] and sizes["cam0"] == (640, 480)
    assert sorted(detections["cam0"]) == ["000000", "000002", "000004"]
    found = sum(d.found for frames in detections.values() for d in frames.values())
    assert found >= 3


def test_calibration_config_from_yaml(tmp_path):
    from calibration.calibrate import CalibrationConfig
    from capture.config import load_section
    from capture.errors import ConfigError

    path = tmp_path / "calibration.yaml"
    path.write_text("world: board\nintrinsics:\n  zero_tangent: true\n  max_image_rms: 2\nbundle:\n  loss: soft_l1\n")
    config = load_section(CalibrationConfig, path)
    assert config.world == "board" and config.intrinsics.zero_tangent and config.intrinsics.max_image_rms == 2.0
    assert config.bundle.loss == "soft_l1" and config.bundle.refine_intrinsics
    path.write_text("bundle:\n  los: huber\n")
    with pytest.raises(ConfigError, match="calibration.yaml: bundle.*'los'"):
        load_section(CalibrationConfig, path)
