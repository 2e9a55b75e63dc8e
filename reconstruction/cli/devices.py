"""`mocap devices`: the connected RealSense cameras and their state (``capture.describe``)."""
from __future__ import annotations

HELP = "list the connected cameras (serial, model, firmware, USB, sync) and check a capture config"


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="also check this capture config against the cameras (modes, bandwidth)")
    parser.add_argument("--modes", action="store_true", help="list every stream mode each camera offers")
    parser.add_argument("--simulate", type=int, metavar="N", help="list N simulated cameras instead")


def run(args) -> int:
    from capture.describe import describe_devices

    if args.simulate:
        from capture.simulated_cameras import placeholder_backend

        backend = placeholder_backend(args.simulate)
    else:
        from capture.devices import RealSenseBackend

        backend = RealSenseBackend()
    lines = describe_devices(backend, args.modes, args.config)
    if not lines:
        print("no camera found (plug a RealSense camera into a USB 3 port; `mocap capture --simulate N` needs none)")
        return 1
    print("\n".join(lines))
    return 0
