"""The reconstruction pipeline: drivers that wire the library's stages, offline and live.

Shapes: ``T`` frame sets, ``V`` views (the rig's order), ``J`` joints.

    sources   files matched to rig cameras (Session), or 2D computed before (Detections2D)
      |  capture.stream.FrameSetStream: every recording and video as synchronized frame sets
    detect2d  boxes + 2D model per view, one frame set at a time, cached per chunk -> (T, V, J, 3)
    offline   per chunk: a first 3D estimate, then depth read where it reprojects (depth.read_depth)
    sequence  swaps -> triangulation -> depth fusion -> refinement -> filter -> (T, J, 3)
    outputs   3D files, quality.json, plot, 2D per view, overlays, resolved config
    live      the same stages causally, frame set by frame set, for ``mocap capture --live-3d``
    config    ReconstructionConfig: one section per stage, each the stage's own dataclass

The stages themselves live in their own packages (``models2d``, ``triangulation``, ``depth``,
``refine``, ``swaps``, ``filters``, ``formats``, ``visual``, ``quality``); a driver only calls them.
"""
from reconstruction.pipeline.config import (DEFAULT_CONFIG, ReconstructionConfig, config_to_yaml,
                                            load_reconstruction_config, write_default_config)
from reconstruction.pipeline.detect2d import Model2DConfig, check_model_name, load_model2d
from reconstruction.pipeline.offline import ReconstructionOutput, reconstruct_session
from reconstruction.pipeline.outputs import OutputConfig
from reconstruction.pipeline.sequence import SequenceResult, reconstruct_keypoints
from reconstruction.pipeline.sources import Detections2D, Session, ViewSource, load_detections, open_session

__all__ = ["DEFAULT_CONFIG", "Detections2D", "Model2DConfig", "OutputConfig", "ReconstructionConfig",
           "ReconstructionOutput", "SequenceResult", "Session", "ViewSource", "check_model_name", "config_to_yaml",
           "load_detections", "load_model2d", "load_reconstruction_config", "open_session", "reconstruct_keypoints",
           "reconstruct_session", "write_default_config"]
