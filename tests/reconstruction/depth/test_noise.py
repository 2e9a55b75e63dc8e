"""reconstruction/depth/noise.py: the depth noise measured from the data: frame noise apart from slow bias."""
import numpy as np
import pytest


def test_measure_depth_noise_separates_frame_noise_from_slow_bias(rig4):
    # Joints moving smoothly; depth points along each view's ray with white noise of 8 mm (joint 0)
    # and 30 mm (joint 1) while the model says 16 mm, and for joint 1 also a slow error (20 mm
    # sine over 3 s: sigma 14 mm). The triangulation has 5 mm white error, which it reports.
    from reconstruction.depth.noise import measure_depth_noise

    rng = np.random.default_rng(3)
    T, V, J = 600, len(rig4), 2
    t = np.arange(T) / 30.0
    truth = np.stack([np.stack([0.3 * np.sin(0.5 * t + k), 0.3 * np.cos(0.4 * t + k), 1.0 + 0.2 * np.sin(0.3 * t)], -1)
                      for k in range(J)], axis=1)  # (T, J, 3)
    ray = truth[:, None] - rig4.centers[None, :, None, :]
    u = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    white = np.array([0.008, 0.030])
    slow = np.stack([np.zeros(T), 0.02 * np.sin(2 * np.pi * t / 3.0)], axis=-1)  # (T, J)
    along = rng.normal(size=(T, V, J)) * white + slow[:, None, :]
    points = truth[:, None] + u * along[..., None]
    tri_xyz = truth + rng.normal(scale=0.005, size=truth.shape)
    tri_var = np.full((T, V, J), 0.005**2)
    white_var = np.full((T, V, J), 0.016**2)
    reliable = np.ones((T, J), dtype=bool)
    scale, bias = measure_depth_noise(points, white_var, tri_xyz, tri_var, reliable, rig4)
    np.testing.assert_allclose(scale, white / 0.016, rtol=0.12)
    assert bias[0] < 0.004  # the floor (3 mm): no slow error
    assert bias[1] == pytest.approx(0.02 / np.sqrt(2), rel=0.3)
    # too few samples: the model stands
    few = reliable & (np.arange(T) < 3)[:, None]
    points_few = np.where((np.arange(T) < 3)[:, None, None, None], points, np.nan)
    scale_few, bias_few = measure_depth_noise(points_few, white_var, tri_xyz, tri_var, few, rig4)
    np.testing.assert_array_equal(scale_few, 1.0)
    np.testing.assert_array_equal(bias_few, 0.003)
