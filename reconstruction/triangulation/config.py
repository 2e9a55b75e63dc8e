"""Settings of the robust triangulation (section ``triangulation`` of the reconstruction config)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TriangulationConfig:
    """Settings of :func:`triangulate`; these defaults are the only defaults.

    Attributes:
        method: "robust" (consensus over view pairs + gating + re-solve) or "dlt" (all valid views).
        min_views: fewest (inlier) views a point needs; fewer -> NaN.
        min_score: detections scored below this are ignored.
        score_power: a view's weight is score ** score_power.
        reproj_threshold_px: a view whose reprojection error exceeds this is an outlier (for a
            score-1 detection; the gate of a view with score s is this / s ** (gate_score_power / 2)).
        gate_score_power: how much the gate widens for less confident detections (0: not at all).
        msac_score_weight: each view's vote in the consensus is 1 + msac_score_weight * score (0:
            one vote per view; confident wrong detections are as confident as right ones).
        hypothesis_views: pairs of this many best-scored views of each point are tried.
        random_rounds: with more cameras than hypothesis_views, rounds of random draws of that many
            views for points still without a majority consensus.
        regate_iterations: re-solve / re-gate rounds after the consensus.
        refine: Gauss-Newton refinement of each point on the pixel error with a robust loss.
        refine_iterations: Gauss-Newton steps.
        robust_loss: "cauchy", "huber" or "none" (least squares) for the refinement.
        robust_scale_px: scale of the robust loss, pixels.
        pixel_sigma_px: pixel noise (1 sigma) of a score-1 detection, for the covariance.
        max_uncertainty_m: a point whose 1-sigma 3D uncertainty (sqrt of the covariance trace)
            exceeds this is NaN: its views are nearly parallel or opposite, so its depth is a guess.
    """

    method: Literal["robust", "dlt"] = "robust"
    min_views: int = 2
    min_score: float = 0.05
    score_power: float = 1.0
    reproj_threshold_px: float = 15.0
    gate_score_power: float = 1.0
    msac_score_weight: float = 0.0
    hypothesis_views: int = 5
    random_rounds: int = 2
    regate_iterations: int = 1
    refine: bool = False
    refine_iterations: int = 2
    robust_loss: Literal["cauchy", "huber", "none"] = "cauchy"
    robust_scale_px: float = 10.0
    pixel_sigma_px: float = 3.0
    max_uncertainty_m: float = 0.15

    def __post_init__(self):
        if self.method not in ("robust", "dlt"):
            raise ValueError(f"method must be 'robust' or 'dlt', got {self.method!r}")
        if self.robust_loss not in ("cauchy", "huber", "none"):
            raise ValueError(f"robust_loss must be 'cauchy', 'huber' or 'none', got {self.robust_loss!r}")
        if int(self.min_views) < 2:
            raise ValueError(f"min_views must be >= 2 (a point needs two rays), got {self.min_views}")
        if int(self.hypothesis_views) < 2:
            raise ValueError(f"hypothesis_views must be >= 2, got {self.hypothesis_views}")
        for name in ("reproj_threshold_px", "robust_scale_px", "pixel_sigma_px", "max_uncertainty_m"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.regate_iterations < 0 or self.refine_iterations < 0:
            raise ValueError("regate_iterations and refine_iterations must be >= 0")
