"""calibration/formats/toml_rig.py: Pose2Sim/anipose TOML rigs: bad files named, fisheye refused, aniposelib's dump."""
import numpy as np
import pytest

from calibration.rig_io import load_rig, save_rig
from capture.errors import FileFormatError


def test_truncated_toml_names_the_file(tmp_path, rig4):
    path = tmp_path / "calib.toml"
    save_rig(rig4, path)
    text = path.read_text()
    path.write_text(text[: text.index("matrix") + 20])  # cut inside an array
    with pytest.raises(FileFormatError, match=r"calib\.toml.*not valid TOML.*truncated"):
        load_rig(path)


def test_toml_camera_without_matrix_names_file_camera_and_field(tmp_path, rig4):
    path = tmp_path / "calib.toml"
    save_rig(rig4, path)
    lines = [line for line in path.read_text().splitlines() if not line.startswith("matrix")]
    path.write_text("\n".join(lines))
    with pytest.raises(FileFormatError, match=r"calib\.toml: camera 'cam0'.*has no 'matrix'"):
        load_rig(path)


def test_fisheye_toml_is_refused(tmp_path, rig4):
    path = tmp_path / "calib.toml"
    save_rig(rig4, path)
    path.write_text(path.read_text().replace("fisheye = false", "fisheye = true", 1))
    with pytest.raises(FileFormatError, match="fisheye"):
        load_rig(path)


def test_reads_anipose_dump_style(tmp_path, rig4):
    """aniposelib's CameraGroup.dump writes trailing commas, `cam_<i>` tables and 5 distortions."""
    lines = []
    for i, c in enumerate(rig4):
        fmt = lambda values: "[ " + ", ".join(repr(float(v)) for v in values) + ",]"  # noqa: E731
        lines += [
            f"[cam_{i}]", f'name = "{c.name}"', f"size = [ {c.width}, {c.height},]",
            "matrix = [ " + ", ".join(fmt(row) for row in c.K) + ",]",
            f"distortions = {fmt(c.dist)}", f"rotation = {fmt(c.rvec)}", f"translation = {fmt(c.t)}", "",
        ]
    lines += ["[metadata]", "adjusted = true", "error = 0.31"]
    path = tmp_path / "calibration.toml"
    path.write_text("\n".join(lines) + "\n")
    back = load_rig(path)
    assert back.names == rig4.names
    np.testing.assert_allclose(back.projection_matrices, rig4.projection_matrices, atol=1e-9)
