"""The depth stage: RGB-D views' depth read at the keypoints, fused with the triangulation, and
handed to the refinement as residuals.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``P`` joint pairs. One module per concept:

- :mod:`.config`: :class:`DepthFusionConfig` (section ``depth_fusion``);
- :mod:`.reading`: depth at keypoints and midpoints (windows, clusters, back-projection), guided by a
  first 3D estimate (:func:`read_depth`), depth crops for live use;
- :mod:`.lift`: the :class:`DepthLift` arrays and operations on them;
- :mod:`.offsets`: joint centres behind the visible surface (table and measured);
- :mod:`.noise`: the depth noise measured from the data;
- :mod:`.fusion`: inverse-covariance fusion with gating (:func:`fuse`);
- :mod:`.residuals`: :class:`DepthObservations`, what the sequence refinement consumes;
- :mod:`.stage`: :func:`fuse_depth`, the stage the offline pipeline calls.
"""
from reconstruction.depth.config import DepthFusionConfig
from reconstruction.depth.fusion import FusionResult, fuse
from reconstruction.depth.lift import DepthEstimate, DepthLift
from reconstruction.depth.offsets import ANTHROPOMETRIC_OFFSETS_M, joint_offsets
from reconstruction.depth.reading import crop_depth_views, lift_keypoints_with_depth, read_depth
from reconstruction.depth.residuals import DepthObservations
from reconstruction.depth.stage import DepthStageResult, fuse_depth

__all__ = ["ANTHROPOMETRIC_OFFSETS_M", "DepthEstimate", "DepthFusionConfig", "DepthLift", "DepthObservations",
           "DepthStageResult", "FusionResult", "crop_depth_views", "fuse", "fuse_depth", "joint_offsets",
           "lift_keypoints_with_depth", "read_depth"]
