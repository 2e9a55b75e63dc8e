"""capture/capture_config.py: defaults, per-serial overrides, bad input named by file and key."""
import dataclasses

import pytest

from capture.capture_config import (
    CameraConfig, CaptureConfig, DEFAULT_CONFIG, capture_config_from_mapping, load_capture_config,
)
from capture.errors import ConfigError, DeviceError


def test_shipped_yaml_matches_dataclass_defaults():
    cfg = load_capture_config(DEFAULT_CONFIG)
    default = CaptureConfig()
    # the file only sets visual_preset differently from the dataclass (None = keep the device's)
    assert dataclasses.replace(cfg.defaults, visual_preset=None) == default.defaults
    assert cfg.defaults.visual_preset == "high_accuracy"
    assert cfg.sync == default.sync and cfg.queues == default.queues and cfg.simulation == default.simulation
    assert cfg.usb3_budget_mb_s == default.usb3_budget_mb_s and cfg.cameras == {}


def test_override_changes_only_given_keys_and_numeric_serials_become_text():
    cfg = capture_config_from_mapping(
        {"defaults": {"fps": 15, "resolution": [848, 480]}, "cameras": {123456789012: {"exposure_us": 8000}}},
        "cap.yaml",
    )
    cam = cfg.for_camera("123456789012")
    assert cam.exposure_us == 8000.0 and cam.fps == 15 and cam.resolution == (848, 480)
    other = cfg.for_camera("999")
    assert other.exposure_us is None and other.fps == 15
    assert isinstance(cam.resolution, tuple) and all(isinstance(v, int) for v in cam.resolution)


def test_unknown_override_key_names_file_and_camera():
    with pytest.raises(ConfigError, match=r"cap.yaml: cameras.42: unknown key 'fsp'"):
        capture_config_from_mapping({"cameras": {"42": {"fsp": 30}}}, "cap.yaml")


@pytest.mark.parametrize("defaults, message", [
    ({"streams": ["depth", "thermal"]}, "unknown stream 'thermal'"),
    ({"resolution": [640, 0]}, "positive"),
    ({"visual_preset": "shiny"}, "visual_preset 'shiny'"),
    ({"fps": "fast"}, "expected an integer"),
])
def test_bad_values_are_refused(defaults, message):
    with pytest.raises(ConfigError, match=message):
        capture_config_from_mapping({"defaults": defaults}, "cap.yaml")


def test_serial_not_connected_lists_connected():
    cfg = capture_config_from_mapping({"cameras": {"111": {"fps": 15}}}, "cap.yaml")
    with pytest.raises(DeviceError, match=r"camera 111 is not connected \(connected: 222, 333\)"):
        cfg.check_serials(["222", "333"])
    cfg.check_serials(["111", "222"])  # connected: fine


def test_simulation_stop_needs_both_keys():
    with pytest.raises(ConfigError, match="stop_camera and stop_at_s"):
        capture_config_from_mapping({"simulation": {"stop_camera": 1}}, "cap.yaml")


def test_capture_section_wrapper_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("capture:\n  defaults: {fps: 6}\n")
    assert load_capture_config(path).for_camera("1").fps == 6
    assert CameraConfig().width == 640
