"""reconstruction/gaps.py: neighbouring valid frames, fillable gaps, linear gap filling, runs of True."""
import numpy as np

from reconstruction.gaps import fill_gaps, fillable, neighbour_frames, true_runs


def test_neighbour_frames_known_answer():
    valid = np.array([[False, True], [True, False], [False, False], [True, False], [False, True]])
    prev, nxt = neighbour_frames(valid)
    # column 0: valid at 1 and 3; column 1: valid at 0 and 4 (T = 5: "no next" is 5, "no previous" -1)
    np.testing.assert_array_equal(prev, [[-1, 0], [1, 0], [1, 0], [3, 0], [3, 4]])
    np.testing.assert_array_equal(nxt, [[1, 0], [1, 4], [3, 4], [3, 4], [5, 4]])


def test_fillable_only_inside_short_gaps():
    valid = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)[:, None]
    # gap of 2 (frames 2-3) between valid frames, gap of 3 (5-7), and the ends (0 and 9)
    np.testing.assert_array_equal(fillable(valid, 2)[:, 0], [0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(fillable(valid, 3)[:, 0], [0, 0, 1, 1, 0, 1, 1, 1, 0, 0])
    assert not fillable(valid, 0).any() and not fillable(valid, 100)[[0, 9]].any()


def test_fill_gaps_interpolates_each_column_and_keeps_the_rest():
    x = np.full((7, 2, 3), np.nan)
    x[0, 0] = [0.0, 10.0, -1.0]
    x[4, 0] = [4.0, 30.0, 3.0]
    x[6, 0] = [0.0, 0.0, 0.0]
    x[1, 1] = [1.0, 1.0, 1.0]  # column 1: one valid frame, nothing to interpolate between
    out = fill_gaps(x, 3)
    assert out.shape == x.shape
    np.testing.assert_allclose(out[:5, 0], [[0, 10, -1], [1, 15, 0], [2, 20, 1], [3, 25, 2], [4, 30, 3]])
    np.testing.assert_allclose(out[5, 0], [2.0, 15.0, 1.5])  # the 1-frame gap between 4 and 6
    np.testing.assert_array_equal(np.isnan(out[:, 1]), np.isnan(x[:, 1]))
    assert np.isnan(fill_gaps(x, 2)[1:4, 0]).all()  # the 3-frame gap is longer than 2: stays NaN
    np.testing.assert_array_equal(x[1:4, 0], np.nan)  # the input is not modified


def test_fill_gaps_of_no_frames_is_empty():
    assert fill_gaps(np.zeros((0, 3)), 5).shape == (0, 3)


def test_true_runs():
    assert true_runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)) == [(0, 2), (3, 4), (6, 9)]
    assert true_runs(np.zeros(4, bool)) == [] and true_runs(np.ones(3, bool)) == [(0, 3)]
    assert true_runs(np.zeros(0, bool)) == []
