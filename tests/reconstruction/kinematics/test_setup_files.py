"""reconstruction/kinematics/setup_files.py: fetching Pose2Sim's set-up out of its wheel (a wheel
built here from ../shared, as pip would leave it), checksums, finding and resolving the files."""
import zipfile

import pytest

from capture.errors import ConfigError
from reconstruction.kinematics import setup_files
from reconstruction.kinematics.setup_files import OpenSimSetupError, fetch_setup, find_setup_dir, resolve_setup


def _fake_download(source, tamper=None):
    def download(workdir):
        wheel = workdir / "pose2sim-0.10.49-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for path in sorted(source.iterdir()):
                data = path.read_bytes()
                if path.name == tamper:
                    data += b"<!-- changed -->"
                zf.writestr(setup_files.WHEEL_DIR + path.name, data)
            zf.writestr(setup_files.WHEEL_DIR + "Geometry/bone.vtp", b"mesh")
            zf.writestr("Pose2Sim/common.py", b"code that must not be extracted")
    return download


def test_fetch_extracts_the_checked_folder_only(shared_dir, tmp_path):
    source = shared_dir / "data/opensim/pose2sim_setup"
    dest = fetch_setup(tmp_path / "w" / setup_files.SETUP_NAME, download=_fake_download(source))
    assert (dest / "Model_Pose2Sim_simple.osim").read_bytes() == (source / "Model_Pose2Sim_simple.osim").read_bytes()
    assert (dest / "Geometry" / "bone.vtp").is_file() and not (dest / "common.py").exists()
    assert find_setup_dir(tmp_path / "w") == dest
    # present and intact: nothing is downloaded again
    assert fetch_setup(dest, download=lambda workdir: pytest.fail("downloaded again")) == dest


def test_fetch_refuses_a_changed_file(shared_dir, tmp_path):
    source = shared_dir / "data/opensim/pose2sim_setup"
    with pytest.raises(OpenSimSetupError, match="Markers_Coco17.xml does not match its SHA-256"):
        fetch_setup(tmp_path / "d", download=_fake_download(source, tamper="Markers_Coco17.xml"))
    assert not (tmp_path / "d" / "Markers_Coco17.xml").exists()


def test_fetch_without_network_says_how_by_hand(tmp_path):
    def fail(workdir):
        raise OSError("no network")
    with pytest.raises(OpenSimSetupError, match=r"pip download pose2sim==0.10.49 --no-deps"):
        fetch_setup(tmp_path / "d", download=fail)


def test_resolve_names_and_files(setup_weights, tmp_path):
    setup = resolve_setup("pose2sim-simple", "body25b", None, weights_dir=setup_weights)
    assert setup.model.name == "Model_Pose2Sim_simple.osim" and setup.markers.name == "Markers_Body25b.xml"
    assert setup.scaling.name == "Scaling_Setup_Pose2Sim_Body25b.xml" and setup.ik.name == "IK_Setup_Pose2Sim_Body25b.xml"
    assert resolve_setup("pose2sim", "blazepose", None, scaling="none", weights_dir=setup_weights).scaling is None
    own = tmp_path / "mine.osim"
    own.write_text("<OpenSimDocument/>")
    assert resolve_setup(str(own), "coco17", None, weights_dir=setup_weights).model == own
    with pytest.raises(ConfigError, match="no Pose2Sim marker set for 'mpii16'"):
        resolve_setup("pose2sim", "mpii16", None, weights_dir=setup_weights)
    with pytest.raises(ConfigError, match="--model missing.osim: file not found"):
        resolve_setup("missing.osim", "coco17", None, weights_dir=setup_weights)


def test_missing_setup_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.delenv("MOCAP_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(OpenSimSetupError, match="mocap models fetch opensim-pose2sim"):
        resolve_setup("pose2sim", "coco17", None, weights_dir=tmp_path)
