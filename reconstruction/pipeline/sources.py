"""What a reconstruction reads: the session's files matched to the rig's cameras, or 2D computed
before (our keypoints NPZ, a simulator's ground truth, an OpenPose folder).

Shapes: ``T`` frames, ``V`` views, ``J`` joints. One name-matching rule for every command
(:meth:`calibration.camera.Rig.match`): exactly, then loosely (case, separators, ``_json``), by name
or serial; a recording is matched by the serial it carries first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.camera import Camera, Rig
from capture.errors import FileFormatError, RecordingError
from capture.media_files import is_recording, media_files
from reconstruction.formats.keypoints2d import Keypoints2D
from reconstruction.skeleton import Skeleton

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ViewSource:
    """One view of a session: ``camera`` of the rig fed by ``path`` (a RealSense recording or a video)."""

    camera: Camera
    path: Path
    kind: str  # "recording" | "video"
    num_frames: int = 0


@dataclass(frozen=True, eq=False)
class Session:
    """The files of a session matched to rig cameras, in rig order (cameras without a file dropped).

    Attributes:
        rig: the matched cameras (a subset of the calibration's rig, its order).
        views: (V,) the file feeding each camera.
        fps: frame rate (the first recording's, else the first video's).
        notes: what the user should know (cameras without a file, a single camera, ...).
    """

    rig: Rig
    views: tuple[ViewSource, ...]
    fps: float
    notes: tuple[str, ...] = ()

    @property
    def has_depth(self) -> bool:
        return any(v.kind == "recording" for v in self.views)

    def frame_sets(self, color: bool = True, depth: bool = True):
        """The session's :class:`~capture.stream.FrameSetStream`: every file synchronized into frame
        sets, views named (and ordered) like the rig, depth aligned to colour where it is not yet."""
        from capture.stream import FrameSetStream

        return FrameSetStream([v.path for v in self.views], names=[v.camera.name for v in self.views],
                              align_depth="auto", color=color, depth=depth)


def open_session(paths: Sequence[str | Path], rig: Rig) -> Session:
    """Match the session's files (files, or folders of them) to ``rig``'s cameras.

    Recordings are matched by the serial they carry (then by file name), videos by file name
    (``cam01.mp4`` -> camera ``cam01``; case and separators ignored). A file that matches no camera
    is an error naming it and the rig's cameras; a rig camera without a file is left out (noted).
    """
    matched: dict[str, ViewSource] = {}
    fps_rec, fps_vid = None, None
    for f in media_files(paths):
        if is_recording(f):
            source, fps = _recording_source(f, rig)
            fps_rec = fps_rec or fps
        else:
            source, fps = _video_source(f, rig)
            fps_vid = fps_vid or fps
        if source.camera.name in matched:
            raise RecordingError(f"{f} and {matched[source.camera.name].path} both feed camera {source.camera.name}; "
                                 "keep one")
        matched[source.camera.name] = source
    views = tuple(matched[n] for n in rig.names if n in matched)
    return Session(rig=Rig(tuple(v.camera for v in views)), views=views, fps=float(fps_rec or fps_vid or 30.0),
                   notes=tuple(_session_notes(views, rig)))


def _recording_source(path: Path, rig: Rig) -> tuple[ViewSource, float | None]:
    from capture.recording import read_recording_info

    info = read_recording_info(path)
    camera = (rig.find(str(info.serial)) if info.serial else None) or rig.match(path.stem)
    if camera is None:
        known = ", ".join(f"{c.name} (serial {c.serial or '?'})" for c in rig.cameras)
        raise RecordingError(
            f"{path}: recording of camera serial {info.serial or '?'} which is not in the calibration "
            f"(rig cameras: {known}); calibrate that camera or leave the file out")
    fps = float(info.fps or 0) or None
    return ViewSource(camera, path, "recording", _recording_frames(path, info, fps)), fps


def _recording_frames(path: Path, info, fps: float | None) -> int:
    """Frames of a recording's primary stream (for the notes; 0 where unknown)."""
    from capture.recording import index_recording

    if path.suffix.lower() == ".bag":  # indexing a .bag means playing it: estimate from the duration
        duration = float(info.duration_ms or 0)
        return int(round(duration * (fps or 0) / 1000.0)) if np.isfinite(duration) else 0
    try:
        index = index_recording(path)
    except (RecordingError, OSError, ValueError) as exc:  # an index is a nicety (frame counts for the notes), never a reason to fail
        log.debug("%s: no index (%s)", path, exc)
        return 0
    primary = index.get(info.primary)
    return len(primary) if primary is not None else max((len(v) for v in index.values()), default=0)


def _video_source(path: Path, rig: Rig) -> tuple[ViewSource, float]:
    from capture.recording import read_recording_info

    camera = rig.match(path.stem)
    if camera is None:
        raise RecordingError(
            f"{path}: video whose name matches no camera of the calibration (cameras: "
            f"{', '.join(rig.names)}); name each video after its camera, e.g. {rig.names[0]}.mp4")
    info = read_recording_info(path)
    size = (info.streams[0].width, info.streams[0].height)
    if tuple(size) != tuple(camera.image_size) and max(abs(a - b) / b for a, b in zip(size, camera.image_size)) > 0.02:
        raise RecordingError(f"{path}: video is {size[0]}x{size[1]} but camera {camera.name} is calibrated at "
                             f"{camera.width}x{camera.height}")
    frames = int(round(info.duration_ms * info.fps / 1000.0)) if info.fps and np.isfinite(info.duration_ms) else 0
    return ViewSource(camera, path, "video", frames), float(info.fps or 30.0)


def _session_notes(views: tuple[ViewSource, ...], rig: Rig) -> list[str]:
    notes = []
    missing = [n for n in rig.names if n not in {v.camera.name for v in views}]
    if missing:
        notes.append(f"no file for camera(s) {', '.join(missing)}: reconstructed without them")
    if len(views) == 1:
        what = "depth-only 3D (one RGB-D camera)" if views[0].kind == "recording" else "no 3D possible"
        notes.append(f"a single camera ({views[0].camera.name}): {what}")
        if views[0].kind != "recording":
            raise RecordingError(
                f"{views[0].path}: a single video gives no 3D; add the other cameras' files or use an RGB-D recording")
    longest = max(v.num_frames for v in views)
    for v in views:
        if v.num_frames and v.num_frames < 0.8 * longest:
            notes.append(f"{v.path.name} ({v.camera.name}) has {v.num_frames} frames, the longest {longest}: "
                         f"that view is missing after its end")
    return notes


# --- 2D computed before ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Detections2D:
    """Precomputed 2D instead of the model: ``keypoints`` (views named after cameras), and optional
    ``timestamps_ms`` (T, V) (frame sets are matched to its rows by time, else by order)."""

    keypoints: Keypoints2D
    timestamps_ms: np.ndarray | None = None


def load_detections(path: str | Path) -> Detections2D:
    """Our keypoints NPZ, a simulator ``ground_truth.npz`` (its true 2D: pass it through
    :func:`~reconstruction.simulation.detections.simulate_detections` first for realistic input),
    or an OpenPose JSON folder (one sub-folder per camera)."""
    from reconstruction.formats.keypoints2d import read_keypoints2d

    path = Path(path)
    if path.is_dir():
        return Detections2D(read_keypoints2d(path))
    if not path.is_file():
        raise FileFormatError(f"{path}: detections file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # zero-byte, truncated, not a zip: the file's problem, said as such
        raise FileFormatError(f"{path}: not a readable NPZ file ({type(exc).__name__}: {exc})") from None
    with data:
        if "keypoints2d" in data.files and "cameras" in data.files and "joint_names" in data.files:
            fps = float(data["fps"]) if "fps" in data.files else 30.0
            try:
                kp = Keypoints2D(data["keypoints2d"], tuple(data["cameras"].tolist()),
                                 tuple(data["joint_names"].tolist()), fps)
            except ValueError as exc:
                raise FileFormatError(f"{path}: {exc}") from None
            stamps = np.asarray(data["timestamps_ms"], dtype=np.float64) if "timestamps_ms" in data.files else None
            if stamps is not None and stamps.shape != kp.keypoints.shape[:2]:
                stamps = None
            return Detections2D(kp, stamps)
    return Detections2D(read_keypoints2d(path))


def select_detections(det: Detections2D, rig: Rig, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray | None]:
    """The detections' (T, V, J, 3) keypoints and (T, V) timestamps in ``rig``'s view order (views
    matched to cameras by name, then by serial)."""
    kp = det.keypoints
    try:
        kp = kp.select_cameras(rig.names)
    except FileFormatError:
        # Recordings are named by serial: let a detection view named after the serial match too.
        kp = kp.select_cameras([c.serial or c.name for c in rig.cameras])
    if tuple(kp.joint_names) != tuple(skeleton.joint_names):
        raise FileFormatError(
            f"detections have joints {', '.join(kp.joint_names[:4])}, ... ({kp.num_joints}) but the skeleton "
            f"{skeleton.name!r} expects {skeleton.num_joints}; set 'skeleton' in the config to match")
    stamps = None
    if det.timestamps_ms is not None and set(kp.cameras) <= set(det.keypoints.cameras):
        order = [list(det.keypoints.cameras).index(c) for c in kp.cameras]
        stamps = det.timestamps_ms[:, order]
    return kp.keypoints, stamps


def rows_for(timestamps_ms: np.ndarray, stamps: np.ndarray | None, start: int, T: int) -> np.ndarray:
    """(Tc, V) row of the precomputed 2D for each view of frame sets ``start ..`` with (Tc, V)
    ``timestamps_ms`` (-1 where none): by each view's own timestamp when the detections carry
    timestamps (``stamps`` (T, V)), else by order."""
    Tc, V = timestamps_ms.shape
    if stamps is None:
        rows = np.arange(start, start + Tc)
        return np.repeat(np.where(rows < T, rows, -1)[:, None], V, axis=1)
    d = np.abs(timestamps_ms[:, None, :] - stamps[None, :, :])  # (Tc, T, V)
    d = np.where(np.isfinite(d), d, np.inf)
    rows = np.argmin(d, axis=1)  # (Tc, V)
    best = np.take_along_axis(d, rows[:, None, :], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        steps = np.diff(stamps, axis=0)
    period = float(np.nanmedian(steps)) if np.isfinite(steps).any() else np.inf
    return np.where(best <= 0.5 * period, rows, -1)
