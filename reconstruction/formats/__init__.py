"""File formats of the results: 2D keypoints (our NPZ, OpenPose JSON) and 3D points (our NPZ, TRC,
C3D), each module a reader and a writer tested as a round trip. A new format (BVH, OpenSim .mot)
goes here as one module with its own read/write pair."""
