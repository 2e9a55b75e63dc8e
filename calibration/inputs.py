"""Board detections from what the user has: image folders, videos or RealSense recordings.

Each source gives ``({camera: {frame: Detection}}, {camera: (w, h)})``: the board found in every
image of every camera, frames named so that one name is one instant across cameras. Videos and
recordings are read through :class:`capture.stream.FrameSetStream` (the project's one reader:
frames of different cameras are matched by their timestamps, every ``step``-th frame set used);
recordings also give each camera's factory colour intrinsics.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from calibration.board import BoardSpec
from calibration.detect import BoardDetector, detect_image_file
from calibration.errors import CalibrationError
from capture.media_files import IMAGE_SUFFIXES, RECORDING_SUFFIXES, VIDEO_SUFFIXES, is_image, is_recording, is_video

log = logging.getLogger(__name__)


def find_image_folders(root: str | Path) -> dict:
    """{camera: {frame: Path}} from ``ROOT/<camera>/<frame>.<ext>`` (or ROOT/<frame>.<ext> for one camera)."""
    root = Path(root)
    if not root.is_dir():
        raise CalibrationError(f"{root}: image folder not found (expected ROOT/<camera>/<frame>.png|jpg)")

    def images_in(folder: Path) -> dict:
        return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image(p)}

    cameras = {d.name: images_in(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    cameras = {k: v for k, v in cameras.items() if v}
    if not cameras:
        direct = images_in(root)
        if direct:
            cameras = {root.name: direct}
    if not cameras:
        raise CalibrationError(
            f"{root}: no images found; expected one folder per camera holding the board images, "
            f"ROOT/<camera>/<frame>.png|jpg (extensions: {', '.join(IMAGE_SUFFIXES)})"
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


def _files_of(source: str | Path, kind: str) -> list[Path]:
    folder = Path(source)
    wanted = is_video if kind == "videos" else is_recording
    if not folder.exists():
        raise CalibrationError(f"{folder}: no such file or folder")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and wanted(p)) if folder.is_dir() else [folder]
    if not paths:
        suffixes = VIDEO_SUFFIXES if kind == "videos" else RECORDING_SUFFIXES
        raise CalibrationError(f"{folder}: no {kind} found (extensions: {', '.join(suffixes)})")
    return paths


def detect_in_stream(source: str | Path, spec: BoardSpec, kind: str = "videos", step: int = 10,
                     min_corners: int = 6) -> tuple[dict, dict, dict]:
    """Board detections in every ``step``-th frame set of the videos or RealSense recordings of a
    folder (one camera per file; cameras named by serial for recordings, by file stem for videos),
    frames named by their frame-set index; plus each recording's factory colour intrinsics
    {camera: (K, dist)} (empty for videos)."""
    from capture.stream import FrameSetStream

    paths = _files_of(source, kind)
    stream = FrameSetStream(paths, depth=False, step=step)
    names = list(stream.cameras)
    factory = _factory_intrinsics(stream.infos, names) if kind == "recordings" else {}
    detector = BoardDetector(spec, min_corners=min_corners)
    detections: dict = {name: {} for name in names}
    with stream:
        for fs in stream:
            for v, name in enumerate(names):
                if fs.present[v] and fs.color[v] is not None:
                    detections[name][f"{fs.index:06d}"] = detector.detect(_rgb_to_grey(fs.color[v]))
    sizes = {}
    for path, name in zip(paths, names):
        if not detections[name]:
            raise CalibrationError(f"{path}: no frame could be read")
        sizes[name] = _one_size(name, {f: d.image_size for f, d in detections[name].items()})
    return detections, sizes, factory


def _factory_intrinsics(infos, names: list[str]) -> dict:
    """{camera: (K, dist)} of the recordings' colour streams in OpenCV's model."""
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
    return factory


def _rgb_to_grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
