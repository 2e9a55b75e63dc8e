"""capture/recording.py: recording info and index: the real D435 .bag frame by frame, truncated and
foreign files."""
import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from capture.errors import RecordingError  # noqa: E402
from capture.recording import index_recording, read_frames, read_recording_info  # noqa: E402
from capture.stream import FrameSetStream  # noqa: E402
from tests.support import BAG, sdk_frames as _sdk_frames  # noqa: E402


def test_real_d435_bag_every_frame(shared_dir):
    path = shared_dir / BAG
    info = read_recording_info(path)
    assert info.serial == "728612070259"
    depth = info.stream("depth")
    assert (depth.width, depth.height, depth.format) == (640, 480, "z16")
    assert info.depth_scale == pytest.approx(0.001)
    assert info.color_intrinsics.width == 640 and info.depth_to_color is not None
    sdk = _sdk_frames(path)
    ours = {}
    for frame in read_frames(path):
        ours.setdefault(frame.stream, []).append(frame)
    assert {k: len(v) for k, v in ours.items()} == {k: len(v) for k, v in sdk.items()} == {"depth": 2, "color": 1}
    for key, frames in ours.items():
        for f, (fn, ts, data) in zip(frames, sdk[key]):
            assert (f.frame_number, f.timestamp_ms) == (fn, ts)
            assert f.domain == "hardware_clock"
            np.testing.assert_array_equal(f.data, data)
    index = index_recording(path)
    np.testing.assert_array_equal(index["depth"].frame_numbers, [169, 170])


def test_truncated_recording(recording, tmp_path):
    path = recording[0]
    cut = tmp_path / "cut.db3"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordingError, match="cut.db3.*truncated, damaged or not a recording"):
        read_recording_info(cut)
    with pytest.raises(RecordingError, match="cut.db3"):
        FrameSetStream([cut])


def test_truncated_bag(shared_dir, tmp_path):
    cut = tmp_path / "cut.bag"
    cut.write_bytes((shared_dir / BAG).read_bytes()[:600_000])
    with pytest.raises(RecordingError, match="cut.bag.*truncated"):
        read_recording_info(cut)


def test_not_a_recording(tmp_path):
    for name in ("notes.db3", "notes.bag"):
        bad = tmp_path / name
        bad.write_text("hello")
        with pytest.raises(RecordingError, match=f"{name}.*not a recording"):
            read_recording_info(bad)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(RecordingError, match="notes.txt: not a RealSense recording"):
        read_recording_info(other)
