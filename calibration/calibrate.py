"""Rig calibration from board views: the top-level function behind ``mocap calibrate``.

Inputs: image folders ``ROOT/<camera>/<frame>.png|jpg`` (the same file name in two folders is
the same instant), one video per camera (frames sampled every ``video_step``; the same frame
index is the same instant), or RealSense recordings. Steps: detect the board in every image
(cached), intrinsics per camera (board, fixed rig or factory), PnP per (camera, frame), pose
graph, bundle adjustment, world frame, report.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from calibration.board import BoardSpec, load_board
from calibration.bundle_adjust import BundleAdjustConfig, Observations, bundle_adjust
from calibration.camera import Camera, Rig
from calibration.errors import CalibrationError
from calibration.extrinsics import (estimate_board_poses, initial_board_poses, initial_camera_poses,
                                    world_from_board)
from calibration.inputs import detect_folders, detect_in_stream, find_image_folders
from calibration.intrinsics import IntrinsicsConfig, calibrate_intrinsics
from calibration.report import CalibrationReport, CameraReport

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class CalibrationConfig:
    """Attributes:
        intrinsics: board intrinsics (per camera, outlier images rejected).
        bundle: bundle adjustment.
        reference_camera: camera whose frame is the world ("" = the first camera).
        world: "first_camera" (the reference camera's frame) or "board": the board's pose in
            ``world_frame`` (default: the frame seen by the most cameras).
        world_frame: frame name for world = "board".
        board_on_floor: with world = "board", Z up for a board lying printed side up.
        max_pnp_rms: board views whose PnP RMS exceeds this (px) are rejected.
        video_step: take every n-th video frame.
    """

    intrinsics: IntrinsicsConfig = IntrinsicsConfig()
    bundle: BundleAdjustConfig = BundleAdjustConfig()
    reference_camera: str = ""
    world: Literal["first_camera", "board"] = "first_camera"
    world_frame: str = ""
    board_on_floor: bool = True
    max_pnp_rms: float = 5.0
    video_step: int = 10


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    rig: Rig
    report: CalibrationReport


# ---------------------------------------------------------------------------------------- calibration

def _fixed_intrinsics(fixed: Rig, names: list[str]) -> dict:
    out, missing = {}, []
    for n in names:
        cam = fixed.find(n)
        if cam is None:
            missing.append(n)
        else:
            out[n] = (cam.K, cam.dist)
    if missing:
        raise CalibrationError(
            f"--fix-intrinsics rig has no camera named {', '.join(map(repr, missing))} "
            f"(its cameras: {', '.join(fixed.names)}); camera folders must be named like the rig's cameras or serials"
        )
    return out


def _held_intrinsics(cfg: IntrinsicsConfig) -> tuple:
    """Intrinsics the bundle adjustment keeps as calibrateCamera left them (same flags)."""
    hold = []
    if cfg.zero_tangent:
        hold += ["p1", "p2"]
    if cfg.fix_principal_point:
        hold += ["cx", "cy"]
    if cfg.fix_k3:
        hold += ["k3"]
    return tuple(hold)


def _check_found(detections: dict, spec: BoardSpec, where: str) -> None:
    total = sum(len(f) for f in detections.values())
    found = sum(d.found for f in detections.values() for d in f.values())
    if total == 0:
        raise CalibrationError(f"{where}: no images to calibrate from")
    if found == 0:
        hint = ("the squares, marker_length, dictionary and legacy_pattern" if spec.type == "charuco"
                else "inner_corners (inner corners, not squares) and the board type")
        raise CalibrationError(
            f"{where}: the board was not found in any of the {total} images (board: {spec.describe()}). "
            f"Check that {hint} in the board file match the printed board, and that the board is fully "
            "visible, sharp and well lit in the images."
        )


@dataclass(frozen=True, eq=False)
class _Intrinsics:
    """Intrinsics of every camera before the bundle adjustment, and how they were found."""

    values: dict  # {camera: (K (3, 3), dist (k,))}
    board: dict  # {camera: IntrinsicsResult} for the cameras calibrated from the board
    rejected: list  # (camera, frame, reason)


def _initial_intrinsics(detections: dict, image_sizes: dict, spec: BoardSpec, fixed: dict,
                        config: CalibrationConfig) -> _Intrinsics:
    """Fixed intrinsics where given, else per camera from its board views (outliers rejected)."""
    values, board, rejected = {}, {}, []
    for cam in detections:
        if cam in fixed:
            values[cam] = tuple(np.asarray(a, dtype=float) for a in fixed[cam])
            rejected += [(cam, frame, "no board found") for frame, det in detections[cam].items() if not det.found]
            continue
        result = calibrate_intrinsics(detections[cam], spec, image_sizes[cam], config.intrinsics, camera=cam)
        values[cam] = (result.K, result.dist)
        board[cam] = result
        rejected += [(cam, frame, reason) for frame, reason in result.rejected]
    return _Intrinsics(values, board, rejected)


def _camera_report(cam: str, detections: dict, image_sizes: dict, intr: _Intrinsics, source: str, used: int,
                   rms: float) -> CameraReport:
    dets = detections[cam]
    board = intr.board.get(cam)
    return CameraReport(cam, tuple(image_sizes[cam]), len(dets), sum(d.found for d in dets.values()), used, rms,
                        "board" if board is not None else source, board.rms if board is not None else float("nan"))


def _intrinsics_only_result(detections: dict, image_sizes: dict, spec: BoardSpec, intr: _Intrinsics,
                            source: str) -> CalibrationResult:
    """Each camera on its own (no extrinsics), with the per-image RMS of its board intrinsics."""
    names = list(detections)
    cameras, reports, cam_frame = [], [], {}
    for cam in names:
        K, dist = intr.values[cam]
        cameras.append(Camera(cam, image_sizes[cam], K, dist))
        res = intr.board.get(cam)
        cam_frame[cam] = dict(res.image_rms) if res else {}
        reports.append(_camera_report(cam, detections, image_sizes, intr, source, len(res.used) if res else 0,
                                      res.rms if res else float("nan")))
    used_dets = {c: {f: d for f, d in detections[c].items() if f in cam_frame[c]} for c in names}
    # Overall RMS over corners: each image's mean square error weighted by its corner count.
    num = sum(res.image_rms[f] ** 2 * len(detections[c][f]) for c, res in intr.board.items() for f in res.used)
    den = sum(len(detections[c][f]) for c, res in intr.board.items() for f in res.used)
    report = CalibrationReport(spec.describe(), tuple(reports), float(np.sqrt(num / den)) if den else float("nan"),
                               camera_frame_rms=cam_frame, rejected=tuple(intr.rejected), intrinsics_only=True,
                               world="none", detections=used_dets)
    return CalibrationResult(Rig(tuple(cameras)), report)


def _observations(names: list[str], board_poses: dict, usable: dict, frame_index: dict, spec: BoardSpec):
    """Every used corner as one bundle-adjustment observation, and (camera, frame, corners) per view."""
    obj = spec.object_points()
    ci, fi, pts, uv, rows = [], [], [], [], []
    for v, cam in enumerate(names):
        for frame in board_poses[cam]:
            det = usable[cam][frame]
            ci.append(np.full(len(det), v))
            fi.append(np.full(len(det), frame_index[frame]))
            pts.append(obj[det.ids])
            uv.append(det.corners)
            rows.append((cam, frame, len(det)))
    return Observations(np.concatenate(ci), np.concatenate(fi), np.concatenate(pts), np.concatenate(uv)), rows


def _world_from_board_frame(rig: Rig, ba, frames: list, board_poses: dict, config: CalibrationConfig):
    """The rig and board poses moved into the board's frame (``world: board``), and the world's name."""
    names = rig.names
    frame_index = {f: i for i, f in enumerate(frames)}
    counts = {f: sum(f in board_poses[c] for c in names) for f in frames}
    wf = config.world_frame or max(frames, key=lambda f: (counts[f], -frames.index(f)))
    if wf not in frame_index:
        raise CalibrationError(f"world_frame {wf!r}: no board pose in that frame (frames with one: {', '.join(frames[:10])} ...)")
    R_new, t_new = world_from_board(ba.R_board[frame_index[wf]], ba.t_board[frame_index[wf]], config.board_on_floor)
    world = f"board in frame {wf}" + (" (on the floor, Z up)" if config.board_on_floor else "")
    return rig.transformed(R_new, t_new), R_new @ ba.R_board, ba.t_board @ R_new.T + t_new, world


def _residual_rms(ba, obs: Observations, rows: list, frames: list, names: list[str]) -> tuple[dict, dict, dict]:
    """RMS of the bundle adjustment's residuals per (camera, frame), per frame and per camera."""
    err2 = np.sum(ba.residuals ** 2, axis=1)
    cam_frame: dict = {c: {} for c in names}
    start = 0
    for cam, frame, n in rows:
        part = err2[start:start + n]
        cam_frame[cam][frame] = float(np.sqrt(np.nanmean(part))) if np.isfinite(part).any() else float("nan")
        start += n
    frame_rms = {f: float(np.sqrt(np.nanmean(err2[obs.frame == i]))) for i, f in enumerate(frames)}
    camera_rms = {c: float(np.sqrt(np.nanmean(err2[obs.camera == v]))) if (obs.camera == v).any() else float("nan")
                  for v, c in enumerate(names)}
    return cam_frame, frame_rms, camera_rms


def calibrate_from_detections(
    detections: dict,
    image_sizes: dict,
    spec: BoardSpec,
    *,
    intrinsics_only: bool = False,
    fixed_intrinsics: dict | None = None,
    intrinsics_source: str = "fixed",
    config: CalibrationConfig = CalibrationConfig(),
    where: str = "input",
) -> CalibrationResult:
    """Calibrate from detections {camera: {frame: Detection}} and sizes {camera: (w, h)}.

    ``fixed_intrinsics`` {camera: (K, dist)} skips board intrinsics (and their refinement in the
    bundle adjustment) for those cameras. Frames seen by one camera only still constrain intrinsics.
    Steps: intrinsics, PnP per (camera, frame), pose graph, bundle adjustment, world frame, report.
    """
    names = list(detections)
    _check_found(detections, spec, where)
    fixed_intrinsics = fixed_intrinsics or {}
    intr = _initial_intrinsics(detections, image_sizes, spec, fixed_intrinsics, config)
    if intrinsics_only:
        return _intrinsics_only_result(detections, image_sizes, spec, intr, intrinsics_source)
    if spec.type == "checkerboard" and len(names) > 1:
        log.warning("a checkerboard has no orientation: two cameras may number its corners differently; "
                    "use a ChArUco board for extrinsics")
    rejected = list(intr.rejected)
    rejected_set = {(c, f) for c, f, _ in rejected}
    usable = {c: {f: d for f, d in detections[c].items() if d.found and (c, f) not in rejected_set} for c in names}
    board_poses = estimate_board_poses(intr.values, usable, spec, config.max_pnp_rms)
    rejected += [(cam, frame, f"board pose (PnP) failed or RMS > max_pnp_rms {config.max_pnp_rms:g} px")
                 for cam in names for frame in usable[cam] if frame not in board_poses[cam]]
    reference = config.reference_camera or names[0]
    if reference not in names:
        raise CalibrationError(f"reference camera {reference!r} is not among the cameras ({', '.join(names)})")
    cam_poses, links = initial_camera_poses(names, board_poses, reference)
    frame_poses = initial_board_poses(cam_poses, board_poses)
    frames = sorted(frame_poses)
    obs, rows = _observations(names, board_poses, usable, {f: i for i, f in enumerate(frames)}, spec)
    bundle_cfg = config.bundle
    if fixed_intrinsics and bundle_cfg.refine_intrinsics:
        bundle_cfg = replace(bundle_cfg, refine_intrinsics=False)
    ba = bundle_adjust(
        np.stack([cam_poses[c][0] for c in names]), np.stack([cam_poses[c][1] for c in names]),
        np.stack([intr.values[c][0] for c in names]), [intr.values[c][1] for c in names],
        np.stack([frame_poses[f][0] for f in frames]), np.stack([frame_poses[f][1] for f in frames]),
        obs, reference=names.index(reference), config=bundle_cfg, hold=_held_intrinsics(config.intrinsics),
    )
    cameras = []
    for v, cam in enumerate(names):
        dist = ba.dist[v] if bundle_cfg.refine_intrinsics or cam not in fixed_intrinsics else intr.values[cam][1]
        K = ba.K[v] if bundle_cfg.refine_intrinsics else intr.values[cam][0]
        cameras.append(Camera(cam, image_sizes[cam], K, dist, ba.R[v], ba.t[v]))
    rig, board_R, board_t, world = Rig(tuple(cameras)), ba.R_board, ba.t_board, f"camera {reference}"
    if config.world == "board":
        rig, board_R, board_t, world = _world_from_board_frame(rig, ba, frames, board_poses, config)
    cam_frame, frame_rms, camera_rms = _residual_rms(ba, obs, rows, frames, names)
    reports = [_camera_report(cam, detections, image_sizes, intr, intrinsics_source, len(board_poses[cam]),
                              camera_rms[cam]) for cam in names]
    board_positions = np.einsum("fij,j->fi", board_R, spec.object_points().mean(axis=0)) + board_t
    report = CalibrationReport(
        spec.describe(), tuple(reports), ba.rms, ba.initial_rms, frame_rms, cam_frame, tuple(rejected),
        tuple((link.a, link.b, link.inliers) for link in links), False, world,
        {c: {f: usable[c][f] for f in board_poses[c]} for c in names}, board_positions,
    )
    return CalibrationResult(rig, report)


def calibrate(
    board: BoardSpec | str | Path,
    images: str | Path | None = None,
    videos: str | Path | None = None,
    recordings: str | Path | None = None,
    *,
    intrinsics_only: bool = False,
    fix_intrinsics: Rig | str | Path | None = None,
    report_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    config: CalibrationConfig = CalibrationConfig(),
) -> CalibrationResult:
    """Calibrate a rig from board images, videos or RealSense recordings (exactly one input).

    Intrinsics come from ``fix_intrinsics`` (a rig or rig file) when given, else from a
    recording's factory calibration, else from the board. With ``report_dir`` the report is
    written there and detections are cached in ``report_dir/cache`` (or ``cache_dir``).
    """
    spec = board if isinstance(board, BoardSpec) else load_board(board)
    given = [x for x in (images, videos, recordings) if x is not None]
    if len(given) != 1:
        raise CalibrationError("give exactly one input: images (ROOT/<camera>/<frame>.png), videos or recordings")
    if cache_dir is None and report_dir is not None:
        cache_dir = Path(report_dir) / "cache"
    min_corners = config.intrinsics.min_corners
    factory: dict = {}
    if images is not None:
        files = find_image_folders(images)
        detections, sizes = detect_folders(files, spec, cache_dir, min_corners)
        where = str(images)
    elif videos is not None:
        detections, sizes, _ = detect_in_stream(videos, spec, "videos", config.video_step, min_corners)
        where = str(videos)
    else:
        detections, sizes, factory = detect_in_stream(recordings, spec, "recordings", config.video_step, min_corners)
        where = str(recordings)
    fixed, source = None, "fixed"
    if fix_intrinsics is not None:
        if not isinstance(fix_intrinsics, Rig):
            from calibration.rig_io import load_rig

            fix_intrinsics = load_rig(fix_intrinsics)
        fixed = _fixed_intrinsics(fix_intrinsics, list(detections))
    elif factory:
        fixed, source = factory, "factory"
    result = calibrate_from_detections(detections, sizes, spec, intrinsics_only=intrinsics_only,
                                       fixed_intrinsics=fixed, intrinsics_source=source, config=config, where=where)
    if report_dir is not None:
        from calibration.report import write_report

        write_report(report_dir, result.rig, result.report)
    return result
