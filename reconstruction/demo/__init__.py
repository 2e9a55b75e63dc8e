"""``mocap demo``: the main job end to end on a built-in example.

- :mod:`.simulated`: 4 simulated RealSense D435 cameras (real ``.db3`` recordings) filming a person
  who moves as in real motion capture, calibrated from a simulated board, reconstructed through the
  normal path and compared with the ground truth;
- :mod:`.real`: the 4 real Pose2Sim demo videos with their calibration and MoveNet Thunder;
- :mod:`.data`: where the demo's real data comes from (``../shared``, else the ``pose2sim`` wheel).
"""
