"""Capture: devices, recordings, frame-set synchronization.

Shape letters used in every docstring of the project:
``T`` frames, ``V`` views (cameras), ``J`` joints, ``N`` points.
"""
