"""capture/realsense_file.py: RealSenseReader returns every frame losslessly, and the frames before damage."""
import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from capture.errors import RecordingError  # noqa: E402
from capture.realsense_file import RealSenseReader  # noqa: E402
from capture.recording import index_recording  # noqa: E402
from capture.stream import FrameSetStream  # noqa: E402


def test_reader_returns_every_frame_losslessly(recording):
    path, colors, depths, stamps = recording
    index = index_recording(path)
    assert len(index["depth"]) == len(index["color"]) == 30
    np.testing.assert_allclose(index["color"].timestamps_ms, stamps, atol=1e-3)
    with RealSenseReader(path, expected={k: len(v) for k, v in index.items()}, metadata=True) as reader:
        got = list(reader.frames())
    depth = [f for f in got if f.stream == "depth"]
    color = [f for f in got if f.stream == "color"]
    assert [f.frame_number for f in depth] == list(range(100, 130))
    assert all(f.domain == "global_time" for f in got)
    for i in range(30):
        np.testing.assert_array_equal(depth[i].data, depths[i])
        np.testing.assert_array_equal(color[i].data, colors[i])
    assert "frame_timestamp" in color[0].metadata or color[0].metadata


def test_damage_inside_keeps_frames_before_it(recording, tmp_path):
    import shutil
    import sqlite3

    path = tmp_path / "damaged.db3"
    shutil.copy(recording[0], path)
    con = sqlite3.connect(path)
    topic = con.execute("SELECT id FROM topics WHERE name LIKE '%Depth_0/image/data%'").fetchone()[0]
    ids = [r[0] for r in con.execute("SELECT id FROM messages WHERE topic_id=? ORDER BY id", (topic,))]
    data = con.execute("SELECT data FROM messages WHERE id=?", (ids[12],)).fetchone()[0]
    con.execute("UPDATE messages SET data=? WHERE id=?", (data[: len(data) // 2], ids[12]))
    con.commit()
    con.close()
    index = index_recording(path)
    kept = []
    with pytest.raises(RecordingError, match="damaged.db3.*depth stream ended after 12 of 30"):
        with RealSenseReader(path, streams=("depth",), expected={"depth": 30}) as reader:
            for frame in reader.stream("depth"):
                kept.append(frame)
    assert [f.frame_number for f in kept] == list(range(100, 112))
    np.testing.assert_array_equal(kept[-1].data, recording[2][11])
    stream = FrameSetStream([path])
    sets = []
    with pytest.raises(RecordingError, match=r"damaged.db3.*\(12 frame sets were read before it\)"):
        for fs in stream:
            sets.append(fs)
    assert len(sets) == 12 and len(index["depth"]) == 30
