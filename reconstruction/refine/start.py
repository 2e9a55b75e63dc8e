"""Where the refinement starts: gross triangulation errors found, gaps bridged, unseen joints
placed by their bones.

Shapes: ``T`` frames, ``J`` joints, ``B`` bones, ``K`` neighbours. See the package docstring for the
rules; these are the pure functions behind them.
"""
from __future__ import annotations

import numpy as np

from capture.nan_warnings import quiet_nan_warnings


def find_spikes(xyz: np.ndarray, gate_m: float, half_window: int = 3, speed_factor: float = 0.0) -> np.ndarray:
    """(T, J) True where a joint is farther than its gate from the median of the frames around it.

    The gate is ``gate_m`` plus ``speed_factor`` times the joint's local speed (metres per frame: the
    median step between consecutive frames of the window, the two steps touching the frame itself
    left out), so that fast real motion (a foot swinging 0.3 m per frame) is not taken for a spike.
    """
    T = xyz.shape[0]
    if T < 3:
        return np.zeros(xyz.shape[:2], dtype=bool)
    padded = np.pad(xyz, ((half_window, half_window), (0, 0), (0, 0)), constant_values=np.nan)
    window = np.stack([padded[k:k + T] for k in range(2 * half_window + 1) if k != half_window])
    gate = np.full(xyz.shape[:2], gate_m)
    with quiet_nan_warnings():  # all-NaN windows
        median = np.nanmedian(window, axis=0)
        if speed_factor > 0 and half_window >= 2:
            steps = np.linalg.norm(np.diff(padded, axis=0), axis=-1)  # (T + 2 h - 1, J); step k: k -> k+1
            # steps of the window around frame t (padded index t + h) except t-1 -> t and t -> t+1
            ks = [k for k in range(2 * half_window) if k not in (half_window - 1, half_window)]
            local = np.nanmedian(np.stack([steps[k:k + T] for k in ks]), axis=0)
            gate = gate + speed_factor * np.nan_to_num(local)
    with np.errstate(invalid="ignore"):
        return np.linalg.norm(xyz - median, axis=-1) > gate


def bone_consistent(xyz: np.ndarray, bones: np.ndarray, lengths: np.ndarray, gate_m: float) -> np.ndarray:
    """(T, J) True where a joint has at least one rigid bone whose other end is finite and every such
    bone is within ``gate_m`` of its length."""
    T, J = xyz.shape[:2]
    if not len(bones) or gate_m <= 0:
        return np.zeros((T, J), dtype=bool)
    with np.errstate(invalid="ignore"):
        dev = np.abs(np.linalg.norm(xyz[:, bones[:, 0]] - xyz[:, bones[:, 1]], axis=-1) - lengths)  # (T, Br)
    known = np.isfinite(dev)
    bad = known & (dev > gate_m)
    n_known = np.zeros((T, J), dtype=int)
    n_bad = np.zeros((T, J), dtype=int)
    for end in (0, 1):  # both ends of each bone (two vectorized scatter-adds)
        np.add.at(n_known, (slice(None), bones[:, end]), known)
        np.add.at(n_bad, (slice(None), bones[:, end]), bad)
    return (n_known > 0) & (n_bad == 0)


def interpolate_gaps(xyz: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of each joint's NaN frames; nearest value at the ends."""
    T, J, _ = xyz.shape
    out = xyz.copy()
    frames = np.arange(T)
    for j in range(J):  # per joint (few), each interpolation vectorized over frames
        ok = np.isfinite(xyz[:, j, 0])
        if ok.any() and not ok.all():
            for c in range(3):
                out[~ok, j, c] = np.interp(frames[~ok], frames[ok], xyz[ok, j, c])
    return out


def carry_with_neighbours(ref_nb: np.ndarray, ref_joint: np.ndarray, cur_nb: np.ndarray) -> np.ndarray:
    """Place a joint (T, 3) where it was relative to its neighbours: ``ref_nb`` (T, K, 3) and
    ``ref_joint`` (T, 3) in a reference frame, ``cur_nb`` (T, K, 3) now. The rigid motion taking the
    reference neighbours onto the current ones (Kabsch with >= 3 neighbours; with 2, the smallest
    rotation turning their segment; with 1, a translation) is applied to the joint: an ear turns
    with the head instead of staying where the head was facing in the reference frame."""
    ref_c = ref_nb.mean(axis=1)
    cur_c = cur_nb.mean(axis=1)
    offset = ref_joint - ref_c  # (T, 3)
    K = ref_nb.shape[1]
    if K == 1:
        return cur_c + offset
    if K == 2:
        a = ref_nb[:, 1] - ref_nb[:, 0]
        b = cur_nb[:, 1] - cur_nb[:, 0]
        a = a / np.linalg.norm(a, axis=-1, keepdims=True)
        b = b / np.linalg.norm(b, axis=-1, keepdims=True)
        v = np.cross(a, b)
        c = np.sum(a * b, axis=-1)
        vx = np.zeros(v.shape[:-1] + (3, 3))
        vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
        vx = vx - np.swapaxes(vx, -1, -2)
        with np.errstate(invalid="ignore", divide="ignore"):
            R = np.eye(3) + vx + (vx @ vx) / (1.0 + c)[..., None, None]
        R = np.where((c > -0.999)[..., None, None], R, np.eye(3))  # opposite: no rotation guessed
    else:
        H = np.einsum("tki,tkj->tij", ref_nb - ref_c[:, None], cur_nb - cur_c[:, None])
        H = np.nan_to_num(H)
        U, _, Vt = np.linalg.svd(H)
        d = np.sign(np.linalg.det(Vt.transpose(0, 2, 1) @ U.transpose(0, 2, 1)))
        D = np.zeros_like(H)
        D[:, 0, 0] = D[:, 1, 1] = 1.0
        D[:, 2, 2] = d
        R = Vt.transpose(0, 2, 1) @ D @ U.transpose(0, 2, 1)
    return cur_c + np.einsum("tij,tj->ti", R, offset)


def anchor_by_bones(x_init: np.ndarray, x_start: np.ndarray, active: np.ndarray, bones: np.ndarray,
                     min_bones: int, passes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Activate the NaN joint-frames held by >= ``min_bones`` ``bones`` (B, 2) to active joints (all of
    its bones when it has fewer: an ankle hangs from its knee).

    Such a joint, seen by no camera for longer than the gap filling bridges (a shoulder turned away
    from both cameras of a two-camera rig), is placed by the bones and smoothness. Its start is where
    it was relative to its neighbours in the nearest frame where all were found, carried by their
    motion since (:func:`carry_with_neighbours`): the body moves, the limb keeps its shape (a joint
    never found with them in the clip starts amid them, its bones then place it). Joints are added
    in ``passes`` rounds, so one anchored joint can hold the next. Returns (x_start, active) updated.
    """
    T, J, _ = x_init.shape
    frames = np.arange(T)
    known = np.all(np.isfinite(x_init), axis=-1)
    x_start = x_start.copy()
    active = active.copy()
    neighbours = [np.concatenate([bones[bones[:, 0] == j, 1], bones[bones[:, 1] == j, 0]]) for j in range(J)]
    for _ in range(passes):
        added = False
        for j in range(J):  # per joint (few), vectorized over frames
            nb = neighbours[j]
            if not len(nb):
                continue
            # an end joint (a wrist, an ankle) has one bone: that one holds it
            todo = ~active[:, j] & (active[:, nb].sum(axis=1) >= min(min_bones, len(nb)))
            if not todo.any():
                continue
            ref = np.flatnonzero(known[:, j] & known[:, nb].all(axis=1))
            if len(ref):
                after = np.clip(np.searchsorted(ref, frames), 0, len(ref) - 1)
                before = np.clip(after - 1, 0, len(ref) - 1)
                pick = np.where(np.abs(ref[before] - frames) <= np.abs(ref[after] - frames), ref[before], ref[after])
                start = carry_with_neighbours(x_init[pick][:, nb], x_init[pick, j], x_start[:, nb])
            elif len(nb) >= 2:
                # never found with its neighbours in this clip: start amid them, the bones place it
                start = x_start[:, nb].mean(axis=1)
            else:
                continue
            todo &= np.all(np.isfinite(start), axis=-1)
            x_start[todo, j] = start[todo]
            active[todo, j] = True
            added = added or bool(todo.any())
        if not added:
            break
    return x_start, active
