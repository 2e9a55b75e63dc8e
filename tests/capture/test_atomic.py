"""capture/atomic.py: atomic writes keep the previous file on failure; finished files get the umask mode."""
import os
import stat

import pytest

from capture.atomic import PendingFile, atomic_path, atomic_write_text


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


def test_pending_file_commit_gives_the_umask_mode_and_replaces_the_target(tmp_path):
    target = tmp_path / "videos" / "overlay.mp4"
    old = os.umask(0o027)
    try:
        pending = PendingFile(target)
        assert pending.tmp.parent == target.parent and pending.tmp.suffix == ".mp4"  # the writer sees the format
        assert pending.tmp.name.startswith(".overlay.") and not target.exists()
        assert stat.S_IMODE(pending.tmp.stat().st_mode) == 0o600  # private while being written
        pending.tmp.write_bytes(b"frames")
        assert pending.commit() == target
    finally:
        os.umask(old)
    assert target.read_bytes() == b"frames"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0666 & ~umask, as open() would have made it
    assert sorted(p.name for p in target.parent.iterdir()) == ["overlay.mp4"]
    again = PendingFile(target, suffix=".avi")
    assert again.tmp.suffix == ".avi"
    again.tmp.write_bytes(b"new")
    again.commit()
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == ["overlay.mp4"]


def test_pending_file_discard_leaves_nothing(tmp_path):
    pending = PendingFile(tmp_path / "new.c3d")
    pending.tmp.write_bytes(b"half")
    pending.discard()
    assert list(tmp_path.iterdir()) == []
    pending.discard()  # twice: nothing to remove, no error
    target = tmp_path / "kept.npz"
    target.write_bytes(b"previous")
    other = PendingFile(target)
    other.tmp.write_bytes(b"half")
    other.discard()
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.npz"]
