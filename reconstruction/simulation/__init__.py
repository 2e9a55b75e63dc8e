"""Synthetic people and detections with known truth, for tests, benchmarks and the simulator.

Shape letters as everywhere: ``T`` frames, ``V`` views, ``J`` joints.

- :func:`procedural_motion` -> 3D joints ``(T, J, 3)`` of a walking, arm-swinging person whose rigid
  bones keep a constant length (a kinematic chain), for any skeleton.
- :func:`project_truth` -> true 2D ``(T, V, J, 3)`` with a self-occlusion model.
- :func:`simulate_detections` -> noisy 2D detections: pixel noise, confident wrong detections,
  missing occluded joints.
"""
from reconstruction.simulation.detections import project_truth, simulate_detections
from reconstruction.simulation.motion import CANONICAL_JOINTS, canonical_body_map, procedural_motion

__all__ = ["CANONICAL_JOINTS", "canonical_body_map", "procedural_motion", "project_truth", "simulate_detections"]
