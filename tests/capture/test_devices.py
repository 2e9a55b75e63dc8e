"""capture/devices.py: device planning without hardware: modes, serials, sync roles, USB bandwidth
(simulated/fake devices)."""
import logging

import numpy as np
import pytest

from capture.capture_config import CameraConfig, SyncConfig, capture_config_from_mapping
from capture.devices import (
    DeviceBackend, DeviceInfo, StreamMode, bandwidth_mb_s, check_modes, plan_capture, sync_roles,
)
from capture.errors import DeviceError
from capture.intrinsics import StreamIntrinsics
from capture.simulated_cameras import D435_MODES, SimulatedBackend


PORT = "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-{}/2-{}:1.0/video4linux/video0"


class FakeBackend(DeviceBackend):
    def __init__(self, infos):
        self.infos = infos

    def devices(self):
        return list(self.infos)

    def open(self, info, config, role, sync):  # pragma: no cover - planning only
        raise NotImplementedError


def _sim_backend(n=3):
    intr = [StreamIntrinsics(640, 480, 615.0, 615.0, 320.0, 240.0)] * n
    return SimulatedBackend(None, np.zeros((n, 1, 480, 640), np.uint16), intr)


def _info(serial, usb="3.2", port=1):
    return DeviceInfo(serial, "Intel RealSense D435", "5.16.0.1", usb, PORT.format(port, port), D435_MODES)


def test_plan_roles_one_master_rest_slaves():
    plan = plan_capture(_sim_backend(3), capture_config_from_mapping({}))
    assert [c.role for c in plan.cameras] == ["master", "slave", "slave"]
    plan = plan_capture(_sim_backend(3), capture_config_from_mapping({"sync": {"master": 900000000002}}))
    assert {c.info.serial: c.role for c in plan.cameras}["900000000002"] == "master"
    assert sorted(c.role for c in plan.cameras) == ["master", "slave", "slave"]
    assert sync_roles(["a", "b"], SyncConfig(mode="none")) == {"a": "none", "b": "none"}
    assert sync_roles(["a"], SyncConfig()) == {"a": "none"}


def test_config_naming_a_disconnected_serial_lists_connected():
    cfg = capture_config_from_mapping({"cameras": {"123": {"fps": 15}}}, "capture.yaml")
    with pytest.raises(DeviceError, match=r"capture.yaml: camera 123 is not connected \(connected: "
                                          r"900000000000, 900000000001\)"):
        plan_capture(_sim_backend(2), cfg)


@pytest.mark.parametrize("resolution, fps, stream", [((1280, 800), 30, "depth"), ((640, 480), 25, "depth"),
                                                     ((1920, 1080), 60, "color")])
def test_unsupported_mode_lists_supported(resolution, fps, stream):
    cfg = capture_config_from_mapping({"defaults": {"resolution": list(resolution), "fps": fps,
                                                    "streams": [stream]}}, "capture.yaml")
    with pytest.raises(DeviceError) as err:
        plan_capture(_sim_backend(1), cfg)
    msg = str(err.value)
    assert f"cannot stream {stream} at {resolution[0]}x{resolution[1]}@{fps}" in msg
    assert f"supported {stream} modes:" in msg and "640x480@30" in msg and "1280x720@30" in msg


def test_missing_stream_refused():
    info = DeviceInfo("1", "depth only", modes=(StreamMode("depth", 640, 480, 30),))
    with pytest.raises(DeviceError, match="has no color stream"):
        check_modes(info, CameraConfig())


def test_bandwidth_per_stream_and_controller():
    assert bandwidth_mb_s(CameraConfig()) == pytest.approx(640 * 480 * 30 * (2 + 2) / 1e6)
    assert bandwidth_mb_s(CameraConfig(streams=("infrared",))) == pytest.approx(640 * 480 * 30 / 1e6)
    hd = {"defaults": {"resolution": [1280, 720], "fps": 30}}  # 110.6 MB/s per camera
    same = FakeBackend([_info(str(s), port=s) for s in range(1, 5)])  # 4 on controller 0000:00:14.0
    with pytest.raises(DeviceError, match=r"controller 0000:00:14.0 need 442 MB/s, more than its 400 MB/s"):
        plan_capture(same, capture_config_from_mapping(hd))
    three = FakeBackend([_info(str(s), port=s) for s in range(1, 4)])
    plan = plan_capture(three, capture_config_from_mapping(hd))
    assert plan.bandwidth_mb_s["0000:00:14.0"] == pytest.approx(3 * 1280 * 720 * 30 * 4 / 1e6)


def test_usb2_warns_and_has_small_budget(caplog):
    backend = FakeBackend([_info("1", usb="2.1")])
    with caplog.at_level(logging.WARNING):
        plan = plan_capture(backend, capture_config_from_mapping({"defaults": {"resolution": [424, 240], "fps": 15}}))
    assert plan.warnings and "USB 2.1" in plan.warnings[0] and "USB 2.1" in caplog.text
    with pytest.raises(DeviceError, match="more than its 35 MB/s"):
        plan_capture(backend, capture_config_from_mapping({}))  # 640x480@30 depth+color = 37 MB/s


def test_controller_from_port():
    assert _info("1").controller == "0000:00:14.0"
    assert DeviceInfo("2", "x", physical_port="\\\\?\\usb#vid_8086").controller == "default"


def test_no_camera_is_a_clear_error():
    with pytest.raises(DeviceError, match="no camera found"):
        plan_capture(FakeBackend([]), capture_config_from_mapping({}))


@pytest.mark.shared
def test_realsense_discovery_on_a_real_d435_recording(shared_dir):
    """The RealSense backend's discovery, run on a real D435's recording loaded as a device."""
    from capture.devices import RealSenseBackend

    backend = RealSenseBackend()
    device = backend._ctx.load_device(str(shared_dir / "data/realsense/librealsense_single_depth_color_640x480.bag"))
    (info,) = [i for i in backend.devices() if i.serial == "728612070259"]
    assert info.name == "Intel RealSense D435" and info.usb_type == "3.2" and not info.usb2
    assert {(m.stream, str(m)) for m in info.modes} == {("depth", "640x480@6"), ("color", "640x480@6")}
    del device  # the loaded device stays listed only while referenced
    check_modes(info, CameraConfig(fps=6))
    with pytest.raises(DeviceError, match=r"cannot stream depth at 640x480@30; supported depth modes: 640x480@6"):
        check_modes(info, CameraConfig())


class _FakeSensor:
    def __init__(self, name, depth):
        self.name, self.depth, self.options = name, depth, {}

    def is_depth_sensor(self):
        return self.depth

    def supports(self, key):
        return True

    def get_info(self, key):
        return self.name

    def set_option(self, option, value):
        self.options[option] = value


class _FakeDevice:
    def __init__(self):
        self.sensors = [_FakeSensor("Stereo Module", True), _FakeSensor("RGB Camera", False)]

    def get_info(self, key):
        return "123"

    def query_sensors(self):
        return self.sensors


@pytest.mark.parametrize("role, mode", [("master", 1.0), ("slave", 2.0), ("none", 0.0)])
def test_apply_options_sets_sync_global_time_and_exposure(role, mode):
    import pyrealsense2 as rs

    from capture.devices import apply_options

    dev = _FakeDevice()
    cfg = CameraConfig(exposure_us=8000, color_exposure_us=10000, emitter=False, visual_preset="high_accuracy")
    apply_options(dev, cfg, role, SyncConfig())
    depth, color = (s.options for s in dev.sensors)
    assert depth[rs.option.inter_cam_sync_mode] == mode and rs.option.inter_cam_sync_mode not in color
    assert depth[rs.option.global_time_enabled] == 1.0 and color[rs.option.global_time_enabled] == 1.0
    assert depth[rs.option.emitter_enabled] == 0.0 and depth[rs.option.enable_auto_exposure] == 0.0
    assert depth[rs.option.exposure] == 8000.0 and color[rs.option.exposure] == 100.0  # color unit: 100 us
    assert depth[rs.option.visual_preset] == float(int(rs.rs400_visual_preset.high_accuracy))
    assert color[rs.option.auto_exposure_priority] == 0.0  # the frame rate holds
