"""Put one rig into another's world: the rigid (or similarity) transform that best maps its camera
centres onto a reference rig's, and what differs once aligned.

Used to compare a calibration with a known rig (the simulator's truth, a lab's reference
calibration): the alignment only places the rig in the reference's world, it corrects no camera
relative to another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.camera import Rig
from calibration.errors import CalibrationError


@dataclass(frozen=True, eq=False)
class RigAlignment:
    """``X_reference = scale * R @ X_rig + t``, and the errors left per camera (reference order).

    Attributes:
        R: (3, 3); t: (3,) metres; scale: 1 for a rigid alignment.
        position_m: (V,) distance between each aligned camera centre and the reference's.
        rotation_deg: (V,) angle between each aligned camera's orientation and the reference's.
    """

    R: np.ndarray
    t: np.ndarray
    scale: float
    position_m: np.ndarray
    rotation_deg: np.ndarray


def align_rig(rig: Rig, reference: Rig, with_scale: bool = False) -> tuple[Rig, RigAlignment]:
    """``rig``'s cameras (matched to ``reference``'s by name, in its order) moved onto ``reference``
    by the least-squares rotation and translation (and scale, ``with_scale``) of their centres."""
    cams = [rig.find(name) for name in reference.names]
    if any(c is None for c in cams):
        raise CalibrationError(f"cameras {rig.names} do not match the reference's {reference.names}")
    if len(cams) < 2:
        raise CalibrationError("aligning rigs needs at least two cameras in common")
    a = np.stack([c.center for c in cams])
    b = reference.centers
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    U, S, Vt = np.linalg.svd((b - mb).T @ (a - ma))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / np.sum((a - ma) ** 2)) if with_scale else 1.0
    t = mb - scale * R @ ma
    placed = Rig(tuple(cams)).transformed(R, t, scale)
    position = np.linalg.norm(placed.centers - b, axis=1)
    rel = np.einsum("vij,vkj->vik", np.stack([c.R for c in placed]), np.stack([c.R for c in reference]))
    rotation = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
    return placed, RigAlignment(R, t, scale, position, rotation)
