"""Sequence refinement: one sparse robust least-squares problem per chunk of frames.

Shapes: ``T`` frames, ``V`` views, ``J`` joints, ``B`` bones. 2D keypoints ``(T, V, J, 3)`` = x, y,
score in pixels of the distorted image; 3D ``(T, J, 3)`` metres in the world frame.

The unknowns are the 3D joints of every frame of a chunk. The cost is a sum of

- reprojection residuals ``(project(X) - x) / reproj_sigma_px`` of the detections the robust
  triangulation *used* (``initial.used``; rejected detections are never re-admitted), weighted by the
  detection score and passed through a robust loss (soft-L1, Huber or Cauchy, scale ``loss_scale_px``);
- bone-length residuals ``(|X_a - X_b| - L_b) / bone_sigma_m`` for the skeleton's rigid bones, with
  the subject's lengths ``L`` (given, or estimated robustly from the triangulation first);
- temporal acceleration residuals ``(X[t-1] - 2 X[t] + X[t+1]) * fps^2 / accel_sigma_m_s2``, through
  a robust loss (``accel_loss``, soft-L1): real joints reach tens of m/s^2 (feet and hands 100-300 m/s^2
  in a kick), and a quadratic term would flatten that motion; the robust term bounds its pull;
- optional depth residuals (the RGB-D slot, :class:`DepthObservations`): a measured camera-frame depth
  per (frame, view, joint) with its sigma, ``(z_cam(X) - z) / sigma``, robust (``loss`` at
  ``depth_loss_scale`` sigmas), counted only while the view's detection is used.

Every residual touches one joint, two joints of one frame or one joint at three consecutive frames,
so the Gauss-Newton normal matrix is block-banded once the unknowns are ordered frame-major
(bandwidth ``6 J``). Each Levenberg-Marquardt step (iteratively reweighted for the robust loss) is
solved by conjugate gradients preconditioned with the exact inverse of every frame's ``(3 J, 3 J)``
block (data, bones, acceleration diagonal), all frames at once: ~0.4-1 ms per frame for 17 joints and
4 views on 2 cores, 100x faster than aniposelib's finite-difference ``least_squares``. An exact banded
Cholesky (``solver="banded"``) is there to check it.

Gross triangulation errors (a wrong consensus of outliers) are found first: a joint farther than
``spike_gate_m`` plus ``spike_speed_factor`` times its local speed (m per frame) from the median of the
6 frames around it restarts from interpolation and keeps only those of its used detections that lie
within ``single_view_gate_px`` of that start -- unless its own measurement vouches for it: >= 3 views
within ``spike_consistent_px`` mean reprojection error, or every rigid bone to a triangulated
neighbour within ``spike_bone_gate_m`` of the subject's length, or >= 2 of its views' depth within
``spike_depth_sigmas``. Fast real motion is thus kept, and only doubtful joints are restarted.

Long recordings are cut into chunks of ``chunk_frames`` with ``overlap_frames`` in common, solved
independently (bounded memory) and cross-faded linearly over the overlap.

Missing joints: a joint the triangulation left NaN is filled when (a) it lies inside a gap of at
most ``fill_max_gap`` frames between finite frames (smoothness and bones carry it, plus any single
detection within ``single_view_gate_px`` of the interpolated position), (b) it has at least one
such gated detection and a finite frame within ``fill_max_gap`` frames on one side (sequence ends),
or (c) it is in a run of at most ``fill_edge_frames`` frames at the start or end of the sequence
(extrapolated by smoothness and bones alone), or (d) ``fill_from_bones``: it has >= ``fill_min_bones``
bones to reconstructed joints in that frame (its start keeps its offset from them, the rigid bones
place it, however long no camera sees it). Everything else stays NaN: a joint no camera saw for
longer is not invented. Single detections of a NaN joint are the only detections admitted beyond
``initial.used``; the gate keeps out the outliers that made the triangulation give up.

Modules: :mod:`.config` (:class:`RefinementConfig`), :mod:`.problem` (one chunk's cost and normal
equations), :mod:`.solvers` (PCG, banded Cholesky, Levenberg-Marquardt), :mod:`.start` (gross
errors, gaps, joints placed by bones), :mod:`.sequence` (:func:`refine_sequence`). The RGB-D
residuals it consumes are :class:`reconstruction.depth.residuals.DepthObservations`.
"""
from reconstruction.refine.config import RefinementConfig
from reconstruction.refine.sequence import refine_sequence

__all__ = ["RefinementConfig", "refine_sequence"]
