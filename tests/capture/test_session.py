"""capture/session.py: recording sessions with simulated cameras: every frame in the files, counts, gaps,
stops, faults.

Short runs (2 cameras, 320x240, about 1.5 s each). The files are read back with pyrealsense2's own
sensor-level playback (non-real-time, paused while the sensors start, so it skips nothing).
"""
import errno
import json
import threading
import time

import numpy as np
import pytest

from capture.session_folder import load_manifest
from capture.simulated_cameras import SimulatedTiming
from tests.support import CAPTURE_FPS as FPS, capture_session as _session, playback


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
