"""Board corner detection (OpenCV >= 4.7 / 5.x API), with a per-image cache.

ChArUco: ``cv2.aruco.CharucoDetector.detectBoard`` (the free functions of OpenCV < 4.7 are gone
in 5.x). Checkerboard: ``cv2.findChessboardCorners`` refined by ``cv2.cornerSubPix``, falling back
to ``cv2.findChessboardCornersSB``. A detection is corner ids (N,) into
:meth:`BoardSpec.object_points` and their pixels (N, 2) in the distorted image.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.board import BoardSpec
from capture.atomic import atomic_path
from capture.errors import FileFormatError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True, eq=False)
class Detection:
    """Board corners found in one image.

    Attributes:
        ids: (N,) int corner ids into ``BoardSpec.object_points()``; empty when nothing was found.
        corners: (N, 2) pixels in the distorted image.
        image_size: (width, height) of the image.
    """

    ids: np.ndarray
    corners: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self):
        ids = np.asarray(self.ids, dtype=np.int64).ravel()
        corners = np.asarray(self.corners, dtype=np.float64).reshape(-1, 2)
        if ids.shape[0] != corners.shape[0]:
            raise ValueError(f"ids ({ids.shape[0]}) and corners ({corners.shape[0]}) differ in length")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "corners", corners)
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def found(self) -> bool:
        return len(self) > 0

    def object_points(self, spec: BoardSpec) -> np.ndarray:
        """(N, 3) board-frame positions of the detected corners."""
        return spec.object_points()[self.ids]


def empty_detection(image_size: tuple[int, int]) -> Detection:
    return Detection(np.zeros(0, np.int64), np.zeros((0, 2)), image_size)


class BoardDetector:
    """Detects one board spec in grey or BGR images; holds the OpenCV detector between calls."""

    def __init__(self, spec: BoardSpec, min_corners: int = 6):
        self.spec = spec
        self.min_corners = min_corners
        self._charuco = None
        if spec.type == "charuco":
            import cv2

            self._board = spec.cv_board()
            params = cv2.aruco.CharucoParameters()
            params.minMarkers = 2
            detector_params = cv2.aruco.DetectorParameters()
            # Sub-pixel marker corners help the charuco interpolation on small boards.
            detector_params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
            self._charuco = cv2.aruco.CharucoDetector(self._board, params, detector_params)

    def detect(self, image: np.ndarray) -> Detection:
        import cv2

        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        size = (image.shape[1], image.shape[0])
        if self.spec.type == "charuco":
            corners, ids, _, _ = self._charuco.detectBoard(image)
            if ids is None or len(ids) < self.min_corners:
                return empty_detection(size)
            ids = ids.ravel()
            # Collinear corners (one row) give no pose and no intrinsics.
            if self._board.checkCharucoCornersCollinear(ids.reshape(-1, 1).astype(np.int32)):
                return empty_detection(size)
            order = np.argsort(ids)
            return Detection(ids[order], corners.reshape(-1, 2)[order], size)
        return self._detect_checkerboard(image, size)

    def _detect_checkerboard(self, image: np.ndarray, size: tuple[int, int]) -> Detection:
        import cv2

        pattern = tuple(self.spec.corner_grid)
        # Search on a copy of at most ~1000 px (the corner search is slow on large images), then
        # refine the corners on the full-resolution image.
        scale = min(1.0, 1000.0 / max(image.shape))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
        ok, corners = cv2.findChessboardCorners(small, pattern, flags=flags)
        if not ok:
            ok, corners = cv2.findChessboardCornersSB(small, pattern, flags=cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY)
        if not ok or corners is None:
            return empty_detection(size)
        pts = corners.reshape(-1, 2).astype(np.float64)
        # Pixel centres: x_full + 0.5 = (x_small + 0.5) / scale.
        pts = (pts + 0.5) / scale - 0.5
        # Search window about a third of the smallest spacing between neighbouring corners.
        spacing = np.min(np.linalg.norm(np.diff(pts.reshape(pattern[1], pattern[0], 2), axis=1), axis=-1))
        win = int(np.clip(spacing / 3, 2, 15))
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        refined = cv2.cornerSubPix(image, pts.astype(np.float32).reshape(-1, 1, 2), (win, win), (-1, -1), criteria)
        return Detection(np.arange(self.spec.num_corners), refined.reshape(-1, 2), size)


def read_grey(path: str | Path) -> np.ndarray:
    """Grey image (H, W) uint8; FileFormatError names the file when it cannot be decoded."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileFormatError(f"{path}: not a readable image (OpenCV could not decode it)")
    return image


def _cache_file(cache_dir: Path, path: Path, spec: BoardSpec) -> Path:
    import hashlib

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{spec.digest()}|{CACHE_VERSION}"
    return cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npz"


def detect_image_file(path: str | Path, spec: BoardSpec, cache_dir: str | Path | None = None,
                      detector: BoardDetector | None = None) -> Detection:
    """Detect the board in one image file; with ``cache_dir`` the result is cached, keyed by the
    file's path, modification time and size and the board spec."""
    path = Path(path)
    cache = None
    if cache_dir is not None:
        cache = _cache_file(Path(cache_dir), path, spec)
        if cache.is_file():
            try:
                with np.load(cache) as data:
                    return Detection(data["ids"], data["corners"], tuple(data["image_size"]))
            except (OSError, KeyError, ValueError):
                log.warning("ignoring unreadable detection cache %s", cache)
    detection = (detector or BoardDetector(spec)).detect(read_grey(path))
    if cache is not None:
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=detection.ids, corners=detection.corners, image_size=np.array(detection.image_size))
    return detection
