"""Calibration errors."""
from capture.errors import MocapError


class CalibrationError(MocapError):
    """Calibration cannot be computed from the given input (too few detections, disconnected rig, ...)."""
