"""calibration/formats/mocap_yaml.py: our rig YAML (rvec, units, YAML 1.1 exponents)."""
import numpy as np

from calibration.rig_io import load_rig


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
