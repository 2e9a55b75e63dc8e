"""reconstruction/depth/offsets.py: joint centres behind the visible surface: the table, estimated from data."""
import numpy as np

from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.offsets import apply_offsets, estimate_joint_offsets, joint_offsets


def test_offsets_table_and_estimation(rig4, rng):
    offsets = joint_offsets(["LHip", "nose", "unknown_joint"], DepthFusionConfig(default_offset_m=0.03))
    np.testing.assert_allclose(offsets, [0.08, 0.01, 0.03])
    custom = joint_offsets(["left_hip"], DepthFusionConfig(joint_offsets_m={"LHip": 0.11}))
    np.testing.assert_allclose(custom, [0.11])
    # Estimated from data: the surface is 5 cm in front of the true joints along each ray.
    T, J = 30, 3
    truth = rng.uniform(-0.4, 0.4, (T, J, 3)) + [0, 0, 1.0]
    true_off = np.array([0.05, 0.02, 0.08])
    centers = rig4.centers
    ray = truth[:, None] - centers[None, :, None]
    unit = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    surface = truth[:, None] - true_off[None, None, :, None] * unit
    est = estimate_joint_offsets(surface, truth, rig4, np.ones((T, J), bool), np.zeros(J))
    np.testing.assert_allclose(est, true_off, atol=1e-9)
    np.testing.assert_allclose(apply_offsets(surface, rig4, est), np.broadcast_to(truth[:, None], surface.shape))
    # Too few samples: the prior stays.
    few = estimate_joint_offsets(surface[:2], truth[:2], rig4, np.ones((2, J), bool), np.full(J, 0.04))
    np.testing.assert_allclose(few, 0.04)
