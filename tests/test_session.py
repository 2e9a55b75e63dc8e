"""Recording sessions with simulated cameras: every frame in the files, counts, gaps, stops, faults.

Short runs (2 cameras, 320x240, about 1.5 s each). The files are read back with pyrealsense2's own
sensor-level playback (non-real-time, paused while the sensors start, so it skips nothing).
"""
import errno
import json
import threading
import time

import numpy as np
import pytest

from capture.capture_config import capture_config_from_mapping
from capture.devices import plan_capture
from capture.errors import ConfigError
from capture.health import clock_statistics
from capture.intrinsics import StreamIntrinsics
from capture.session import CaptureSession
from capture.session_folder import load_manifest, prepare_output_dir
from capture.simulated_cameras import SimulatedBackend, SimulatedTiming

W, H, FPS, L = 320, 240, 30, 8


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


def _backend(timings, n=2):
    color = np.zeros((n, L, H, W, 3), np.uint8)
    depth = np.zeros((n, L, H, W), np.uint16)
    for k in range(L):
        color[:, k] = 10 * k
        depth[:, k] = 1000 + k
    intr = [StreamIntrinsics(W, H, 300.0, 300.0, 160.0, 120.0)] * n
    return SimulatedBackend(color, depth, intr, timings)


def _session(tmp_path, timings, duration=1.5, queues=None, writer_factory=None, n=2):
    backend = _backend(timings, n)
    cfg = capture_config_from_mapping({"defaults": {"resolution": [W, H], "fps": FPS},
                                       "queues": queues or {"stall_timeout_s": 0.3}})
    plan = plan_capture(backend, cfg)
    sources = [backend.open(p.info, p.config, p.role, cfg.sync) for p in plan.cameras]
    out = prepare_output_dir(tmp_path / "session")
    session = CaptureSession(sources, out, cfg, duration_s=duration, writer_factory=writer_factory)
    return backend, session


def test_every_frame_recorded_counts_and_skew(tmp_path):
    timings = [SimulatedTiming(0.0, 0.3, seed=1), SimulatedTiming(4.7, 0.3, seed=2)]
    backend, session = _session(tmp_path, timings)
    result = session.run()
    m = load_manifest(result.out_dir)
    assert m == json.loads(json.dumps(result.manifest))
    assert m["status"] == "complete" and not list(result.out_dir.glob(".*partial*"))
    for cam, path in zip(m["cameras"], result.recordings):
        delivered = backend.cameras[cam["serial"]].delivered
        assert len(delivered) >= 40  # ~1.5 s at 30 fps
        assert cam["frames_acquired"] == cam["frames_written"] == len(delivered)
        assert cam["software_drops"]["total"] == 0 and cam["frame_number_gaps"]["count"] == 0
        assert cam["frames_in_file"] == {"depth": len(delivered), "color": len(delivered)}
        assert cam["recorder_drops"] == 0
        assert path.name == f"{cam['serial']}.db3" and cam["file"] == path.name
        played = playback(path)
        for stream in ("Depth", "Color"):  # what pyrealsense2 plays is exactly what the camera delivered
            numbers = [n for n, _ in played[stream]]
            stamps = np.array([t for _, t in played[stream]])
            assert numbers == [n for n, _ in delivered]
            np.testing.assert_allclose(stamps, [t for _, t in delivered], atol=1e-3)
        assert cam["measured_fps"] == pytest.approx(FPS, rel=1e-3)
        assert 0.15 < cam["timestamp_jitter_ms"] < 0.4  # clipped Gaussian, sigma 0.3 ms
        assert cam["temperature_c"]["min"] >= 38.0
    sync = m["sync"]
    assert sync["complete_sets"] >= len(backend.cameras["900000000000"].delivered) - 1
    assert sync["offset_to_reference_ms"]["900000000001"] == pytest.approx(4.7, abs=0.3)
    assert sync["skew_ms"]["median"] == pytest.approx(4.7, abs=0.5)
    assert sync["residual_skew_ms"]["max"] < 4 * 0.3 + 0.3  # only jitter left once offsets are removed


def test_camera_that_stops_is_reported_and_session_goes_on(tmp_path):
    timings = [SimulatedTiming(seed=1), SimulatedTiming(seed=2, stop_at_s=0.5)]
    backend, session = _session(tmp_path, timings, duration=1.5)
    m = session.run().manifest
    assert m["status"] == "complete"
    live, stopped = m["cameras"]
    assert live["stopped"] == [] and live["frames_written"] >= 40
    assert stopped["frames_written"] == len(backend.cameras[stopped["serial"]].delivered) == 15
    (stop,) = stopped["stopped"]
    assert stop["at_s"] == pytest.approx(0.5, abs=0.1) and stop["resumed_at_s"] is None
    assert stop["last_frame_number"] == 15
    assert stop["gap_s"] == pytest.approx(m["duration_s"] - stop["at_s"], abs=0.05)
    assert stop["frames_missing"] == pytest.approx((m["duration_s"] - 0.5) * FPS, abs=3)


def test_device_drops_become_frame_number_gaps(tmp_path):
    timings = [SimulatedTiming(seed=3, drop_rate=0.15), SimulatedTiming(seed=4)]
    backend, session = _session(tmp_path, timings)
    m = session.run().manifest
    cam = m["cameras"][0]
    sim = backend.cameras[cam["serial"]]
    assert sim.device_drops > 0
    numbers = [n for n, _ in sim.delivered]
    expected_missing = numbers[-1] - numbers[0] + 1 - len(numbers)
    assert cam["frame_number_gaps"]["frames_missing"] == expected_missing
    assert cam["software_drops"]["total"] == 0 and cam["frames_written"] == len(numbers)


class SlowWriter:
    def __init__(self, path, source, delay=0.1):
        self.path, self.delay, self.frames = path, delay, 0

    def write(self, *args):
        time.sleep(self.delay)
        self.frames += 1

    def close(self):
        self.path.write_bytes(b"")
        return self.path


def test_slow_writer_never_blocks_acquisition_drops_counted(tmp_path):
    timings = [SimulatedTiming(seed=1), SimulatedTiming(seed=2)]
    backend, session = _session(tmp_path, timings, queues={"writer_frames": 3}, writer_factory=SlowWriter)
    m = session.run().manifest
    for cam in m["cameras"]:
        delivered = len(backend.cameras[cam["serial"]].delivered)
        assert cam["frames_acquired"] == delivered >= 40  # acquisition kept pace
        assert cam["software_drops"]["queue_full"] > 0
        assert cam["frames_written"] + cam["software_drops"]["total"] == cam["frames_acquired"]
        assert backend.cameras[cam["serial"]].overflow_drops == 0


def test_disk_full_stops_cleanly_and_files_are_final(tmp_path):
    from capture.session import _default_writer_factory

    class FullDisk:
        def __init__(self, path, source):
            self.inner = _default_writer_factory(path, source)
            self._tmp = self.inner._tmp  # lets the session wait for the recorder to drain
            self.fail = source.serial.endswith("1")

        def write(self, *args):
            if self.fail and self.inner.frames_written >= 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.inner.write(*args)

        def close(self):
            return self.inner.close()

    timings = [SimulatedTiming(seed=1), SimulatedTiming(seed=2)]
    backend, session = _session(tmp_path, timings, duration=5.0, writer_factory=FullDisk)
    t = time.monotonic()
    result = session.run()
    assert time.monotonic() - t < 3.0  # stopped at the error, not at the duration
    m = load_manifest(result.out_dir)
    assert m["status"] == "failed" and "no space left" in m["reason"]
    full = m["cameras"][1]
    assert full["frames_written"] == 10 and "No space" in full["error"]
    for cam, path in zip(m["cameras"], result.recordings):
        played = playback(path)
        assert len(played["Depth"]) == len(played["Color"]) == cam["frames_written"]


def test_stop_from_another_thread_is_interrupted_with_counts(tmp_path):
    timings = [SimulatedTiming(seed=1), SimulatedTiming(seed=2)]
    backend, session = _session(tmp_path, timings, duration=None)
    threading.Timer(0.8, session.stop, kwargs={"reason": "SIGINT (Ctrl-C) received"}).start()
    result = session.run()
    m = result.manifest
    assert m["status"] == "interrupted" and "SIGINT" in m["reason"]
    for cam, path in zip(m["cameras"], result.recordings):
        assert cam["frames_written"] == len(backend.cameras[cam["serial"]].delivered)
        assert len(playback(path)["Depth"]) == cam["frames_written"]


def test_output_folder_not_empty_refused_unless_overwrite(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "900000000000.db3").write_text("old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty.*--overwrite"):
        prepare_output_dir(out)
    prepare_output_dir(out, overwrite=True)
    assert not (out / "900000000000.db3").exists() and (out / "notes.txt").read_text() == "mine"


def test_clock_statistics_recovers_rate_and_jitter(rng):
    n = np.arange(1, 601)
    n = n[rng.random(600) > 0.1]  # gaps do not bias the fit
    jitter = rng.normal(0, 0.5, n.size)
    fps, sd, intercept = clock_statistics(n, 1000.0 + (n - 1) * 1000 / 30 + jitter)
    assert fps == pytest.approx(30, rel=1e-4) and sd == pytest.approx(0.5, rel=0.1)
    assert intercept == pytest.approx(1000.0, abs=0.2)


def test_slow_live_view_skips_sets_but_recording_keeps_every_frame(tmp_path):
    from capture.live import LiveView, NpzSink

    timings = [SimulatedTiming(0.0, 0.3, seed=1), SimulatedTiming(3.0, 0.3, seed=2)]
    backend, session = _session(tmp_path, timings, duration=1.5)
    seen = []

    def slow(fs, _):  # a 2D model slower than the cameras: ~10 sets per second
        time.sleep(0.1)
        seen.append([f.frame_number if f is not None else -1 for f in fs.frames])
        return np.full((2, 3), float(fs.index))

    sink = NpzSink(tmp_path / "live.npz", ["a", "b"])
    live = LiveView([s.serial for s in session.sources], [("model", slow)], FPS, sink).start()
    session.on_frame = live.push
    m = session.run().manifest
    report = live.stop()
    for cam in m["cameras"]:
        assert cam["frames_written"] == len(backend.cameras[cam["serial"]].delivered) >= 40
    assert 8 <= report["processed"] <= 20 and report["skipped"] >= 20
    assert report["processed"] + report["skipped"] <= report["reference_frames"]
    assert report["latency_ms"]["model"]["mean"] == pytest.approx(100, abs=30)
    assert all(a == b for a, b in seen)  # both views of a set are the same instant (same frame number)
    with np.load(tmp_path / "live.npz") as saved:
        assert saved["xyz"].shape == (report["processed"], 2, 3)
        np.testing.assert_array_equal(saved["xyz"][:, 0, 0], np.arange(report["processed"]))
