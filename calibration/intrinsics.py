"""Intrinsics of one camera from board detections: ``cv2.calibrateCamera`` with iterative rejection
of outlier images (per-image RMS reprojection error)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from calibration.board import BoardSpec
from calibration.errors import CalibrationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntrinsicsConfig:
    """How intrinsics are estimated from a board.

    Attributes:
        min_corners: images with fewer detected corners are not used.
        min_images: fewest usable images for a calibration.
        max_image_rms: an image whose RMS reprojection error (px) exceeds this is rejected ...
        outlier_factor: ... and so is one above ``outlier_factor`` x the median image RMS (when also
            above ``min_outlier_rms``), one image at a time, worst first, then recalibrate.
        min_outlier_rms: images below this RMS (px) are never rejected as outliers.
        fix_k3: estimate (k1, k2, p1, p2) only; k3 needs many well-spread views.
        zero_tangent: fix p1 = p2 = 0.
        fix_principal_point: keep (cx, cy) at the image centre.
        fix_aspect_ratio: fx = fy.
    """

    min_corners: int = 6
    min_images: int = 3
    max_image_rms: float = 3.0
    outlier_factor: float = 3.0
    min_outlier_rms: float = 0.5
    fix_k3: bool = True
    zero_tangent: bool = False
    fix_principal_point: bool = False
    fix_aspect_ratio: bool = False

    def flags(self) -> int:
        import cv2

        flags = 0
        if self.fix_k3:
            flags |= cv2.CALIB_FIX_K3
        if self.zero_tangent:
            flags |= cv2.CALIB_ZERO_TANGENT_DIST
        if self.fix_principal_point:
            flags |= cv2.CALIB_FIX_PRINCIPAL_POINT
        if self.fix_aspect_ratio:
            flags |= cv2.CALIB_FIX_ASPECT_RATIO
        return flags


@dataclass(frozen=True, eq=False)
class IntrinsicsResult:
    """Intrinsics of one camera.

    Attributes:
        K: (3, 3); dist: (5,) OpenCV order.
        rms: RMS reprojection error (px) over the used images.
        image_rms: image name -> RMS (px) of every used image.
        used: names of the images used.
        rejected: (image name, reason) of every image left out.
        rvecs, tvecs: (U, 3) board -> camera pose of each used image (same order as ``used``).
    """

    K: np.ndarray
    dist: np.ndarray
    rms: float
    image_rms: dict
    used: tuple
    rejected: tuple
    rvecs: np.ndarray
    tvecs: np.ndarray


def initial_camera_matrix(image_size: tuple[int, int], fov_deg: float = 60.0) -> np.ndarray:
    w, h = image_size
    f = 0.5 * max(w, h) / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def calibrate_intrinsics(
    detections: dict,
    spec: BoardSpec,
    image_size: tuple[int, int],
    config: IntrinsicsConfig = IntrinsicsConfig(),
    camera: str = "camera",
) -> IntrinsicsResult:
    """Calibrate one camera from ``detections`` {image name: Detection}.

    Raises CalibrationError naming the camera when fewer than ``config.min_images`` images remain.
    """
    import cv2

    object_all = spec.object_points()
    rejected: list[tuple[str, str]] = []
    usable = {}
    for name, det in detections.items():
        if det is None or not det.found:
            rejected.append((name, "no board found"))
        elif len(det) < config.min_corners:
            rejected.append((name, f"only {len(det)} corners (< {config.min_corners})"))
        elif tuple(det.image_size) != tuple(image_size):
            rejected.append((name, f"image size {det.image_size[0]}x{det.image_size[1]} differs from {image_size[0]}x{image_size[1]}"))
        else:
            usable[name] = det
    flags = config.flags() | cv2.CALIB_USE_INTRINSIC_GUESS
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    while True:
        names = list(usable)
        if len(names) < config.min_images:
            raise CalibrationError(
                f"camera {camera!r}: only {len(names)} usable board images (need {config.min_images}); "
                f"{len(rejected)} rejected ({_summary(rejected)}). Record more views of the board "
                "filling different parts of the image at different tilts."
            )
        obj = [object_all[usable[n].ids].astype(np.float32) for n in names]
        img = [usable[n].corners.astype(np.float32).reshape(-1, 1, 2) for n in names]
        K0 = initial_camera_matrix(image_size)
        try:
            rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, tuple(image_size), K0, np.zeros(5), flags=flags, criteria=criteria)
        except cv2.error as exc:
            raise CalibrationError(f"camera {camera!r}: OpenCV calibrateCamera failed ({exc.err}); check the board spec") from None
        rvecs = np.asarray(rvecs, dtype=np.float64).reshape(-1, 3)
        tvecs = np.asarray(tvecs, dtype=np.float64).reshape(-1, 3)
        per_image = {}
        for n, o, i, rv, tv in zip(names, obj, img, rvecs, tvecs):
            proj, _ = cv2.projectPoints(o.astype(np.float64), rv, tv, K, dist)
            per_image[n] = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - i.reshape(-1, 2)) ** 2, axis=1))))
        values = np.array(list(per_image.values()))
        median = float(np.median(values))
        worst = names[int(np.argmax(values))]
        worst_rms = per_image[worst]
        reason = None
        if worst_rms > config.max_image_rms:
            reason = f"reprojection RMS {worst_rms:.2f} px > max_image_rms {config.max_image_rms:g} px"
        elif worst_rms > max(config.outlier_factor * median, config.min_outlier_rms):
            reason = f"outlier: reprojection RMS {worst_rms:.2f} px > {config.outlier_factor:g} x median {median:.2f} px"
        if reason is None or len(names) <= config.min_images:
            break
        log.info("camera %s: rejecting %s (%s)", camera, worst, reason)
        rejected.append((worst, reason))
        del usable[worst]
    return IntrinsicsResult(
        K=np.asarray(K, dtype=np.float64), dist=np.asarray(dist, dtype=np.float64).ravel()[:5], rms=float(rms),
        image_rms=per_image, used=tuple(names), rejected=tuple(rejected), rvecs=rvecs, tvecs=tvecs,
    )


def _summary(rejected: list[tuple[str, str]]) -> str:
    if not rejected:
        return "none"
    reasons: dict[str, int] = {}
    for _, reason in rejected:
        key = reason.split(":")[0].split(" (")[0] if not reason.startswith("only") else "too few corners"
        reasons[key] = reasons.get(key, 0) + 1
    return ", ".join(f"{n} x {r}" for r, n in reasons.items())
