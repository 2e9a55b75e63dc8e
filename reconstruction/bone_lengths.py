"""Subject bone lengths: robust estimate from a 3D sequence, a subject file, or body height.

Shapes: ``T`` frames, ``J`` joints, ``B`` bones (the skeleton's ``bones`` order). Lengths in metres.

Three sources, one result type (:class:`BoneLengths`):

- :func:`estimate_bone_lengths`: median over the frames where both ends are well triangulated
  (enough views, small reprojection error); the uncertainty comes from the median absolute
  deviation (MAD), which a few swapped or outlying frames do not inflate.
- :func:`bone_lengths_from_height`: anthropometric segment ratios of body height (Drillis &
  Contini 1966, as tabulated by Winter, *Biomechanics and Motor Control of Human Movement*),
  with a 6 % standard deviation (inter-subject spread of those ratios).
- :func:`load_bone_lengths`: a subject YAML file (measured lengths, and/or a height for the rest)::

      height_m: 1.78                    # optional: fills every bone not listed below
      sigma_m: 0.005                    # optional: uncertainty of the listed lengths (default 5 mm)
      bone_lengths_m:                   # optional: measured lengths, by joint names
        - [left_shoulder, left_elbow, 0.31]
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.nan_warnings import quiet_nan_warnings

from capture.config import load_yaml
from capture.errors import ConfigError
from reconstruction.skeleton import Skeleton

log = logging.getLogger(__name__)

# 1.4826 * MAD estimates a normal standard deviation; the median's own standard error is
# sqrt(pi / 2) = 1.2533 times the mean's.
_MAD_TO_STD = 1.4826
_MEDIAN_EFFICIENCY = 1.2533

# Segment length / body height (Drillis & Contini via Winter, 4th ed., fig. 4.1), keyed by the
# side-less joint names of a bone. Face bones are rough (they are short and mostly non-rigid noise).
_HEIGHT_RATIOS = {
    frozenset(("shoulder", "elbow")): 0.186,
    frozenset(("elbow", "wrist")): 0.146,
    frozenset(("hip", "knee")): 0.245,
    frozenset(("knee", "ankle")): 0.246,
    frozenset(("shoulder",)): 0.259 * 0.75,  # biacromial breadth (shoulder joint centres ~ 0.75 of it)
    frozenset(("hip",)): 0.191 * 0.6,  # hip joint centres are ~ 0.6 of the hip breadth apart
    frozenset(("shoulder", "hip")): 0.288,
    frozenset(("neck", "shoulder")): 0.259 * 0.75 / 2,
    frozenset(("neck", "nose")): 0.080,
    frozenset(("neck", "head")): 0.130,
    frozenset(("head", "neck")): 0.130,
    frozenset(("neck", "mid_hip")): 0.288,
    frozenset(("neck", "hip")): 0.288,
    frozenset(("thorax", "neck")): 0.050,
    frozenset(("pelvis", "thorax")): 0.240,
    frozenset(("hip", "pelvis")): 0.191 * 0.3,
    frozenset(("mid_hip", "hip")): 0.191 * 0.3,
    frozenset(("thorax", "shoulder")): 0.259 * 0.75 / 2,
    frozenset(("nose", "eye")): 0.020,
    frozenset(("eye", "ear")): 0.045,
    frozenset(("ear",)): 0.086,  # head breadth between the ears
    frozenset(("eye",)): 0.036,  # interpupillary distance
    frozenset(("nose", "ear")): 0.070,
    frozenset(("ankle", "heel")): 0.039,
    frozenset(("ankle", "big_toe")): 0.152 * 0.85,
    frozenset(("big_toe", "small_toe")): 0.030,
    frozenset(("wrist", "index")): 0.108 * 0.8,
    frozenset(("wrist", "pinky")): 0.108 * 0.7,
    frozenset(("wrist", "thumb")): 0.108 * 0.5,
    frozenset(("ankle", "foot_index")): 0.152 * 0.85,
    frozenset(("heel", "foot_index")): 0.152,
}
_HEIGHT_RATIO_SIGMA = 0.06


@dataclass(frozen=True, eq=False)
class BoneLengths:
    """Bone lengths of one subject, in the order of ``skeleton.bones``.

    Attributes:
        bones: (B,) pairs of joint names.
        lengths_m: (B,) metres, NaN where unknown.
        sigma_m: (B,) uncertainty (one standard deviation) of each length, metres; inf where unknown.
        spread_m: (B,) frame-to-frame scatter of the measured length (1.4826 MAD), NaN if not measured.
        num_frames: (B,) frames that entered the estimate (0 when not measured).
        source: "sequence", "height", "file" or a combination.
    """

    bones: tuple[tuple[str, str], ...]
    lengths_m: np.ndarray
    sigma_m: np.ndarray
    spread_m: np.ndarray
    num_frames: np.ndarray
    source: str = "sequence"

    def __post_init__(self):
        n = len(self.bones)
        for name in ("lengths_m", "sigma_m", "spread_m", "num_frames"):
            value = np.asarray(getattr(self, name), dtype=np.int64 if name == "num_frames" else np.float64)
            if value.shape != (n,):
                raise ValueError(f"BoneLengths.{name} must be ({n},), got {value.shape}")
            object.__setattr__(self, name, value)

    def as_dict(self) -> dict:
        """Plain dict for JSON/YAML: ``{"a-b": {"length_m", "sigma_m", ...}}``."""
        return {
            f"{a}-{b}": {
                "length_m": _plain(length),
                "sigma_m": _plain(sigma),
                "spread_m": _plain(spread),
                "num_frames": int(count),
            }
            for (a, b), length, sigma, spread, count in zip(
                self.bones, self.lengths_m, self.sigma_m, self.spread_m, self.num_frames
            )
        }


def _plain(value: float):
    value = float(value)
    return value if np.isfinite(value) else None


def estimate_bone_lengths(
    xyz: np.ndarray,
    skeleton: Skeleton,
    n_views: np.ndarray | None = None,
    reproj_error_px: np.ndarray | None = None,
    min_views: int = 2,
    max_reproj_px: float = 15.0,
    min_frames: int = 5,
    covariance: np.ndarray | None = None,
) -> BoneLengths:
    """Median bone lengths over the frames where both ends are well triangulated.

    Noise lengthens a bone on average: ``E|X_a - X_b|^2 = L^2 + tr(C_a) + tr(C_b)``, 10 mm on a 5 cm
    face bone with 1 cm triangulation noise. With ``covariance`` (T, J, 3, 3) m^2 of ``xyz`` each
    frame's squared length is corrected by the two traces (at most 3 times the bone's measured
    length scatter squared) before the median.

    Args:
        xyz: (T, J, 3) metres, NaN where missing.
        skeleton: gives the bones.
        n_views: (T, J) views used per joint; frames with fewer than ``min_views`` at either end are
            left out (when given).
        reproj_error_px: (T, J); frames above ``max_reproj_px`` at either end are left out (when given).
        min_frames: bones measured in fewer frames get NaN (and inf sigma).

    Returns:
        BoneLengths with ``sigma_m`` the standard error of the median (1.2533 * 1.4826 MAD / sqrt(n)).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    idx = skeleton.bone_indices
    lengths = skeleton.bone_lengths(xyz)  # (T, B)
    good = np.isfinite(lengths)
    if n_views is not None:
        nv = np.asarray(n_views)
        good &= (nv[:, idx[:, 0]] >= min_views) & (nv[:, idx[:, 1]] >= min_views)
    if reproj_error_px is not None:
        err = np.nan_to_num(np.asarray(reproj_error_px, dtype=np.float64), nan=np.inf)
        good &= (err[:, idx[:, 0]] <= max_reproj_px) & (err[:, idx[:, 1]] <= max_reproj_px)
    if covariance is not None:
        # Never more than the scatter the data show (3 axes of it): a covariance that assumes
        # 3 px must not shorten the bones of clean data.
        trace = np.trace(np.asarray(covariance, dtype=np.float64), axis1=-2, axis2=-1)  # (T, J)
        noise = trace[:, idx[:, 0]] + trace[:, idx[:, 1]]
        with np.errstate(all="ignore"), quiet_nan_warnings():
            raw = np.where(good, lengths, np.nan)
            scatter = _MAD_TO_STD * np.nanmedian(np.abs(raw - np.nanmedian(raw, axis=0)), axis=0)
            noise = np.minimum(np.nan_to_num(noise), 3.0 * np.nan_to_num(scatter)[None, :] ** 2)
            lengths = np.sqrt(np.maximum(lengths**2 - noise, 0.0))
    masked = np.where(good, lengths, np.nan)
    count = good.sum(axis=0)
    with np.errstate(all="ignore"), quiet_nan_warnings():
        median = np.nanmedian(masked, axis=0)
        spread = _MAD_TO_STD * np.nanmedian(np.abs(masked - median), axis=0)
    enough = count >= min_frames
    median = np.where(enough, median, np.nan)
    spread = np.where(enough, spread, np.nan)
    with np.errstate(all="ignore"):
        sigma = np.where(enough, _MEDIAN_EFFICIENCY * spread / np.sqrt(np.maximum(count, 1)), np.inf)
    if not enough.all():
        missing = [f"{a}-{b}" for (a, b), ok in zip(skeleton.bones, enough) if not ok]
        log.info("bone lengths: too few good frames for %d bones (%s)", len(missing), ", ".join(missing))
    return BoneLengths(skeleton.bones, median, sigma, spread, count, source="sequence")


def _sideless(joint: str) -> str:
    for prefix in ("left_", "right_"):
        if joint.startswith(prefix):
            return joint[len(prefix):]
    return joint


def bone_lengths_from_height(height_m: float, skeleton: Skeleton) -> BoneLengths:
    """Bone lengths from body height with anthropometric ratios; NaN for bones the table lacks."""
    if not np.isfinite(height_m) or not 0.5 <= height_m <= 2.6:
        raise ValueError(f"body height must be in metres between 0.5 and 2.6, got {height_m}")
    ratios = np.array(
        [_HEIGHT_RATIOS.get(frozenset((_sideless(a), _sideless(b))), np.nan) for a, b in skeleton.bones]
    )
    lengths = ratios * height_m
    sigma = np.where(np.isfinite(lengths), _HEIGHT_RATIO_SIGMA * lengths, np.inf)
    n = len(skeleton.bones)
    return BoneLengths(skeleton.bones, lengths, sigma, np.full(n, np.nan), np.zeros(n, int), source="height")


def load_bone_lengths(path: str | Path, skeleton: Skeleton) -> BoneLengths:
    """Bone lengths from a subject YAML file (see the module docstring for the format)."""
    data = load_yaml(path)
    where = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a subject file must be a mapping with 'height_m' and/or 'bone_lengths_m'")
    allowed = {"height_m", "sigma_m", "bone_lengths_m", "name"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(allowed))})")
    n = len(skeleton.bones)
    lengths = np.full(n, np.nan)
    sigma = np.full(n, np.inf)
    sources = []
    if data.get("height_m") is not None:
        try:
            from_height = bone_lengths_from_height(_number(data["height_m"], where, "height_m"), skeleton)
        except ValueError as exc:
            raise ConfigError(f"{where}: height_m: {exc}") from None
        lengths, sigma = from_height.lengths_m.copy(), from_height.sigma_m.copy()
        sources.append("height")
    listed = data.get("bone_lengths_m") or []
    if not isinstance(listed, list):
        raise ConfigError(f"{where}: bone_lengths_m must be a list of [joint, joint, metres]")
    file_sigma = _number(data.get("sigma_m", 0.005), where, "sigma_m")
    bone_index = {frozenset(b): i for i, b in enumerate(skeleton.bones)}
    for k, entry in enumerate(listed):
        if not (isinstance(entry, list) and len(entry) == 3):
            raise ConfigError(f"{where}: bone_lengths_m[{k}] must be [joint, joint, metres], got {entry!r}")
        a, b, value = entry
        i = bone_index.get(frozenset((str(a), str(b))))
        if i is None:
            raise ConfigError(
                f"{where}: bone_lengths_m[{k}]: [{a}, {b}] is not a bone of skeleton {skeleton.name!r}"
            )
        length = _number(value, where, f"bone_lengths_m[{k}]")
        if not 0.0 < length < 2.0:
            raise ConfigError(f"{where}: bone_lengths_m[{k}]: {length} is not a length in metres")
        lengths[i], sigma[i] = length, file_sigma
    if listed:
        sources.append("file")
    if not sources:
        raise ConfigError(f"{where}: give height_m and/or bone_lengths_m")
    return BoneLengths(skeleton.bones, lengths, sigma, np.full(n, np.nan), np.zeros(n, int), "+".join(sources))


def _number(value, where: str, key: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key}: expected a number, got {value!r}") from None


def combine(primary: BoneLengths, fallback: BoneLengths) -> BoneLengths:
    """Inverse-variance combination of two estimates of the same bones (NaN/inf entries ignored)."""
    if tuple(primary.bones) != tuple(fallback.bones):
        raise ValueError("cannot combine bone lengths of different skeletons")
    w1 = np.where(np.isfinite(primary.lengths_m), 1.0 / np.square(primary.sigma_m), 0.0)
    w2 = np.where(np.isfinite(fallback.lengths_m), 1.0 / np.square(fallback.sigma_m), 0.0)
    total = w1 + w2
    with np.errstate(all="ignore"):
        lengths = (w1 * np.nan_to_num(primary.lengths_m) + w2 * np.nan_to_num(fallback.lengths_m)) / total
        sigma = 1.0 / np.sqrt(total)
    lengths = np.where(total > 0, lengths, np.nan)
    sigma = np.where(total > 0, sigma, np.inf)
    return BoneLengths(
        primary.bones, lengths, sigma, primary.spread_m, primary.num_frames, f"{primary.source}+{fallback.source}"
    )


def complete_bone_lengths(lengths: BoneLengths, skeleton: Skeleton) -> BoneLengths:
    """Fill the bones a sequence did not measure (e.g. a right arm no camera pair saw) from their
    mirror bone (left <-> right: the same length, its uncertainty plus 2 %). Others stay NaN (free).

    Body-height ratios are not used here: on the simulated CMU subject they held a two-camera
    reconstruction 3-4 mm further from the truth than leaving those bones free.
    """
    L = np.array(lengths.lengths_m, dtype=np.float64)
    sigma = np.array(lengths.sigma_m, dtype=np.float64)
    missing = ~np.isfinite(L)
    if not missing.any():
        return lengths
    perm = skeleton.flip_permutation
    index = {frozenset(b): k for k, b in enumerate(skeleton.bone_indices.tolist())}
    mirror = np.array([index.get(frozenset((int(perm[a]), int(perm[b]))), -1) for a, b in skeleton.bone_indices])
    take = missing & (mirror >= 0) & np.isfinite(L[np.maximum(mirror, 0)])
    if not take.any():
        return lengths
    L[take] = L[mirror[take]]
    sigma[take] = np.hypot(sigma[mirror[take]], 0.02 * L[take])
    return BoneLengths(lengths.bones, L, sigma, lengths.spread_m, lengths.num_frames, lengths.source + "+mirror")
