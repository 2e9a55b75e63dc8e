"""EasyMocap calibration: ``intri.yml`` and ``extri.yml`` in one folder (OpenCV FileStorage).

    intri.yml: names: ["01", "02"]; K_01 (3x3); dist_01 (1x5); H_01, W_01 (image size, optional)
    extri.yml: names: [...]; R_01 (3x1 Rodrigues); Rot_01 (3x3); T_01 (3x1, metres)

World -> camera, like ours. EasyMocap's own reader expects 4 or 5 distortion coefficients; we write
what the camera has. Without H_/W_ the image size is taken as twice the principal point (warned).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from calibration.camera import Rig
from calibration.formats._common import make_camera, make_rig
from calibration.formats._filestorage import check_key, open_read, open_write, read_matrix, read_strings, write_strings
from capture.errors import FileFormatError

log = logging.getLogger(__name__)


def folder_of(path: Path) -> Path:
    """The calibration folder for ``path`` (the folder itself, or the folder of intri.yml/extri.yml)."""
    path = Path(path)
    return path.parent if path.name in ("intri.yml", "extri.yml", "intri.yaml", "extri.yaml") else path


def _file(folder: Path, stem: str) -> Path:
    for suffix in (".yml", ".yaml"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise FileFormatError(f"{folder}: no {stem}.yml (an EasyMocap calibration folder holds intri.yml and extri.yml)")


def load(path: Path) -> Rig:
    folder = folder_of(path)
    intri_path, extri_path = _file(folder, "intri"), _file(folder, "extri")
    intri, extri = open_read(intri_path), open_read(extri_path)
    try:
        names = read_strings(intri.getNode("names"))
        if not names:
            raise FileFormatError(f"{intri_path}: no 'names' list of cameras")
        cameras = []
        for name in names:
            K = read_matrix(intri.getNode(f"K_{name}"), intri_path, name, f"K_{name}")
            dist = read_matrix(intri.getNode(f"dist_{name}"), intri_path, name, f"dist_{name}", required=False)
            h, w = intri.getNode(f"H_{name}"), intri.getNode(f"W_{name}")
            if h.empty() or h.isNone() or w.empty() or w.isNone():
                size = (round(2 * K[0, 2]), round(2 * K[1, 2]))
                log.warning("%s: camera %r has no W_/H_; image size taken as %s from the principal point",
                            intri_path, name, size)
            else:
                size = (w.real(), h.real())
            R = read_matrix(extri.getNode(f"Rot_{name}"), extri_path, name, f"Rot_{name}", required=False)
            rvec = None
            if R is None:
                rvec = read_matrix(extri.getNode(f"R_{name}"), extri_path, name, f"R_{name} or Rot_{name}")
            t = read_matrix(extri.getNode(f"T_{name}"), extri_path, name, f"T_{name}")
            cameras.append(make_camera(intri_path, name, size, K, dist, R=R, rvec=rvec, t=t))
    finally:
        intri.release()
        extri.release()
    return make_rig(folder, cameras)


def save(rig: Rig, path: Path) -> None:
    folder = folder_of(path)
    for c in rig:
        check_key(c.name, folder, "EasyMocap")
    folder.mkdir(parents=True, exist_ok=True)
    with open_write(folder / "intri.yml") as fs:
        write_strings(fs, "names", rig.names)
        for c in rig:
            fs.write(f"K_{c.name}", c.K)
            fs.write(f"dist_{c.name}", c.dist.reshape(1, -1) if c.dist.size else np.zeros((1, 5)))
            fs.write(f"H_{c.name}", int(c.height))
            fs.write(f"W_{c.name}", int(c.width))
    with open_write(folder / "extri.yml") as fs:
        write_strings(fs, "names", rig.names)
        for c in rig:
            fs.write(f"R_{c.name}", c.rvec.reshape(3, 1))
            fs.write(f"Rot_{c.name}", c.R)
            fs.write(f"T_{c.name}", np.asarray(c.t).reshape(3, 1))
