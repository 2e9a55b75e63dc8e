"""reconstruction/triangulation/config.py: TriangulationConfig from a mapping, and its validation."""
import pytest

from reconstruction.triangulation import TriangulationConfig


def test_config_from_mapping_and_validation():
    from capture.config import section_from_mapping
    from capture.errors import ConfigError

    cfg = section_from_mapping(TriangulationConfig, {"method": "dlt", "min_views": 3, "reproj_threshold_px": "2e1"})
    assert cfg.method == "dlt" and cfg.min_views == 3 and cfg.reproj_threshold_px == 20.0
    with pytest.raises(ConfigError, match="unknown key 'threshold'"):
        section_from_mapping(TriangulationConfig, {"threshold": 3})
    with pytest.raises(ValueError, match="min_views must be >= 2"):
        TriangulationConfig(min_views=1)
