"""Rig file formats, one module each; :mod:`calibration.rig_io` picks one by extension or name.

Each module defines ``load(path) -> Rig`` and (except import-only formats) ``save(rig, path)``.
"""
