"""A triangulation's figures per camera and per joint, as JSON and as text."""
from __future__ import annotations

import numpy as np

from reconstruction.triangulation.result import Triangulation3D


def triangulation_summary(result: Triangulation3D, camera_names, joint_names) -> dict:
    """JSON-ready summary: completeness, reprojection error per camera and per joint (median and mean
    over used views, pixels), and how often each camera's detections were excluded."""
    used, res = result.used, result.residual_px  # (T, V, J)
    detected = np.isfinite(res)

    def stats(mask_axis_values):
        vals = mask_axis_values[np.isfinite(mask_axis_values)]
        if vals.size == 0:
            return {"median_px": None, "mean_px": None, "count": 0}
        return {"median_px": round(float(np.median(vals)), 3), "mean_px": round(float(np.mean(vals)), 3),
                "count": int(vals.size)}

    used_res = np.where(used, res, np.nan)
    per_camera = {}
    for v, name in enumerate(camera_names):
        n_det = int(detected[:, v].sum())
        n_excl = int((detected[:, v] & ~used[:, v]).sum())
        per_camera[str(name)] = {
            **stats(used_res[:, v]),
            "detections": n_det,
            "excluded": n_excl,
            "exclusion_rate": round(n_excl / n_det, 4) if n_det else None,
        }
    per_joint = {}
    finite = np.all(np.isfinite(result.xyz), axis=-1)
    for j, name in enumerate(joint_names):
        completeness = round(float(finite[:, j].mean()), 4) if finite.size else None
        per_joint[str(name)] = {**stats(used_res[:, :, j]), "completeness": completeness}
    return {
        "frames": int(result.xyz.shape[0]),
        "joints": int(result.xyz.shape[1]),
        "completeness": round(result.completeness, 4),
        "missing_points": result.num_missing,
        "reprojection_error_px": stats(used_res),
        "reprojection_error_all_detections_px": stats(res),
        "mean_views_used": round(float(result.n_views[finite].mean()), 3) if finite.any() else None,
        "per_camera": per_camera,
        "per_joint": per_joint,
    }


def format_summary(summary: dict) -> str:
    """Human-readable lines of a :func:`reconstruction.triangulation.triangulation_summary`."""
    def px(value):
        return "   -  " if value is None else f"{value:6.2f}"

    total = summary["reprojection_error_px"]
    lines = [
        f"{summary['frames']} frames x {summary['joints']} joints: completeness {100 * summary['completeness']:.2f} % "
        f"({summary['missing_points']} missing), mean views used {summary['mean_views_used']}",
        f"reprojection error of the used views: median {px(total['median_px']).strip()} px, mean {px(total['mean_px']).strip()} px",
        "camera            median px  mean px  detections  excluded",
    ]
    for name, cam in summary["per_camera"].items():
        rate = "   -" if cam["exclusion_rate"] is None else f"{100 * cam['exclusion_rate']:5.1f} %"
        lines.append(f"  {name:<16}  {px(cam['median_px'])}   {px(cam['mean_px'])}  {cam['detections']:10d}  {rate}")
    lines.append("joint             median px  mean px  completeness")
    for name, joint in summary["per_joint"].items():
        comp = "   -" if joint["completeness"] is None else f"{100 * joint['completeness']:6.2f} %"
        lines.append(f"  {name:<16}  {px(joint['median_px'])}   {px(joint['mean_px'])}  {comp}")
    return "\n".join(lines)
