"""OpenSim storage files: ``.mot`` (joint angles, ``inDegrees=yes``) and ``.sto`` (any table over time).

Shapes: ``T`` rows (frames), ``C`` columns. The text layout is OpenSim's own::

    Coordinates                 <- the table's name
    version=1
    nRows=100
    nColumns=41                 <- counting the time column
    inDegrees=yes
    endheader
    time	pelvis_tilt	...        <- tab-separated names, then one row of numbers per frame

Rotational columns of a ``.mot`` are degrees where ``inDegrees=yes``, translations metres.
Missing values are written ``NaN`` (OpenSim writes and reads them so).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.atomic import atomic_path
from capture.errors import FileFormatError


@dataclass(frozen=True, eq=False)
class Storage:
    """A table over time.

    Attributes:
        time: (T,) seconds.
        values: (T, C) one column per name.
        names: (C,) column names (without ``time``).
        in_degrees: whether rotations are in degrees.
        name: the table's name (first line), e.g. ``Coordinates``.
    """

    time: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]
    in_degrees: bool = True
    name: str = "Coordinates"

    def __post_init__(self):
        time = np.asarray(self.time, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float64)
        names = tuple(str(n) for n in self.names)
        if values.ndim != 2 or values.shape != (time.size, len(names)):
            raise ValueError(f"values must be (T, C) = ({time.size}, {len(names)}), got {values.shape}")
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", names)

    def column(self, name: str) -> np.ndarray:
        """(T,) one column by name."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no column {name!r} (columns: {', '.join(self.names)})") from None


def write_mot(path: str | Path, storage: Storage) -> Path:
    """Write a ``.mot`` / ``.sto`` file (temporary file, then renamed)."""
    path = Path(path)
    T, C = storage.values.shape
    header = [storage.name, "version=1", f"nRows={T}", f"nColumns={C + 1}",
              f"inDegrees={'yes' if storage.in_degrees else 'no'}", "endheader", "\t".join(("time",) + storage.names)]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(header) + "\n")
        table = np.column_stack([storage.time, storage.values])
        for row in table:
            f.write("\t".join("NaN" if not np.isfinite(v) else f"{v:.10g}" for v in row) + "\n")
    return path


def read_mot(path: str | Path) -> Storage:
    """Read an OpenSim ``.mot`` / ``.sto`` file (version 1 text)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise FileFormatError(f"{path}: file not found") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
    except StopIteration:
        raise FileFormatError(f"{path}: no 'endheader' line; not an OpenSim .mot/.sto file") from None
    header = {k.strip().lower(): v.strip() for k, _, v in (line.partition("=") for line in lines[:end]) if _}
    if end + 1 >= len(lines):
        raise FileFormatError(f"{path}: no column names after 'endheader'")
    names = lines[end + 1].split("\t") if "\t" in lines[end + 1] else lines[end + 1].split()
    names = [n.strip() for n in names]
    if not names or names[0].lower() != "time":
        raise FileFormatError(f"{path}: the first column must be 'time', got {names[:1]}")
    rows = []
    for number, line in enumerate(lines[end + 2:], start=end + 3):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != len(names):
            raise FileFormatError(f"{path}: line {number} has {len(fields)} values, expected {len(names)}")
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise FileFormatError(f"{path}: line {number} holds a value that is not a number") from None
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return Storage(time=table[:, 0], values=table[:, 1:], names=tuple(names[1:]),
                   in_degrees=header.get("indegrees", "no").lower() == "yes", name=lines[0].strip() if end else "")
