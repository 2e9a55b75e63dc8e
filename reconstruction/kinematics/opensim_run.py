"""OpenSim scaling and inverse kinematics of one person's markers, and what they leave in a folder.

Shapes: ``T`` frames, ``M`` markers, ``C`` coordinates. Steps (files named ``<stem>_...`` in the
output folder):

1. the markers as OpenSim reads them: ``<stem>_markers.trc`` (Y up, Pose2Sim's marker names); a frame
   with fewer than ``min_marker_fraction`` of the tracked markers present is *not solved* (its
   coordinates are NaN) and, so that the IK's time range stays whole, holds the nearest solved
   frame's markers in that file;
2. the model with the marker set: ``<stem>_unscaled.osim``; its markers in the default pose give
   the model's segment lengths;
3. scaling (:mod:`reconstruction.kinematics.scaling`): ``<stem>_scaling_setup.xml`` run by
   OpenSim's ScaleTool -> ``<stem>_scaled.osim``;
4. inverse kinematics with the IK set-up's marker weights: ``<stem>_ik_setup.xml`` ->
   ``<stem>.mot`` (the model's coordinates, degrees), OpenSim's ``<stem>_ik_marker_errors.sto`` and
   ``<stem>_ik_model_marker_locations.sto``; from the latter, each tracked marker's error per frame
   (the distance between the model's marker and the measured one).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.errors import MocapError
from reconstruction.formats.mot import Storage, read_mot, write_mot
from reconstruction.formats.points3d import Points3D, trc_to_world, write_points3d
from reconstruction.kinematics import opensim_tools
from reconstruction.kinematics.config import KinematicsConfig
from reconstruction.kinematics.markers import MarkerData
from reconstruction.kinematics.scaling import ScaleFactors, read_scaling_setup, scale_factors, write_scaling_setup
from reconstruction.kinematics.setup_files import KinematicsSetup

log = logging.getLogger(__name__)


class KinematicsError(MocapError):
    """The markers do not allow inverse kinematics."""


@dataclass(frozen=True, eq=False)
class OpenSimKinematics:
    """What scaling + IK gave.

    Attributes:
        coordinates: (T, C) the model's coordinates (rotations in degrees, translations in metres),
            NaN in frames not solved.
        coordinate_names: (C,) OpenSim coordinate names.
        marker_names: (M,) the markers the IK tracked.
        marker_weights: (M,) their weights in the IK set-up.
        marker_errors_m: (T, M) distance between each model marker and the measured one, NaN where
            the marker is missing or the frame not solved.
        solved: (T,) frames the IK solved.
        scale: the scale factors applied (None without scaling).
        files: kind -> path of the files written.
        timings_s: seconds per step.
    """

    coordinates: np.ndarray
    coordinate_names: tuple[str, ...]
    marker_names: tuple[str, ...]
    marker_weights: np.ndarray
    marker_errors_m: np.ndarray
    solved: np.ndarray
    scale: ScaleFactors | None
    files: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)


def solved_frames(markers: MarkerData, tracked: tuple[str, ...], min_fraction: float) -> np.ndarray:
    """(T,) frames with at least ``min_fraction`` of the tracked markers (and 3) present."""
    cols = [markers.names.index(m) for m in tracked]
    present = np.isfinite(markers.xyz[:, cols]).all(axis=-1).sum(axis=1)
    return present >= max(3, math.ceil(min_fraction * len(cols)))


def _held(xyz: np.ndarray, solved: np.ndarray) -> np.ndarray:
    """``xyz`` (T, M, 3) with each unsolved frame replaced by the nearest solved one."""
    good = np.flatnonzero(solved)
    nearest = good[np.clip(np.searchsorted(good, np.arange(len(solved))), 0, len(good) - 1)]
    before = good[np.clip(np.searchsorted(good, np.arange(len(solved))) - 1, 0, len(good) - 1)]
    t = np.arange(len(solved))
    pick = np.where(np.abs(before - t) <= np.abs(nearest - t), before, nearest)
    return xyz[np.where(solved, t, pick)]


def scale_and_solve(markers: MarkerData, fps: float, setup: KinematicsSetup, cfg: KinematicsConfig, out_dir: Path,
                    stem: str, source: str) -> OpenSimKinematics:
    """Scale ``setup.model`` to the person and solve the inverse kinematics of every frame (see
    module); ``source`` names the points in messages."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opensim_tools.import_opensim(out_dir / "opensim.log")
    weights = opensim_tools.ik_task_markers(setup.ik)
    tracked = tuple(m for m in weights if m in markers.names)
    if len(tracked) < 3:
        raise KinematicsError(f"{source}: the IK set-up {setup.ik} tracks {len(tracked)} of the data's markers "
                              f"({', '.join(tracked) or 'none'}); it needs at least 3")
    solved = solved_frames(markers, tracked, cfg.min_marker_fraction)
    if not solved.any():
        raise KinematicsError(f"{source}: no frame has {cfg.min_marker_fraction:.0%} of the tracked markers "
                              f"({', '.join(tracked)}) present; nothing to solve")
    T = markers.xyz.shape[0]
    files, timings = {}, {}
    trc = write_points3d(out_dir / f"{stem}_markers.trc", Points3D(_held(markers.xyz, solved), markers.names, fps))
    files["markers_trc"] = str(trc)
    start = time.perf_counter()
    unscaled = out_dir / f"{stem}_unscaled.osim"
    from reconstruction.kinematics.setup_files import fixed_marker_set

    marker_file = fixed_marker_set(Path(setup.markers), out_dir)
    model_markers = opensim_tools.prepare_model(setup.model, marker_file, unscaled)
    model_file, factors = unscaled, None
    if setup.scaling is not None:
        factors = scale_factors(read_scaling_setup(setup.scaling), markers, model_markers, symmetric=cfg.symmetric,
                                height_m=cfg.height_m or None, source=source)
        scaled = out_dir / f"{stem}_scaled.osim"
        scaling_xml = write_scaling_setup(setup.scaling, out_dir / f"{stem}_scaling_setup.xml", model_file=unscaled,
                                          output_model=scaled, factors=factors, mass_kg=cfg.mass_kg,
                                          height_m=cfg.height_m or None)
        model_file = opensim_tools.run_scale_tool(scaling_xml, scaled)
        files.update(scaling_setup=str(scaling_xml), scaled_model=str(scaled))
    files["unscaled_model"] = str(unscaled)
    timings["scaling"] = time.perf_counter() - start
    start = time.perf_counter()
    mot = out_dir / f"{stem}.mot"
    opensim_tools.run_ik_tool(setup.ik, model_file=model_file, marker_file=trc, time_range=(0.0, (T - 1) / fps),
                              output_motion=mot, results_dir=out_dir, setup_out=out_dir / f"{stem}_ik_setup.xml",
                              name=stem)
    timings["inverse_kinematics"] = time.perf_counter() - start
    coords = _per_frame(read_mot(mot), fps, T)
    if not solved.all():
        coords[~solved] = np.nan
        write_mot(mot, Storage(np.arange(T) / fps, coords, read_mot(mot).names, in_degrees=True))
    locations = out_dir / f"{stem}_ik_model_marker_locations.sto"
    errors = _marker_errors(read_mot(locations), markers, tracked, fps, T)
    errors[~solved] = np.nan
    files.update(motion=str(mot), ik_setup=str(out_dir / f"{stem}_ik_setup.xml"),
                 ik_marker_errors=str(out_dir / f"{stem}_ik_marker_errors.sto"), model_marker_locations=str(locations),
                 opensim_log=str(out_dir / "opensim.log"))
    return OpenSimKinematics(coordinates=coords, coordinate_names=read_mot(mot).names, marker_names=tracked,
                             marker_weights=np.array([weights[m] for m in tracked]), marker_errors_m=errors, solved=solved, scale=factors, files=files, timings_s=timings)


def _per_frame(storage: Storage, fps: float, T: int) -> np.ndarray:
    """(T, C) the storage's rows placed at their frames (time * fps), NaN where a frame has no row."""
    out = np.full((T, len(storage.names)), np.nan)
    frames = np.rint(storage.time * fps).astype(np.int64)
    keep = (frames >= 0) & (frames < T)
    out[frames[keep]] = storage.values[keep]
    return out


def _marker_errors(locations: Storage, markers: MarkerData, tracked: tuple[str, ...], fps: float, T: int) -> np.ndarray:
    """(T, M) distance of each tracked marker from the model's (the model's locations are in
    OpenSim's ground, the TRC's Y-up axes)."""
    table = _per_frame(locations, fps, T)
    out = np.full((T, len(tracked)), np.nan)
    for m, name in enumerate(tracked):
        cols = [f"{name}_t{a}" for a in "xyz"]
        if not all(c in locations.names for c in cols):
            continue
        model = trc_to_world(table[:, [locations.names.index(c) for c in cols]])
        out[:, m] = np.linalg.norm(model - markers.xyz[:, markers.names.index(name)], axis=-1)
    return out
