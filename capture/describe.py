"""Plain-text descriptions of what capture sees: recordings (``mocap inspect``) and connected cameras
(``mocap devices``), as lines a command prints."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from capture.intrinsics import StreamIntrinsics


def _intrinsics(intr: StreamIntrinsics | None) -> str:
    if intr is None:
        return "none"
    coeffs = ", ".join(f"{c:.4g}" for c in intr.coeffs)
    return f"fx {intr.fx:.2f} fy {intr.fy:.2f} ppx {intr.ppx:.2f} ppy {intr.ppy:.2f} {intr.model} [{coeffs}]"


def describe_recording(path: str | Path, fps: float | None = None) -> list[str]:
    """One recording or video: camera, streams (size, format, rate, frame count, drops, duplicates,
    interval, clock), intrinsics, depth scale, depth-to-colour transform."""
    from capture.recording import index_recording, read_recording_info
    from capture.sync import find_drops

    info = read_recording_info(path, fps)
    index = index_recording(path, fps=fps)
    lines = [f"{info.path}", f"  camera: {info.name}  serial {info.serial}  ({info.kind}, {info.duration_ms / 1000:.2f} s)"]
    for stream in info.streams:
        idx = index.get(stream.key)
        n = len(idx) if idx is not None else 0
        line = f"  {stream.key:<9} {stream.width}x{stream.height} {stream.format:<6} {stream.fps:g} fps  {n} frames"
        if idx is not None and n > 1:
            dropped, duplicates = find_drops(idx.frame_numbers, idx.timestamps_ms, 1000.0 / stream.fps)
            gaps = np.diff(idx.timestamps_ms)
            line += (f"  dropped {dropped.size}  duplicates {duplicates.size}  "
                     f"interval {np.median(gaps):.2f} ms (max {gaps.max():.2f})  clock {idx.domain}")
        lines.append(line)
        if stream.intrinsics is not None:
            lines.append(f"            intrinsics: {_intrinsics(stream.intrinsics)}")
    if info.has_depth:
        lines.append(f"  depth scale: {info.depth_scale:g} m/unit")
    if info.depth_to_color is not None:
        R, t = info.depth_to_color
        angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
        lines.append(f"  depth->color: t [{t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}] m, rotation {angle:.3f} deg")
    return lines


def describe_sync(paths: Sequence[str | Path], tolerance_ms: float | None = None, fps: float | None = None) -> list[str]:
    """How several recordings synchronize into frame sets: sets, skew, each camera's offset and drops."""
    from capture.stream import FrameSetStream

    stream = FrameSetStream(list(paths), tolerance_ms=tolerance_ms, video_fps=[fps] * len(paths))
    sync = stream.sync
    lines = [f"frame sets: {sync.num_sets} ({int(sync.complete.sum())} complete) with tolerance {sync.tolerance_ms:.2f} ms"]
    if sync.num_sets:
        lines.append(f"  skew: median {np.median(sync.skew_ms):.3f} ms, max {sync.skew_ms.max():.3f} ms")
    for name, off, dropped, unmatched in zip(stream.cameras, sync.offsets_ms, sync.dropped, sync.unmatched):
        lines.append(f"  {name}: offset {off:.3f} ms, dropped {dropped.size}, unmatched {unmatched.size}")
    return lines


def describe_devices(backend, modes: bool = False, config_path: str | None = None) -> list[str]:
    """The backend's cameras (serial, model, firmware, USB, sync; ``modes``: every stream mode), and
    with ``config_path`` the plan of that capture config against them. Empty: no camera."""
    from capture.capture_config import load_capture_config
    from capture.devices import bandwidth_mb_s, discover, plan_capture

    infos = discover(backend)
    lines = []
    for info in infos:
        state = "USB 2: LOW BANDWIDTH, use USB 3" if info.usb2 else "ok"
        lines.append(f"{info.serial}  {info.name}  firmware {info.firmware or '?'}  USB {info.usb_type or '?'}  "
                     f"controller {info.controller}  sync {'yes' if info.sync_capable else 'no'}  {state}")
        for stream in ("depth", "color", "infrared") if modes else ():
            supported = info.supported(stream)
            if supported:
                lines.append(f"    {stream}: " + ", ".join(str(m) for m in supported))
    if infos and config_path:
        config = load_capture_config(config_path)
        plan = plan_capture(backend, config)
        for cam in plan.cameras:
            lines.append(f"{cam.info.serial}: {'+'.join(cam.config.streams)} {cam.config.width}x{cam.config.height}@"
                         f"{cam.config.fps}, {bandwidth_mb_s(cam.config):.0f} MB/s, sync {cam.role}")
        for controller, need in plan.bandwidth_mb_s.items():
            lines.append(f"USB controller {controller}: {need:.0f} MB/s of {config.usb3_budget_mb_s:.0f}")
        lines.append(f"{config_path}: ok")
    return lines
