"""Domain errors shared by every package.

They live in the lowest package (capture) so that calibration and reconstruction can raise
them without a cycle. Messages name the file, the camera and the field, and say what to do;
only the CLI turns them into an exit code.
"""


class MocapError(Exception):
    """Base of every error the CLI reports as one message without a traceback."""


class ConfigError(MocapError):
    """A configuration file or value is unreadable or invalid."""


class FileFormatError(MocapError):
    """A data file (rig, keypoints, 3D) is malformed or misses a field."""


class RecordingError(MocapError):
    """A recording is corrupt, truncated or lacks a stream."""


class DeviceError(MocapError):
    """A camera is missing, busy or cannot run the requested configuration."""
