"""The edge to OpenSim (``pip install 'mocap[opensim]'``: the ``opensim`` wheel on PyPI): loading a
model with a marker set, its markers in the default pose, the ScaleTool and the InverseKinematicsTool.

Everything else of the kinematics is plain numpy; only this module imports ``opensim``, lazily, and
turns its failures into one message naming the file (:class:`OpenSimError`). OpenSim's own log goes
to ``opensim.log`` in the output folder: what OpenSim prints while it works (its model summaries,
missing-mesh warnings) goes there too, not to the terminal, and the errors it printed are quoted in
the message when a tool fails.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
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


_LOG = {"file": None}


def import_opensim(log_file: str | Path | None = None):
    """The ``opensim`` module; with ``log_file``, OpenSim's log and printing go to that file."""
    try:
        import opensim
    except ImportError as exc:
        raise OpenSimMissingError(f"OpenSim scaling and inverse kinematics need the `opensim` package ({exc}); "
                                  f"{INSTALL_HINT}") from None
    opensim.Logger.setLevelString("Warn")
    if log_file is not None:
        _LOG["file"] = str(log_file)
    return opensim


@contextmanager
def _captured(printed: list):
    """OpenSim's printing (file descriptors 1 and 2) into the log file; ``printed`` gets the text."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            printed.append(text)
            if _LOG["file"]:
                with open(_LOG["file"], "a", encoding="utf-8") as log_file:
                    log_file.write(text)


def _message(exc: Exception, printed: list | None = None) -> str:
    """OpenSim's reason: the exception's text, and the error lines it printed before raising."""
    lines = [line.split("]", 1)[-1].strip() for text in (printed or []) for line in text.splitlines()
             if line.lstrip().startswith("[error]")]
    text = " ".join(" ".join(lines + [str(exc)]).split())
    return text[:800] or type(exc).__name__


def prepare_model(model_file: str | Path, marker_file: str | Path, out_file: str | Path) -> dict:
    """Load ``model_file``, replace its markers by ``marker_file``, write the result to ``out_file``;
    returns {marker: (3,) position in ground (metres, OpenSim's Y up) in the default pose}."""
    osim = import_opensim()
    printed: list = []
    with _captured(printed):
        try:
            model = osim.Model(str(model_file))
        except Exception as exc:  # OpenSim raises RuntimeError with its own text
            error = f"{model_file}: OpenSim cannot load this model: {{}}", exc
        else:
            try:
                model.set_MarkerSet(osim.MarkerSet(str(marker_file)))
                state = model.initSystem()
                error = None
            except Exception as exc:
                error = f"{marker_file}: OpenSim cannot attach this marker set to {model_file}: {{}}", exc
        if error is None:
            markers = model.getMarkerSet()
            positions = {}
            for i in range(markers.getSize()):
                marker = markers.get(i)
                positions[marker.getName()] = np.array(marker.getLocationInGround(state).to_numpy(), dtype=np.float64)
            model.printToXML(str(out_file))
    if error is not None:
        raise OpenSimError(error[0].format(_message(error[1], printed)))
    return positions


def coordinate_names(model_file: str | Path) -> tuple[str, ...]:
    """The coordinates (degrees of freedom) of a model, in its order."""
    osim = import_opensim()
    printed: list = []
    try:
        with _captured(printed):
            model = osim.Model(str(model_file))  # kept alive while its coordinate set is read
    except Exception as exc:
        raise OpenSimError(f"{model_file}: OpenSim cannot load this model: {_message(exc, printed)}") from None
    coords = model.getCoordinateSet()
    return tuple(coords.get(i).getName() for i in range(coords.getSize()))


def run_scale_tool(setup_file: str | Path, output_model: str | Path) -> Path:
    """Run OpenSim's ScaleTool on a set-up file (see :func:`~reconstruction.kinematics.scaling.write_scaling_setup`)."""
    osim = import_opensim()
    Path(output_model).unlink(missing_ok=True)
    printed: list = []
    try:
        with _captured(printed):
            osim.ScaleTool(str(setup_file)).run()  # returns False when the marker placer is off, as here
    except Exception as exc:
        raise OpenSimError(f"{setup_file}: OpenSim's ScaleTool failed: {_message(exc, printed)}") from None
    if not Path(output_model).is_file():
        raise OpenSimError(f"{setup_file}: OpenSim's ScaleTool wrote no scaled model (see opensim.log)")
    return Path(output_model)


def run_ik_tool(template: str | Path, *, model_file: str | Path, marker_file: str | Path, time_range: tuple,
                output_motion: str | Path, results_dir: str | Path, setup_out: str | Path, name: str = "ik") -> Path:
    """OpenSim's InverseKinematicsTool with ``template``'s marker tasks and weights, on
    ``marker_file`` (a TRC) over ``time_range`` (s), writing ``output_motion`` (.mot, degrees) and,
    in ``results_dir``, the marker errors and the model's marker locations per frame; the set-up as
    run is saved to ``setup_out`` (it reruns in the OpenSim GUI). OpenSim names its result files
    ``<name>_ik_marker_errors.sto`` and ``<name>_ik_model_marker_locations.sto``."""
    osim = import_opensim()
    printed: list = []
    try:
        with _captured(printed):
            tool = osim.InverseKinematicsTool(str(template))
    except Exception as exc:
        raise OpenSimError(f"{template}: OpenSim cannot read this IK set-up: {_message(exc, printed)}") from None
    tool.setName(name)
    tool.set_model_file(str(model_file))
    tool.setMarkerDataFileName(str(marker_file))
    tool.setStartTime(float(time_range[0]))
    tool.setEndTime(float(time_range[1]))
    tool.setOutputMotionFileName(str(output_motion))
    tool.setResultsDir(str(results_dir))
    tool.set_report_errors(True)
    tool.set_report_marker_locations(True)
    tool.printToXML(str(setup_out))
    Path(output_motion).unlink(missing_ok=True)
    try:
        with _captured(printed):
            ok = tool.run()
    except Exception as exc:
        raise OpenSimError(f"{marker_file}: OpenSim's inverse kinematics failed: {_message(exc, printed)}") from None
    if not ok or not Path(output_motion).is_file():
        raise OpenSimError(f"{marker_file}: OpenSim's inverse kinematics wrote no motion (see opensim.log)")
    return Path(output_motion)


def ik_task_markers(template: str | Path) -> dict:
    """{marker: weight} of the markers the IK set-up tracks (``IKMarkerTask`` applied, weight > 0)."""
    import xml.etree.ElementTree as ET

    from capture.errors import FileFormatError

    try:
        root = ET.parse(template).getroot()
    except (OSError, ET.ParseError) as exc:
        raise FileFormatError(f"{template}: not a readable OpenSim IK set-up ({exc})") from None
    out = {}
    for task in root.iter("IKMarkerTask"):
        apply = (task.findtext("apply") or "true").strip().lower() == "true"
        try:
            weight = float(task.findtext("weight") or 1.0)
        except ValueError:
            weight = 0.0
        if apply and weight > 0:
            out[task.get("name")] = weight
    return out


def marker_trajectories(model_file: str | Path, coordinates: np.ndarray, coordinate_names, markers) -> np.ndarray:
    """Forward kinematics in OpenSim: the model posed at each frame's ``coordinates`` (T, C) (a
    ``.mot``'s columns: rotations in degrees, translations in metres; NaN rows give NaN) -> the
    ground positions (T, M, 3) of ``markers`` (metres, OpenSim's Y up). Used to measure any IK
    result against its markers, and to make markers from known joint angles."""
    osim = import_opensim()
    printed: list = []
    try:
        with _captured(printed):
            model = osim.Model(str(model_file))
            state = model.initSystem()
    except Exception as exc:
        raise OpenSimError(f"{model_file}: OpenSim cannot load this model: {_message(exc, printed)}") from None
    coord_set = model.getCoordinateSet()
    known = {coord_set.get(i).getName(): coord_set.get(i) for i in range(coord_set.getSize())}
    used = [(c, known[n], known[n].getMotionType() == 1) for c, n in enumerate(coordinate_names) if n in known]
    marker_set = model.getMarkerSet()
    objects = [marker_set.get(m) for m in markers]
    values = np.asarray(coordinates, dtype=np.float64)
    out = np.full((values.shape[0], len(objects), 3), np.nan)
    for t, row in enumerate(values):
        if not np.isfinite(row).all():
            continue
        for c, coordinate, rotational in used:
            coordinate.setValue(state, float(np.radians(row[c]) if rotational else row[c]), False)
        model.realizePosition(state)
        for m, marker in enumerate(objects):
            out[t, m] = marker.getLocationInGround(state).to_numpy()
    return out
