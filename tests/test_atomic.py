import os
import stat

import pytest

from capture.atomic import atomic_path, atomic_write_text


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "rig.yaml"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.yaml"]


def test_written_file_has_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a" / "b.txt", "x\n")
    finally:
        os.umask(old)
    assert path.read_text() == "x\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
