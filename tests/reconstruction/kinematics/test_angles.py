"""reconstruction/kinematics/angles.py: ISB joint angles recovered exactly from joints built with
known angles (both sides, any placement in the world), NaN where undefined, columns per skeleton."""
import numpy as np
from scipy.spatial.transform import Rotation

from reconstruction.kinematics.angles import cardan_zxy, joint_angles


def _rz(a):
    return Rotation.from_euler("z", np.asarray(a, dtype=float).reshape(-1, 1), degrees=True).as_matrix()


def _zxy(a, b, c):
    return Rotation.from_euler("ZXY", np.stack([a, b, c], axis=-1), degrees=True).as_matrix()


def person_with_angles(truth: dict, T: int, rng) -> tuple[np.ndarray, list]:
    """Joints (T, J, 3) of a body built in the ISB axes (X anterior, Y up, Z right) from known
    angles (clinical signs as angles.py reports them), then moved by a random rigid transform."""
    joints = {}
    pelvis = np.broadcast_to(np.eye(3), (T, 3, 3))
    for s, z in (("r", 1.0), ("l", -1.0)):
        side = "right" if s == "r" else "left"
        mirror = 1.0 if s == "r" else -1.0
        hip = np.array([0.0, 0.0, 0.09 * z])
        thigh = pelvis @ _zxy(truth[f"hip_flexion_{s}"], mirror * truth[f"hip_adduction_{s}"],
                              mirror * truth[f"hip_rotation_{s}"])
        knee = hip - 0.42 * thigh[..., 1]
        shank = thigh @ _rz(-truth[f"knee_flexion_{s}"])
        ankle = knee - 0.41 * shank[..., 1]
        foot = shank @ _rz(truth[f"ankle_dorsiflexion_{s}"])
        heel = ankle + np.einsum("tij,j->ti", foot, [-0.05, -0.06, 0.0])
        toe = heel + 0.2 * foot[..., 0]
        shoulder = np.array([0.0, 0.5, 0.18 * z])
        upper = pelvis @ _zxy(truth[f"shoulder_flexion_{s}"], -mirror * truth[f"shoulder_abduction_{s}"],
                              np.zeros(T))
        elbow = shoulder - 0.3 * upper[..., 1]
        fore = upper @ _rz(truth[f"elbow_flexion_{s}"])
        wrist = elbow - 0.26 * fore[..., 1]
        for name, value in (("hip", hip), ("knee", knee), ("ankle", ankle), ("heel", heel), ("big_toe", toe),
                            ("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist)):
            joints[f"{side}_{name}"] = np.broadcast_to(value, (T, 3))
    joints["nose"] = np.broadcast_to([0.1, 0.75, 0.0], (T, 3))
    names = list(joints)
    xyz = np.stack([joints[n] for n in names], axis=1)
    R = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
    return xyz @ R.T + rng.normal(size=3), names


def _truth(T, rng):
    t = np.linspace(0, 1, T)
    truth = {}
    for s in ("r", "l"):
        truth[f"hip_flexion_{s}"] = 40 * np.sin(2 * np.pi * t) + rng.uniform(-5, 5)
        truth[f"hip_adduction_{s}"] = 15 * np.cos(2 * np.pi * t)
        truth[f"hip_rotation_{s}"] = 20 * np.sin(4 * np.pi * t)
        truth[f"knee_flexion_{s}"] = 30 + 50 * (1 + np.sin(2 * np.pi * t)) / 2  # 30..80: the plane is defined
        truth[f"ankle_dorsiflexion_{s}"] = 15 * np.sin(2 * np.pi * t + 1)
        truth[f"shoulder_flexion_{s}"] = 60 * np.sin(2 * np.pi * t)
        truth[f"shoulder_abduction_{s}"] = 30 + 20 * np.cos(2 * np.pi * t)
        truth[f"elbow_flexion_{s}"] = 25 + 80 * (1 + np.cos(2 * np.pi * t)) / 2
    return truth


def test_known_angles_are_recovered_on_both_sides(rng):
    T = 40
    truth = _truth(T, rng)
    xyz, names = person_with_angles(truth, T, rng)
    angles = joint_angles(xyz, names, 30.0)
    assert set(angles.names) == set(truth)
    for name, expected in truth.items():
        np.testing.assert_allclose(angles.column(name), expected, atol=1e-6, err_msg=name)


def test_straight_knee_leaves_hip_rotation_undefined_but_flexion_exact(rng):
    T = 10
    truth = _truth(T, rng)
    truth["knee_flexion_r"] = np.full(T, 5.0)
    truth["hip_rotation_r"] = np.zeros(T)
    xyz, names = person_with_angles(truth, T, rng)
    angles = joint_angles(xyz, names, 30.0)
    assert np.isnan(angles.column("hip_rotation_r")).all()
    np.testing.assert_allclose(angles.column("knee_flexion_r"), 5.0, atol=1e-6)
    np.testing.assert_allclose(angles.column("hip_flexion_r"), truth["hip_flexion_r"], atol=1e-6)
    np.testing.assert_allclose(angles.column("hip_adduction_r"), truth["hip_adduction_r"], atol=1e-6)


def test_missing_joint_gives_nan_in_that_frame_only(rng):
    truth = _truth(6, rng)
    xyz, names = person_with_angles(truth, 6, rng)
    xyz[2, names.index("left_knee")] = np.nan
    angles = joint_angles(xyz, names, 30.0)
    knee = angles.column("knee_flexion_l")
    assert np.isnan(knee[2]) and np.isfinite(np.delete(knee, 2)).all()
    assert np.isfinite(angles.column("knee_flexion_r")).all()


def test_columns_follow_the_skeleton(rng):
    truth = _truth(4, rng)
    xyz, names = person_with_angles(truth, 4, rng)
    keep = [i for i, n in enumerate(names) if not n.endswith(("heel", "big_toe"))]  # COCO-17 has no feet
    angles = joint_angles(xyz[:, keep], [names[i] for i in keep], 30.0)
    assert "ankle_dorsiflexion_r" not in angles.names and "knee_flexion_r" in angles.names
    nothing = joint_angles(xyz[:, :3], names[:3], 30.0)
    assert nothing.names == () and nothing.degrees.shape == (4, 0)


def test_cardan_zxy_inverts_the_sequence():
    a, b, c = np.array([10.0, -70.0]), np.array([20.0, 5.0]), np.array([-30.0, 100.0])
    R = _zxy(a, b, c)
    np.testing.assert_allclose(cardan_zxy(np.broadcast_to(np.eye(3), (2, 3, 3)), R), np.stack([a, b, c], -1),
                               atol=1e-9)
