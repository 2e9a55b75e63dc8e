"""Atomic file writes: write a temp file beside the target, then rename it over the target.

A crash or an error mid-write leaves the previous file (or nothing) in place, never a half file.
The lowest package holds this so that every package writes files the same way.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _default_mode() -> int:
    # mkstemp creates 0600 files; finished files get the usual 0666 & ~umask like open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class PendingFile:
    """A temporary file beside ``path`` (``tmp``), for writers that keep a file open across calls (a
    video writer): :meth:`commit` gives it the usual permissions and renames it over ``path``,
    :meth:`discard` removes it. ``suffix`` (default: the target's) matters to writers that pick a
    format by extension (OpenCV, ezc3d)."""

    def __init__(self, path: str | Path, suffix: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.",
                                   suffix=self.path.suffix if suffix is None else suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        os.chmod(self.tmp, _default_mode())
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed over ``path``,
    when it fails it is removed (:class:`PendingFile`)."""
    pending = PendingFile(path, suffix)
    try:
        yield pending.tmp
        pending.commit()
    except BaseException:
        pending.discard()
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` (LF line ends) atomically; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
