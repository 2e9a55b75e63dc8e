"""reconstruction/kinematics/scaling.py: factors of a person built as the model times known
factors, left/right factors, the height fallback, too few joints, and the ScaleTool set-up written."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from reconstruction.kinematics.markers import MarkerData
from reconstruction.kinematics.scaling import (Measurement, ScalingError, pair_lengths, read_scaling_setup,
                                               scale_factors, write_scaling_setup)

MODEL = {"LHip": np.array([0.0, 0.9, -0.1]), "RHip": np.array([0.0, 0.9, 0.1]),
         "LKnee": np.array([0.0, 0.5, -0.1]), "RKnee": np.array([0.0, 0.5, 0.1]),
         "LAnkle": np.array([0.0, 0.1, -0.1]), "RAnkle": np.array([0.0, 0.1, 0.1])}
THIGH = Measurement("thigh", True, (("LHip", "LKnee"), ("RHip", "RKnee")), (("femur_r", ("X", "Y", "Z")),
                                                                           ("femur_l", ("X", "Y", "Z"))))
SHANK = Measurement("shank", True, (("LKnee", "LAnkle"), ("RKnee", "RAnkle")), (("tibia_r", ("X", "Y", "Z")),
                                                                              ("tibia_l", ("X", "Y", "Z"))))


def person(factors: dict, T=50, noise=0.0, seed=0) -> MarkerData:
    """Markers whose segments are the model's times factors[side+segment], in random poses."""
    rng = np.random.default_rng(seed)
    names = list(MODEL)
    xyz = np.zeros((T, len(names), 3))
    for side in "LR":
        hip = rng.normal(size=(T, 3))
        thigh = 0.4 * factors[side + "thigh"]
        shank = 0.4 * factors[side + "shank"]
        d1 = rng.normal(size=(T, 3))
        d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
        d2 = rng.normal(size=(T, 3))
        d2 /= np.linalg.norm(d2, axis=1, keepdims=True)
        xyz[:, names.index(side + "Hip")] = hip
        xyz[:, names.index(side + "Knee")] = hip + thigh * d1
        xyz[:, names.index(side + "Ankle")] = hip + thigh * d1 + shank * d2
    xyz += rng.normal(scale=noise, size=xyz.shape)
    return MarkerData(xyz=xyz, names=tuple(names), derived=(), unused=())


def test_factors_are_the_length_ratios_left_and_right():
    data = person({"Lthigh": 1.10, "Rthigh": 1.06, "Lshank": 0.95, "Rshank": 0.95})
    sym = scale_factors([THIGH, SHANK], data, MODEL, symmetric=True)
    seg = {s.name: s for s in sym.segments}
    assert seg["thigh"].left == pytest.approx(1.10) and seg["thigh"].right == pytest.approx(1.06)
    assert seg["thigh"].factor == pytest.approx(1.08) and seg["thigh"].spread == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(sym.bodies["femur_r"], [1.08] * 3)
    per_side = scale_factors([THIGH, SHANK], data, MODEL, symmetric=False)
    np.testing.assert_allclose(per_side.bodies["femur_r"], [1.06] * 3)
    np.testing.assert_allclose(per_side.bodies["femur_l"], [1.10] * 3)


def test_outlying_frames_do_not_move_the_factor():
    data = person({"Lthigh": 1.0, "Rthigh": 1.0, "Lshank": 1.0, "Rshank": 1.0}, T=80)
    xyz = data.xyz.copy()
    xyz[:15, 1] += 0.5  # a fifth of the frames with a wrong knee
    lengths, spread = pair_lengths(MarkerData(xyz, data.names, (), ()), [("LHip", "LKnee")])
    assert lengths[0] == pytest.approx(0.4, abs=1e-9)


def test_unmeasurable_segment_from_height_or_the_median():
    data = person({"Lthigh": 1.2, "Rthigh": 1.2, "Lshank": 1.0, "Rshank": 1.0})
    xyz = data.xyz.copy()
    xyz[:, [data.names.index("LAnkle"), data.names.index("RAnkle")]] = np.nan
    cut = MarkerData(xyz, data.names, (), ())
    seg = {s.name: s for s in scale_factors([THIGH, SHANK], cut, MODEL).segments}
    assert seg["shank"].source == "median" and seg["shank"].factor == pytest.approx(1.2)
    seg = {s.name: s for s in scale_factors([THIGH, SHANK], cut, MODEL, height_m=1.8).segments}
    assert seg["shank"].source == "height" and seg["shank"].factor == pytest.approx(0.246 * 1.8 / 0.4)


def test_too_few_joints_is_an_error_naming_the_pairs():
    data = person({"Lthigh": 1.0, "Rthigh": 1.0, "Lshank": 1.0, "Rshank": 1.0})
    xyz = np.full_like(data.xyz, np.nan)
    xyz[:, 0] = 0.0  # only LHip
    with pytest.raises(ScalingError, match=r"pts.npz: too few joints.*LHip LKnee.*LHip$"):
        scale_factors([THIGH, SHANK], MarkerData(xyz, data.names, (), ()), MODEL, source="pts.npz")


def test_setup_written_applies_only_the_factors(shared_dir, tmp_path):
    template = shared_dir / "data/opensim/pose2sim_setup/Scaling_Setup_Pose2Sim_Body25b.xml"
    measurements = read_scaling_setup(template)
    assert [m.name for m in measurements][:3] == ["torso", "arm", "forearm"]
    data = person({"Lthigh": 1.1, "Rthigh": 1.1, "Lshank": 1.0, "Rshank": 1.0})
    factors = scale_factors([THIGH, SHANK], data, MODEL)
    out = write_scaling_setup(template, tmp_path / "s.xml", model_file="in.osim", output_model="out.osim",
                              factors=factors, mass_kg=61.5, height_m=1.7)
    root = ET.parse(out).getroot()
    assert root.findtext(".//mass") == "61.5" and root.findtext(".//GenericModelMaker/model_file") == "in.osim"
    assert {m.findtext("apply") for m in root.iter("Measurement")} == {"false"}
    scales = {s.findtext("segment"): [float(v) for v in s.findtext("scales").split()] for s in root.iter("Scale")}
    assert set(scales) == {"femur_r", "femur_l", "tibia_r", "tibia_l"}
    np.testing.assert_allclose(scales["femur_l"], [1.1] * 3)
    assert root.findtext(".//ModelScaler/output_model_file") == "out.osim"
    assert root.findtext(".//MarkerPlacer/apply") == "false"
