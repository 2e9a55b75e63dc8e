"""Shared fixtures: a seeded synthetic rig, and the ../shared data folder (skipped where absent)."""
from pathlib import Path

import numpy as np
import pytest

from calibration.synthetic import ring_rig

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def rig4():
    """Four D435-like cameras on a 3 m ring at 1.5 m, looking at (0, 0, 1), mild distortion."""
    return ring_rig(4, dist=(-0.05, 0.02, 0.001, -0.0005, 0.0))


@pytest.fixture
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (see the README: tests with real data need it)")
    return SHARED


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU tests
        return False


def _has_realsense() -> bool:
    try:
        import pyrealsense2 as rs

        return len(rs.context().query_devices()) > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked `camera` or `gpu` skip, with the reason, where there is no such hardware."""
    needs_gpu = [i for i in items if "gpu" in i.keywords]
    needs_camera = [i for i in items if "camera" in i.keywords]
    if needs_gpu and not _has_cuda():
        for item in needs_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none found"))
    if needs_camera and not _has_realsense():
        for item in needs_camera:
            item.add_marker(pytest.mark.skip(reason="needs a connected RealSense camera; none found"))
