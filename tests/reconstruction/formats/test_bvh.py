"""reconstruction/formats/bvh.py: BVH parsing (a tiny file, truncated and invalid files, the CMU clip's header) and writing (round trips)."""
import logging

import numpy as np
import pytest

from capture.errors import FileFormatError
from reconstruction.formats.bvh import load_bvh, parse_bvh
from tests.support import BVH_TINY as TINY


def test_parse_tiny_file():
    bvh = parse_bvh(TINY, "tiny.bvh")
    assert bvh.joint_names == ("Hips", "Arm", "Arm_end")
    assert list(bvh.parents) == [-1, 0, 1]
    assert bvh.channels[1] == ("Xrotation", "Zrotation", "Yrotation")
    assert bvh.motion.shape == (2, 9)
    assert bvh.fps == pytest.approx(2.0)
    np.testing.assert_allclose(bvh.offsets[2], [3, 0, 0])


def test_truncated_and_invalid_files(tmp_path, caplog):
    truncated = TINY.rsplit("\n", 2)[0] + "\n1 2 3 90\n"  # second frame cut short
    with caplog.at_level(logging.WARNING):
        bvh = parse_bvh(truncated, "cut.bvh")
    assert bvh.num_frames == 1
    assert "truncated" in caplog.text
    with pytest.raises(FileFormatError, match="not a BVH"):
        parse_bvh("hello", "x.bvh")
    with pytest.raises(FileFormatError, match="no MOTION"):
        parse_bvh(TINY.split("MOTION")[0], "x.bvh")
    with pytest.raises(FileFormatError, match="line 5"):
        parse_bvh(TINY.replace("CHANNELS 6", "CHANNELS 5"), "x.bvh")
    with pytest.raises(FileFormatError, match="not found"):
        load_bvh(tmp_path / "missing.bvh")


@pytest.fixture
def cmu(shared_dir):
    return load_bvh(shared_dir / "data" / "mocap" / "131_02.bvh")


def test_cmu_clip_header(cmu):
    assert cmu.num_frames == 1247
    assert cmu.fps == pytest.approx(120.0, rel=1e-4)
    assert "LeftKnee" in cmu.joint_names and "Head_end" in cmu.joint_names
