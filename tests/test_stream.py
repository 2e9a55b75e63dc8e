"""FrameSetStream: 4 synthetic recordings with clock offsets and drops -> the right frames per set."""
import numpy as np
import pytest

from capture.errors import RecordingError
from capture.simulated_cameras import write_test_pattern
from capture.stream import FrameSetStream

pytest.importorskip("pyrealsense2")

P = 1000.0 / 30
OFFSETS = np.array([0.0, 1500.25, -200.5, 3000.75])


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """4 cameras, 60 frames, per-camera clock offsets, 0.3 ms jitter, ~5 % drops."""
    folder = tmp_path_factory.mktemp("rig")
    rng = np.random.default_rng(7)
    paths, drops = [], []
    for v in range(4):
        keep = rng.random(60) >= 0.05
        keep[[0, -1]] = v != 2 or keep[[0, -1]]
        if v == 1:
            keep[[10, 11]] = False  # a run of two
        n = np.flatnonzero(keep)
        stamps = 1.7e12 + n * P + OFFSETS[v] + rng.uniform(-0.3, 0.3, n.size)
        paths.append(write_test_pattern(folder / f"cam{v}.db3", f"90000000000{v}", stamps, n, size=(96, 64)))
        drops.append(np.flatnonzero(~keep))
    return paths, drops


def _frame_number_in_pixels(color):
    return int(color[0, 0, 0]) + 256 * int(color[0, 0, 1])


def test_sets_hold_the_right_frames(rig):
    paths, drops = rig
    stream = FrameSetStream(paths, offsets_ms=OFFSETS, readahead=2)
    assert len(stream) == 60
    assert stream.cameras == tuple(f"90000000000{v}" for v in range(4))
    for v in range(4):
        np.testing.assert_array_equal(stream.sync.dropped[v], drops[v])
    assert stream.sync.skew_ms.max() <= 1.0
    n = 0
    for fs in stream:
        assert fs.index == n
        for v in range(4):
            if n in drops[v]:
                assert not fs.present[v] and fs.color[v] is None and fs.frame_numbers[v] == -1
                continue
            assert fs.present[v] and fs.frame_numbers[v] == n
            assert _frame_number_in_pixels(fs.color[v]) == n
            assert fs.depth[v].dtype == np.uint16 and int(fs.depth[v][3, 3]) == 1000 + n
            assert fs.depth_scale[v] == pytest.approx(0.001)
            assert fs.depth_m(v)[0, 0] == pytest.approx((1000 + n) * 0.001, rel=1e-6)
        assert fs.skew_ms <= 1.0 + np.ptp(OFFSETS)  # raw clocks keep their offsets
        n += 1
    assert n == 60 and stream.sets_read == 60


def test_resume_from_a_frame_set_index(rig):
    paths, drops = rig
    stream = FrameSetStream(paths, offsets_ms=OFFSETS, start=45)
    sets = list(stream)
    assert [fs.index for fs in sets] == list(range(45, 60))
    for fs in sets:
        for v in np.flatnonzero(fs.present):
            assert _frame_number_in_pixels(fs.color[v]) == fs.index


def test_stopping_early_releases_the_readers(rig):
    paths, _ = rig
    stream = FrameSetStream(paths, offsets_ms=OFFSETS, readahead=1)
    for fs in stream:
        if fs.index == 3:
            break
    assert stream.sets_read == 4
    assert list(FrameSetStream(paths, offsets_ms=OFFSETS, start=58))[-1].index == 59


def test_offsets_estimated_without_global_time(rig):
    paths, _ = rig
    stream = FrameSetStream(paths, offsets_ms="estimate")
    np.testing.assert_allclose(stream.sync.offsets_ms - stream.sync.offsets_ms[0], OFFSETS, atol=0.5)
    assert stream.sync.skew_ms.max() <= 1.0


def test_start_outside_the_sets(rig):
    with pytest.raises(RecordingError, match="start 61 is outside the 60 frame sets"):
        FrameSetStream(rig[0], offsets_ms=OFFSETS, start=61)


def test_videos_are_views_without_depth(tmp_path):
    import cv2

    paths = []
    for v in range(2):
        path = tmp_path / f"cam{v}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
        for i in range(12):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:, : 5 * i + 4] = (0, 0, 200)  # red bar grows with the frame index (BGR)
            writer.write(img)
        writer.release()
        paths.append(path)
    stamps = tmp_path / "cam1.txt"
    stamps.write_text("\n".join(str(40.0 * i + 1.0) for i in range(12)))
    stream = FrameSetStream(paths, video_timestamps=[None, stamps], offsets_ms=None)
    assert stream.cameras == ("cam0", "cam1")
    sets = list(stream)
    assert len(sets) == 12
    for fs in sets:
        assert fs.present.all() and fs.depth == (None, None)
        for v in range(2):
            red = fs.color[v][24, :, 0] > 100  # RGB now
            assert abs(int(red.sum()) - (5 * fs.index + 4)) <= 1
    np.testing.assert_allclose(sets[3].timestamps_ms, [120.0, 121.0])
