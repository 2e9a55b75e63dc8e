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
from calibration.detect import BoardDetector, detect_image_file
from calibration.errors import CalibrationError
from calibration.extrinsics import (estimate_board_poses, initial_board_poses, initial_camera_poses,
                                    world_from_board)
from calibration.intrinsics import IntrinsicsConfig, calibrate_intrinsics
from calibration.report import CalibrationReport, CameraReport

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


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


# ---------------------------------------------------------------------------------------- inputs

def find_image_folders(root: str | Path) -> dict:
    """{camera: {frame: Path}} from ``ROOT/<camera>/<frame>.<ext>`` (or ROOT/<frame>.<ext> for one camera)."""
    root = Path(root)
    if not root.is_dir():
        raise CalibrationError(f"{root}: image folder not found (expected ROOT/<camera>/<frame>.png|jpg)")

    def images_in(folder: Path) -> dict:
        return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}

    cameras = {d.name: images_in(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    cameras = {k: v for k, v in cameras.items() if v}
    if not cameras:
        direct = images_in(root)
        if direct:
            cameras = {root.name: direct}
    if not cameras:
        raise CalibrationError(
            f"{root}: no images found; expected one folder per camera holding the board images, "
            f"ROOT/<camera>/<frame>.png|jpg (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return cameras


def detect_folders(files: dict, spec: BoardSpec, cache_dir: str | Path | None = None,
                   min_corners: int = 6) -> tuple[dict, dict]:
    """Detect the board in every image: ({camera: {frame: Detection}}, {camera: (w, h)}).

    Raises CalibrationError when one camera's images differ in size.
    """
    detector = BoardDetector(spec, min_corners=min_corners)
    detections, sizes = {}, {}
    for cam, frames in files.items():
        detections[cam] = {}
        for frame, path in frames.items():
            detections[cam][frame] = detect_image_file(path, spec, cache_dir, detector)
        sizes[cam] = _one_size(cam, {frames[f]: d.image_size for f, d in detections[cam].items()})
    return detections, sizes


def _one_size(cam: str, sizes: dict) -> tuple[int, int]:
    distinct = list(dict.fromkeys(sizes.values()))  # in file order
    if len(distinct) > 1:
        examples = []
        for size in distinct:
            name = next(Path(str(p)).name for p, s in sizes.items() if s == size)
            examples.append(f"{name} is {size[0]}x{size[1]}")
        raise CalibrationError(
            f"camera {cam!r}: images have different sizes ({'; '.join(examples)}); all images of one camera "
            "must come from the same resolution setting: move the others to their own camera folder"
        )
    return distinct[0]


def detect_videos(videos: str | Path, spec: BoardSpec, step: int = 10, min_corners: int = 6) -> tuple[dict, dict]:
    """Detect the board every ``step`` frames of each video in a folder (camera = file stem)."""
    import cv2

    folder = Path(videos)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS) if folder.is_dir() else [folder]
    if not paths:
        raise CalibrationError(f"{folder}: no videos found (extensions: {', '.join(VIDEO_EXTENSIONS)})")
    detector = BoardDetector(spec, min_corners=min_corners)
    detections, sizes = {}, {}
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise CalibrationError(f"{path}: cannot open the video (OpenCV could not decode it)")
        detections[path.stem] = {}
        index = 0
        try:
            while True:
                ok = capture.grab()
                if not ok:
                    break
                if index % step == 0:
                    ok, image = capture.retrieve()
                    if ok:
                        detections[path.stem][f"{index:06d}"] = detector.detect(image)
                index += 1
        finally:
            capture.release()
        if not detections[path.stem]:
            raise CalibrationError(f"{path}: no frame could be read")
        sizes[path.stem] = _one_size(path.stem, {f: d.image_size for f, d in detections[path.stem].items()})
    return detections, sizes


def detect_recordings(recordings: str | Path, spec: BoardSpec, step: int = 10, min_corners: int = 6) -> tuple[dict, dict, dict]:
    """Board detections in RealSense recordings (a folder of .bag/.db3 files, one camera each, or
    one file), plus each camera's factory colour intrinsics {camera: (K, dist)}.

    Frames of different cameras are matched by timestamp (:func:`capture.sync.synchronize`, the
    recordings' shared global clock); every ``step``-th frame set is used, named by its index.
    Cameras are named by serial number.
    """
    from capture.recording import RECORDING_SUFFIXES, index_recording, read_frames, read_recording_info
    from capture.sync import synchronize

    folder = Path(recordings)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in RECORDING_SUFFIXES) if folder.is_dir() else [folder]
    if not paths:
        raise CalibrationError(f"{folder}: no RealSense recordings found ({', '.join(RECORDING_SUFFIXES)})")
    infos = [read_recording_info(p) for p in paths]
    names = [info.serial or p.stem for info, p in zip(infos, paths)]
    if len(set(names)) != len(names):
        names = [p.stem for p in paths]
    factory = {}
    for name, info in zip(names, infos):
        intr = info.color_intrinsics
        if intr is None:
            raise CalibrationError(f"{info.path}: the recording has no color stream to detect the board in")
        # OpenCV's model is Brown-Conrady; other SDK models are usable only without distortion.
        if intr.model in ("brown_conrady", "none") or not any(intr.coeffs):
            factory[name] = (intr.K, np.asarray(intr.coeffs, dtype=float))
        else:
            log.warning("%s: factory distortion model %s is not OpenCV's; intrinsics come from the board",
                        info.path, intr.model)
    stamps = [index_recording(p)["color"].timestamps_ms for p in paths]
    period = 1000.0 / max(float(infos[0].fps), 1e-3)
    sync = synchronize(stamps, tolerance_ms=period / 2)
    detector = BoardDetector(spec, min_corners=min_corners)
    detections, sizes = {}, {}
    for v, (path, name) in enumerate(zip(paths, names)):
        wanted = {int(sync.index[s, v]): f"{s:06d}" for s in range(0, sync.num_sets, step) if sync.index[s, v] >= 0}
        detections[name] = {}
        for frame in read_frames(path, stream="color"):
            if frame.position in wanted and frame.data is not None:
                detections[name][wanted[frame.position]] = detector.detect(_rgb_to_grey(frame.data))
        if not detections[name]:
            raise CalibrationError(f"{path}: no color frame could be read")
        sizes[name] = _one_size(name, {f: d.image_size for f, d in detections[name].items()})
    return detections, sizes, factory


def _rgb_to_grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


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


def _rms(err: np.ndarray) -> float:
    err = err[np.isfinite(err)]
    return float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan")


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
    """
    names = list(detections)
    _check_found(detections, spec, where)
    fixed_intrinsics = fixed_intrinsics or {}
    rejected: list[tuple[str, str, str]] = []
    intr: dict = {}
    intr_rms: dict = {}
    reports_used: dict = {}
    for cam in names:
        if cam in fixed_intrinsics:
            intr[cam] = tuple(np.asarray(a, dtype=float) for a in fixed_intrinsics[cam])
            for frame, det in detections[cam].items():
                if not det.found:
                    rejected.append((cam, frame, "no board found"))
            continue
        result = calibrate_intrinsics(detections[cam], spec, image_sizes[cam], config.intrinsics, camera=cam)
        intr[cam] = (result.K, result.dist)
        intr_rms[cam] = result.rms
        reports_used[cam] = result
        rejected += [(cam, frame, reason) for frame, reason in result.rejected]
    rejected_set = {(c, f) for c, f, _ in rejected}

    def camera_report(cam, used, rms):
        dets = detections[cam]
        return CameraReport(cam, tuple(image_sizes[cam]), len(dets), sum(d.found for d in dets.values()), used, rms,
                            "board" if cam in reports_used else intrinsics_source, intr_rms.get(cam, float("nan")))

    if intrinsics_only:
        cameras, reports, cam_frame = [], [], {}
        for cam in names:
            K, dist = intr[cam]
            cameras.append(Camera(cam, image_sizes[cam], K, dist))
            res = reports_used.get(cam)
            cam_frame[cam] = dict(res.image_rms) if res else {}
            reports.append(camera_report(cam, len(res.used) if res else 0, res.rms if res else float("nan")))
        used_dets = {c: {f: d for f, d in detections[c].items() if f in cam_frame[c]} for c in names}
        # Overall RMS over corners: each image's mean square error weighted by its corner count.
        num = sum(res.image_rms[f] ** 2 * len(detections[c][f]) for c, res in reports_used.items() for f in res.used)
        den = sum(len(detections[c][f]) for c, res in reports_used.items() for f in res.used)
        report = CalibrationReport(spec.describe(), tuple(reports), float(np.sqrt(num / den)) if den else float("nan"),
                                   camera_frame_rms=cam_frame, rejected=tuple(rejected), intrinsics_only=True,
                                   world="none", detections=used_dets)
        return CalibrationResult(Rig(tuple(cameras)), report)

    # --- extrinsics: PnP per (camera, frame), pose graph, bundle adjustment
    if spec.type == "checkerboard" and len(names) > 1:
        log.warning("a checkerboard has no orientation: two cameras may number its corners differently; "
                    "use a ChArUco board for extrinsics")
    usable = {c: {f: d for f, d in detections[c].items() if d.found and (c, f) not in rejected_set} for c in names}
    board_poses = estimate_board_poses(intr, usable, spec, config.max_pnp_rms)
    for cam in names:
        for frame in usable[cam]:
            if frame not in board_poses[cam]:
                rejected.append((cam, frame, f"board pose (PnP) failed or RMS > max_pnp_rms {config.max_pnp_rms:g} px"))
    reference = config.reference_camera or names[0]
    if reference not in names:
        raise CalibrationError(f"reference camera {reference!r} is not among the cameras ({', '.join(names)})")
    cam_poses, links = initial_camera_poses(names, board_poses, reference)
    frame_poses = initial_board_poses(cam_poses, board_poses)
    frames = sorted(frame_poses)
    frame_index = {f: i for i, f in enumerate(frames)}
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
    obs = Observations(np.concatenate(ci), np.concatenate(fi), np.concatenate(pts), np.concatenate(uv))
    bundle_cfg = config.bundle
    if fixed_intrinsics and bundle_cfg.refine_intrinsics:
        bundle_cfg = replace(bundle_cfg, refine_intrinsics=False)
    ba = bundle_adjust(
        np.stack([cam_poses[c][0] for c in names]), np.stack([cam_poses[c][1] for c in names]),
        np.stack([intr[c][0] for c in names]), [intr[c][1] for c in names],
        np.stack([frame_poses[f][0] for f in frames]), np.stack([frame_poses[f][1] for f in frames]),
        obs, reference=names.index(reference), config=bundle_cfg, hold=_held_intrinsics(config.intrinsics),
    )
    cameras = []
    for v, cam in enumerate(names):
        dist = ba.dist[v] if bundle_cfg.refine_intrinsics or cam not in fixed_intrinsics else intr[cam][1]
        K = ba.K[v] if bundle_cfg.refine_intrinsics else intr[cam][0]
        cameras.append(Camera(cam, image_sizes[cam], K, dist, ba.R[v], ba.t[v]))
    rig = Rig(tuple(cameras))
    board_R, board_t = ba.R_board, ba.t_board
    world = f"camera {reference}"
    if config.world == "board":
        counts = {f: sum(f in board_poses[c] for c in names) for f in frames}
        wf = config.world_frame or max(frames, key=lambda f: (counts[f], -frames.index(f)))
        if wf not in frame_index:
            raise CalibrationError(f"world_frame {wf!r}: no board pose in that frame (frames with one: {', '.join(frames[:10])} ...)")
        R_new, t_new = world_from_board(board_R[frame_index[wf]], board_t[frame_index[wf]], config.board_on_floor)
        rig = rig.transformed(R_new, t_new)
        board_R = R_new @ board_R
        board_t = board_t @ R_new.T + t_new
        world = f"board in frame {wf}" + (" (on the floor, Z up)" if config.board_on_floor else "")
    # Per camera / per frame RMS from the residuals.
    err2 = np.sum(ba.residuals ** 2, axis=1)
    cam_frame: dict = {c: {} for c in names}
    start = 0
    for cam, frame, n in rows:
        cam_frame[cam][frame] = float(np.sqrt(np.nanmean(err2[start:start + n]))) if np.isfinite(err2[start:start + n]).any() else float("nan")
        start += n
    frame_rms = {}
    for f in frames:
        sel = obs.frame == frame_index[f]
        frame_rms[f] = float(np.sqrt(np.nanmean(err2[sel])))
    reports = []
    for v, cam in enumerate(names):
        sel = obs.camera == v
        reports.append(camera_report(cam, len(board_poses[cam]), float(np.sqrt(np.nanmean(err2[sel]))) if sel.any() else float("nan")))
    centre_board = spec.object_points().mean(axis=0)
    board_positions = np.einsum("fij,j->fi", board_R, centre_board) + board_t
    report = CalibrationReport(
        spec.describe(), tuple(reports), ba.rms, ba.initial_rms, frame_rms, cam_frame, tuple(rejected),
        tuple((l.a, l.b, l.inliers) for l in links), False, world,
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
        detections, sizes = detect_videos(videos, spec, config.video_step, min_corners)
        where = str(videos)
    else:
        detections, sizes, factory = detect_recordings(recordings, spec, config.video_step, min_corners)
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
