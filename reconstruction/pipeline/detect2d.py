"""The 2D stage: person boxes, the 2D model on every view, and its cache.

Shapes: ``V`` views, ``J`` joints, ``T`` frame sets. The model runs frame set by frame set
(:class:`Detector2D`, a :class:`~reconstruction.models2d.tracking.BoxTracker` over the views), so
colour images never pile up in memory; its output is cached per view and chunk in
``OUT/cache/2d_<key>_<camera>_<chunk>.npz`` (the key hashes the model and its settings), which a
rerun reads instead of running the model again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.camera import Rig
from capture.atomic import atomic_path
from capture.config import to_plain
from capture.frameset import FrameSet
from capture.names import safe_file_name
from reconstruction.models2d.boxes import BoxConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Model2DConfig:
    """The 2D model (section ``model2d``).

    Attributes:
        name: a registered model name (``mocap models list``; ``--model`` overrides it).
        weights_dir: folder with the weights ("" = ``$MOCAP_WEIGHTS``, then the user cache).
        device: ``cpu`` or ``cuda``.
        batch_size: crops per forward pass.
        flip_test: average with the horizontally mirrored crop (slower, a little more precise).
        detector: person boxes where tracking has none (first frame, person lost): ``multipose``
            (MoveNet MultiPose on the whole frame; the whole frame where its weights are absent)
            or ``full`` (the whole frame).
    """

    name: str = "movenet-thunder"
    weights_dir: str = ""
    device: str = "cpu"
    batch_size: int = 16
    flip_test: bool = False
    detector: str = "multipose"

    def __post_init__(self):
        if self.detector not in ("multipose", "full"):
            raise ValueError(f"detector must be multipose or full, got {self.detector!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def load_model2d(name: str, cfg: Model2DConfig):
    """A registered 2D model by name; an unknown name is a ModelNotFoundError listing the known ones."""
    from reconstruction.models2d import registry

    return registry.load_model(name, device=cfg.device, weights_dir=cfg.weights_dir or None,
                               batch_size=cfg.batch_size)


def check_model_name(name: str) -> None:
    """A message listing the known models when ``name`` is not one of them."""
    from reconstruction.models2d import registry

    registry.get_spec(name)


class Detector2D:
    """The 2D model with its person detector and box tracker, one frame set at a time.

    The boxes follow the person from frame set to frame set; at the start of every chunk
    (:meth:`start_chunk`, every ``chunk_frames`` sets) the person is found afresh: by the person
    detector where there is one, else from the previous set's joints, then refined by the model's
    own joints (a person the tracker lost is found again within a chunk).
    """

    def __init__(self, model, model_cfg: Model2DConfig, box_cfg: BoxConfig, rig: Rig):
        from reconstruction.models2d.tracking import BoxTracker

        detector = None
        if model_cfg.detector == "multipose":
            from reconstruction.models2d import registry

            person = registry.load_person_detector(model_cfg.weights_dir or None, device=model_cfg.device)
            if person is None:
                log.warning("MoveNet MultiPose weights not found: first boxes are the whole frame")
            else:
                detector = person.detect
        self.model = model
        self.rig = rig
        self.box_cfg = box_cfg
        self.tracker = BoxTracker(model, detector=detector, box_cfg=box_cfg, flip_test=model_cfg.flip_test)
        self.last: np.ndarray | None = None  # (V, J, 3) keypoints of the last frame set

    def start_chunk(self, previous: np.ndarray | None) -> None:
        """The next frame set starts a chunk: its boxes come afresh (see the class docstring);
        ``previous`` (V, J, 3) is the 2D of the set before it, None at the start."""
        from reconstruction.models2d.boxes import boxes_from_keypoints

        self.tracker.restart(None)
        self.tracker.init_boxes = boxes_from_keypoints(previous, self.box_cfg) if previous is not None else None

    def run(self, frames: FrameSet) -> np.ndarray:
        """Keypoints (V, J, 3) of one frame set; NaN for views without a colour image."""
        kp = self.tracker.step(frames.color)
        present = np.asarray(frames.present, dtype=bool) & np.array([c is not None for c in frames.color])
        kp[~present] = np.nan
        self.last = kp
        return kp


# --- the cache -----------------------------------------------------------------------------------

def cache_key(model_name: str, model_cfg: Model2DConfig, box_cfg: BoxConfig, chunk_frames: int) -> str:
    """A short hash of everything the cached 2D depends on."""
    text = json.dumps({"model": model_name, "cfg": to_plain(model_cfg), "boxes": to_plain(box_cfg),
                       "chunk": chunk_frames}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cache_paths(cache_dir: Path, key: str, cameras: Sequence[str], chunk: int) -> list[Path]:
    """One NPZ per view of chunk ``chunk``."""
    return [cache_dir / f"2d_{key}_{safe_file_name(c)}_{chunk:05d}.npz" for c in cameras]


def read_cache(paths: list[Path], num_frames: int) -> np.ndarray | None:
    """(T, V, J, 3) keypoints of a chunk from its cache files; None when any is missing, unreadable
    or of another length (the chunk is then recomputed)."""
    if not all(p.is_file() for p in paths):
        return None
    try:
        views = []
        for p in paths:
            with np.load(p, allow_pickle=False) as data:
                views.append(data["keypoints"])
    except Exception as exc:  # a damaged cache file (truncated, empty, not a zip) is recomputed
        log.warning("%s: unreadable 2D cache (%s); recomputing that chunk", paths[0].parent, exc)
        return None
    if any(v.ndim != 3 or v.shape[0] != num_frames for v in views) or len({v.shape for v in views}) != 1:
        return None
    return np.stack(views, axis=1)


def write_cache(paths: list[Path], kp: np.ndarray) -> None:
    """Write a chunk's (T, V, J, 3) keypoints, one file per view (each atomically)."""
    for v, path in enumerate(paths):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, keypoints=kp[:, v])


# --- `mocap detect2d`: the model on files, without a rig -----------------------------------------------

@dataclass(frozen=True)
class DetectRequest:
    """What ``mocap detect2d`` was asked for: one video or recording per view."""

    sources: tuple[str, ...]
    output: str
    model: str = "movenet-thunder"
    cameras: tuple[str, ...] | None = None
    weights_dir: str | None = None
    device: str = "cpu"
    batch_size: int = 16
    flip_test: bool = False
    max_frames: int | None = None
    fps: float | None = None


def detect_files(req: DetectRequest, progress: bool = True) -> tuple[Path, tuple[int, int]]:
    """Run the 2D model on every view of ``req.sources`` (synchronized into frame sets by
    :class:`capture.stream.FrameSetStream`, videos and recordings alike) and write our 2D NPZ.
    Returns its path and (frames, views)."""
    from tqdm import tqdm

    from capture.errors import ConfigError, FileFormatError
    from capture.stream import FrameSetStream
    from reconstruction.formats.keypoints2d import Keypoints2D, write_keypoints2d
    from reconstruction.models2d import registry
    from reconstruction.models2d.tracking import detect_sequence

    if req.cameras is not None and len(req.cameras) != len(req.sources):
        raise ConfigError(f"--cameras names {len(req.cameras)} views but {len(req.sources)} files are given")
    if req.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {req.batch_size}")
    if req.max_frames is not None and req.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {req.max_frames}")
    stream = FrameSetStream(list(req.sources), names=list(req.cameras) if req.cameras else None, depth=False,
                            video_fps=[req.fps] * len(req.sources) if req.fps else None)
    fps = req.fps or stream.infos[0].fps or 30.0
    total = len(stream) if req.max_frames is None else min(len(stream), req.max_frames)
    model = registry.load_model(req.model, device=req.device, weights_dir=req.weights_dir, batch_size=req.batch_size)
    detector = registry.load_person_detector(req.weights_dir, device=req.device)

    def frames():
        with stream:
            for n, fs in enumerate(stream):
                if n >= total:
                    return
                yield [c if present else None for c, present in zip(fs.color, fs.present)]

    with tqdm(total=total, unit="frame", desc=f"{req.model} x {len(stream.cameras)} views", disable=not progress) as bar:
        kp = detect_sequence(model, frames(), detector=detector.detect if detector else None, flip_test=req.flip_test,
                             progress=bar.update)
    if len(kp) == 0:
        raise FileFormatError(f"{req.sources[0]}: no frame could be read")
    out = write_keypoints2d(req.output, Keypoints2D(kp, tuple(stream.cameras), model.joint_names, fps=fps))
    return out, kp.shape[:2]
