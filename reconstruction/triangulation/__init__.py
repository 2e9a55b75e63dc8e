"""Robust, confidence-weighted multi-view triangulation of 2D keypoints, with per-view residuals
and a 3D uncertainty.

Shapes: ``T`` frames, ``V`` views (the rig's order), ``J`` joints; inside, the ``T * J`` points
are flattened to ``N``. Every step is vectorized over all points at once; Python loops run only over
views or over pairs of the best views.

Method (``method="robust"``, the default):

1. Undistort every detection to normalized camera coordinates (OpenCV, per view; a direct K^-1
   without distortion) and turn it into a world ray. Views with a NaN or a score below
   ``min_score`` are left out. Each view has a gate ``reproj_threshold_px / sqrt(score)``: less
   confident detections are noisier.
2. Fast path: the weighted linear solve with every view. Where every view's reprojection error is
   inside its gate (inside half of it when fewer than 5 views, so that a moderate outlier cannot
   hide by pulling the solution), this is the answer: most points of a clean recording. With more
   than 5 views, two rounds of iteratively reweighted least squares (Cauchy weights at the gate)
   follow, kept where a strict majority of at least 5 views ends inside its gate.
3. Consensus for the other points: the two-view midpoint of every pair among the point's 3
   best-scored views, each scored in every view with a truncated quadratic of its gated error
   (MSAC, one vote per view); the best gives the inliers. Where that finds no strict majority,
   again with the pairs among the ``hypothesis_views`` best views, then (more cameras than that)
   among ``random_rounds`` random draws of that many views. The cost grows linearly, not
   combinatorially, with the number of cameras.
4. Re-solve with the inliers: weighted linear least squares on the rays (weights ``score *
   (f / depth)^2``, so that the ray distance approximates the pixel error), gate again on every
   detected view and re-solve (``regate_iterations``).
5. Optional (``refine``): Gauss-Newton on the pixel reprojection error of the used views with a
   robust loss (IRLS), all points at once.
6. Residual of every detected view in distorted pixels, covariance ``(sum_v (s_v / sigma^2) J_v^T
   J_v)^-1`` with ``sigma = pixel_sigma_px`` the pixel noise of a score-1 detection and ``J_v`` the
   pinhole projection Jacobian.

``method="dlt"``: the same weighted linear solve with every valid view, no selection.

A point seen by fewer than ``min_views`` usable (inlier) views is NaN; so are degenerate
geometries (parallel rays) and points more uncertain than ``max_uncertainty_m`` (nearly opposite
cameras). ``Triangulation3D.completeness`` and the log tell how many.

Modules: :mod:`.config`, :mod:`.result` (:class:`Triangulation3D`), :mod:`.views` (per-view geometry
of all points), :mod:`.robust` (:func:`triangulate`), :mod:`.summary` (per camera / joint figures).
"""
from reconstruction.triangulation.config import TriangulationConfig
from reconstruction.triangulation.result import Triangulation3D
from reconstruction.triangulation.robust import triangulate
from reconstruction.triangulation.summary import format_summary, triangulation_summary

__all__ = ["Triangulation3D", "TriangulationConfig", "format_summary", "triangulate", "triangulation_summary"]
