"""Keypoints lifted with depth: the :class:`DepthLift` arrays and the operations on them.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``P`` joint pairs (midpoints).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from calibration.camera import Rig
from reconstruction.depth.offsets import apply_offsets
from reconstruction.skeleton import Skeleton, canonical_joint_name


@dataclass(frozen=True, eq=False)
class DepthLift:
    """Keypoints lifted with depth.

    Attributes:
        points: (T, V, J, 3) world metres, joint centres (offset applied); NaN where no depth.
        covariance: (T, V, J, 3, 3) world m^2; NaN where no depth.
        surface: (T, V, J, 3) world metres of the visible surface (before the offset).
        offsets_m: (J,) offsets used along the ray.
        var_ray: (T, V, J) variance (m^2) along the viewing ray (depth noise + offset).
        at_estimate: (T, V, J) bool, read where a 3D estimate reprojects (``sample_uv``) rather than
            at the view's detection: its label is the estimate's, not the detection's.
        mid_pairs: (P, 2) joint pairs whose midpoint's depth was read (the ears: the head centre;
            a limb's two ends: its middle), see :func:`lift_midpoints_with_depth`; None without.
        mid_surface: (T, V, P, 3) world metres, the visible surface on each view's ray through them.
        mid_var: (T, V, P) m^2, the sensor model's variance of that surface's range.
        mid_radius: (P,) m, the body radius prior there (the midpoint's offset behind the surface
            until the data give one).
        mid_sin: (T, V, P) sine of the angle between each view's ray and the segment (1 for a
            sphere such as the head): a limb seen at an angle lies ``radius / sin`` behind its surface.
        mid_weights: (P,) ``w``: the point read is ``w X_a + (1 - w) X_b`` (0.5: the middle).
    """

    points: np.ndarray
    covariance: np.ndarray
    surface: np.ndarray
    offsets_m: np.ndarray
    var_ray: np.ndarray | None = None
    at_estimate: np.ndarray | None = None
    mid_pairs: np.ndarray | None = None
    mid_surface: np.ndarray | None = None
    mid_var: np.ndarray | None = None
    mid_radius: np.ndarray | None = None
    mid_sin: np.ndarray | None = None
    mid_weights: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class DepthEstimate:
    """A first 3D estimate that guides where depth is read (:func:`~reconstruction.depth.reading.read_depth`).

    Attributes:
        xyz: (T, J, 3) world metres (triangulation + refinement without depth), NaN where unknown.
        covariance: (T, J, 3, 3) m^2 of the per-frame triangulation (how well each joint's depth is
            known: two opposite cameras leave it open along their axis); NaN where unknown.
        measured: (T, J) bool, joints >= 2 views triangulated in that frame: elsewhere the estimate is
            interpolated or held by bones, no better than the view's own detection.
    """

    xyz: np.ndarray
    covariance: np.ndarray
    measured: np.ndarray


def with_offsets(lift: DepthLift, rig: Rig, offsets_m: np.ndarray) -> DepthLift:
    """The lift with new per-joint offsets (J,) (the covariance is unchanged: see
    :func:`with_ray_variance`)."""
    return replace(lift, points=apply_offsets(lift.surface, rig, offsets_m), offsets_m=np.asarray(offsets_m))


def with_ray_variance(lift: DepthLift, rig: Rig, var_ray: np.ndarray) -> DepthLift:
    """The lift with a new variance (T, V, J) m^2 along each viewing ray (lateral part kept)."""
    ray = lift.points - rig.centers[None, :, None, :]
    with np.errstate(invalid="ignore"):
        d = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    old = lift.var_ray if lift.var_ray is not None else np.zeros(var_ray.shape)
    cov = lift.covariance + (var_ray - old)[..., None, None] * (d[..., :, None] * d[..., None, :])
    return replace(lift, covariance=cov, var_ray=var_ray)


def flip_lift(lift: DepthLift, swapped: np.ndarray, skeleton: Skeleton) -> DepthLift:
    """The depth points of the (T, V) ``swapped`` views relabelled left <-> right, like their 2D.

    Points read where a 3D estimate reprojects (``lift.at_estimate``) already carry the estimate's
    (corrected) label and stay; a point read at a detection whose mirror joint was read at the
    estimate has no partner to take and is dropped."""
    perm = skeleton.flip_permutation
    sel = np.asarray(swapped, dtype=bool)[:, :, None]
    at_est = lift.at_estimate if lift.at_estimate is not None else np.zeros(lift.points.shape[:3], dtype=bool)
    take_flipped = sel & ~at_est & ~at_est[:, :, perm]
    drop = sel & ~at_est & at_est[:, :, perm]

    def flip(a):
        if a is None:
            return None
        shape = take_flipped.shape + (1,) * (a.ndim - 3)
        out = np.where(take_flipped.reshape(shape), a[:, :, perm], a)
        return np.where(drop.reshape(shape), np.nan, out)

    return replace(lift, points=flip(lift.points), covariance=flip(lift.covariance), surface=flip(lift.surface),
                   var_ray=flip(lift.var_ray))


def without_joints(lift: DepthLift, skeleton: Skeleton, joint_names, keep: np.ndarray | None = None) -> DepthLift:
    """The lift without depth points for ``joint_names`` (canonical names; unknown ones ignored),
    except in the (T, J) frames ``keep`` (e.g. where no triangulation exists: depth alone places it)."""
    drop = {canonical_joint_name(n) for n in joint_names}
    mask = np.array([canonical_joint_name(n) in drop for n in skeleton.joint_names])
    if not mask.any():
        return lift
    gone = np.broadcast_to(mask[None, :], lift.points.shape[:1] + mask.shape)
    if keep is not None:
        gone = gone & ~np.asarray(keep, dtype=bool)
    gone = np.broadcast_to(gone[:, None, :], lift.points.shape[:3])

    def blank(a):
        if a is None:
            return None
        shape = gone.shape + (1,) * (a.ndim - 3)
        return np.where(gone.reshape(shape), np.nan, a)

    return replace(lift, points=blank(lift.points), covariance=blank(lift.covariance), surface=blank(lift.surface),
                   var_ray=blank(lift.var_ray))
