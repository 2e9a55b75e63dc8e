"""Fixtures of the kinematics tests: the Pose2Sim OpenSim set-up from ../shared laid out as
`mocap models fetch opensim-pose2sim` leaves it, and OpenSim itself (skipped where absent)."""
import pytest

from tests.conftest import SHARED


@pytest.fixture
def opensim():
    return pytest.importorskip("opensim", reason="OpenSim is not installed (pip install 'mocap[opensim]')")


@pytest.fixture
def setup_weights(tmp_path):
    """A weights folder whose opensim-pose2sim/ is ../shared's Pose2Sim set-up."""
    source = SHARED / "data" / "opensim" / "pose2sim_setup"
    if not source.is_dir():
        pytest.skip(f"the Pose2Sim OpenSim set-up is not at {source} (see the README: tests with real data need it)")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "opensim-pose2sim").symlink_to(source, target_is_directory=True)
    return weights
