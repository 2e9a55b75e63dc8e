"""calibration/formats/qca.py: Qualisys .qca.txt import: a known rig, missing fields named, the Pose2Sim demo."""
import numpy as np
import pytest

from calibration.camera import Rig
from calibration.rig_io import load_rig
from capture.errors import FileFormatError


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
