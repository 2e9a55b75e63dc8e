"""calibration/formats/easymocap.py: EasyMocap intri.yml/extri.yml (Rodrigues-only files, bad names)."""
from dataclasses import replace

import numpy as np
import pytest

from calibration.camera import Rig
from calibration.rig_io import load_rig, save_rig
from capture.errors import FileFormatError


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
