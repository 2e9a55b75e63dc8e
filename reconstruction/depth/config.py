"""Settings of the depth stage (section ``depth_fusion`` of the reconstruction config)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DepthFusionConfig:
    """Depth lifting and fusion settings (section ``depth_fusion`` of the reconstruction config).

    Attributes:
        enabled: fuse depth at all (views without depth are always skipped).
        window_px: half-size of the square window around a keypoint (window side ``2 w + 1``); with
            ``window_fraction`` the smallest radius of the disc window.
        window_fraction: > 0: the window is a disc whose radius is this fraction of the joint's
            anthropometric depth offset (about the limb's radius: hips 8 cm, wrists 2.5 cm), in
            pixels at the joint's depth -- as many pixels of the limb as it has, so big joints get a
            precise depth and small ones do not take in their surroundings; 0: the square window.
        max_window_px: largest disc radius (pixels).
        min_valid_pixels: fewer valid pixels in the nearest cluster -> no depth for that keypoint.
        cluster_band_m: pixels within this distance behind the nearest surface of the window
            count as the person (the nearest depth cluster).
        min_depth_m / max_depth_m: depth outside this range is invalid.
        min_score: keypoints with a lower 2D score are not lifted.
        sample_at_estimate: read the depth (and cast the ray) at the reprojection of a first
            multi-view 3D estimate of the chunk (triangulation + refinement without depth) instead of
            at the view's own detection, where the two lie within ``sample_gate_px``: the
            reprojection is about twice as precise as one detection (3 px noise is 15 mm at 3 m, a
            wrist is 5 cm wide). Needs >= 2 views.
        sample_passes: how many times to read: pass 1 at the estimate without depth, each further
            pass at the estimate with the depth the previous pass read.
        sample_gate_px: farther than this from the detection, the detection's pixel is kept (a
            wrong detection or a swap is left to the fusion's gate).
        joints_without_depth: canonical joint names whose own depth refines no triangulation (their
            depth points are dropped where the joint is triangulated; where no pair of views sees it,
            depth alone still places it). Default: the face points. A nose, an eye or an
            ear is a small feature on a steep, curved surface: 3 px of 2D noise moves its window
            over 1-2 cm of depth, and how far the point lies behind what the camera sees changes with
            the head's pose; measured on the simulator, their own depth made them worse (12.2 vs
            10.7 mm). The head as a whole is measured instead (``head_depth``).
        head_depth: measure the head's depth: a disc of the head's surface around where the head
            centre (midpoint of the ears of the first 3D estimate) reprojects, in each view; the
            centre lies a head radius behind it (estimated from the data). The refinement gets the
            depth of the ears' midpoint: the face follows through its rigid bones. Needs both ears.
        head_radius_m: head radius for the disc's size and the expected surface (the offset used is
            re-estimated from the data).
        head_window_fraction: the disc's radius as a fraction of ``head_radius_m``.
        segment_depth: also measure the depth along each rigid limb bone (a disc of
            ``window_fraction`` times the thinner end's offset): the refinement gets the depth of
            points between the two joints, more readings per bone and view of a big, smooth surface.
        segment_points: where along each limb bone (fraction of the way from its second joint to
            its first: the point is ``w X_a + (1 - w) X_b``).
        expected_band_m: with that first estimate, only depth pixels within this distance (+ 3 noise
            sigmas) of the surface it predicts (its depth minus the joint's prior offset) are read.
        noise_a_m / noise_b_per_m: per-pixel depth noise ``sigma_z = a + b z^2`` (metres, z in
            metres); RealSense D4xx: error grows with the square of the distance, ``b = subpixel /
            (focal * baseline)`` = 0.08 / (430 px * 0.05 m) for a D435 at 848x480.
        independent_pixels: the window median's noise is ``1.25 sigma_z / sqrt(n)`` with ``n`` the
            cluster's pixels, capped at this many (neighbouring pixels' noise is correlated).
        pixel_sigma_px: 2D keypoint noise, gives the lateral uncertainty ``range * sigma / f``.
        joint_offsets_m: per canonical joint name, the joint centre's distance behind the visible
            surface along the ray; joints not listed use ``default_offset_m``. Empty means the
            anthropometric table of this module.
        default_offset_m: offset of joints not in the table.
        offset_sigma_m: uncertainty (1 sigma) of the offset, added along the ray (with
            ``measure_noise``: the least the measured slow variation of the offset may be).
        estimate_offsets: replace the table by per-joint offsets estimated from the data (the
            median over frames and views of triangulated range minus surface range, where the
            triangulation is reliable) when enough samples exist.
        min_offset_samples: samples a joint needs for its estimated offset to be used.
        gate_chi2: Mahalanobis distance squared (3 dof) above which a depth point is rejected
            against the triangulated point (16.3 = p 0.999).
        gate_distance_m: with no triangulated point, depth points farther than this from the
            median of the joint's depth points are rejected.
        temporal_window / temporal_gate_m: a depth point of a joint that has no triangulated point
            is also rejected when it lies farther than ``temporal_gate_m`` from the joint's median
            position over ``+- temporal_window`` frames (a wrong 2D detection seen by one camera
            only has nothing else to be checked against); 0 turns this off.
        triangulation_sigma_floor_m: added (in quadrature) to the triangulation's covariance, so a
            tiny reported covariance does not silence depth.
        measure_noise: measure from the data (:func:`measure_depth_noise`) how noisy each joint's
            depth is (frame-to-frame, relative to the sensor model) and how much its offset varies
            slowly, and weight the depth with that instead of the model and ``offset_sigma_m``.
    """

    enabled: bool = True
    window_px: int = 3
    window_fraction: float = 1.0
    max_window_px: int = 12
    min_valid_pixels: int = 4
    cluster_band_m: float = 0.12
    min_depth_m: float = 0.2
    max_depth_m: float = 8.0
    min_score: float = 0.1
    sample_at_estimate: bool = True
    sample_gate_px: float = 12.0
    sample_passes: int = 1
    expected_band_m: float = 0.01
    joints_without_depth: tuple[str, ...] = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    head_depth: bool = True
    head_radius_m: float = 0.09
    head_window_fraction: float = 0.5
    segment_depth: bool = True
    segment_points: tuple[float, ...] = (0.5,)
    noise_a_m: float = 0.001
    noise_b_per_m: float = 0.0037
    independent_pixels: float = 9.0
    pixel_sigma_px: float = 3.0
    joint_offsets_m: dict[str, float] = field(default_factory=dict)
    default_offset_m: float = 0.04
    offset_sigma_m: float = 0.005
    estimate_offsets: bool = True
    min_offset_samples: int = 20
    gate_chi2: float = 16.3
    gate_distance_m: float = 0.15
    temporal_window: int = 5
    temporal_gate_m: float = 0.2
    triangulation_sigma_floor_m: float = 0.005
    measure_noise: bool = True

    @property
    def reach_px(self) -> int:
        """Largest distance (pixels) from a keypoint that its depth window may read."""
        return max(self.window_px, self.max_window_px) if self.window_fraction > 0 else self.window_px

    def __post_init__(self):
        if self.window_px < 0:
            raise ValueError(f"window_px must be >= 0, got {self.window_px}")
        if self.max_window_px < self.window_px:
            raise ValueError(f"max_window_px must be >= window_px, got {self.max_window_px} < {self.window_px}")
        if self.min_valid_pixels < 1:
            raise ValueError(f"min_valid_pixels must be >= 1, got {self.min_valid_pixels}")
        if not 0 < self.min_depth_m < self.max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {self.min_depth_m}, {self.max_depth_m}")
        for name in ("noise_a_m", "noise_b_per_m", "pixel_sigma_px", "offset_sigma_m", "gate_chi2", "window_fraction",
                     "gate_distance_m", "triangulation_sigma_floor_m", "cluster_band_m", "sample_gate_px", "expected_band_m",
                     "head_radius_m", "head_window_fraction"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
