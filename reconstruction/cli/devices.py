"""`mocap devices`: the connected RealSense cameras and their state."""
from __future__ import annotations

HELP = "list the connected cameras (serial, model, firmware, USB, sync) and check a capture config"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="also check this capture config against the cameras (modes, bandwidth)")
    parser.add_argument("--modes", action="store_true", help="list every stream mode each camera offers")
    parser.add_argument("--simulate", type=int, metavar="N", help="list N simulated cameras instead")


def run(args) -> int:
    import numpy as np

    from capture.capture_config import load_capture_config
    from capture.devices import bandwidth_mb_s, discover, plan_capture

    if args.simulate:
        from capture.recording_writer import StreamIntrinsics
        from capture.simulated_cameras import SimulatedBackend

        intr = [StreamIntrinsics(640, 480, 615.0, 615.0, 320.0, 240.0)] * args.simulate
        blank = np.zeros((args.simulate, 1, 480, 640), np.uint16)
        backend = SimulatedBackend(None, blank, intr)
    else:
        from capture.devices import RealSenseBackend

        backend = RealSenseBackend()
    infos = discover(backend)
    if not infos:
        print("no camera found (plug a RealSense camera into a USB 3 port; `mocap capture --simulate N` needs none)")
        return 1
    for info in infos:
        usb = info.usb_type or "?"
        state = "USB 2: LOW BANDWIDTH, use USB 3" if info.usb2 else "ok"
        print(f"{info.serial}  {info.name}  firmware {info.firmware or '?'}  USB {usb}  controller {info.controller}  "
              f"sync {'yes' if info.sync_capable else 'no'}  {state}")
        if args.modes:
            for stream in ("depth", "color", "infrared"):
                modes = info.supported(stream)
                if modes:
                    print(f"    {stream}: " + ", ".join(str(m) for m in modes))
    if args.config:
        config = load_capture_config(args.config)
        plan = plan_capture(backend, config)
        for cam in plan.cameras:
            print(f"{cam.info.serial}: {'+'.join(cam.config.streams)} {cam.config.width}x{cam.config.height}@"
                  f"{cam.config.fps}, {bandwidth_mb_s(cam.config):.0f} MB/s, sync {cam.role}")
        for controller, need in plan.bandwidth_mb_s.items():
            print(f"USB controller {controller}: {need:.0f} MB/s of {config.usb3_budget_mb_s:.0f}")
        print(f"{args.config}: ok")
    return 0
