"""Fixtures of the capture tests: a RealSense recording written with known content."""
import pytest

from tests.support import write_known_recording


@pytest.fixture(scope="session")
def recording(tmp_path_factory):
    """30 frames with known content, intrinsics, extrinsics, serial and depth scale (written once):
    (path, colors, depths, stamps)."""
    pytest.importorskip("pyrealsense2")
    return write_known_recording(tmp_path_factory.mktemp("rec"))
