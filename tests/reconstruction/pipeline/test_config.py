"""reconstruction/pipeline/config.py: the reconstruction config: the shipped file is the code's defaults, old
layouts still load, unknown keys are named."""
import logging
from dataclasses import replace

import pytest

from capture.errors import ConfigError
from reconstruction.pipeline import DEFAULT_CONFIG, ReconstructionConfig, load_reconstruction_config
from reconstruction.pipeline.config import write_default_config


def test_default_config_file_loads_and_unknown_keys_are_named(tmp_path):
    cfg = load_reconstruction_config(DEFAULT_CONFIG)
    assert isinstance(cfg, ReconstructionConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("depth_fusion:\n  window_pixels: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*depth_fusion.*window_pixels"):
        load_reconstruction_config(bad)
    bad.write_text("chunk_frame: 10\n")
    with pytest.raises(ConfigError, match="chunk_frame"):
        load_reconstruction_config(bad)


def test_shipped_config_is_exactly_the_code_defaults(tmp_path):
    assert load_reconstruction_config(DEFAULT_CONFIG) == ReconstructionConfig()
    assert load_reconstruction_config(None) == ReconstructionConfig()
    # the file is what `python -m reconstruction.pipeline` writes: regenerated, it is the same text
    written = write_default_config(tmp_path / "reconstruction.yaml")
    assert written == tmp_path / "reconstruction.yaml"
    assert written.read_text() == DEFAULT_CONFIG.read_text()
    assert load_reconstruction_config(written) == ReconstructionConfig()
    # the comparison sees a changed default (configs compare field by field)
    changed = tmp_path / "changed.yaml"
    line = f"\nchunk_frames: {ReconstructionConfig().chunk_frames}\n"
    assert line in written.read_text()
    changed.write_text(written.read_text().replace(line, "\nchunk_frames: 61\n"))
    assert load_reconstruction_config(changed) == replace(ReconstructionConfig(), chunk_frames=61)
    assert load_reconstruction_config(changed) != ReconstructionConfig()


def test_an_old_layout_config_loads_into_the_sections(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text("refine: false\nfilter: true\nswaps_2d: false\nswaps_3d: false\nsequence_quality: false\n")
    with caplog.at_level(logging.WARNING, logger="reconstruction.pipeline.config"):
        cfg = load_reconstruction_config(path)
    d = ReconstructionConfig()
    assert d.refinement.enabled and not d.filters.enabled and d.swaps.per_view and d.swaps.per_frame
    assert d.output.sequence_quality  # the old file sets every one of them the other way
    assert cfg.refinement.enabled is False and cfg.filters.enabled is True
    assert cfg.swaps.per_view is False and cfg.swaps.per_frame is False and cfg.output.sequence_quality is False
    assert cfg == replace(d, refinement=replace(d.refinement, enabled=False), filters=replace(d.filters, enabled=True),
                          swaps=replace(d.swaps, per_view=False, per_frame=False),
                          output=replace(d.output, sequence_quality=False))
    for old, new in (("refine", "refinement.enabled"), ("filter", "filters.enabled"), ("swaps_2d", "swaps.per_view"),
                     ("swaps_3d", "swaps.per_frame"), ("sequence_quality", "output.sequence_quality")):
        assert f"top-level '{old}' is now {new}" in caplog.text
    # next to a section of the new layout: the section's own key wins, its other keys stay
    path.write_text("refine: false\nrefinement:\n  enabled: true\n  max_iterations: 7\nfilter: true\n")
    cfg = load_reconstruction_config(path)
    assert cfg.refinement == replace(d.refinement, enabled=True, max_iterations=7) and cfg.filters.enabled is True
