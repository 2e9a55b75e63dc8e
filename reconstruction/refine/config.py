"""Settings of the sequence refinement (section ``refinement`` of the reconstruction config)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RefinementConfig:
    """Weights and solver settings of :func:`refine_sequence` (these defaults are the only defaults).

    Attributes:
        enabled: run the refinement in the offline pipeline (``mocap triangulate --refine`` runs it
            whatever this says).
        reproj_sigma_px: expected 2D detection noise; reprojection residuals are divided by it.
        loss: robust loss on the reprojection residual of each detection ("linear" = plain squares).
        loss_scale_px: residual (pixels) where the robust loss starts to flatten.
        use_scores: weight each detection by its score (confidence).
        bone_sigma_m: allowed frame-to-frame deviation of a rigid bone from the subject's length.
        accel_sigma_m_s2: scale of joint acceleration (m/s^2); smaller = smoother.
        accel_loss: robust loss on each joint's acceleration (soft-L1: quadratic below
            ``accel_sigma_m_s2``, linear above, so a foot strike or a kick is not flattened).
        depth_loss_scale: depth residuals (in sigmas) beyond which their robust loss (``loss``)
            flattens.
        fps: frame rate that turns ``accel_sigma_m_s2`` into per-frame second differences; pipelines
            pass the recording's rate to :func:`refine_sequence` (argument ``fps``) instead.
        chunk_frames, overlap_frames: frames per solved chunk and frames shared by consecutive chunks.
        max_iterations: Gauss-Newton / Levenberg-Marquardt iterations per chunk.
        tolerance_m: stop when no joint moves more than this in an iteration...
        tolerance_cost: ... or when the cost decreased by less than this fraction.
        solver: "pcg" (conjugate gradients, per-frame block preconditioner; fast) or "banded"
            (exact banded Cholesky; slower, for checking).
        fill_max_gap: longest gap (frames) of a NaN joint that smoothness and bones may bridge.
        fill_edge_frames: longest unseen run at the start or end of the sequence that smoothness and
            bones may extrapolate.
        fill_from_bones: place a joint no camera sees, however long, when >= ``fill_min_bones`` of its
            bones reach reconstructed joints (see :func:`_anchor_by_bones`).
        fill_min_bones: see ``fill_from_bones``.
        admit_single_views: let a NaN joint use its single detections (gated, see module docstring).
        single_view_gate_px: gate for those detections around the interpolated position.
        min_score: detections with a lower score are never used for single-view filling.
        spike_gate_m: a triangulated joint farther than this from the median of the 6 frames around
            it is treated as a gross error (see the module docstring); below 30 fps the gate grows as
            30 / fps and the window shrinks to ~0.1 s each side.
        spike_speed_factor: the gate grows by this times the joint's local speed (m per frame).
        spike_consistent_px: a joint >= 3 views triangulated within this mean reprojection error is
            never a spike.
        spike_bone_gate_m: a joint whose rigid bones to triangulated neighbours are all within this
            of the subject's lengths is never a spike (0: off).
        spike_depth_sigmas: a joint whose depth (>= 2 of its used views) agrees with it within this
            many sigmas is never a spike.
    """

    enabled: bool = True
    reproj_sigma_px: float = 3.0
    loss: Literal["soft_l1", "huber", "cauchy", "linear"] = "soft_l1"
    loss_scale_px: float = 6.0
    use_scores: bool = True
    bone_sigma_m: float = 0.002
    accel_sigma_m_s2: float = 7.0
    accel_loss: Literal["soft_l1", "huber", "cauchy", "linear"] = "soft_l1"
    fps: float = 30.0
    chunk_frames: int = 240
    overlap_frames: int = 24
    max_iterations: int = 6
    tolerance_m: float = 1e-5
    tolerance_cost: float = 1e-3
    solver: Literal["pcg", "banded"] = "pcg"
    fill_max_gap: int = 15
    fill_edge_frames: int = 3
    fill_from_bones: bool = True
    fill_min_bones: int = 2
    admit_single_views: bool = True
    single_view_gate_px: float = 40.0
    min_score: float = 0.1
    depth_loss_scale: float = 1.0
    spike_gate_m: float = 0.1
    spike_speed_factor: float = 1.0
    spike_consistent_px: float = 4.5
    spike_bone_gate_m: float = 0.03
    spike_depth_sigmas: float = 3.0

    def __post_init__(self):
        for name in ("reproj_sigma_px", "loss_scale_px", "bone_sigma_m", "accel_sigma_m_s2", "fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.loss not in ("soft_l1", "huber", "cauchy", "linear"):
            raise ValueError(f"loss must be soft_l1, huber, cauchy or linear, got {self.loss!r}")
        if self.accel_loss not in ("soft_l1", "huber", "cauchy", "linear"):
            raise ValueError(f"accel_loss must be soft_l1, huber, cauchy or linear, got {self.accel_loss!r}")
        if self.solver not in ("pcg", "banded"):
            raise ValueError(f"solver must be pcg or banded, got {self.solver!r}")
        if self.chunk_frames < 3:
            raise ValueError(f"chunk_frames must be >= 3, got {self.chunk_frames}")
        if not 0 <= self.overlap_frames < self.chunk_frames:
            raise ValueError(f"overlap_frames must be in [0, chunk_frames), got {self.overlap_frames}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
