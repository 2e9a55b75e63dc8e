"""capture/config.py: typed configuration from YAML: defaults, YAML 1.1 traps, messages naming file and key."""
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from capture.config import load_section, load_yaml, section_from_mapping, to_plain
from capture.errors import ConfigError


@dataclass(frozen=True)
class Robust:
    threshold_px: float = 20.0
    min_views: int = 2


@dataclass(frozen=True)
class Triangulation:
    method: Literal["dlt", "ransac"] = "dlt"
    confidence: float = 0.3
    cameras: list[str] = field(default_factory=list)
    max_gap: Optional[int] = None
    undistort: bool = True
    robust: Robust = field(default_factory=Robust)


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_when_section_absent(tmp_path):
    cfg = load_section(Triangulation, _write(tmp_path, "other: {}\n"), "triangulation")
    assert cfg == Triangulation()


def test_values_nested_sections_and_exponent_strings(tmp_path):
    text = "triangulation:\n  method: ransac\n  confidence: 1e-3\n  cameras: [a, b]\n  robust:\n    threshold_px: 5\n"
    assert yaml.safe_load("x: 1e-3")["x"] == "1e-3"  # the YAML 1.1 trap this guards against
    cfg = load_section(Triangulation, _write(tmp_path, text), "triangulation")
    assert cfg.method == "ransac" and cfg.cameras == ["a", "b"]
    assert cfg.confidence == 1e-3 and isinstance(cfg.confidence, float)
    assert cfg.robust == Robust(threshold_px=5.0) and isinstance(cfg.robust.threshold_px, float)
    assert to_plain(cfg)["robust"] == {"threshold_px": 5.0, "min_views": 2}
    assert section_from_mapping(Triangulation, to_plain(cfg)) == cfg


def test_unknown_key_names_file_and_key(tmp_path):
    path = _write(tmp_path, "triangulation:\n  confidense: 0.5\n")
    known = r"\(known keys: .*confidence"
    with pytest.raises(ConfigError, match=r"config\.yaml: triangulation: unknown key 'confidense' " + known):
        load_section(Triangulation, path, "triangulation")
    path = _write(tmp_path, "triangulation:\n  robust:\n    treshold_px: 3\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: triangulation\.robust: unknown key 'treshold_px'"):
        load_section(Triangulation, path, "triangulation")


@pytest.mark.parametrize(
    "line, message",
    [
        ("confidence: high", r"triangulation\.confidence: expected a number, got 'high'"),
        ("robust: {min_views: 2.5}", r"triangulation\.robust\.min_views: expected an integer, got 2\.5"),
        ("method: on", r"triangulation\.method: True is not one of 'dlt', 'ransac'"),  # YAML 1.1: on -> True
        ("undistort: yes please", r"triangulation\.undistort: expected true or false"),
        ("cameras: a", r"triangulation\.cameras: expected a list"),
        ("max_gap: x", r"triangulation\.max_gap: expected an integer"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, line, message):
    path = _write(tmp_path, f"triangulation:\n  {line}\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: " + message):
        load_section(Triangulation, path, "triangulation")


def test_optional_and_unreadable_files(tmp_path):
    cfg = load_section(Triangulation, _write(tmp_path, "max_gap: 4\n"))
    assert cfg.max_gap == 4
    with pytest.raises(ConfigError, match=r"missing\.yaml: file not found"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"config\.yaml: not valid YAML at line 3.*expected"):
        load_yaml(_write(tmp_path, "a: 1\nb: [1, 2\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        section_from_mapping(Triangulation, [1, 2], "cfg.yaml: triangulation")
