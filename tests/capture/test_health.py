"""capture/health.py: clock statistics of a camera's frames."""
import numpy as np
import pytest

from capture.health import clock_statistics


def test_clock_statistics_recovers_rate_and_jitter(rng):
    n = np.arange(1, 601)
    n = n[rng.random(600) > 0.1]  # gaps do not bias the fit
    jitter = rng.normal(0, 0.5, n.size)
    fps, sd, intercept = clock_statistics(n, 1000.0 + (n - 1) * 1000 / 30 + jitter)
    assert fps == pytest.approx(30, rel=1e-4) and sd == pytest.approx(0.5, rel=0.1)
    assert intercept == pytest.approx(1000.0, abs=0.2)
