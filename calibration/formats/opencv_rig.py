"""OpenCV FileStorage YAML rig (written and read with cv2.FileStorage).

    %YAML:1.0
    ---
    units: m
    num_cameras: 2
    camera_0:
       name: cam0
       serial: "123456789012"
       image_size: [640, 480]        # width, height
       K: !!opencv-matrix  (3x3)
       dist: !!opencv-matrix (1xk, OpenCV order)
       R: !!opencv-matrix  (3x3, world -> camera)
       t: !!opencv-matrix  (3x1, metres)
    camera_1: ...

One node per camera (``camera_<i>``, in rig order), because FileStorage keys cannot hold every
camera name. OpenCV writes doubles with 17 significant digits: the round trip is exact.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Rig
from calibration.formats._common import make_camera, make_rig
from calibration.formats._filestorage import open_read, open_write, read_matrix
from capture.errors import FileFormatError


def load(path: Path) -> Rig:
    fs = open_read(path)
    try:
        keys = [k for k in fs.root().keys() if k.startswith("camera_")]
        keys.sort(key=lambda k: int(k.split("_", 1)[1]) if k.split("_", 1)[1].isdigit() else 1 << 30)
        units = fs.getNode("units").string() or "m"
        if units != "m":
            raise FileFormatError(f"{path}: 'units' is {units!r}; only metres ('m') are supported")
        cameras = []
        for key in keys:
            node = fs.getNode(key)
            name = node.getNode("name").string() or key
            size_node = node.getNode("image_size")
            if size_node.empty() or size_node.isNone():
                raise FileFormatError(f"{path}: camera {name!r} has no 'image_size'")
            size = [size_node.at(i).real() for i in range(size_node.size())]
            cameras.append(
                make_camera(
                    path, name, size,
                    read_matrix(node.getNode("K"), path, name, "K"),
                    read_matrix(node.getNode("dist"), path, name, "dist", required=False),
                    R=read_matrix(node.getNode("R"), path, name, "R"),
                    t=read_matrix(node.getNode("t"), path, name, "t"),
                    serial=node.getNode("serial").string(),
                )
            )
    finally:
        fs.release()
    return make_rig(path, cameras)


def save(rig: Rig, path: Path) -> None:
    import cv2

    with open_write(path) as fs:
        fs.write("units", "m")
        fs.write("num_cameras", len(rig))
        for i, c in enumerate(rig):
            fs.startWriteStruct(f"camera_{i}", cv2.FileNode_MAP)
            fs.write("name", c.name)
            fs.write("serial", c.serial)
            fs.startWriteStruct("image_size", cv2.FileNode_SEQ | cv2.FileNode_FLOW)
            fs.write("", int(c.image_size[0]))
            fs.write("", int(c.image_size[1]))
            fs.endWriteStruct()
            fs.write("K", c.K)
            if c.dist.size:
                fs.write("dist", c.dist.reshape(1, -1))
            fs.write("R", c.R)
            fs.write("t", np.asarray(c.t).reshape(3, 1))
            fs.endWriteStruct()
