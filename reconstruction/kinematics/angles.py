"""Joint angles from 3D keypoints by the ISB joint coordinate systems (no OpenSim).

Shapes: ``T`` frames, ``J`` joints, ``A`` angles. Input: our 3D joints (T, J, 3) in metres with our
joint names (any skeleton that has the joints an angle needs); output: a table (T, A) in degrees,
NaN where a joint is missing or the keypoints do not define the angle.

Segment frames (Wu et al. 2002, hip/knee/ankle; Wu et al. 2005, shoulder/elbow), built from
keypoints instead of skin markers: X anterior, Y superior (along the segment), Z to the right, for
both sides (the left side's adduction, abduction and rotation signs are mirrored so that a
positive value means the same movement on both sides).

- pelvis: Z = left hip -> right hip; Y = mid-hip -> mid-shoulder made orthogonal to Z (keypoints
  have no ASIS/PSIS, so the pelvis tilt follows the trunk: "hip flexion" is the thigh against the
  trunk-aligned pelvis);
- thorax: Y = mid-hip -> mid-shoulder; Z = left -> right shoulder made orthogonal to Y;
- thigh: Y = knee -> hip; Z = the normal of the hip-knee-ankle plane (the knee's flexion axis),
  blended towards the pelvis Z as the knee straightens (below 20 deg the plane is undefined);
- shank: Y = ankle -> knee; Z = the thigh's Z made orthogonal (the knee taken as a hinge);
- foot: X = heel -> big toe (BlazePose: foot index); Z = the shank's Z made orthogonal;
- upper arm: Y = elbow -> shoulder; Z = normal of the shoulder-elbow-wrist plane, blended towards
  the thorax Z as the elbow straightens; forearm: Y = wrist -> elbow, Z from the upper arm.

Angles (Grood & Suntay joint coordinate system = the Cardan sequence Z, X, Y of the distal segment
in the proximal one: flexion about the proximal Z, ad/abduction about the floating axis, rotation
about the distal Y), signs as clinicians read them:

| angle | proximal -> distal | positive |
|---|---|---|
| ``hip_flexion_r`` | pelvis -> thigh, about Z | flexion |
| ``hip_adduction_r`` | floating axis | adduction |
| ``hip_rotation_r`` | about the thigh's Y | internal rotation (NaN while the knee is straighter than 20 deg) |
| ``knee_flexion_r`` | thigh -> shank, about Z | flexion (OpenSim's ``knee_angle_r``) |
| ``ankle_dorsiflexion_r`` | shank -> foot, about Z | dorsiflexion (needs heel and toe) |
| ``shoulder_flexion_r`` | thorax -> upper arm, about Z | flexion (OpenSim's ``arm_flex_r``) |
| ``shoulder_abduction_r`` | floating axis | abduction |
| ``elbow_flexion_r`` | upper arm -> forearm, about Z | flexion (OpenSim's ``elbow_flex_r``) |

and the same with ``_l``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from capture.nan_warnings import quiet_nan_warnings
from reconstruction.formats.joint_angles import JointAngles

SIDES = {"r": "right", "l": "left"}
PLANE_MIN_DEG = 10.0  # below this the hip-knee-ankle (shoulder-elbow-wrist) plane is not used at all
PLANE_FULL_DEG = 20.0  # above this it alone gives the thigh's (upper arm's) Z axis


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-9, v / n, np.nan)


def _orthogonal(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``v`` made orthogonal to the unit ``axis`` and unit length (..., 3)."""
    return _unit(v - np.sum(v * axis, axis=-1, keepdims=True) * axis)


def frame_from_yz(y: np.ndarray, z_hint: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation whose columns are X, Y, Z: Y along ``y``, Z = ``z_hint`` made orthogonal."""
    Y = _unit(y)
    Z = _orthogonal(z_hint, Y)
    return np.stack([np.cross(Y, Z), Y, Z], axis=-1)


def frame_from_zy(z: np.ndarray, y_hint: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation: Z along ``z``, Y = ``y_hint`` made orthogonal, X = Y x Z."""
    Z = _unit(z)
    Y = _orthogonal(y_hint, Z)
    return np.stack([np.cross(Y, Z), Y, Z], axis=-1)


def frame_from_xz(x: np.ndarray, z_hint: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation: X along ``x``, Z = ``z_hint`` made orthogonal, Y = Z x X."""
    X = _unit(x)
    Z = _orthogonal(z_hint, X)
    return np.stack([X, np.cross(Z, X), Z], axis=-1)


def cardan_zxy(proximal: np.ndarray, distal: np.ndarray) -> np.ndarray:
    """(T, 3) angles (a, b, c) in degrees with ``proximal^T distal = Rz(a) Rx(b) Ry(c)``."""
    R = np.einsum("tji,tjk->tik", proximal, distal)
    with quiet_nan_warnings(), np.errstate(invalid="ignore"):
        a = np.arctan2(-R[:, 0, 1], R[:, 1, 1])
        b = np.arcsin(np.clip(R[:, 2, 1], -1.0, 1.0))
        c = np.arctan2(-R[:, 2, 0], R[:, 2, 2])
    return np.degrees(np.stack([a, b, c], axis=-1))


def _included_deg(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(T,) 180 minus the angle between ``u`` and ``s`` (0 for a straight limb), degrees."""
    with np.errstate(invalid="ignore"):
        cos = np.clip(np.sum(_unit(u) * _unit(s), axis=-1), -1.0, 1.0)
    return 180.0 - np.degrees(np.arccos(cos))


def _plane_blend(normal: np.ndarray, fallback: np.ndarray, bend_deg: np.ndarray) -> np.ndarray:
    """The limb plane's normal where the limb is bent, the proximal segment's Z where it is straight."""
    w = np.clip((bend_deg - PLANE_MIN_DEG) / (PLANE_FULL_DEG - PLANE_MIN_DEG), 0.0, 1.0)[:, None]
    n = np.nan_to_num(_unit(normal))
    out = w * n + (1.0 - w) * fallback
    return np.where(np.isfinite(bend_deg)[:, None], out, np.nan)


class _Points:
    def __init__(self, xyz: np.ndarray, joint_names: Sequence[str]):
        self.xyz = np.asarray(xyz, dtype=np.float64)
        self.index = {n: i for i, n in enumerate(joint_names)}

    def has(self, *names: str) -> bool:
        return all(n in self.index for n in names)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.xyz[:, self.index[name]]

    def mid(self, a: str, b: str) -> np.ndarray:
        return 0.5 * (self[a] + self[b])

    def toe(self, side: str) -> np.ndarray | None:
        for name in (f"{side}_big_toe", f"{side}_foot_index"):
            if name in self.index:
                return self[name]
        return None


def joint_angles(xyz: np.ndarray, joint_names: Sequence[str], fps: float) -> JointAngles:
    """The ISB joint angles of the module docstring from (T, J, 3) joints; an angle whose joints the
    skeleton lacks is left out of the table, one whose joints are missing in a frame is NaN there."""
    p = _Points(xyz, joint_names)
    columns: dict[str, np.ndarray] = {}
    trunk = {"left_hip", "right_hip", "left_shoulder", "right_shoulder"}
    if p.has(*trunk):
        _lower_limbs(p, columns)
        _upper_limbs(p, columns)
    order = [f"{base}_{s}" for base in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_flexion",
                                        "ankle_dorsiflexion", "shoulder_flexion", "shoulder_abduction",
                                        "elbow_flexion") for s in SIDES]
    names = [n for n in order if n in columns]
    T = p.xyz.shape[0]
    table = np.stack([columns[n] for n in names], axis=1) if names else np.zeros((T, 0))
    return JointAngles(degrees=table, names=tuple(names), fps=fps)


def _lower_limbs(p: _Points, out: dict) -> None:
    mid_hip = p.mid("left_hip", "right_hip")
    pelvis = frame_from_zy(p["right_hip"] - p["left_hip"], p.mid("left_shoulder", "right_shoulder") - mid_hip)
    for s, side in SIDES.items():
        hip, knee, ankle = f"{side}_hip", f"{side}_knee", f"{side}_ankle"
        if not p.has(hip, knee, ankle):
            continue
        u, d = p[hip] - p[knee], p[ankle] - p[knee]
        bend = _included_deg(u, d)
        thigh = frame_from_yz(u, _plane_blend(np.cross(u, d), pelvis[..., 2], bend))
        shank = frame_from_yz(p[knee] - p[ankle], thigh[..., 2])
        mirror = 1.0 if s == "r" else -1.0
        hip_angles = cardan_zxy(pelvis, thigh)
        out[f"hip_flexion_{s}"] = hip_angles[:, 0]
        out[f"hip_adduction_{s}"] = mirror * hip_angles[:, 1]
        out[f"hip_rotation_{s}"] = np.where(bend >= PLANE_FULL_DEG, mirror * hip_angles[:, 2], np.nan)
        out[f"knee_flexion_{s}"] = -cardan_zxy(thigh, shank)[:, 0]
        toe, heel = p.toe(side), f"{side}_heel"
        if toe is not None and p.has(heel):
            foot = frame_from_xz(toe - p[heel], shank[..., 2])
            out[f"ankle_dorsiflexion_{s}"] = cardan_zxy(shank, foot)[:, 0]


def _upper_limbs(p: _Points, out: dict) -> None:
    mid_shoulder = p.mid("left_shoulder", "right_shoulder")
    thorax = frame_from_yz(mid_shoulder - p.mid("left_hip", "right_hip"), p["right_shoulder"] - p["left_shoulder"])
    for s, side in SIDES.items():
        shoulder, elbow, wrist = f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist"
        if not p.has(shoulder, elbow, wrist):
            continue
        u, d = p[shoulder] - p[elbow], p[wrist] - p[elbow]
        bend = _included_deg(u, d)
        upper = frame_from_yz(u, _plane_blend(np.cross(d, u), thorax[..., 2], bend))
        fore = frame_from_yz(p[elbow] - p[wrist], upper[..., 2])
        angles = cardan_zxy(thorax, upper)
        out[f"shoulder_flexion_{s}"] = angles[:, 0]
        out[f"shoulder_abduction_{s}"] = (-1.0 if s == "r" else 1.0) * angles[:, 1]
        out[f"elbow_flexion_{s}"] = cardan_zxy(upper, fore)[:, 0]
