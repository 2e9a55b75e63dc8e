"""reconstruction/formats/points3d.py: 3D joint files: NPZ, TRC (axis mapping, units, other tools' names) and
C3D (mm, residual -1); on real data, Pose2Sim's TRC reprojected through our import of the Qualisys rig
lands on the OpenPose 2D it was triangulated from (the TRC axis mapping checked by the data)."""
import logging

import numpy as np
import pytest

from calibration.rig_io import load_rig
from capture.errors import FileFormatError
from reconstruction.formats.keypoints2d import read_keypoints2d
from reconstruction.formats.points3d import Points3D, read_points3d, trc_to_world, world_to_trc, write_points3d


NAMES = ("left_hip", "right_hip", "neck")


@pytest.fixture
def points(rng):
    xyz = rng.normal(scale=0.5, size=(6, 3, 3)) + [0, 0, 1]
    xyz[2, 1] = np.nan
    xyz[4] = np.nan
    quality = {
        "reproj_error_px": rng.uniform(0, 3, size=(6, 3)),
        "n_views": rng.integers(0, 5, size=(6, 3)),
        "covariance": np.broadcast_to(np.eye(3) * 1e-4, (6, 3, 3, 3)).copy(),
    }
    return Points3D(xyz, NAMES, 60.0, quality)


def test_points3d_validates():
    with pytest.raises(ValueError, match=r"\(T, J, 3\)"):
        Points3D(np.zeros((2, 3)), ("a",), 30)
    with pytest.raises(ValueError, match="2 joints but 1 joint names"):
        Points3D(np.zeros((1, 2, 3)), ("a",), 30)
    with pytest.raises(ValueError, match=r"quality 'n_views' must start with \(T, J\)"):
        Points3D(np.zeros((1, 2, 3)), ("a", "b"), 30, {"n_views": np.zeros((2, 1))})


def test_npz_round_trip_keeps_quality(tmp_path, points):
    back = read_points3d(write_points3d(tmp_path / "p.npz", points))
    np.testing.assert_array_equal(back.xyz, points.xyz)
    assert back.joint_names == NAMES and back.fps == 60.0
    assert set(back.quality) == set(points.quality)
    for key, value in points.quality.items():
        np.testing.assert_array_equal(back.quality[key], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]


def test_trc_round_trip_and_axis_mapping(tmp_path, points):
    path = write_points3d(tmp_path / "p.trc", points)
    back = read_points3d(path)
    np.testing.assert_array_equal(back.xyz, points.xyz)  # repr floats: exact; NaN kept
    assert back.joint_names == NAMES and back.fps == 60.0
    # X_trc = Y_world, Y_trc = Z_world (up), Z_trc = X_world
    row = path.read_text().splitlines()[6].split("\t")
    x, y, z = points.xyz[0, 0]
    assert [float(v) for v in row[2:5]] == [y, z, x]
    np.testing.assert_array_equal(world_to_trc(np.array([1.0, 2.0, 3.0])), [2.0, 3.0, 1.0])
    np.testing.assert_array_equal(trc_to_world(world_to_trc(points.xyz)), points.xyz)
    rotation = world_to_trc(np.eye(3))  # the permutation is a proper rotation: handedness kept
    assert np.isclose(np.linalg.det(rotation), 1.0)


def test_trc_in_mm_with_other_tools_names(tmp_path):
    text = "\n".join([
        "PathFileType\t4\t(X/Y/Z)\tx.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        "100\t100\t2\t2\tmm\t100\t1\t2",
        "Frame#\tTime\tRShoulder\t\t\tLBigToe\t\t",
        "\t\tX1\tY1\tZ1\tX2\tY2\tZ2",
        "",
        "1\t0.0\t100\t1500\t-200\t\t\t",
        "2\t0.01\t110\t1510\t-210\t5\t20\t30",
    ])
    path = tmp_path / "other.trc"
    path.write_text(text + "\n")
    p = read_points3d(path)
    assert p.joint_names == ("right_shoulder", "left_big_toe") and p.fps == 100
    np.testing.assert_allclose(p.xyz[0, 0], [-0.2, 0.1, 1.5])  # world Z up = TRC Y
    assert np.isnan(p.xyz[0, 1]).all()
    np.testing.assert_allclose(p.xyz[1, 1], [0.03, 0.005, 0.02])


def test_trc_bad_value_names_line(tmp_path, points):
    path = write_points3d(tmp_path / "p.trc", points)
    lines = path.read_text().splitlines()
    lines[8] = lines[8].replace("\t", "\tabc", 3)
    path.write_text("\n".join(lines))
    with pytest.raises(FileFormatError, match=r"p\.trc: line 9"):
        read_points3d(path)


def test_c3d_round_trip_mm_and_residuals(tmp_path, points):
    import ezc3d

    path = write_points3d(tmp_path / "p.c3d", points)
    raw = ezc3d.c3d(str(path))
    assert raw["parameters"]["POINT"]["UNITS"]["value"] == ["mm"]
    residuals = raw["data"]["meta_points"]["residuals"][0]  # (J, T)
    missing = np.isnan(points.xyz).any(axis=-1).T
    np.testing.assert_array_equal(residuals < 0, missing)
    np.testing.assert_allclose(raw["data"]["points"][:3, 0, 0], points.xyz[0, 0] * 1000, rtol=1e-6)
    back = read_points3d(path)
    assert back.joint_names == NAMES and back.fps == 60.0
    np.testing.assert_array_equal(np.isnan(back.xyz), np.isnan(points.xyz))
    np.testing.assert_allclose(back.xyz, points.xyz, atol=1e-6)  # C3D stores float32 mm


def test_unknown_extension(tmp_path, points):
    with pytest.raises(FileFormatError, match="unknown 3D file type '.csv'"):
        write_points3d(tmp_path / "p.csv", points)


def test_real_c3d_and_pose2sim_trc(shared_dir):
    vicon = read_points3d(shared_dir / "data/c3d/ezc3d_Vicon.c3d")
    assert vicon.num_joints > 0 and vicon.fps > 0
    finite = vicon.xyz[np.isfinite(vicon.xyz)]
    assert finite.size and np.abs(finite).max() < 20  # metres, not millimetres
    trc = (shared_dir / "data/pose2sim_demo/S00_Demo_Session/S00_P00_SingleParticipant/"
           "S00_P00_T01_BalancingTrial/pose-3d/S00_P00_T01_BalancingTrial_0-100.trc")
    p = read_points3d(trc)
    assert p.xyz.shape == (100, 21, 3) and p.fps == 60
    assert "right_big_toe" in p.joint_names and "head" in p.joint_names
    # Z up in our world: the head is ~1.5 m above the toes
    height = p.xyz[:, p.joint_names.index("head"), 2] - p.xyz[:, p.joint_names.index("right_big_toe"), 2]
    assert 1.3 < np.nanmedian(height) < 2.0


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
