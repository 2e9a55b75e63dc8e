"""reconstruction/kinematics/opensim_run.py (+ opensim_tools.py): OpenSim forward kinematics of the
Pose2Sim model driven by known joint angles gives markers; our scaling + IK recovers the angles and
a scale of 1; bad input: markers the set lacks, too few joints, an .osim OpenSim refuses,
OpenSim missing."""
import numpy as np
import pytest

from reconstruction.formats.points3d import Points3D, trc_to_world
from reconstruction.kinematics import opensim_tools
from reconstruction.kinematics.config import KinematicsConfig
from reconstruction.kinematics.markers import MarkerMismatchError
from reconstruction.kinematics.opensim_tools import OpenSimError, OpenSimMissingError
from reconstruction.kinematics.scaling import ScalingError
from reconstruction.kinematics.stage import run_kinematics
from reconstruction.skeleton import canonical_joint_name

DRIVEN = {"hip_flexion_r": (30, 25), "hip_flexion_l": (-10, 20), "knee_angle_r": (40, 30), "knee_angle_l": (25, 20),
          "hip_adduction_r": (0, 8), "arm_flex_r": (20, 30), "elbow_flex_l": (60, 30), "pelvis_ty": (0.95, 0.0)}


def known_motion(setup_weights, T=30):
    """Markers (our world) of the unscaled Pose2Sim model posed by the DRIVEN coordinates."""
    folder = setup_weights / "opensim-pose2sim"
    names = opensim_tools.coordinate_names(folder / "Model_Pose2Sim_simple.osim")
    t = np.linspace(0, 2 * np.pi, T)
    coords = np.zeros((T, len(names)))
    for name, (mean, amplitude) in DRIVEN.items():
        coords[:, names.index(name)] = mean + amplitude * np.sin(t + len(name))
    import xml.etree.ElementTree as ET
    markers = [m.get("name") for m in ET.parse(folder / "Markers_Body25b.xml").getroot().iter("Marker")]
    return coords, names, markers


def _points(setup_weights, tmp_path, T=30):
    from reconstruction.kinematics.opensim_tools import prepare_model

    coords, names, markers = known_motion(setup_weights, T)
    folder = setup_weights / "opensim-pose2sim"
    model = tmp_path / "with_markers.osim"
    prepare_model(folder / "Model_Pose2Sim_simple.osim", folder / "Markers_Body25b.xml", model)
    xyz = trc_to_world(opensim_tools.marker_trajectories(model, coords, names, markers))
    return Points3D(xyz, tuple(canonical_joint_name(m) for m in markers), 60.0), coords, names


def _rms(o, coords, names, name):
    err = o.coordinates[:, names.index(name)] - coords[:, names.index(name)]
    return float(np.sqrt(np.mean(err**2)))


def test_known_angles_recovered_by_ik(opensim, setup_weights, tmp_path):
    points, coords, names = _points(setup_weights, tmp_path)
    result = run_kinematics(points, KinematicsConfig(scaling_setup="none"), tmp_path / "out", "known", "known.npz",
                            str(setup_weights))
    o = result.opensim
    assert o.solved.all() and o.coordinate_names == names and o.scale is None
    for name in ("hip_flexion_r", "hip_flexion_l", "knee_angle_r", "knee_angle_l", "arm_flex_r", "elbow_flex_l"):
        assert _rms(o, coords, names, name) < 0.6, name  # degrees
    assert result.summary["opensim"]["marker_error_m"]["rms"] < 0.003
    for kind in ("motion", "marker_errors_csv", "joint_angles_csv", "joint_angles_npz", "summary"):
        assert (tmp_path / "out").joinpath(result.files[kind]).is_file()


def test_scaling_of_an_unscaled_person_gives_one(opensim, setup_weights, tmp_path):
    """Segments whose two markers sit on one chain of rigid bodies scale by 1 within 1 %; the arm
    does not: Pose2Sim's shoulder marker is on the torso, so the shoulder-elbow distance changes
    with the arm's pose (measured: +12 % here, the arm flexed 20 +- 30 deg)."""
    points, coords, names = _points(setup_weights, tmp_path)
    result = run_kinematics(points, KinematicsConfig(), tmp_path / "out", "known", "known.npz", str(setup_weights))
    factors = {s.name: s.factor for s in result.opensim.scale.segments}
    for name in ("thigh", "shank", "pelvis", "torso", "head", "foot"):
        assert abs(factors[name] - 1.0) < 0.01, (name, factors)
    for name in ("hip_flexion_r", "knee_angle_r", "knee_angle_l"):
        assert _rms(result.opensim, coords, names, name) < 2.0, name


def test_markers_the_set_lacks_are_listed(opensim, setup_weights, tmp_path):
    points, _, _ = _points(setup_weights, tmp_path, T=3)
    keep = [i for i, n in enumerate(points.joint_names) if "toe" not in n]
    cut = Points3D(points.xyz[:, keep], tuple(points.joint_names[i] for i in keep), 60.0)
    with pytest.raises(MarkerMismatchError, match="Markers_Body25b.xml expects markers the data lacks: LBigToe, "
                                                  "LSmallToe, RBigToe, RSmallToe"):
        run_kinematics(cut, KinematicsConfig(markers="body25b"), tmp_path / "o", "x", "cut.npz", str(setup_weights))


def test_a_person_with_too_few_joints(opensim, setup_weights, tmp_path):
    points, _, _ = _points(setup_weights, tmp_path, T=3)
    xyz = np.full_like(points.xyz, np.nan)
    xyz[:, :2] = points.xyz[:, :2]  # two joints seen, never both ends of a scaling pair
    with pytest.raises((ScalingError, Exception)) as err:
        run_kinematics(Points3D(xyz, points.joint_names, 60.0), KinematicsConfig(markers="body25b"),
                       tmp_path / "o", "x", "few.npz", str(setup_weights))
    assert "few.npz" in str(err.value) and ("too few joints" in str(err.value) or "no frame" in str(err.value))


def test_an_osim_opensim_refuses_is_named_with_its_reason(opensim, setup_weights, tmp_path):
    bad = tmp_path / "broken.osim"
    bad.write_text("<OpenSimDocument Version=\"40000\"><Model name=\"x\"><BodySet><objects><Body name=\"b\">"
                   "<mass>one</mass></Body></objects></BodySet></Model></OpenSimDocument>")
    points, _, _ = _points(setup_weights, tmp_path, T=3)
    with pytest.raises(OpenSimError) as err:
        run_kinematics(points, KinematicsConfig(model=str(bad), markers="body25b"), tmp_path / "o", "x", "p.npz",
                       str(setup_weights))
    assert str(bad) in str(err.value) and "OpenSim" in str(err.value)


def test_opensim_missing_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_opensim(name, *args, **kwargs):
        if name == "opensim":
            raise ImportError("No module named 'opensim'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_opensim)
    with pytest.raises(OpenSimMissingError, match=r"pip install 'mocap\[opensim\]'"):
        opensim_tools.import_opensim()
