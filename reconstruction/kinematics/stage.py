"""The kinematics stage: one person's 3D joints in, joint angles (ISB and OpenSim) and their files out.

Used by ``mocap kinematics`` (:func:`kinematics_files`) and at the end of ``mocap reconstruct``
(:func:`run_kinematics`, section ``kinematics``). Files in the output folder, ``<stem>`` being the
points file's name:

- ``<stem>_joint_angles.csv`` / ``.npz``: the ISB joint angles per frame (degrees;
  :mod:`reconstruction.kinematics.angles`); the NPZ also holds the OpenSim coordinates
  (``opensim_deg`` (T, C), ``opensim_names``) when OpenSim ran;
- with OpenSim (:mod:`reconstruction.kinematics.opensim_run`): ``<stem>_scaled.osim``,
  ``<stem>.mot``, ``<stem>_marker_errors.csv`` (per frame: RMS, max and each marker's error, metres),
  the set-ups as run, ``<stem>_markers.trc``, OpenSim's own ``.sto`` files and ``opensim.log``;
- ``<stem>_kinematics.json``: the summary (marker RMS and max per frame and per marker, scale factors
  with each segment's left and right factors, frames not solved, timings, files).
"""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import ConfigError, FileFormatError
from capture.json_io import write_json
from capture.nan_warnings import quiet_nan_warnings
from reconstruction.formats.joint_angles import JointAngles, write_joint_angles
from reconstruction.formats.points3d import Points3D
from reconstruction.kinematics.config import KinematicsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class KinematicsResult:
    """The ISB angles, the OpenSim result (None where OpenSim did not run), the summary and files."""

    angles: JointAngles
    opensim: object | None
    summary: dict
    files: dict = field(default_factory=dict)


def load_person(path: str | Path, person: str | None = None) -> tuple[Points3D, str | None]:
    """One person's 3D joints from our NPZ (single person ``xyz`` (T, J, 3), or several: ``xyz``
    (T, P, J, 3) with ``person_ids`` (P,)) or a TRC/C3D (one person); returns them and the person's id.

    ``person``: a value of ``person_ids`` (or the index where the file has none); needed when the
    file holds several people.
    """
    from reconstruction.formats.points3d import read_points3d

    path = Path(path)
    if path.suffix.lower() != ".npz":
        if person not in (None, "", "0"):
            raise ConfigError(f"--person {person}: {path.name} holds one person (a TRC/C3D file per person); "
                              "--person selects among the people of an NPZ with a person axis")
        return read_points3d(path), None
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    with np.load(path, allow_pickle=False) as data:
        if "xyz" not in data.files or data["xyz"].ndim != 4:
            points = read_points3d(path)
            ids = [str(v) for v in data["person_ids"].tolist()] if "person_ids" in data.files else ["0"]
            if person not in (None, "") and person not in ids:
                raise ConfigError(f"--person {person}: {path.name} holds one person ({ids[0]})")
            return points, ids[0] if "person_ids" in data.files else None
        xyz = data["xyz"]
        ids = [str(v) for v in data["person_ids"].tolist()] if "person_ids" in data.files else \
            [str(p) for p in range(xyz.shape[1])]
        if person in (None, ""):
            if len(ids) != 1:
                raise ConfigError(f"{path}: {len(ids)} people ({', '.join(ids)}); choose one with --person ID")
            person = ids[0]
        if person not in ids:
            raise ConfigError(f"--person {person}: not in {path.name} (its people: {', '.join(ids)})")
        p = ids.index(person)
        quality = {k[len("quality_"):]: data[k][:, p] for k in data.files
                   if k.startswith("quality_") and data[k].ndim >= 3 and data[k].shape[1] == len(ids)}
        try:
            points = Points3D(xyz[:, p], tuple(data["joint_names"].tolist()), float(data["fps"]), quality)
        except (KeyError, ValueError) as exc:
            raise FileFormatError(f"{path}: {exc}") from None
    return points, person


def choose_marker_set(joint_names, setup_dir: Path) -> str:
    """The Pose2Sim marker set the joints fill best: all its markers found or derived, most of them
    found, fewest derived."""
    from reconstruction.kinematics.markers import MarkerMismatchError, markers_from_points, read_marker_set
    from reconstruction.kinematics.setup_files import SKELETON_SETUPS

    best, best_key = None, None
    dummy = np.zeros((1, len(joint_names), 3))
    for key, (stem, _, _) in SKELETON_SETUPS.items():
        wanted = read_marker_set(setup_dir / f"Markers_{stem}.xml")
        try:
            data = markers_from_points(dummy, joint_names, wanted, "", "")
        except MarkerMismatchError:
            continue
        score = (len(wanted) - len(data.derived), -len(data.derived))
        if best is None or score > best:
            best, best_key = score, key
    if best_key is None:
        raise FileFormatError(f"no Pose2Sim marker set fits these joints ({', '.join(joint_names)}); give your own "
                              "with --markers FILE.xml")
    return best_key


def run_kinematics(points: Points3D, cfg: KinematicsConfig, out_dir: str | Path, stem: str, source: str,
                   weights_dir: str | None = None) -> KinematicsResult:
    """ISB angles and (``cfg.opensim``) OpenSim scaling + IK of one person; writes the files of the
    module docstring into ``out_dir``."""
    from reconstruction.kinematics.angles import joint_angles

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    angles = joint_angles(points.xyz, points.joint_names, points.fps)
    timings = {"joint_angles": time.perf_counter() - start}
    result = None
    if cfg.opensim:
        result = _opensim(points, cfg, out_dir, stem, source, weights_dir)
        timings.update(result.timings_s)
        angles = replace(angles, extra={"opensim_deg": result.coordinates,
                                        "opensim_names": np.array(result.coordinate_names, dtype=str)})
    files = dict(result.files) if result is not None else {}
    files["joint_angles_csv"] = str(write_joint_angles(out_dir / f"{stem}_joint_angles.csv", angles))
    files["joint_angles_npz"] = str(write_joint_angles(out_dir / f"{stem}_joint_angles.npz", angles))
    if result is not None:
        files["marker_errors_csv"] = str(_write_marker_errors(out_dir / f"{stem}_marker_errors.csv", result,
                                                              points.fps))
    summary = _summary(points, angles, result, cfg, source, timings, files)
    files["summary"] = str(out_dir / f"{stem}_kinematics.json")
    summary["files"] = files
    write_json(files["summary"], summary)
    return KinematicsResult(angles=angles, opensim=result, summary=summary, files=files)


def _opensim(points: Points3D, cfg: KinematicsConfig, out_dir: Path, stem: str, source: str, weights_dir):
    from reconstruction.kinematics import opensim_tools
    from reconstruction.kinematics.markers import markers_from_points, read_marker_set
    from reconstruction.kinematics.opensim_run import scale_and_solve
    from reconstruction.kinematics.setup_files import find_setup_dir, resolve_setup

    opensim_tools.import_opensim()  # fail before anything is written when OpenSim is missing
    markers = cfg.markers or None
    if markers is None:
        folder = find_setup_dir(weights_dir)
        if folder is None:
            resolve_setup(cfg.model, None, "coco17", weights_dir=weights_dir)  # raises: how to get the set-up
        markers = choose_marker_set(points.joint_names, folder)
    setup = resolve_setup(cfg.model, markers, None, cfg.scaling_setup or None, cfg.ik_setup or None, weights_dir)
    data = markers_from_points(points.xyz, points.joint_names, read_marker_set(setup.markers), source,
                               setup.markers.name)
    return scale_and_solve(data, points.fps, setup, cfg, out_dir, stem, source)


def _write_marker_errors(path: Path, result, fps: float) -> Path:
    err = result.marker_errors_m
    with quiet_nan_warnings():
        rms = np.sqrt(np.nanmean(err**2, axis=1))
        worst = np.nanmax(err, axis=1)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "time_s", "rms_m", "max_m"] + list(result.marker_names))
        for t in range(err.shape[0]):
            values = [rms[t], worst[t]] + list(err[t])
            writer.writerow([t, f"{t / fps:.6f}"] + ["" if not np.isfinite(v) else f"{v:.5f}" for v in values])
    return path


def _stats(values: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    if not v.size:
        return {"mean": None, "min": None, "max": None, "valid_fraction": 0.0}
    return {"mean": round(float(v.mean()), 3), "min": round(float(v.min()), 3), "max": round(float(v.max()), 3),
            "valid_fraction": round(float(v.size / values.size), 4)}


def _summary(points: Points3D, angles: JointAngles, result, cfg: KinematicsConfig, source: str, timings: dict,
             files: dict) -> dict:
    summary = {
        "points": source, "frames": points.num_frames, "fps": points.fps, "joints": list(points.joint_names),
        "joint_angles_deg": {n: _stats(angles.degrees[:, a]) for a, n in enumerate(angles.names)},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    if result is None:
        summary["opensim"] = None
        return summary
    err = result.marker_errors_m
    with quiet_nan_warnings():
        frame_rms = np.sqrt(np.nanmean(err**2, axis=1))
        frame_max = np.nanmax(err, axis=1)
        overall = float(np.sqrt(np.nanmean(err**2)))
        w = np.where(np.isfinite(err), result.marker_weights[None, :], 0.0)
        weighted = float(np.sqrt(np.nansum(w * err**2) / max(w.sum(), 1e-12)))
    per_marker = {}
    for m, name in enumerate(result.marker_names):
        e = err[:, m][np.isfinite(err[:, m])]
        per_marker[name] = {"weight": float(result.marker_weights[m]),
                            "rms_m": round(float(np.sqrt(np.mean(e**2))), 5) if e.size else None,
                            "max_m": round(float(e.max()), 5) if e.size else None}
    unsolved = np.flatnonzero(~result.solved)
    summary["opensim"] = {
        "model": files.get("unscaled_model"), "scaled_model": files.get("scaled_model"),
        "mass_kg": cfg.mass_kg, "height_m": cfg.height_m or None,
        "frames_solved": int(result.solved.sum()), "frames_not_solved": unsolved.tolist(),
        "marker_error_m": {
            "rms": round(overall, 5), "weighted_rms": round(weighted, 5),
            "max": round(float(np.nanmax(frame_max)), 5),
            "median_frame_rms": round(float(np.nanmedian(frame_rms)), 5),
            "rms_per_frame": [None if not np.isfinite(v) else round(float(v), 5) for v in frame_rms],
            "max_per_frame": [None if not np.isfinite(v) else round(float(v), 5) for v in frame_max],
            "per_marker": per_marker,
        },
        "scaling": _scaling_summary(result.scale),
        "coordinates_deg": {n: _stats(result.coordinates[:, c]) for c, n in enumerate(result.coordinate_names)},
    }
    return summary


def _scaling_summary(scale) -> dict | None:
    if scale is None:
        return None
    segments = {}
    for s in scale.segments:
        diff = 100.0 * (s.left - s.right) / s.factor if np.isfinite(s.left) and np.isfinite(s.right) else None
        segments[s.name] = {"factor": round(s.factor, 4), "left": None if not np.isfinite(s.left) else round(s.left, 4),
                            "right": None if not np.isfinite(s.right) else round(s.right, 4),
                            "left_minus_right_percent": None if diff is None else round(diff, 2),
                            "frame_spread_percent": None if not np.isfinite(s.spread) else round(100 * s.spread, 2),
                            "source": s.source}
    return {"segments": segments, "bodies": {b: [round(float(v), 4) for v in f] for b, f in scale.bodies.items()}}


@dataclass(frozen=True)
class KinematicsRequest:
    """What ``mocap kinematics`` was asked for."""

    points: str
    output: str
    model: str = "pose2sim-simple"
    markers: str | None = None
    height_m: float | None = None
    mass_kg: float | None = None
    person: str | None = None
    scaling_setup: str | None = None
    ik_setup: str | None = None
    opensim: bool = True
    weights_dir: str | None = None


def kinematics_files(req: KinematicsRequest) -> KinematicsResult:
    """``mocap kinematics``: the person's points from the file, then :func:`run_kinematics`."""
    try:
        cfg = KinematicsConfig(enabled=True, opensim=req.opensim, model=req.model, markers=req.markers or "",
                               scaling_setup=req.scaling_setup or "", ik_setup=req.ik_setup or "",
                               height_m=req.height_m or 0.0, mass_kg=req.mass_kg or 70.0)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if req.opensim:
        from reconstruction.kinematics.opensim_tools import import_opensim

        import_opensim()
    points, person = load_person(req.points, req.person)
    stem = Path(req.points).stem + (f"_person{person}" if person not in (None, "") and req.person else "")
    return run_kinematics(points, cfg, req.output, stem, str(req.points), req.weights_dir)


def summary_lines(result: KinematicsResult) -> list[str]:
    """A few lines for the terminal."""
    s = result.summary
    lines = [f"{s['points']}: {s['frames']} frames at {s['fps']:g} fps; ISB joint angles: "
             f"{', '.join(s['joint_angles_deg']) or 'none (the joints define none)'}"]
    o = s.get("opensim")
    if o:
        e = o["marker_error_m"]
        lines.append(f"OpenSim: {o['frames_solved']} of {s['frames']} frames solved; marker error RMS "
                     f"{e['rms'] * 1000:.1f} mm (weighted as the IK weighs the markers: "
                     f"{e['weighted_rms'] * 1000:.1f} mm), max {e['max'] * 1000:.1f} mm")
        if o["scaling"]:
            pairs = [f"{n} {v['factor']:.3f}" + (f" (L-R {v['left_minus_right_percent']:+.1f} %)"
                                                  if v["left_minus_right_percent"] is not None else "")
                     for n, v in o["scaling"]["segments"].items()]
            lines.append("scale factors: " + ", ".join(pairs))
    t = s["timings_s"]
    lines.append("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    lines.append(f"outputs in {Path(result.files['summary']).parent}: "
                 + ", ".join(Path(p).name for k, p in result.files.items() if k in (
                     "scaled_model", "motion", "marker_errors_csv", "joint_angles_csv", "summary")))
    return lines
