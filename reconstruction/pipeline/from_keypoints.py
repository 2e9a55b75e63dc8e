"""``mocap triangulate``: a 2D keypoints file and a rig file in, a 3D file and its summary out.

KP: our 2D ``.npz`` or an OpenPose JSON root (one sub-folder per camera, named like the rig's
cameras). OUT by extension: ``.npz`` (with the quality arrays ``reproj_error_px``, ``n_views``,
``covariance``, ``uncertainty_m``), ``.trc`` or ``.c3d``. The summary (reprojection error per camera
and per joint, how often each camera was excluded, completeness, the configuration used; with a
known skeleton the sequence quality of :func:`reconstruction.quality.sequence_quality`) is written
to ``OUT.summary.json``. ``refine`` runs the sequence refinement (reprojection + bone lengths +
smoothness), which needs the skeleton.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.camera import Rig
from capture.errors import ConfigError, FileFormatError
from reconstruction.skeleton import Skeleton


@dataclass(frozen=True)
class TriangulateRequest:
    """What ``mocap triangulate`` was asked for."""

    calibration: str
    keypoints: str
    output: str
    skeleton: str | None = None
    min_views: int | None = None
    refine: bool = False
    fps: float | None = None


def match_cameras(keypoint_cameras, rig: Rig, keypoints_path, rig_path) -> Rig:
    """The rig restricted to the keypoints' views, in their order (:meth:`Rig.match`: names exactly,
    then loosely or by serial). A view with no camera is a FileFormatError naming them."""
    chosen, missing = [], []
    for name in keypoint_cameras:
        camera = rig.match(name)
        if camera is None:
            missing.append(name)
        else:
            chosen.append(camera.name)
    if missing:
        raise FileFormatError(
            f"{keypoints_path}: camera(s) {', '.join(missing)} of the keypoints are not in the rig {rig_path} "
            f"(rig cameras: {', '.join(rig.names)}); rename the views or use the matching calibration"
        )
    if len(set(chosen)) != len(chosen):
        raise FileFormatError(f"{keypoints_path}: several views match the same rig camera ({', '.join(chosen)})")
    return rig.subset(chosen)


def skeleton_for(names, skeleton_arg: str | None, keypoints_path) -> Skeleton | None:
    """The skeleton given, or the built-in one whose joints are exactly ``names`` (None if none)."""
    from reconstruction.skeleton import builtin_skeletons, load_skeleton

    if skeleton_arg:
        skeleton = load_skeleton(skeleton_arg)
        if skeleton.num_joints != len(names):
            raise FileFormatError(
                f"{keypoints_path}: the keypoints have {len(names)} joints but skeleton {skeleton.name!r} has "
                f"{skeleton.num_joints}; pass the skeleton the 2D model used (--skeleton)"
            )
        return skeleton
    for name in builtin_skeletons():
        skeleton = load_skeleton(name)
        if tuple(skeleton.joint_names) == tuple(names):
            return skeleton
    return None


def _check(req: TriangulateRequest) -> Path:
    out = Path(req.output)
    if out.suffix.lower() not in (".npz", ".trc", ".c3d"):
        raise ConfigError(f"--output {out}: unknown 3D file type {out.suffix!r} (use .npz, .trc or .c3d)")
    if req.fps is not None and not req.fps > 0:
        raise ConfigError(f"--fps {req.fps:g}: the frame rate must be positive")
    return out


def triangulate_file(req: TriangulateRequest) -> dict:
    """Triangulate (and refine) the keypoints file of ``req``; write the 3D and ``OUT.summary.json``.
    Returns the summary."""
    from calibration.rig_io import load_rig
    from capture.json_io import write_json
    from reconstruction.formats.keypoints2d import read_keypoints2d
    from reconstruction.formats.points3d import Points3D, write_points3d
    from reconstruction.triangulation import TriangulationConfig, triangulate, triangulation_summary

    out = _check(req)
    rig = load_rig(req.calibration)
    if len(rig) < 2:
        raise FileFormatError(
            f"{req.calibration}: the rig has a single camera ({rig.names[0]}); triangulation needs at least "
            "2 calibrated cameras that see the person")
    skeleton_given = None
    if req.skeleton:
        from reconstruction.skeleton import load_skeleton

        skeleton_given = load_skeleton(req.skeleton)
    kp = read_keypoints2d(req.keypoints, skeleton=skeleton_given, fps=req.fps)
    skeleton = skeleton_for(kp.joint_names, req.skeleton, req.keypoints)
    rig_used = match_cameras(kp.cameras, rig, req.keypoints, req.calibration)
    if len(rig_used) < 2:
        raise FileFormatError(f"{req.keypoints}: keypoints of a single view ({kp.cameras[0]}); triangulation needs 2 or more")
    try:
        cfg = TriangulationConfig(**({} if req.min_views is None else {"min_views": req.min_views}))
    except ValueError as exc:
        raise ConfigError(f"--min-views: {exc}") from None
    result = triangulate(kp.keypoints, rig_used, cfg)
    refined = "no"
    if req.refine:
        if skeleton is None:
            raise ConfigError(
                f"{req.keypoints}: --refine needs the skeleton of these {kp.num_joints} joints; pass --skeleton NAME or YAML")
        from reconstruction.refine import refine_sequence

        result = refine_sequence(kp.keypoints, rig_used, skeleton, result, fps=kp.fps)
        refined = "sequence (reconstruction.refine.refine_sequence)"
    quality = {"reproj_error_px": result.reproj_error_px, "n_views": result.n_views, "covariance": result.covariance,
               "uncertainty_m": np.sqrt(np.trace(result.covariance, axis1=-2, axis2=-1))}
    write_points3d(out, Points3D(result.xyz, kp.joint_names, kp.fps, quality))
    summary = triangulation_summary(result, rig_used.names, kp.joint_names)
    summary.update({"calibration": str(req.calibration), "keypoints": str(req.keypoints), "output": str(out),
                    "skeleton": skeleton.name if skeleton is not None else None, "refine": refined,
                    "config": dataclasses.asdict(cfg)})
    if skeleton is not None:
        from reconstruction.quality import sequence_quality

        summary["sequence_quality"] = sequence_quality(result.xyz, skeleton, kp.fps, result.reproj_error_px,
                                                       result.n_views)
    summary_path = out.with_name(out.name + ".summary.json")
    write_json(summary_path, summary)
    summary["summary_path"] = str(summary_path)
    return summary
