"""Settings of the kinematics stage (section ``kinematics`` of the reconstruction config)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KinematicsConfig:
    """Joint angles after the reconstruction (``mocap reconstruct``) and for ``mocap kinematics``.

    Attributes:
        enabled: run the stage at the end of ``mocap reconstruct`` (off by default; ``mocap
            kinematics`` runs it whatever this says).
        opensim: OpenSim scaling + inverse kinematics (the ISB joint angles from the keypoints are
            always computed; they need no OpenSim) (needs ``pip install 'mocap[opensim]'`` and the
            set-up: ``mocap models fetch opensim-pose2sim``).
        model: ``pose2sim-simple``, ``pose2sim-muscles`` or an ``.osim`` file.
        markers: marker set: ``coco17``, ``body25b``, ``body25``, ``halpe26``, ``blazepose`` or an
            ``.xml`` file; empty: the Pose2Sim marker set the points' joints fill best.
        scaling_setup: ScaleTool set-up file; empty: Pose2Sim's for the marker set; ``none``: no scaling.
        ik_setup: InverseKinematicsTool set-up file; empty: Pose2Sim's for the marker set.
        height_m: the person's height (0: unknown); scales the segments the points cannot measure.
        mass_kg: the person's mass (the scaled model's mass).
        symmetric: scale left and right segments by one factor (Pose2Sim's default).
        min_marker_fraction: frames with fewer of the tracked markers present are not solved (NaN).
    """

    enabled: bool = False
    opensim: bool = True
    model: str = "pose2sim-simple"
    markers: str = ""
    scaling_setup: str = ""
    ik_setup: str = ""
    height_m: float = 0.0
    mass_kg: float = 70.0
    symmetric: bool = True
    min_marker_fraction: float = 0.5

    def __post_init__(self):
        if not 0.0 < self.min_marker_fraction <= 1.0:
            raise ValueError(f"min_marker_fraction must be in (0, 1], got {self.min_marker_fraction}")
        if self.mass_kg <= 0:
            raise ValueError(f"mass_kg must be positive, got {self.mass_kg}")
        if self.height_m and not 0.5 <= self.height_m <= 2.6:
            raise ValueError(f"height_m must be 0 (unknown) or a height in metres (0.5-2.6), got {self.height_m}")
