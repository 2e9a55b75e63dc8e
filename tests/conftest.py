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
