"""Reconstruction: skeletons, 2D models, triangulation, depth fusion, refinement, export, pipelines.

Shape letters: ``T`` frames, ``V`` views, ``J`` joints, ``N`` points, ``B`` bones.
2D keypoints are ``(T, V, J, 3)`` = x, y, score in pixels of the distorted image, NaN when missing.
3D joints are ``(T, J, 3)`` metres in the rig's world frame, NaN when missing.
"""
