"""Shared fixtures: a seeded synthetic rig, a rendered RGB-D walk, a faked 2D-model registry, and the
../shared data folder (skipped where absent). Shared plain helpers are in tests/support.py."""
from pathlib import Path

import numpy as np
import pytest

from reconstruction.simulation.rigs import ring_rig

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def rig4():
    """Four D435-like cameras on a 3 m ring at 1.5 m, looking at (0, 0, 1), mild distortion."""
    return ring_rig(4, dist=(-0.05, 0.02, 0.001, -0.0005, 0.0))


@pytest.fixture(scope="session")
def rgbd_walk_scene():
    """4 simulated D435 cameras (640x480), 1 s of procedural walking at 30 fps, rendered in memory
    once per test session: {"rig", "skeleton" (coco17), "xyz" (30, 17, 3) truth, "depth" (30, 4, 480,
    640) uint16 mm, "det" (30, 4, 17, 3) simulated detections (3 px, 10 % outliers, occlusion)}."""
    from reconstruction.simulation.detections import simulate_detections
    from reconstruction.simulation.render import CameraRenderer, RenderSettings, body_model
    from reconstruction.simulation.session import SimulationConfig, build_rig, simulated_motion
    from reconstruction.skeleton import load_skeleton

    T = 30
    sim = SimulationConfig(cameras=4, seconds=T / 30)
    skeleton = load_skeleton("coco17")
    rig = build_rig(sim)
    rng = np.random.default_rng(7)
    xyz = simulated_motion(sim, skeleton, rng)
    renderers = [CameraRenderer(c, body_model(skeleton), RenderSettings()) for c in rig]
    depth = np.zeros((T, 4, 480, 640), np.uint16)
    true2d = np.zeros((T, 4, skeleton.num_joints, 3))
    for t in range(T):  # fixture rendering
        for v, r in enumerate(renderers):
            frame = r.render(xyz[t], rng)
            depth[t, v], true2d[t, v] = frame.depth, frame.keypoints2d
    det = simulate_detections(true2d, 3.0, 0.1, True, np.random.default_rng(1),
                              image_sizes=[c.image_size for c in rig])
    return {"rig": rig, "skeleton": skeleton, "xyz": xyz, "depth": depth, "det": det}


@pytest.fixture
def fake_models(monkeypatch):
    """A registry with one small fake model whose checksums we know (its files' content)."""
    import hashlib

    from reconstruction.models2d import registry

    content = {"fake.json": b'{"format": "graph-model"}', "fake.bin": bytes(range(256)) * 4}
    spec = registry.ModelSpec("fake-model", "movenet-singlepose",
                              tuple((f, hashlib.sha256(c).hexdigest()) for f, c in content.items()), "a fake")
    monkeypatch.setattr(registry, "MODELS", {"fake-model": spec})
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache-for-tests")
    return content


@pytest.fixture
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (see the README: tests with real data need it)")
    return SHARED


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU tests
        return False


def _has_realsense() -> bool:
    try:
        import pyrealsense2 as rs

        return len(rs.context().query_devices()) > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked `camera` or `gpu` skip, with the reason, where there is no such hardware."""
    needs_gpu = [i for i in items if "gpu" in i.keywords]
    needs_camera = [i for i in items if "camera" in i.keywords]
    if needs_gpu and not _has_cuda():
        for item in needs_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none found"))
    if needs_camera and not _has_realsense():
        for item in needs_camera:
            item.add_marker(pytest.mark.skip(reason="needs a connected RealSense camera; none found"))
