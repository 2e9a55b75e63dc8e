"""Helpers the test modules share: plain functions and test data (fixtures are in the conftest.py files).

Imported as ``from tests.support import ...``; a test module never imports another test module.
"""
import io
import json
import queue
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from capture.intrinsics import StreamIntrinsics

ROOT = Path(__file__).resolve().parents[1]  # the repository
CONFIGS = ROOT / "configs"


# --- accuracy ------------------------------------------------------------------------------------

def mpjpe(xyz, truth):
    """Mean per-joint position error (m) over the (frame, joint) pairs both have."""
    return float(np.nanmean(np.linalg.norm(xyz - truth, axis=-1)))


# --- noiseless 2D of a moving person (triangulation) ----------------------------------------------

def noiseless_keypoints(rig, frames=20, skeleton="coco17", seed=0):
    """Procedural motion (T, J, 3) and its exact projections (T, V, J, 3), score 1."""
    from reconstruction.simulation import procedural_motion

    xyz = procedural_motion(skeleton, frames, rng=np.random.default_rng(seed))
    uv = np.moveaxis(rig.project(xyz), -2, 1)  # (T, V, J, 2)
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)
    return xyz, kp


# --- depth maps rendered of spheres in front of a wall (depth reading, fusion, residuals) ---------

DEPTH_SCALE = 0.001  # metres per unit, as RealSense D4xx


_RAYS = {}


def _pixel_rays(camera):
    """(H, W, 3) ray of each pixel with z = 1 (cached per camera: undistortion is the slow part)."""
    if id(camera) not in _RAYS:
        w, h = camera.image_size
        u, v = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
        xy = camera.undistort_points(np.stack([u, v], axis=-1), normalized=True)
        _RAYS[id(camera)] = (camera, np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1))
    return _RAYS[id(camera)][1]


def render_spheres(camera, centers, radii, wall_z=5.0):
    """Depth image (H, W) uint16 (mm, z along the optical axis) of spheres (N, 3) world with
    ``radii`` (N,) in front of a wall at camera depth ``wall_z``."""
    rays = _pixel_rays(camera)
    c = camera.world_to_camera(np.asarray(centers))  # (N, 3)
    # |s ray - c|^2 = r^2 -> a s^2 - 2 b s + (|c|^2 - r^2) = 0, nearest root s = z.
    a = np.sum(rays**2, axis=-1)[..., None]
    b = rays @ c.T
    disc = b**2 - a * (np.sum(c**2, axis=-1) - np.asarray(radii) ** 2)
    with np.errstate(invalid="ignore"):
        s = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    z = np.minimum(s.min(axis=-1), wall_z)
    return np.round(z / DEPTH_SCALE).astype(np.uint16)


def sphere_scene(rig, rng, n=6):
    """Spheres stacked along the vertical (no sphere hides another from the ring cameras)."""
    centers = np.column_stack([rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n), np.linspace(0.4, 1.6, n)])
    radii = rng.uniform(0.04, 0.09, n)
    return centers, radii


def noisy_sphere_scene(rig4, rng, T=40, noise_px=3.0, depth_noise=(0.001, 0.0037)):
    """Spheres at random places per frame, noisy 2D in every view, noisy depth maps."""
    n = 4
    centers = np.stack([sphere_scene(rig4, rng, n)[0] + rng.normal(0, 0.05, 3) for _ in range(T)])  # (T, N, 3)
    radii = np.full(n, 0.06)
    depth = np.zeros((T, len(rig4), 480, 640), np.uint16)
    a, b = depth_noise
    for t in range(T):  # test fixture rendering, not library code
        for v, cam in enumerate(rig4.cameras):
            z = render_spheres(cam, centers[t], radii).astype(float) * DEPTH_SCALE
            z += rng.normal(size=z.shape) * (a + b * z**2)
            depth[t, v] = np.round(z / DEPTH_SCALE).astype(np.uint16)
    uv = rig4.project(centers).transpose(0, 2, 1, 3)  # (T, V, N, 2)
    uv = uv + rng.normal(0, noise_px, uv.shape)
    kp = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)
    return centers, radii, depth, kp


# --- RealSense recordings -------------------------------------------------------------------------

BAG = "data/realsense/librealsense_single_depth_color_640x480.bag"
RECORDING_COLOR = StreamIntrinsics(640, 480, 615.0, 615.5, 320.5, 240.25, coeffs=(0.01, -0.02, 0.001, 0.0005, 0.003))
RECORDING_DEPTH = StreamIntrinsics(640, 480, 385.0, 385.0, 319.0, 241.0)
RECORDING_R = np.array([[0.9998, -0.02, 0.0], [0.02, 0.9998, 0.0], [0.0, 0.0, 1.0]])
RECORDING_R, _ = np.linalg.qr(RECORDING_R)  # exactly orthonormal
RECORDING_T = np.array([0.015, 0.0002, -0.0003])


def sdk_frames(path):
    """Every frame per stream as pyrealsense2 itself plays it (one device per sensor)."""
    import pyrealsense2 as rs

    out = {}
    for k in range(len(rs.context().load_device(str(path)).query_sensors())):
        device = rs.context().load_device(str(path))  # one context per device: a file loads once per context
        device.as_playback().set_real_time(False)
        sensor = device.query_sensors()[k]
        q = queue.Queue()
        sensor.open(sensor.get_stream_profiles())
        sensor.start(lambda f: q.put((str(f.get_profile().stream_type()).split(".")[-1], f.get_frame_number(),
                                      f.get_timestamp(), np.array(np.asanyarray(f.get_data())))))
        while True:
            try:
                stream, fn, ts, data = q.get(timeout=0.5)
            except queue.Empty:
                break
            out.setdefault(stream, []).append((fn, ts, data))
        sensor.stop()
        sensor.close()
    return out


def write_known_recording(folder):
    """30 frames with known content, intrinsics, extrinsics, serial and depth scale in ``folder``:
    (path, colors, depths, stamps)."""
    from capture.recording_writer import RealSenseRecordingWriter

    rng = np.random.default_rng(5)
    colors = rng.integers(0, 256, (30, 480, 640, 3), dtype=np.uint8)
    depths = rng.integers(0, 5000, (30, 480, 640), dtype=np.uint16)
    stamps = 1.7e12 + np.arange(30) * 33.333 + 0.125
    with RealSenseRecordingWriter(folder / "cam.bag", "123456789012", RECORDING_COLOR, RECORDING_DEPTH,
                                  30, 0.00025, (tuple(RECORDING_R.ravel()), tuple(RECORDING_T))) as writer:
        for i in range(30):
            writer.write(stamps[i], 100 + i, colors[i], depths[i])
    return writer.path, colors, depths, stamps


def playback(path):
    """{stream name: [(frame number, timestamp ms)]} of every frame pyrealsense2 plays from ``path``."""
    import pyrealsense2 as rs

    dev = rs.context().load_device(str(path))
    pb = dev.as_playback()
    pb.set_real_time(False)
    sensors = dev.query_sensors()
    queues = []
    for s in sensors:
        s.open(s.get_stream_profiles())
    pb.pause()  # start every sensor before playback runs, or the first frames of the others are lost
    for s in sensors:
        q = rs.frame_queue(100000, True)
        queues.append(q)
        s.start(q)
    pb.resume()
    got = {}

    def drain():
        for q in queues:
            while True:
                ok, f = q.try_wait_for_frame(0)
                if not ok:
                    break
                got.setdefault(f.get_profile().stream_name(), []).append((f.get_frame_number(), f.get_timestamp()))

    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.2 or pb.current_status() != rs.playback_status.stopped:
        drain()
        time.sleep(0.01)
        assert time.monotonic() - t0 < 30, f"{path}: playback did not finish"
    drain()
    for s in sensors:
        s.stop()
        s.close()
    return got


def read_with_pyrealsense2(path):
    """Every frame of a recording via sensor-level playback: {"depth"|"color": [(ts, number, image)]},
    plus serial, depth scale and the depth intrinsics. The playback is paused while the sensors start
    (it begins with the first started sensor, and would skip the other's first frames)."""
    rs = pytest.importorskip("pyrealsense2")

    ctx = rs.context()
    device = ctx.load_device(str(path))
    playback = device.as_playback()
    playback.set_real_time(False)
    frames = {"depth": [], "color": []}
    lock = threading.Lock()

    def keep(frame):
        kind = "depth" if frame.get_profile().stream_type() == rs.stream.depth else "color"
        item = (frame.get_timestamp(), frame.get_frame_number(), np.asanyarray(frame.get_data()).copy())
        with lock:
            frames[kind].append(item)

    sensors = device.query_sensors()
    info = {"serial": device.get_info(rs.camera_info.serial_number)}
    for sensor in sensors:
        profiles = sensor.get_stream_profiles()
        sensor.open(profiles)
        if sensor.is_depth_sensor():
            info["depth_scale"] = sensor.as_depth_sensor().get_depth_scale()
            info["intrinsics"] = profiles[0].as_video_stream_profile().get_intrinsics()
    playback.pause()
    for sensor in sensors:
        sensor.start(keep)
    playback.resume()
    deadline = time.time() + 60
    while playback.current_status() != rs.playback_status.stopped and time.time() < deadline:
        time.sleep(0.01)
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    return frames, info


# --- capture sessions with simulated cameras ----------------------------------------------------

CAPTURE_W, CAPTURE_H, CAPTURE_FPS, CAPTURE_L = 320, 240, 30, 8


def capture_backend(timings, n=2):
    """A simulated backend of ``n`` cameras showing 8 frames of known colour and depth."""
    from capture.simulated_cameras import SimulatedBackend

    color = np.zeros((n, CAPTURE_L, CAPTURE_H, CAPTURE_W, 3), np.uint8)
    depth = np.zeros((n, CAPTURE_L, CAPTURE_H, CAPTURE_W), np.uint16)
    for k in range(CAPTURE_L):
        color[:, k] = 10 * k
        depth[:, k] = 1000 + k
    intr = [StreamIntrinsics(CAPTURE_W, CAPTURE_H, 300.0, 300.0, 160.0, 120.0)] * n
    return SimulatedBackend(color, depth, intr, timings)


def capture_session(tmp_path, timings, duration=1.5, queues=None, writer_factory=None, n=2):
    """(backend, CaptureSession) recording ``n`` simulated cameras into ``tmp_path / "session"``."""
    from capture.capture_config import capture_config_from_mapping
    from capture.devices import plan_capture
    from capture.session import CaptureSession
    from capture.session_folder import prepare_output_dir

    backend = capture_backend(timings, n)
    cfg = capture_config_from_mapping({"defaults": {"resolution": [CAPTURE_W, CAPTURE_H], "fps": CAPTURE_FPS},
                                       "queues": queues or {"stall_timeout_s": 0.3}})
    plan = plan_capture(backend, cfg)
    sources = [backend.open(p.info, p.config, p.role, cfg.sync) for p in plan.cameras]
    out = prepare_output_dir(tmp_path / "session")
    session = CaptureSession(sources, out, cfg, duration_s=duration, writer_factory=writer_factory)
    return backend, session


# --- TF.js graph models --------------------------------------------------------------------------

def write_tfjs_model(tmp_path, nodes, weights: dict, quant: dict | None = None):
    """Write model.json + one shard; ``quant`` maps a weight name to 'float16' or 'uint8'."""
    quant = quant or {}
    entries, chunks = [], []
    for name, arr in weights.items():
        arr = np.asarray(arr)
        e = {"name": name, "shape": list(arr.shape), "dtype": "int32" if arr.dtype.kind == "i" else "float32"}
        q = quant.get(name)
        if q == "float16":
            e["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            chunks.append(arr.astype("<f2").tobytes())
        elif q == "uint8":
            lo, hi = float(arr.min()), float(arr.max())
            scale = (hi - lo) / 255
            e["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
            chunks.append(np.round((arr - lo) / scale).astype(np.uint8).tobytes())
        else:
            chunks.append(arr.astype("<i4" if arr.dtype.kind == "i" else "<f4").tobytes())
        entries.append(e)
    (tmp_path / "m.bin").write_bytes(b"".join(chunks))
    doc = {"format": "graph-model", "modelTopology": {"node": nodes},
           "weightsManifest": [{"paths": ["m.bin"], "weights": entries}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    return tmp_path / "m.json"


# --- 2D model weights ----------------------------------------------------------------------------

def model_tarball(content: dict, tamper: bool = False) -> bytes:
    """An npm package tarball holding ``content`` under package/models/ (``tamper``: one byte changed
    in the .bin files)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {**content, "other.bin": b"not needed"}.items():
            data = data[:-1] + b"X" if tamper and name.endswith(".bin") else data
            info = tarfile.TarInfo(f"package/models/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- BVH motion files ----------------------------------------------------------------------------

BVH_TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Arm
  {
    OFFSET 0 2 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    End Site
    {
      OFFSET 3 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
1 2 3 0 0 0 0 0 0
1 2 3 90 0 0 90 90 0
"""
