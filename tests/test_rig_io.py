"""Rig file I/O: round trips through every format, format detection, bad input, Qualisys import."""
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


def test_our_yaml_accepts_rvec_units_and_yaml11_exponents(tmp_path, rig4):
    cam = rig4[1]
    text = f"""
units: mm
world: lab, Z up
cameras:
  - name: a
    image_size: [640, 480]
    K: {cam.K.tolist()}
    dist: [1e-3, 0, 0, 0]
    rvec: {cam.rvec.tolist()}
    t: {(cam.t * 1000).tolist()}
"""
    path = tmp_path / "rig.yaml"
    path.write_text(text)
    back = load_rig(path)
    np.testing.assert_allclose(back["a"].R, cam.R, atol=1e-12)
    np.testing.assert_allclose(back["a"].t, cam.t, atol=1e-12)
    assert back["a"].dist[0] == 1e-3


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


def test_fisheye_toml_is_refused(tmp_path, rig4):
    path = tmp_path / "calib.toml"
    save_rig(rig4, path)
    path.write_text(path.read_text().replace("fisheye = false", "fisheye = true", 1))
    with pytest.raises(FileFormatError, match="fisheye"):
        load_rig(path)


def test_easymocap_reads_rodrigues_only_and_rejects_bad_names(tmp_path, rig4):
    folder = tmp_path / "emc"
    save_rig(rig4, folder, "easymocap")
    extri = folder / "extri.yml"
    text = extri.read_text()
    # drop every Rot_ node: the reader must fall back to the Rodrigues R_ nodes
    out, skip = [], False
    for line in text.splitlines():
        if line.startswith("Rot_"):
            skip = True
            continue
        if skip and line.startswith("   "):
            continue
        skip = False
        out.append(line)
    extri.write_text("\n".join(out) + "\n")
    assert "Rot_" not in extri.read_text()
    back = load_rig(folder / "intri.yml")
    for a, b in zip(rig4, back):
        np.testing.assert_allclose(b.R, a.R, atol=1e-12)
    bad = Rig((replace(rig4[0], name="cam 0"),))
    with pytest.raises(FileFormatError, match="cannot be used in EasyMocap keys"):
        save_rig(bad, tmp_path / "bad", "easymocap")


def test_unknown_format_and_import_only(tmp_path, rig4):
    with pytest.raises(FileFormatError, match="unknown rig format 'bvh'"):
        load_rig(tmp_path / "x.yaml", "bvh")
    with pytest.raises(FileFormatError, match="import-only"):
        save_rig(rig4, tmp_path / "x.qca.txt")
    with pytest.raises(FileFormatError, match="file not found"):
        load_rig(tmp_path / "missing.toml")


# --- Qualisys -----------------------------------------------------------------------------------

def _qca_text(rig: Rig, drop: str | None = None) -> str:
    """A Qualisys export of ``rig``, written from the documented conventions (1/64 px, mm, camera
    pose with y up / z backwards); ``drop`` removes one intrinsic attribute of the second camera."""
    cams = []
    for i, c in enumerate(rig):
        rows = np.diag([1.0, -1.0, -1.0]) @ c.R
        pos = c.center * 1000.0
        r = " ".join(f'r{a + 1}{b + 1}="{float(rows[a, b])!r}"' for a in range(3) for b in range(3))
        w, h = c.image_size
        d = np.zeros(5)
        d[: c.dist.size] = c.dist[:5]
        intr = {
            "focalLengthU": c.K[0, 0] * 64, "focalLengthV": c.K[1, 1] * 64,
            "centerPointU": c.K[0, 2] * 64, "centerPointV": c.K[1, 2] * 64,
            "radialDistortion1": d[0], "radialDistortion2": d[1], "radialDistortion3": d[4],
            "tangentalDistortion1": d[2], "tangentalDistortion2": d[3],
        }
        if drop and i == 1:
            intr.pop(drop)
        attrs = " ".join(f'{k}="{float(v)!r}"' for k, v in intr.items())
        cams.append(
            f'<camera active="1" serial="{c.name}">'
            f'<fov_video bottom="{h - 1}" left="0" right="{w - 1}" top="0"/>'
            f'<transform {r} x="{float(pos[0])!r}" y="{float(pos[1])!r}" z="{float(pos[2])!r}"/>'
            f"<intrinsic {attrs}/></camera>"
        )
    return "<?xml version='1.0' encoding='ASCII'?>\n<calibration><cameras>" + "".join(cams) + "</cameras></calibration>"


def test_qca_import_recovers_a_known_rig(tmp_path, rig4):
    path = tmp_path / "lab.qca.txt"
    path.write_text(_qca_text(rig4))
    back = load_rig(path)
    assert back.names == rig4.names
    for a, b in zip(rig4, back):
        np.testing.assert_allclose(b.K, a.K, atol=1e-9)
        np.testing.assert_allclose(b.R, a.R, atol=1e-12)
        np.testing.assert_allclose(b.t, a.t, atol=1e-12)
        np.testing.assert_allclose(b.dist, a.dist, atol=0)  # distortion is NOT divided by 64
        assert b.image_size == a.image_size


def test_qca_camera_missing_intrinsics_names_file_camera_field(tmp_path, rig4):
    path = tmp_path / "lab.qca.txt"
    path.write_text(_qca_text(rig4, drop="focalLengthU"))
    with pytest.raises(FileFormatError, match=r"lab\.qca\.txt: camera 'cam1': <intrinsic> has no 'focalLengthU'"):
        load_rig(path)
    text = _qca_text(rig4)
    start = text.index("<intrinsic", text.index('serial="cam2"'))
    path.write_text(text[:start] + text[text.index("/>", start) + 2:])
    with pytest.raises(FileFormatError, match=r"camera 'cam2' has no <intrinsic>"):
        load_rig(path)


def test_qca_demo_matches_pose2sim_conversion(shared_dir):
    calib = shared_dir / "data/pose2sim_demo/S00_Demo_Session/S00_Calibration"
    qca = load_rig(calib / "Calib.qca.txt")
    p2s = load_rig(calib / "Calib_qualisys.toml")
    assert qca.names == ["cam_01", "cam_02", "cam_03", "cam_04"]
    for a, b in zip(qca, p2s):
        assert a.image_size == b.image_size == (1088, 1920)
        np.testing.assert_allclose(a.K, b.K, atol=1e-6)
        np.testing.assert_allclose(a.R, b.R, atol=1e-6)
        np.testing.assert_allclose(a.t, b.t, atol=1e-6)
        # Pose2Sim divided the (unscaled) distortion by 64; ours is the file's value
        np.testing.assert_allclose(a.dist[:4], b.dist * 64, rtol=1e-9)
    # Qualisys lab frame is Z up: every camera hangs 1.6-2.2 m above the floor, looking down
    assert np.all((qca.centers[:, 2] > 1.5) & (qca.centers[:, 2] < 2.3))
    assert np.all(np.stack([c.R[2] for c in qca])[:, 2] < 0)


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
