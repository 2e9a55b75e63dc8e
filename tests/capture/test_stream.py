"""capture/stream.py: FrameSetStream over synthetic recordings (clock offsets, drops) and videos: the right
frames per set, resuming, every n-th set, images left undecoded, mixed clock domains, files that do
not belong together."""
import cv2
import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

import capture.stream  # noqa: E402
from capture.align import align_depth_to_color  # noqa: E402
from capture.errors import RecordingError  # noqa: E402
from capture.recording import index_recording, read_recording_info  # noqa: E402
from capture.simulated_cameras import write_test_pattern  # noqa: E402
from capture.stream import FrameSetStream  # noqa: E402


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


def _pattern(tmp_path, name, serial, n=10, fps=30, **kw):
    stamps = 1000.0 + np.arange(n) * 1000.0 / fps
    return write_test_pattern(tmp_path / name, serial, stamps, np.arange(n), size=(64, 48), fps=fps, **kw)


def test_no_depth_stream_when_required(tmp_path):
    a = _pattern(tmp_path, "a.db3", "1", depth=False)
    b = _pattern(tmp_path, "b.db3", "2")
    with pytest.raises(RecordingError, match=r"a.db3: no depth stream \(it has color 64x48 rgb8\)"):
        FrameSetStream([a, b], require_depth=True)
    stream = FrameSetStream([a, b])  # allowed when depth is not required
    sets = list(stream)
    assert len(sets) == 10 and sets[0].depth[0] is None and sets[0].depth[1] is not None


def test_same_serial_twice(tmp_path):
    a = _pattern(tmp_path, "a.db3", "42")
    b = _pattern(tmp_path, "b.db3", "42")
    with pytest.raises(RecordingError, match="b.db3: camera serial 42 is also the camera of .*a.db3"):
        FrameSetStream([a, b])


def test_mismatched_frame_rates(tmp_path):
    a = _pattern(tmp_path, "a.db3", "1", fps=30)
    b = _pattern(tmp_path, "b.db3", "2", fps=15)
    with pytest.raises(RecordingError, match="b.db3: 15 fps but .*a.db3 has 30 fps"):
        FrameSetStream([a, b])


class _SpyReader(capture.stream.RealSenseReader):
    """The stream's RealSense reader, keeping what it was asked to decode."""

    made = []

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        _SpyReader.made.append((path, kw["streams"][0], kw["wanted"][kw["streams"][0]]))


def test_step_yields_every_nth_set_and_decodes_only_those(rig, monkeypatch):
    paths, drops = rig
    _SpyReader.made = []
    monkeypatch.setattr(capture.stream, "RealSenseReader", _SpyReader)
    stream = FrameSetStream(paths, offsets_ms=OFFSETS, step=7, start=3)
    assert len(stream) == 9  # 3, 10, ..., 59
    sets = list(stream)
    assert [fs.index for fs in sets] == list(range(3, 60, 7))
    for fs in sets:
        for v in range(4):
            assert fs.present[v] == (fs.index not in drops[v])
            if fs.present[v]:
                assert fs.frame_numbers[v] == fs.index and _frame_number_in_pixels(fs.color[v]) == fs.index
                assert int(fs.depth[v][3, 3]) == 1000 + fs.index
    # each camera's color and depth reader decodes the frames of the sets yielded, and no other
    assert sorted((str(p), key) for p, key, _ in _SpyReader.made) == sorted(
        (str(p), key) for p in paths for key in ("color", "depth"))
    for path, key, wanted in _SpyReader.made:
        v = paths.index(path)
        numbers = index_recording(path)[key].frame_numbers
        decoded = {int(numbers[p]) for p in range(len(numbers)) if wanted(p)}
        assert decoded == set(range(3, 60, 7)) - set(drops[v].tolist()), (v, key)
    with pytest.raises(ValueError, match="step must be >= 1, got 0"):
        FrameSetStream(paths, offsets_ms=OFFSETS, step=0)


@pytest.mark.parametrize("decode", ["color", "depth"])
def test_images_left_undecoded_keep_the_timing(rig, decode):
    paths, drops = rig
    full = list(FrameSetStream(paths, offsets_ms=OFFSETS, start=50))
    part = list(FrameSetStream(paths, offsets_ms=OFFSETS, start=50, **{decode: False}))
    assert [fs.index for fs in part] == [fs.index for fs in full] == list(range(50, 60))
    for a, b in zip(full, part):
        np.testing.assert_array_equal(b.present, a.present)
        np.testing.assert_array_equal(b.timestamps_ms, a.timestamps_ms)
        np.testing.assert_array_equal(b.frame_numbers, a.frame_numbers)
        np.testing.assert_array_equal(b.depth_scale, a.depth_scale)
        for v in np.flatnonzero(a.present):
            if decode == "color":
                assert b.color[v] is None and np.array_equal(b.depth[v], a.depth[v])
            else:
                assert b.depth[v] is None and np.array_equal(b.color[v], a.color[v])
        assert all(getattr(b, decode)[v] is None for v in range(4))


def _video(path, n, fps=30.0, size=(64, 48)):
    """A video whose frame i has a red bar 4 i + 4 pixels wide (MJPG)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : 4 * i + 4] = (0, 0, 200)  # BGR
        writer.write(img)
    writer.release()
    return path


def test_videos_and_recordings_in_one_stream_get_estimated_offsets(tmp_path):
    # Two RealSense cameras on the global clock, the second 4 ms behind and missing frame 5, and a
    # video on its own clock (frame i at i / fps from 0): the video's offset is estimated, the two
    # global-time cameras keep one common offset (they are on one clock: their 4 ms is real skew).
    n = np.arange(12)
    t0 = 1.7e12
    a = write_test_pattern(tmp_path / "a.db3", "11", t0 + n * P, n, size=(64, 48))
    keep = np.delete(n, 5)
    b = write_test_pattern(tmp_path / "b.db3", "22", t0 + 4.0 + keep * P, keep, size=(64, 48))
    video = _video(tmp_path / "side.avi", 12)
    stream = FrameSetStream([a, video, b])
    assert stream.cameras == ("11", "side", "22")
    offsets = stream.sync.offsets_ms
    assert offsets[2] == offsets[0] == 0.0  # not the 4 ms an estimate of its own would give
    assert offsets[1] == pytest.approx(-t0, abs=0.01)  # video time - offset = global time
    sets = list(stream)
    assert len(sets) == 12
    for fs in sets:
        k = fs.index
        assert fs.present.tolist() == [True, True, k != 5]
        assert _frame_number_in_pixels(fs.color[0]) == k and fs.depth[1] is None
        red = fs.color[1][24, :, 0] > 100  # RGB
        assert abs(int(red.sum()) - (4 * k + 4)) <= 1
        assert fs.timestamps_ms[1] == pytest.approx(k * P)  # the video's own clock, as for every camera
        if k != 5:
            assert _frame_number_in_pixels(fs.color[2]) == k
    # without the shared offset the second camera would be estimated on its own
    from capture.sync import estimate_offsets

    alone = estimate_offsets([stream.indexes[v]["color"].timestamps_ms for v in range(3)], P)
    assert alone[2] == pytest.approx(4.0, abs=1e-3)


def test_align_depth_auto_aligns_only_the_cameras_that_need_it(recording, tmp_path):
    path, colors, depths, stamps = recording  # color and depth: other intrinsics, a depth-to-color pose
    n = np.arange(30)
    pattern = write_test_pattern(tmp_path / "p.db3", "7", stamps + 1.0, n, size=(64, 48))  # depth as color
    assert FrameSetStream([path, pattern], align_depth="auto").align == [True, False]
    assert FrameSetStream([path, pattern], align_depth=True).align == [True, True]
    assert FrameSetStream([path, pattern]).align == [False, False]
    with pytest.raises(ValueError, match="align_depth must be True, False or 'auto'"):
        FrameSetStream([path, pattern], align_depth="yes")
    info = read_recording_info(path)
    sets = list(FrameSetStream([path, pattern], align_depth="auto", step=10))
    assert [fs.index for fs in sets] == [0, 10, 20]
    for fs in sets:
        k = fs.index
        expected = align_depth_to_color(depths[k], info.depth_intrinsics, info.color_intrinsics, info.depth_to_color,
                                        info.depth_scale)
        np.testing.assert_array_equal(fs.depth[0], expected)
        assert not np.array_equal(fs.depth[0], depths[k])  # alignment changed the image
        np.testing.assert_array_equal(fs.depth[1], np.full((48, 64), 1000 + k, np.uint16))  # as recorded
        np.testing.assert_array_equal(fs.color[0], colors[k])
