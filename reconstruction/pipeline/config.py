"""The whole reconstruction's configuration: one section per stage, each the stage's own dataclass.

The defaults are the stages' dataclass defaults, written out in ``configs/reconstruction.yaml``
(regenerate with ``python -m reconstruction.pipeline``; a test checks the file equals the
code). Every stage's on/off switch is inside its own section (``refinement.enabled``,
``filters.enabled``, ``swaps.per_view``, ``depth_fusion.enabled``, ...).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from capture.atomic import atomic_write_text
from capture.config import load_yaml, section_from_mapping, to_plain
from reconstruction.depth.config import DepthFusionConfig
from reconstruction.filters import FilterConfig
from reconstruction.kinematics.config import KinematicsConfig
from reconstruction.models2d.boxes import BoxConfig
from reconstruction.pipeline.detect2d import Model2DConfig
from reconstruction.pipeline.outputs import OutputConfig
from reconstruction.refine.config import RefinementConfig
from reconstruction.swaps import SwapConfig
from reconstruction.triangulation.config import TriangulationConfig

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "reconstruction.yaml"


@dataclass(frozen=True)
class ReconstructionConfig:
    """The whole offline reconstruction; each stage gets only its own section.

    Attributes:
        skeleton: skeleton of the 2D model's output (built-in name or YAML file).
        chunk_frames: frame sets whose depth is held in memory at once (the depth of a chunk is read
            where a first 3D estimate of the chunk reprojects); the 2D cache's granularity.
    """

    skeleton: str = "coco17"
    chunk_frames: int = 60
    model2d: Model2DConfig = field(default_factory=Model2DConfig)
    boxes: BoxConfig = field(default_factory=BoxConfig)
    triangulation: TriangulationConfig = field(default_factory=TriangulationConfig)
    depth_fusion: DepthFusionConfig = field(default_factory=DepthFusionConfig)
    swaps: SwapConfig = field(default_factory=SwapConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    kinematics: KinematicsConfig = field(default_factory=KinematicsConfig)

    def __post_init__(self):
        if self.chunk_frames < 2:
            raise ValueError(f"chunk_frames must be >= 2, got {self.chunk_frames}")


# Switches that lived at the top level before round 2: (old key, section, key in the section).
_MOVED_SWITCHES = (("refine", "refinement", "enabled"), ("filter", "filters", "enabled"),
                   ("swaps_2d", "swaps", "per_view"), ("swaps_3d", "swaps", "per_frame"),
                   ("sequence_quality", "output", "sequence_quality"))


def _move_switches(data, where: str):
    """A config written for the old layout still loads: its top-level switches go into their
    sections (a warning names them)."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for old, section, key in _MOVED_SWITCHES:
        if old in data:
            value = data.pop(old)
            part = data.get(section)
            part = dict(part) if isinstance(part, dict) else ({} if part is None else part)
            if isinstance(part, dict):
                part.setdefault(key, value)
            data[section] = part
            log.warning("%s: top-level %r is now %s.%s; please move it", where, old, section, key)
    return data


def load_reconstruction_config(path: str | Path | None = None) -> ReconstructionConfig:
    """The config from a YAML file (unknown keys rejected, naming the file and the key); the
    defaults when ``path`` is None."""
    if path is None:
        return ReconstructionConfig()
    return section_from_mapping(ReconstructionConfig, _move_switches(load_yaml(path), str(path)), str(path))


def config_to_yaml(cfg: ReconstructionConfig) -> str:
    """The config as YAML text (every key, sections in their order)."""
    import yaml

    return yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=None)


_DEFAULTS_HEADER = """\
# Offline reconstruction (`mocap reconstruct --config FILE`): the documented defaults.
#
# Every stage reads only its own section, and its on/off switch is in that section; a key left
# out keeps the default of that stage's dataclass, and an unknown key is an error naming this file
# and the key. The resolved config is written next to every output as reconstruction.yaml. See
# docs/pipeline.md and docs/architecture.md.
# Regenerate after a stage's defaults change: python -m reconstruction.pipeline
#
# skeleton        output skeleton of the 2D model (coco17 for MoveNet)
# chunk_frames    frame sets whose depth is in memory at once; 2D cache granularity
# model2d         reconstruction/pipeline/detect2d.py Model2DConfig (name: `mocap models list`)
# boxes           reconstruction/models2d/boxes.py BoxConfig
# triangulation   reconstruction/triangulation/config.py TriangulationConfig
# depth_fusion    reconstruction/depth/config.py DepthFusionConfig (RGB-D views only)
# swaps           reconstruction/swaps.py SwapConfig (per_view / per_frame: left/right swaps)
# refinement      reconstruction/refine/config.py RefinementConfig
# filters         reconstruction/filters.py FilterConfig (enabled: false by default)
# output          reconstruction/pipeline/outputs.py OutputConfig
# kinematics      reconstruction/kinematics/config.py KinematicsConfig (enabled: false by default)
"""


def write_default_config(path: str | Path = DEFAULT_CONFIG) -> Path:
    """Write every default of :class:`ReconstructionConfig` as YAML (configs/reconstruction.yaml)."""
    return atomic_write_text(Path(path), _DEFAULTS_HEADER + config_to_yaml(ReconstructionConfig()))
