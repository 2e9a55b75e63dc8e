"""Calibration boards: the YAML spec, the board's corner positions and a printable image.

Board frame (OpenCV's ChArUco convention, used for checkerboards too): origin at the outer top-left
corner of the printed board, x along the columns (to the right on the print), y along the rows
(down on the print), z into the board, metres. Corner ``id = row * columns + column`` over the inner
corners; ``N`` is the number of inner corners.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from capture.config import load_section, to_plain

BoardType = Literal["charuco", "checkerboard"]


@dataclass(frozen=True)
class BoardSpec:
    """A calibration board as written in ``configs/boards/*.yaml``.

    Attributes:
        type: "charuco" or "checkerboard".
        squares: charuco: squares along x (columns) and y (rows).
        inner_corners: checkerboard: inner corners along x (columns) and y (rows).
        square_length: side of one square, metres.
        marker_length: side of one ArUco marker, metres (charuco only).
        dictionary: any ``cv2.aruco`` predefined dictionary name (charuco only).
        legacy_pattern: charuco boards printed with OpenCV < 4.6 and an even number of rows.
    """

    type: BoardType = "charuco"
    squares: tuple[int, ...] = (7, 5)
    inner_corners: tuple[int, ...] = (7, 4)
    square_length: float = 0.04
    marker_length: float = 0.03
    dictionary: str = "DICT_5X5_100"
    legacy_pattern: bool = False

    def __post_init__(self):
        object.__setattr__(self, "squares", tuple(int(v) for v in self.squares))
        object.__setattr__(self, "inner_corners", tuple(int(v) for v in self.inner_corners))
        if self.square_length <= 0:
            raise ValueError(f"square_length must be > 0 metres, got {self.square_length}")
        if self.type == "charuco":
            if len(self.squares) != 2 or min(self.squares) < 2:
                raise ValueError(f"squares must be two counts >= 2 (columns, rows), got {list(self.squares)}")
            if not 0 < self.marker_length < self.square_length:
                raise ValueError(
                    f"marker_length must be > 0 and smaller than square_length ({self.square_length}), "
                    f"got {self.marker_length}"
                )
            import cv2

            code = getattr(cv2.aruco, self.dictionary, None)
            if not self.dictionary.startswith("DICT_") or not isinstance(code, int):
                raise ValueError(f"dictionary {self.dictionary!r} is not a cv2.aruco predefined dictionary (e.g. DICT_5X5_100)")
            size = cv2.aruco.getPredefinedDictionary(code).bytesList.shape[0]
            needed = (self.squares[0] * self.squares[1]) // 2
            if needed > size:
                raise ValueError(f"a {self.squares[0]}x{self.squares[1]} board needs {needed} markers, {self.dictionary} has {size}")
        elif self.type == "checkerboard":
            if len(self.inner_corners) != 2 or min(self.inner_corners) < 2:
                raise ValueError(f"inner_corners must be two counts >= 2 (columns, rows), got {list(self.inner_corners)}")
        else:
            raise ValueError(f"type must be 'charuco' or 'checkerboard', got {self.type!r}")

    @property
    def corner_grid(self) -> tuple[int, int]:
        """Inner corners (columns, rows)."""
        if self.type == "charuco":
            return self.squares[0] - 1, self.squares[1] - 1
        return self.inner_corners

    @property
    def square_grid(self) -> tuple[int, int]:
        """Printed squares (columns, rows)."""
        cols, rows = self.corner_grid
        return cols + 1, rows + 1

    @property
    def num_corners(self) -> int:
        cols, rows = self.corner_grid
        return cols * rows

    @property
    def size_m(self) -> tuple[float, float]:
        """Printed board (width, height) in metres, without margin."""
        cols, rows = self.square_grid
        return cols * self.square_length, rows * self.square_length

    def object_points(self) -> np.ndarray:
        """(N, 3) inner-corner positions in the board frame, metres; row ``id`` is corner ``id``."""
        cols, rows = self.corner_grid
        r, c = np.divmod(np.arange(cols * rows), cols)
        return np.stack([(c + 1) * self.square_length, (r + 1) * self.square_length, np.zeros(cols * rows)], axis=1)

    def cv_board(self):
        """The ``cv2.aruco.CharucoBoard`` of a charuco spec (None for a checkerboard)."""
        if self.type != "charuco":
            return None
        import cv2

        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        board = cv2.aruco.CharucoBoard(self.squares, self.square_length, self.marker_length, dictionary)
        board.setLegacyPattern(bool(self.legacy_pattern))
        return board

    def digest(self) -> str:
        """Short hash of the spec, for detection caches."""
        text = json.dumps(to_plain(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        if self.type == "charuco":
            return (f"charuco {self.squares[0]}x{self.squares[1]} squares of {self.square_length * 1000:g} mm, "
                    f"markers {self.marker_length * 1000:g} mm, {self.dictionary}"
                    + (", legacy pattern" if self.legacy_pattern else ""))
        return (f"checkerboard {self.inner_corners[0]}x{self.inner_corners[1]} inner corners, "
                f"squares of {self.square_length * 1000:g} mm")


def load_board(path: str | Path) -> BoardSpec:
    """Read a board YAML; unknown keys and bad values raise ConfigError naming the file and key."""
    return load_section(BoardSpec, path)


def render_board(spec: BoardSpec, px_per_m: float | None = None, dpi: float | None = None, margin_m: float = 0.0) -> np.ndarray:
    """Image (H, W) uint8 of the board at about ``px_per_m`` pixels per metre (or ``dpi``), with a
    white margin of ``margin_m`` on every side.

    A square is a whole number of pixels, ``S = round(square_length * px_per_m)``, so the exact
    scale is ``S / square_length`` (see :func:`board_scale`); board point (x, y) metres is at pixel
    ``(x * scale + margin_px - 0.5, y * scale + margin_px - 0.5)`` with pixel centres at integers.
    """
    import cv2

    square_px, margin_px = board_scale(spec, px_per_m, dpi, margin_m)[1:]
    cols, rows = spec.square_grid
    # OpenCV 5.1's generateImage fails on some sizes that are not whole squares, and below ~12 px
    # per square the markers are unreadable: draw at >= 16 px per square, then shrink.
    draw_px = max(square_px, 16)
    if spec.type == "charuco":
        board_img = spec.cv_board().generateImage((cols * draw_px, rows * draw_px), marginSize=0, borderBits=1)
    else:
        # The top-left square is black, as in OpenCV's pattern.
        v, u = np.mgrid[0:rows * draw_px, 0:cols * draw_px]
        board_img = np.where((u // draw_px + v // draw_px) % 2 == 0, 0, 255).astype(np.uint8)
    if draw_px != square_px:
        board_img = cv2.resize(board_img, (cols * square_px, rows * square_px), interpolation=cv2.INTER_AREA)
    if margin_px:
        board_img = np.pad(board_img, margin_px, constant_values=255)
    return board_img


def board_scale(spec: BoardSpec, px_per_m: float | None = None, dpi: float | None = None,
                margin_m: float = 0.0) -> tuple[float, int, int]:
    """(exact pixels per metre, pixels per square, margin pixels) that :func:`render_board` uses."""
    if (px_per_m is None) == (dpi is None):
        raise ValueError("give exactly one of px_per_m or dpi")
    if dpi is not None:
        px_per_m = dpi / 0.0254
    square_px = max(int(round(spec.square_length * px_per_m)), 2)
    scale = square_px / spec.square_length
    return scale, square_px, int(round(margin_m * scale))


def _pdf_bytes(image: np.ndarray, width_pt: float, height_pt: float) -> bytes:
    """A one-page PDF showing the grey ``image`` (H, W) uint8 over the whole page of the given size."""
    import zlib

    h, w = image.shape
    data = zlib.compress(np.ascontiguousarray(image, dtype=np.uint8).tobytes(), 6)
    content = f"q {width_pt:.4f} 0 0 {height_pt:.4f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt:.4f} {height_pt:.4f}] "
         "/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>").encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        (f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
         f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n").encode() + data + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def save_board(spec: BoardSpec, path: str | Path, dpi: float = 300.0, margin_m: float = 0.01) -> Path:
    """Write the board as .pdf (one page the size of the board plus margins: print at 100 %,
    "actual size") or .png (``dpi`` pixels per inch). Returns the path. Written to a temp file
    then renamed."""
    import cv2

    from capture.atomic import atomic_write_bytes
    from capture.errors import ConfigError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise ConfigError(f"{path}: board output must end in .pdf or .png")
    image = render_board(spec, dpi=dpi, margin_m=margin_m)
    scale, square_px, margin_px = board_scale(spec, dpi=dpi, margin_m=margin_m)
    if suffix == ".pdf":
        # Page size from the board's metric size, not the pixel count: true scale whatever the rounding.
        cols, rows = spec.square_grid
        margin = margin_px / scale
        width_pt = (cols * spec.square_length + 2 * margin) / 0.0254 * 72
        height_pt = (rows * spec.square_length + 2 * margin) / 0.0254 * 72
        data = _pdf_bytes(image, width_pt, height_pt)
    else:
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise ConfigError(f"{path}: could not encode the PNG")
        data = buf.tobytes()
    return atomic_write_bytes(path, data)
