"""capture/live.py: the live view runs its stages on the newest frame set, never holding back the recording."""
import time

import numpy as np
import pytest

from capture.simulated_cameras import SimulatedTiming
from tests.support import CAPTURE_FPS as FPS, capture_session as _session


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
