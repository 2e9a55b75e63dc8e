"""Simulate a recording session: a rig of RealSense-like RGB-D cameras filming one moving person.

:func:`simulate_session` writes, into one folder,

- one genuine RealSense recording per camera (``<serial>.db3``, through ``rs.software_device`` +
  ``rs.recorder``): depth z16 aligned to an rgb8 color stream, each camera with its own clock offset
  (ms) and timestamp jitter, optionally with dropped frames (not written; frame numbers keep
  counting, so a drop shows as a gap);
- ``rig.yaml`` (ours) and ``rig.toml`` (Pose2Sim / anipose), camera names = the recordings' serials;
- ``ground_truth.npz``: ``xyz`` (T, J, 3) world metres, ``keypoints2d`` (T, V, J, 3) true 2D with score
  1 where visible and 0 where occluded (from the depth buffer), ``joint_names`` (J,), ``cameras`` (V,),
  ``timestamps_ms`` (T, V) as written (NaN where dropped), ``clock_offsets_ms`` (V,),
  ``frame_numbers`` (T,), ``joint_radius_m`` (J,), ``fps``, ``depth_scale``;
- ``simulation.yaml``: the resolved configuration;
- with ``board``: ``board/`` holding the same rig's recordings of a ChArUco board moving through the
  volume, ``board.yaml`` (its spec) and ``board_truth.npz`` (poses, true corner pixels, visibility).

Timing: frame ``k`` happens at true time ``k / fps`` s; camera ``v`` stamps it
``1000 k / fps + clock_offsets_ms[v] + jitter`` (jitter Gaussian, clipped to two sigmas), so
``timestamps_ms - clock_offsets_ms`` re-aligns the cameras to within the jitter.

World: metres, Z up, floor at Z = 0. Frames are streamed to the writers one at a time (bounded memory).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from calibration.camera import Camera, Rig
from capture.atomic import atomic_path, atomic_write_text
from capture.errors import ConfigError
from capture.intrinsics import StreamIntrinsics
from capture.simulated_cameras import SIMULATED_SERIAL_BASE
from reconstruction.simulation.truth import write_ground_truth

log = logging.getLogger(__name__)

# The board of the simulated calibration sequence (a 70 x 50 cm print): the 4 cm squares of
# configs/boards/charuco_7x5.yaml are 8 pixels wide at 3 m, too small to detect reliably.
SIMULATION_BOARD = {"type": "charuco", "squares": [7, 5], "square_length": 0.10, "marker_length": 0.075,
                    "dictionary": "DICT_5X5_100"}


@dataclass(frozen=True)
class SimulationConfig:
    """Everything :func:`simulate_session` needs; these defaults are the simulator's only defaults.

    Attributes:
        cameras: number of cameras on the ring (ignored with ``rig_file``).
        seconds: duration; ``round(seconds * fps)`` frames.
        fps: frame rate of every stream.
        preset: intrinsics preset, ``D435`` or ``D455`` (see reconstruction.simulation.rigs.REALSENSE_PRESETS).
        resolution: (width, height); default the preset's (640x480). Intrinsics scale with it.
        ring_radius_m, ring_height_m: the ring of cameras, all looking at (0, 0, 1).
        rig_file: a rig file (any format calibration.rig_io reads) instead of the ring.
        motion: ``procedural`` or ``bvh``.
        bvh_path, bvh_unit_m, bvh_up, bvh_start_s: the BVH clip (motion ``bvh``), its unit in metres,
            its up axis and where to start in it.
        skeleton: the skeleton of the ground truth (built-in name or YAML path).
        height_m: the person's height (procedural motion; BVH: None keeps the performer's).
        depth_noise: scale of the RealSense depth noise model (0: noiseless depth).
        dropout_rate: fraction of depth pixels randomly invalid (0) per frame.
        max_clock_offset_ms: per-camera clock offsets are drawn uniformly in [0, this).
        clock_offsets_ms: explicit offsets per camera instead (one per camera).
        jitter_ms: standard deviation of the timestamp jitter (clipped to two sigmas).
        drop_rate: probability that a camera drops a frame (neither depth nor color written).
        seed: seeds every random choice (motion, offsets, jitter, drops, noise).
        board: also write ``board/``: the same rig filming a ChArUco board moving through the volume.
        board_file: the board's YAML (calibration.board); default :data:`SIMULATION_BOARD`, a 7x5
            ChArUco of 10 cm squares, large enough to be read from 3 m.
        board_seconds, board_fps: duration and frame rate of the board sequence (its own recordings;
            a low rate keeps it cheap). The board turns to face each camera, then the midpoint of it
            and the next camera, in turn, one key pose every ``BOARD_KEY_S`` s (see :func:`reconstruction.simulation.boards.board_tour`).
    """

    cameras: int = 4
    seconds: float = 3.0
    fps: int = 30
    preset: str = "D435"
    resolution: tuple[int, int] | None = None
    ring_radius_m: float = 3.0
    ring_height_m: float = 1.5
    rig_file: str | None = None
    motion: Literal["procedural", "bvh"] = "procedural"
    bvh_path: str | None = None
    bvh_unit_m: float = 0.056444
    bvh_up: Literal["y", "z"] = "y"
    bvh_start_s: float = 0.0
    skeleton: str = "coco17"
    height_m: float | None = None
    depth_noise: float = 1.0
    dropout_rate: float = 0.002
    max_clock_offset_ms: float = 40.0
    clock_offsets_ms: tuple[float, ...] | None = None
    jitter_ms: float = 0.2
    drop_rate: float = 0.0
    seed: int = 0
    board: bool = False
    board_file: str | None = None
    board_seconds: float = 8.0
    board_fps: int = 5

    def __post_init__(self):
        if self.cameras < 1:
            raise ValueError(f"cameras must be >= 1, got {self.cameras}")
        if self.fps <= 0 or self.seconds <= 0:
            raise ValueError(f"fps and seconds must be positive, got fps={self.fps}, seconds={self.seconds}")
        if self.motion == "bvh" and not self.bvh_path:
            raise ValueError("motion 'bvh' needs bvh_path (a .bvh file)")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if self.jitter_ms < 0 or self.max_clock_offset_ms < 0:
            raise ValueError("jitter_ms and max_clock_offset_ms must be >= 0")
        if self.board_fps <= 0 or self.board_seconds <= 0:
            raise ValueError(f"board_fps and board_seconds must be positive, got board_fps={self.board_fps}, "
                             f"board_seconds={self.board_seconds}")
        if self.preset.split("_")[0].upper() not in ("D435", "D455"):
            raise ValueError(f"preset must be D435 or D455, got {self.preset!r}")

    @property
    def num_frames(self) -> int:
        return max(int(round(self.seconds * self.fps)), 1)

    @property
    def num_board_frames(self) -> int:
        return max(int(round(self.board_seconds * self.board_fps)), 1)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What :func:`simulate_session` wrote.

    Attributes:
        out_dir: the folder.
        recordings: (V,) one recording per camera, in rig order.
        rig: the rig (camera names = serials).
        rig_yaml, rig_toml, ground_truth: file paths.
        timestamps_ms: (T, V) timestamps written, NaN where dropped.
        clock_offsets_ms: (V,).
        seconds: wall time of the simulation.
    """

    out_dir: Path
    recordings: tuple[Path, ...]
    rig: Rig
    rig_yaml: Path
    rig_toml: Path
    ground_truth: Path
    timestamps_ms: np.ndarray
    clock_offsets_ms: np.ndarray
    seconds: float

    @property
    def dropped(self) -> np.ndarray:
        """(T, V) True where a camera dropped the frame."""
        return np.isnan(self.timestamps_ms)


def build_rig(cfg: SimulationConfig) -> Rig:
    """The simulated rig: a ring of ``cfg.cameras`` cameras, or ``cfg.rig_file``; names = serials."""
    from reconstruction.simulation.rigs import REALSENSE_PRESETS, ring_rig

    if cfg.rig_file:
        from calibration.rig_io import load_rig

        source = load_rig(cfg.rig_file)
    else:
        preset = cfg.preset.upper()
        if cfg.resolution is not None and f"{preset}_{cfg.resolution[0]}" in REALSENSE_PRESETS:
            preset = f"{preset}_{cfg.resolution[0]}"
        source = ring_rig(cfg.cameras, cfg.ring_radius_m, cfg.ring_height_m, preset=preset)
        if cfg.resolution is not None and tuple(cfg.resolution) != source.cameras[0].image_size:
            width, height = (int(v) for v in cfg.resolution)
            cameras = []
            for cam in source:
                sx, sy = width / cam.width, height / cam.height
                K = cam.K.copy()
                K[0] *= sx
                K[1] *= sy
                cameras.append(replace(cam, image_size=(width, height), K=K))
            source = Rig(tuple(cameras))
    cameras = []
    for v, cam in enumerate(source):
        serial = cam.serial or str(SIMULATED_SERIAL_BASE + v)
        if np.any(cam.dist[5:]):
            raise ConfigError(
                f"{cfg.rig_file}: camera {cam.name!r} has rational distortion (k4-k6), which RealSense "
                "intrinsics cannot store; use a rig with at most 5 distortion coefficients"
            )
        cameras.append(Camera(serial, cam.image_size, cam.K, cam.dist[:5], cam.R, cam.t, serial=serial))
    try:
        return Rig(tuple(cameras))
    except ValueError as exc:
        raise ConfigError(f"{cfg.rig_file or 'simulated rig'}: {exc} (serials must be distinct)") from None


def simulated_motion(cfg: SimulationConfig, skeleton, rng: np.random.Generator) -> np.ndarray:
    """Ground-truth joints (T, J, 3), world metres, Z up."""
    if cfg.motion == "bvh":
        from reconstruction.simulation.bvh import retarget_bvh
        from reconstruction.formats.bvh import load_bvh

        bvh = load_bvh(cfg.bvh_path)
        return retarget_bvh(bvh, skeleton, cfg.fps, cfg.num_frames, unit_m=cfg.bvh_unit_m, up=cfg.bvh_up,
                            height_m=cfg.height_m, start_s=cfg.bvh_start_s)
    from reconstruction.simulation.motion import procedural_motion

    return procedural_motion(skeleton, cfg.num_frames, cfg.fps, rng, height_m=cfg.height_m or 1.75)


def simulate_session(
    out_dir: str | os.PathLike,
    cfg: SimulationConfig = SimulationConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Simulate and write a session into ``out_dir`` (created); ``progress(done, total)`` after each frame."""
    from calibration.rig_io import save_rig
    from capture.config import to_plain
    from reconstruction.simulation.render import CameraRenderer, RenderSettings, body_model
    from reconstruction.skeleton import load_skeleton

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skeleton = load_skeleton(cfg.skeleton)
    rig = build_rig(cfg)
    V, T, J = len(rig), cfg.num_frames, skeleton.num_joints
    # The board has its own stream: its motion does not change with the person's settings.
    motion_rng, timing_rng, render_rng, board_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4))

    xyz = simulated_motion(cfg, skeleton, motion_rng)
    if cfg.clock_offsets_ms is not None:
        if len(cfg.clock_offsets_ms) != V:
            raise ConfigError(f"clock_offsets_ms has {len(cfg.clock_offsets_ms)} values for {V} cameras")
        offsets = np.asarray(cfg.clock_offsets_ms, dtype=np.float64)
    else:
        offsets = timing_rng.uniform(0.0, cfg.max_clock_offset_ms, V)
    timestamps, dropped = _timestamps(T, V, cfg.fps, offsets, cfg.jitter_ms, cfg.drop_rate, timing_rng)
    frame_numbers = np.arange(1, T + 1)

    settings = RenderSettings(preset=cfg.preset, noise=cfg.depth_noise, dropout_rate=cfg.dropout_rate)
    body = body_model(skeleton)
    renderers = [CameraRenderer(cam, body, settings) for cam in rig]
    keypoints = np.full((T, V, J, 3), np.nan)
    with ExitStack() as stack:
        writers = _recorders(stack, out_dir, rig, cfg.fps, settings.depth_scale, cfg.preset)
        for k in range(T):
            for v, (renderer, writer) in enumerate(zip(renderers, writers)):
                frame = renderer.render(xyz[k], render_rng)
                keypoints[k, v] = frame.keypoints2d
                if not dropped[k, v]:
                    writer.write(float(timestamps[k, v]), int(frame_numbers[k]), frame.color, frame.depth)
            if progress is not None:
                progress(k + 1, T * (2 if cfg.board else 1))
    recordings = tuple(w.path for w in writers)

    if cfg.board:
        # Reported on the same scale as before: the board sequence counts as T more frames.
        board_progress = None if progress is None else (
            lambda done, total: progress(T + int(round(done * T / total)), 2 * T))
        _simulate_board(out_dir / "board", cfg, rig, renderers, offsets, board_rng, render_rng, board_progress)
    rig_yaml = save_rig(rig, out_dir / "rig.yaml", "yaml", world="simulated: metres, Z up, floor at Z = 0")
    rig_toml = save_rig(rig, out_dir / "rig.toml", "toml")
    truth = write_ground_truth(
        out_dir / "ground_truth.npz", xyz=xyz, keypoints2d=keypoints, joint_names=skeleton.joint_names,
        cameras=rig.names, timestamps_ms=timestamps, clock_offsets_ms=offsets, frame_numbers=frame_numbers,
        fps=cfg.fps, depth_scale=settings.depth_scale, joint_radius_m=body.joint_radius)
    _write_config(out_dir / "simulation.yaml", to_plain(cfg))
    elapsed = time.perf_counter() - started
    log.info("simulated %d frames x %d cameras in %.1f s into %s (%d frames dropped)", T, V, elapsed, out_dir,
             int(dropped.sum()))
    return SimulationResult(out_dir, recordings, rig, Path(rig_yaml), Path(rig_toml), truth, timestamps, offsets,
                            elapsed)


def _timestamps(T: int, V: int, fps: float, offsets: np.ndarray, jitter_ms: float, drop_rate: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(T, V) timestamps (ms) of frame ``k`` of camera ``v`` -- ``1000 k / fps + offsets[v]`` plus jitter
    clipped to two sigmas, NaN where dropped -- and the (T, V) dropped mask."""
    jitter = np.clip(rng.normal(0.0, jitter_ms, (T, V)), -2 * jitter_ms, 2 * jitter_ms)
    dropped = rng.random((T, V)) < drop_rate
    timestamps = (np.arange(T) * 1000.0 / fps)[:, None] + offsets[None, :] + jitter
    timestamps[dropped] = np.nan
    return timestamps, dropped


def _recorders(stack: ExitStack, folder: Path, rig: Rig, fps: int, depth_scale: float, preset: str) -> list:
    """One RealSense recording writer per camera (``<serial>.db3``), closed by ``stack``."""
    from capture.recording_writer import RealSenseRecordingWriter

    writers = []
    for cam in rig:
        intr = StreamIntrinsics.from_camera(cam)
        writers.append(stack.enter_context(RealSenseRecordingWriter(
            folder / f"{cam.name}.db3", cam.serial, color=intr, depth=intr, fps=fps, depth_scale=depth_scale,
            name=f"Intel RealSense {preset.split('_')[0].upper()} (simulated)")))
    return writers


def _simulate_board(out_dir: Path, cfg: SimulationConfig, rig: Rig, renderers, offsets: np.ndarray,
                    timing_rng: np.random.Generator, render_rng: np.random.Generator, progress) -> None:
    """Recordings of a ChArUco board moving through the volume, its spec and ``board_truth.npz``."""
    from calibration.board import BoardSpec, load_board
    from capture.config import section_from_mapping, to_plain
    from reconstruction.simulation.boards import board_tour
    from reconstruction.simulation.render import render_board_frame

    spec = load_board(cfg.board_file) if cfg.board_file else section_from_mapping(BoardSpec, SIMULATION_BOARD)
    out_dir.mkdir(parents=True, exist_ok=True)
    T, V, N = cfg.num_board_frames, len(rig), spec.num_corners
    R_board, t_board = board_tour(rig, spec, T, cfg.board_fps, timing_rng)
    timestamps, dropped = _timestamps(T, V, cfg.board_fps, offsets, cfg.jitter_ms, cfg.drop_rate, timing_rng)
    corners = np.full((T, V, N, 2), np.nan)
    visible = np.zeros((T, V, N), dtype=bool)
    with ExitStack() as stack:
        writers = _recorders(stack, out_dir, rig, cfg.board_fps, renderers[0].settings.depth_scale, cfg.preset)
        for k in range(T):
            for v, (renderer, writer) in enumerate(zip(renderers, writers)):
                color, depth, corners[k, v], visible[k, v] = render_board_frame(
                    renderer, spec, R_board[k], t_board[k], render_rng)
                if not dropped[k, v]:
                    writer.write(float(timestamps[k, v]), k + 1, color, depth)
            if progress is not None:
                progress(k + 1, T)
    _write_config(out_dir / "board.yaml", to_plain(spec))
    with atomic_path(out_dir / "board_truth.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, R_board=R_board, t_board=t_board, corners2d=corners, visible=visible,
                            object_points=spec.object_points(), cameras=np.array(rig.names), timestamps_ms=timestamps,
                            clock_offsets_ms=offsets, frame_numbers=np.arange(1, T + 1))


def _write_config(path: Path, data: dict) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
