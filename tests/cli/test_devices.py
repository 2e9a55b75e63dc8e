"""`mocap devices`: lists the (simulated) cameras."""
from reconstruction.cli import main


def test_devices_lists_simulated(capsys):
    assert main(["devices", "--simulate", "2"]) == 0
    out = capsys.readouterr().out
    assert "900000000000" in out and "900000000001" in out and "USB 3.2" in out
