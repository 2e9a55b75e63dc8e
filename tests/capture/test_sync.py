"""capture/sync.py: the frame-set synchronizer: known offsets, drops, duplicates, the tolerance bound, no
O(n^2); and on simulated recordings read back with pyrealsense2."""
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from capture.sync import estimate_offsets, find_drops, synchronize
from reconstruction.simulation.session import SimulationConfig, simulate_session
from tests.support import read_with_pyrealsense2


P = 1000.0 / 30


def _rig_timestamps(rng, T=300, V=4, drop=0.0, jitter=0.3, offsets=(0.0, 1234.5, -50.25, 77777.75)):
    true = np.arange(T) * P
    ts, fns, drops = [], [], []
    for v in range(V):
        keep = rng.random(T) >= drop
        fns.append(np.flatnonzero(keep))
        drops.append(np.flatnonzero(~keep))
        ts.append(true[keep] + offsets[v] + rng.uniform(-jitter, jitter, keep.sum()))
    return ts, fns, drops, np.asarray(offsets[:V])


def _true_frame(result, fns):
    """(S, V) true frame number of each set member, -1 where missing."""
    out = np.full(result.index.shape, -1)
    for v, fn in enumerate(fns):
        ok = result.index[:, v] >= 0
        out[ok, v] = fn[result.index[ok, v]]
    return out


def test_known_offsets_reform_every_set(rng):
    ts, fns, _, offsets = _rig_timestamps(rng, T=90)
    result = synchronize(ts, P / 2, offsets, frame_numbers=fns)
    assert result.num_sets == 90
    assert result.complete.all()
    assert result.skew_ms.max() <= 1.0
    truth = _true_frame(result, fns)
    assert np.all(truth == np.arange(90)[:, None])  # each set is one instant, in order
    assert all(d.size == 0 for d in result.dropped)


def test_without_offsets_cameras_do_not_pair(rng):
    ts, fns, _, offsets = _rig_timestamps(rng, T=90)
    result = synchronize(ts, P / 2, None, frame_numbers=fns)
    assert not result.complete.any()  # clocks 1 s apart: nothing within the tolerance


def test_five_percent_drops_are_all_reported_and_tolerance_holds(rng):
    ts, fns, drops, offsets = _rig_timestamps(rng, T=3000, drop=0.05)
    tol = 10.0
    result = synchronize(ts, tol, offsets, frame_numbers=fns)
    for v in range(4):
        np.testing.assert_array_equal(result.dropped[v], drops[v])
    assert np.nanmax(result.skew_ms) <= tol
    truth = _true_frame(result, fns)
    # every set holds frames of one instant, every frame is used once, missing == dropped
    for row in truth:
        assert len(set(row[row >= 0])) == 1
    for v in range(4):
        assert result.unmatched[v].size == 0
        instants = truth.max(axis=1)
        np.testing.assert_array_equal(np.sort(instants[truth[:, v] < 0]), drops[v])


def test_drops_without_frame_numbers_from_time_gaps(rng):
    ts, fns, drops, offsets = _rig_timestamps(rng, T=3000, drop=0.05)
    result = synchronize(ts, P / 2, offsets)
    for v in range(4):
        np.testing.assert_array_equal(result.dropped[v], drops[v] - fns[v][0])


def test_never_pairs_beyond_tolerance_with_large_jitter(rng):
    ts, fns, _, offsets = _rig_timestamps(rng, T=500, jitter=12.0)
    tol = 8.0
    result = synchronize(ts, tol, offsets, frame_numbers=fns)
    assert np.nanmax(result.skew_ms) <= tol
    # frames too far from their partners are marked missing instead, and used at most once
    for v in range(4):
        used = result.index[result.index[:, v] >= 0, v]
        assert np.unique(used).size == used.size
        assert np.all(np.diff(used) > 0)


def test_estimated_offsets_recover_known_ones(rng):
    ts, fns, _, offsets = _rig_timestamps(rng, T=300)
    est = estimate_offsets(ts, P, reference=0)
    np.testing.assert_allclose(est, offsets, atol=0.1)
    result = synchronize(ts, P / 2, "estimate", frame_numbers=fns)
    assert result.complete.all() and result.num_sets == 300
    assert result.skew_ms.max() <= 1.0


def test_duplicates_are_reported():
    t = np.arange(10) * P
    fn = np.arange(10)
    t2 = np.insert(t, 4, t[3] + 0.5)
    fn2 = np.insert(fn, 4, 3)
    dropped, duplicates = find_drops(fn2, t2, P)
    assert dropped.size == 0
    np.testing.assert_array_equal(duplicates, [4])
    result = synchronize([t, t2], 5.0, frame_numbers=[fn, fn2])
    np.testing.assert_array_equal(result.duplicates[1], [4])
    assert result.num_sets == 10
    assert result.unmatched[1].size == 1


def test_reference_drop_keeps_other_cameras_frames():
    t = np.arange(20) * P
    ref = np.delete(t, [0, 7, 8, 19])
    result = synchronize([ref, t], 5.0, reference=0, frame_numbers=[np.delete(np.arange(20), [0, 7, 8, 19]), np.arange(20)])
    assert result.num_sets == 20
    assert (result.index[:, 1] >= 0).all()
    np.testing.assert_array_equal(result.dropped[0], [0, 7, 8, 19])


def test_bad_input_messages():
    with pytest.raises(ValueError, match="not increasing"):
        synchronize([np.array([0.0, 10.0, 5.0])], 5.0)
    with pytest.raises(ValueError, match="offsets_ms must be"):
        synchronize([np.arange(5.0), np.arange(5.0)], 5.0, offsets_ms=np.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        synchronize([np.arange(5.0)], 0.0)


def test_scales_linearly(rng):
    ts, fns, _, offsets = _rig_timestamps(rng, T=100_000, V=4, drop=0.05)
    t0 = time.perf_counter()
    result = synchronize(ts, P / 2, offsets, frame_numbers=fns)
    assert time.perf_counter() - t0 < 2.0  # 400k frames: vectorized, no pairwise comparison
    assert result.num_sets == 100_000


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    V=st.integers(1, 5),
    drop=st.floats(0.0, 0.3),
    jitter=st.floats(0.0, 20.0),
    tol=st.floats(1.0, 30.0),
)
def test_property_tolerance_and_single_use(seed, V, drop, jitter, tol):
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-1000, 1000, V)
    ts, fns, drops, _ = _rig_timestamps(rng, T=120, V=V, drop=drop, jitter=jitter, offsets=tuple(offsets))
    ts = [np.sort(t) for t in ts]
    if any(t.size < 2 for t in ts):
        return
    result = synchronize(ts, tol, offsets, period_ms=P)
    assert np.all(result.skew_ms <= tol + 1e-9)
    for v in range(V):
        used = result.index[result.index[:, v] >= 0, v]
        assert np.all(np.diff(used) > 0)  # each frame at most once, in time order
        assert used.size + result.unmatched[v].size == ts[v].size
        got = result.times_ms[result.index[:, v] >= 0, v]
        np.testing.assert_allclose(got, ts[v][used] - offsets[v])


def synchronize_recordings(result, tolerance_ms):
    """Our synchronizer over the timestamps and frame numbers read back with pyrealsense2, with the
    simulated clock offsets undone. Returns the SyncResult and each camera's frame numbers."""
    sync = pytest.importorskip("capture.sync")
    truth = np.load(result.ground_truth)
    stamps, numbers = [], []
    for path in result.recordings:
        frames, _ = read_with_pyrealsense2(path)
        stamps.append(np.array([f[0] for f in frames["depth"]]))
        numbers.append(np.array([f[1] for f in frames["depth"]], dtype=np.int64))
    out = sync.synchronize(stamps, tolerance_ms, offsets_ms=truth["clock_offsets_ms"], frame_numbers=numbers,
                           period_ms=1000.0 / float(truth["fps"]))
    return out, numbers, truth


def test_synchronizer_reforms_frame_sets_and_reports_every_drop(tmp_path):
    cfg = SimulationConfig(cameras=3, seconds=20 / 30, resolution=(160, 120), drop_rate=0.1, seed=4)
    result = simulate_session(tmp_path, cfg)
    tolerance = 5.0
    out, numbers, truth = synchronize_recordings(result, tolerance)
    dropped = np.isnan(truth["timestamps_ms"])
    assert dropped.sum() >= 3
    assert out.num_sets == 20
    assert np.all(out.skew_ms <= 1.0) and np.all(out.skew_ms <= tolerance)
    for v in range(3):
        # every set holds the same frame number in each present view, and views are missing exactly
        # where the simulator dropped the frame
        present = out.index[:, v] >= 0
        np.testing.assert_array_equal(present, ~dropped[:, v])
        np.testing.assert_array_equal(numbers[v][out.index[present, v]], truth["frame_numbers"][present])
        # every drop is reported, by frame number
        np.testing.assert_array_equal(np.sort(out.dropped[v]), truth["frame_numbers"][dropped[:, v]])
