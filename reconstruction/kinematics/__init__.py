"""Kinematics: joint angles and animation from 3D joints.

Shapes: ``T`` frames, ``J`` joints, ``M`` markers, ``A`` angles, ``C`` OpenSim coordinates.

- :mod:`~reconstruction.kinematics.angles`: ISB joint angles from the keypoints (no OpenSim);
- :mod:`~reconstruction.kinematics.markers`, :mod:`~reconstruction.kinematics.scaling`: our joints as
  an OpenSim marker set's markers, the model's scale factors from the person's segment lengths;
- :mod:`~reconstruction.kinematics.opensim_tools`: the edge to OpenSim (ScaleTool, InverseKinematicsTool);
- :mod:`~reconstruction.kinematics.opensim_run`: scaling + inverse kinematics of one person;
- :mod:`~reconstruction.kinematics.setup_files`: Pose2Sim's OpenSim set-up, found or fetched;
- :mod:`~reconstruction.kinematics.bvh_export`: our joints as a BVH clip;
- :mod:`~reconstruction.kinematics.stage`: ``mocap kinematics`` and the pipeline's ``kinematics`` stage.
"""
