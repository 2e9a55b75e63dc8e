"""What a triangulation (or a refinement) gives: joints, which views made them, how well."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Triangulation3D:
    """Triangulated joints and their quality.

    Attributes:
        xyz: (T, J, 3) metres, world frame; NaN where not triangulated.
        reproj_error_px: (T, J) mean reprojection error over the used views, distorted pixels.
        n_views: (T, J) int, number of views used.
        used: (T, V, J) bool, views used for each point.
        residual_px: (T, V, J) reprojection error of every view with a detection (used or not),
            NaN where there is no detection or no 3D point.
        covariance: (T, J, 3, 3) m^2, from the propagated pixel noise of the used views.
    """

    xyz: np.ndarray
    reproj_error_px: np.ndarray
    n_views: np.ndarray
    used: np.ndarray
    residual_px: np.ndarray
    covariance: np.ndarray

    @property
    def completeness(self) -> float:
        """Fraction of (frame, joint) with a 3D position."""
        finite = np.all(np.isfinite(self.xyz), axis=-1)
        return float(finite.mean()) if finite.size else 0.0

    @property
    def num_missing(self) -> int:
        """Number of (frame, joint) without a 3D position."""
        return int((~np.all(np.isfinite(self.xyz), axis=-1)).sum())

    @property
    def uncertainty_m(self) -> np.ndarray:
        """(T, J) 1-sigma 3D uncertainty, metres: sqrt of the covariance trace."""
        return np.sqrt(np.trace(self.covariance, axis1=-2, axis2=-1))
