"""The edge to OpenSim (``pip install 'mocap[opensim]'``: the ``opensim`` wheel on PyPI): loading a
model with a marker set, its markers in the default pose, the ScaleTool and the InverseKinematicsTool.

Everything else of the kinematics is plain numpy; only this module imports ``opensim``, lazily, and
turns its failures into one message naming the file (:class:`OpenSimError`). OpenSim's own log goes
to ``opensim.log`` in the output folder.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from capture.errors import MocapError

log = logging.getLogger(__name__)

INSTALL_HINT = ("install it with `pip install 'mocap[opensim]'` (or `pip install opensim==4.6`: the OpenSim "
                "wheels on PyPI, Python 3.10-3.12); the ISB joint angles and BVH export need no OpenSim")


class OpenSimMissingError(MocapError):
    """The ``opensim`` package is not installed."""


class OpenSimError(MocapError):
    """OpenSim refused a file or a tool failed."""


def import_opensim(log_file: str | Path | None = None):
    """The ``opensim`` module, its log sent to ``log_file`` (console: errors only)."""
    try:
        import opensim
    except ImportError as exc:
        raise OpenSimMissingError(f"OpenSim scaling and inverse kinematics need the `opensim` package ({exc}); "
                                  f"{INSTALL_HINT}") from None
    opensim.Logger.setLevelString("Warn")
    if log_file is not None:
        opensim.Logger.removeFileSink()
        opensim.Logger.addFileSink(str(log_file))
    return opensim


def _message(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:600] or type(exc).__name__


def prepare_model(model_file: str | Path, marker_file: str | Path, out_file: str | Path) -> dict:
    """Load ``model_file``, replace its markers by ``marker_file``, write the result to ``out_file``;
    returns {marker: (3,) position in ground (metres, OpenSim's Y up) in the default pose}."""
    osim = import_opensim()
    try:
        model = osim.Model(str(model_file))
    except Exception as exc:  # OpenSim raises RuntimeError with its own text
        raise OpenSimError(f"{model_file}: OpenSim cannot load this model: {_message(exc)}") from None
    try:
        model.set_MarkerSet(osim.MarkerSet(str(marker_file)))
        state = model.initSystem()
    except Exception as exc:
        raise OpenSimError(f"{marker_file}: OpenSim cannot attach this marker set to {model_file}: "
                           f"{_message(exc)}") from None
    markers = model.getMarkerSet()
    positions = {}
    for i in range(markers.getSize()):
        marker = markers.get(i)
        positions[marker.getName()] = np.array(marker.getLocationInGround(state).to_numpy(), dtype=np.float64)
    model.printToXML(str(out_file))
    return positions


def coordinate_names(model_file: str | Path) -> tuple[str, ...]:
    """The coordinates (degrees of freedom) of a model, in its order."""
    osim = import_opensim()
    try:
        coords = osim.Model(str(model_file)).getCoordinateSet()
    except Exception as exc:
        raise OpenSimError(f"{model_file}: OpenSim cannot load this model: {_message(exc)}") from None
    return tuple(coords.get(i).getName() for i in range(coords.getSize()))


def run_scale_tool(setup_file: str | Path, output_model: str | Path) -> Path:
    """Run OpenSim's ScaleTool on a set-up file (see :func:`~reconstruction.kinematics.scaling.write_scaling_setup`)."""
    osim = import_opensim()
    try:
        ok = osim.ScaleTool(str(setup_file)).run()
    except Exception as exc:
        raise OpenSimError(f"{setup_file}: OpenSim's ScaleTool failed: {_message(exc)} (see opensim.log)") from None
    if not ok or not Path(output_model).is_file():
        raise OpenSimError(f"{setup_file}: OpenSim's ScaleTool wrote no scaled model (see opensim.log)")
    return Path(output_model)


def run_ik_tool(template: str | Path, *, model_file: str | Path, marker_file: str | Path, time_range: tuple,
                output_motion: str | Path, results_dir: str | Path, setup_out: str | Path) -> Path:
    """OpenSim's InverseKinematicsTool with ``template``'s marker tasks and weights, on
    ``marker_file`` (a TRC) over ``time_range`` (s), writing ``output_motion`` (.mot, degrees) and,
    in ``results_dir``, the marker errors and the model's marker locations per frame; the set-up as
    run is saved to ``setup_out`` (it reruns in the OpenSim GUI)."""
    osim = import_opensim()
    try:
        tool = osim.InverseKinematicsTool(str(template))
    except Exception as exc:
        raise OpenSimError(f"{template}: OpenSim cannot read this IK set-up: {_message(exc)}") from None
    tool.set_model_file(str(model_file))
    tool.setMarkerDataFileName(str(marker_file))
    tool.setStartTime(float(time_range[0]))
    tool.setEndTime(float(time_range[1]))
    tool.setOutputMotionFileName(str(output_motion))
    tool.setResultsDir(str(results_dir))
    tool.set_report_errors(True)
    tool.set_report_marker_locations(True)
    tool.printToXML(str(setup_out))
    try:
        ok = tool.run()
    except Exception as exc:
        raise OpenSimError(f"{marker_file}: OpenSim's inverse kinematics failed: {_message(exc)} "
                           "(see opensim.log)") from None
    if not ok or not Path(output_motion).is_file():
        raise OpenSimError(f"{marker_file}: OpenSim's inverse kinematics wrote no motion (see opensim.log)")
    return Path(output_motion)


def ik_task_markers(template: str | Path) -> tuple[str, ...]:
    """Markers the IK set-up tracks (``IKMarkerTask`` applied with a positive weight)."""
    import xml.etree.ElementTree as ET

    from capture.errors import FileFormatError

    try:
        root = ET.parse(template).getroot()
    except (OSError, ET.ParseError) as exc:
        raise FileFormatError(f"{template}: not a readable OpenSim IK set-up ({exc})") from None
    out = []
    for task in root.iter("IKMarkerTask"):
        apply = (task.findtext("apply") or "true").strip().lower() == "true"
        try:
            weight = float(task.findtext("weight") or 1.0)
        except ValueError:
            weight = 0.0
        if apply and weight > 0:
            out.append(task.get("name"))
    return tuple(out)
