"""Per-view 2D keypoint models (top-down, on person crops) in PyTorch.

Shapes: ``B`` crops (views x frames), ``T`` frames, ``V`` views, ``J`` joints, ``h, w`` heatmap
grid. Images are ``(H, W, 3)`` uint8 RGB; boxes ``(x, y, w, h)`` image pixels; keypoints
``(..., J, 3)`` = x, y in pixels of the original (distorted) image, score.

Modules: :mod:`.interface` (the model interface, cropping, flip test), :mod:`.tracking` (the box
tracker shared by the offline pipeline and the live view),
:mod:`.tfjs` (TF.js graph-model files), :mod:`.movenet` (MoveNet Lightning/Thunder/MultiPose),
:mod:`.topdown` (SimpleBaseline / HRNet for downloaded COCO checkpoints), :mod:`.codecs`
(heatmap encode/decode pairs), :mod:`.boxes` (person boxes), :mod:`.registry` (names, files,
checksums, fetching). Importing this package does not import torch.

A new 2D model: a :class:`KeypointModel2D` subclass in its own module (``predict_crops``: crops in,
heatmaps and keypoints out), its files and checksums in :data:`.registry.MODELS`, and a loader case
in :func:`.registry.load_model`; the pipeline, the live view and ``mocap detect2d`` then take it
by name.
"""
from reconstruction.models2d.interface import KeypointModel2D, Pose2DOutput
from reconstruction.models2d.tracking import BoxTracker, detect_sequence

__all__ = ["BoxTracker", "KeypointModel2D", "Pose2DOutput", "detect_sequence", "load_model"]


def load_model(name: str, device: str = "cpu", weights_dir=None, **kwargs) -> KeypointModel2D:
    """A 2D model by name (``movenet-lightning``, ``movenet-thunder``); see :mod:`.registry`."""
    from reconstruction.models2d.registry import load_model as _load

    return _load(name, device=device, weights_dir=weights_dir, **kwargs)
