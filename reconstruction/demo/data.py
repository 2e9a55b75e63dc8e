"""The demo's real data: ``../shared`` beside the repository when it is there, else what a user
would fetch (the ``pose2sim==0.10.49`` wheel from PyPI, unpacked into the user cache)."""
from __future__ import annotations

from pathlib import Path

POSE2SIM_WHEEL = "pose2sim==0.10.49"


def shared_dir() -> Path | None:
    """``../shared`` beside the repository, or None."""
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    return shared if shared.is_dir() else None


def pose2sim_demo(say=print) -> tuple[list[Path], Path, Path | None]:
    """The 4 videos, ``Calib.qca.txt`` and Pose2Sim's filtered 3D (TRC, or None) of the Pose2Sim demo."""
    shared = shared_dir()
    if shared:
        root = shared / "data" / "pose2sim_demo"
        videos = sorted((root / "videos_BalancingTrial").glob("cam0*.mp4"))
        calib = root / "S00_Demo_Session" / "S00_Calibration" / "Calib.qca.txt"
        trc = root / "S00_Demo_Session" / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "pose-3d" / \
            "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
        if len(videos) == 4 and calib.is_file():
            return videos, calib, trc if trc.is_file() else None
    return _from_wheel(say)


def _from_wheel(say) -> tuple[list[Path], Path, Path | None]:
    import subprocess
    import sys
    import zipfile

    from capture.errors import MocapError
    from reconstruction.models2d.registry import user_cache_dir

    cache = user_cache_dir().parent / "pose2sim_demo"
    marker = cache / "Demo_SinglePerson"
    if not marker.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        say(f"fetching the Pose2Sim demo data: pip download {POSE2SIM_WHEEL} --no-deps -> {cache}")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", POSE2SIM_WHEEL, "--no-deps", "-d", str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wheels = sorted(cache.glob("pose2sim-0.10.49*.whl"))
        if proc.returncode != 0 or not wheels:
            raise MocapError(f"could not download {POSE2SIM_WHEEL} with pip ({proc.stderr.strip().splitlines()[-1:]});"
                             " connect to PyPI or put the Pose2Sim demo in ../shared/data/pose2sim_demo")
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in zf.namelist():
                if "Demo_SinglePerson/" in name and (name.endswith(".mp4") and "/videos/" in name
                                                     or name.endswith("Calib.qca.txt") or name.endswith(".trc")):
                    target = marker / name.split("Demo_SinglePerson/", 1)[1]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(name))
    videos = sorted(marker.rglob("videos/*.mp4"))
    calib = next(iter(sorted(marker.rglob("Calib.qca.txt"))), None)
    trc = next(iter(sorted(p for p in marker.rglob("*.trc") if "filt_butterworth.trc" in p.name)), None)
    if len(videos) < 2 or calib is None:
        raise MocapError(f"{marker}: the Pose2Sim wheel did not hold the demo videos and Calib.qca.txt")
    return videos, calib, trc
