"""Calibration: camera and rig types, rig file I/O, board detection, intrinsics and extrinsics."""
from calibration.camera import Camera, Rig

__all__ = ["Camera", "Rig"]
