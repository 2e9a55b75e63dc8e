"""calibration/rig_io.py: rig files through every writable format (round trips), format detection, bad input."""
from dataclasses import replace

import numpy as np
import pytest

from calibration.camera import Rig
from calibration.rig_io import detect_format, load_rig, save_rig
from capture.errors import FileFormatError


WRITABLE = ["yaml", "toml", "opencv", "easymocap"]
TARGET = {"yaml": "rig.yaml", "toml": "calib.toml", "opencv": "rig_cv.yml", "easymocap": "easymocap"}
KEEPS_SERIAL = {"yaml", "toml", "opencv"}


def _rig_with(rig: Rig, dists) -> Rig:
    return Rig(tuple(replace(c, dist=np.asarray(d, dtype=float)) for c, d in zip(rig, dists)))


@pytest.fixture
def awkward_rig(rig4, rng):
    """rig4 with random intrinsics, 4/5/8-coefficient distortions and values that are not short decimals."""
    cams = []
    for i, c in enumerate(rig4):
        K = c.K.copy()
        K[0, 0] += rng.uniform(-5, 5) / 3
        K[1, 1] += rng.uniform(-5, 5) / 7
        K[:2, 2] += rng.uniform(-3, 3, size=2) / 11
        dist = rng.normal(scale=0.05, size=(4, 5, 8, 5)[i]) / 3
        cams.append(replace(c, K=K, dist=dist, t=c.t + rng.normal(scale=1e-3, size=3) / 3))
    return Rig(tuple(cams))


@pytest.mark.parametrize("fmt", WRITABLE)
def test_round_trip_keeps_K_R_t_and_distortion(tmp_path, awkward_rig, fmt):
    path = save_rig(awkward_rig, tmp_path / TARGET[fmt], fmt)
    back = load_rig(path)  # format detected from the name / header
    assert back.names == awkward_rig.names
    for a, b in zip(awkward_rig, back):
        assert b.image_size == a.image_size
        np.testing.assert_allclose(b.K, a.K, rtol=0, atol=1e-9)
        np.testing.assert_allclose(b.R, a.R, rtol=0, atol=1e-9)
        np.testing.assert_allclose(b.t, a.t, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(b.dist, a.dist)  # every format holds 4, 5 or 8 coefficients exactly
        if fmt in KEEPS_SERIAL:
            assert b.serial == a.serial


@pytest.mark.parametrize("fmt", WRITABLE)
def test_round_trip_projects_the_same(tmp_path, rig4, rng, fmt):
    X = rng.uniform(-0.5, 0.5, size=(20, 3)) + [0, 0, 1]
    back = load_rig(save_rig(rig4, tmp_path / TARGET[fmt], fmt), fmt)
    np.testing.assert_allclose(back.project(X), rig4.project(X), atol=1e-9)


def test_detect_format_by_name_and_header(tmp_path, rig4):
    save_rig(rig4, tmp_path / "cv.yaml", "opencv")
    save_rig(rig4, tmp_path / "ours.yaml")
    assert detect_format(tmp_path / "cv.yaml") == "opencv"
    assert (tmp_path / "cv.yaml").read_text().startswith("%YAML")
    assert detect_format(tmp_path / "ours.yaml") == "yaml"
    assert detect_format("x.toml") == "toml"
    assert detect_format("Calib.qca.txt") == "qca"
    assert detect_format(tmp_path / "intri.yml") == "easymocap"
    save_rig(rig4, tmp_path / "no_extension", "toml")
    assert detect_format(tmp_path / "no_extension") == "toml"


def test_yaml_and_opencv_camera_without_matrix(tmp_path, rig4):
    import yaml

    path = tmp_path / "rig.yaml"
    save_rig(rig4, path)
    data = yaml.safe_load(path.read_text())
    del data["cameras"][2]["K"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(FileFormatError, match=r"rig\.yaml: camera 'cam2' has no 'K'"):
        load_rig(path)
    cv_path = tmp_path / "cv.yml"
    save_rig(rig4, cv_path, "opencv")
    text = cv_path.read_text()
    start = text.index("camera_1:")
    k_start = text.index("   K: !!opencv-matrix", start)
    k_end = text.index("   dist:", k_start)
    cv_path.write_text(text[:k_start] + text[k_end:])
    with pytest.raises(FileFormatError, match=r"cv\.yml: camera 'cam1' has no 'K'"):
        load_rig(cv_path)


def test_unknown_format_and_import_only(tmp_path, rig4):
    with pytest.raises(FileFormatError, match="unknown rig format 'bvh'"):
        load_rig(tmp_path / "x.yaml", "bvh")
    with pytest.raises(FileFormatError, match="import-only"):
        save_rig(rig4, tmp_path / "x.qca.txt")
    with pytest.raises(FileFormatError, match="file not found"):
        load_rig(tmp_path / "missing.toml")
