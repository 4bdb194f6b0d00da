"""Histogram → statistics: point estimates, hard bounds, quantiles, zeros and non-finite values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.blocks import HistogramBlock
from analyzer.reduction import layer_stats
from analyzer.runstats import run_stats
from analyzer.stats import abs_quantiles


def series(left, right, counts, num=None, total=None, squares=None) -> HistogramBlock:
    left, right, counts = (np.atleast_2d(np.asarray(a, float)) for a in (left, right, counts))
    steps = left.shape[0]
    nan = np.full(steps, np.nan)
    as_array = lambda v: nan if v is None else np.atleast_1d(np.asarray(v, float))  # noqa: E731
    return HistogramBlock(
        np.arange(steps),
        left,
        right,
        counts,
        as_array(num),
        as_array(total),
        as_array(squares),
        "tf2" if num is None else "legacy",
    )


def test_uniform_bucket_moments():
    # one bucket [1, 3]: uniform => E|g| = 2, E g^2 = 13/3; bounds are the edges
    s = layer_stats(series([1], [3], [10]))
    assert s.mean_abs[0] == pytest.approx(2)
    assert s.rms[0] == pytest.approx(np.sqrt(13 / 3))
    assert (s.rms_low[0], s.rms_high[0]) == pytest.approx((1, 3))
    assert s.max_abs[0] == 3 and s.zero_share[0] == 0


def test_bucket_straddling_zero_folds_onto_abs():
    # [-1, 3] uniform: E|g| = (1 + 9) / (2 * 4) = 1.25
    s = layer_stats(series([-1], [3], [4]))
    assert s.mean_abs[0] == pytest.approx(1.25)
    assert s.mean_abs_low[0] == 0 and s.zero_share[0] == 1
    assert s.zero_bucket_width[0] == 4


def test_exact_moments_win_over_buckets():
    s = layer_stats(series([0.0], [10.0], [4], num=4, total=4.0, squares=16.0))
    assert s.rms[0] == 2 and s.rms_exact[0] and s.rms_low[0] == s.rms_high[0] == 2


def test_exact_zero_bucket_of_zero_width():
    s = layer_stats(series([[0, 1]], [[0, 2]], [[6, 4]]))
    assert s.zero_share[0] == pytest.approx(0.6) and s.zero_bucket_width[0] == 0


def test_quantiles_interpolate_inside_buckets():
    s = layer_stats(series([[0, 1]], [[1, 2]], [[50, 50]]))
    np.testing.assert_allclose(s.abs_quantiles_last, [1.0, 1.8, 1.98])


def test_quantiles_fold_negative_buckets_and_are_reported_at_the_last_finite_step():
    # step 0: |g| mass 25 in [0, 1] (from [-1, 0]), 75 in [1, 2]; step 1 holds nothing
    two_steps = series([[-1, 1], [0, 0]], [[0, 2], [0, 0]], [[25, 75], [0, 0]])
    np.testing.assert_allclose(
        abs_quantiles(two_steps, np.array([0])), [[4 / 3, 1.0 + 65 / 75, 1.0 + 74 / 75]]
    )
    assert np.isnan(abs_quantiles(two_steps, np.array([1]))).all()
    np.testing.assert_allclose(
        layer_stats(two_steps).abs_quantiles_last, [4 / 3, 1.0 + 65 / 75, 1.0 + 74 / 75]
    )
    assert np.isnan(layer_stats(series([[0]], [[0]], [[0]])).abs_quantiles_last).all()


def test_tf2_nan_histogram_is_flagged_not_averaged():
    nan = np.full(30, np.nan)
    s = layer_stats(series([nan], [nan], [np.zeros(30)]))
    assert s.nonfinite[0] and s.empty[0] and np.isnan(s.rms[0])


def test_legacy_entries_missing_from_buckets_mean_nonfinite():
    s = layer_stats(series([-1], [1], [8], num=10, total=np.nan, squares=np.nan))
    assert s.nonfinite[0] and not s.empty[0]
    assert s.rms[0] == pytest.approx(np.sqrt(1 / 3))  # falls back to the finite buckets


def test_run_stats_aligns_layers_on_the_union_of_steps():
    a = series([[1], [1]], [[2], [2]], [[1], [1]])
    b = series([[1]], [[2]], [[1]])
    b.steps = np.array([1])
    rs = run_stats([layer_stats(a, "grad/a"), layer_stats(b, "grad/b")])
    assert list(rs.steps) == [0, 1]
    assert np.isnan(rs.rms[1, 0]) and np.isfinite(rs.rms[1, 1])


edges = st.floats(-1e30, 1e30, allow_nan=False)
weird = st.one_of(st.floats(allow_nan=True, allow_infinity=True), edges)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(weird, weird, st.one_of(st.floats(0, 1e9), weird)), min_size=0, max_size=40))
def test_any_histogram_gives_finite_or_flagged_statistics(buckets):
    left = [b[0] for b in buckets] or [0.0]
    right = [b[1] for b in buckets] or [0.0]
    counts = [b[2] for b in buckets] or [0.0]
    s = layer_stats(series([left], [right], [counts]))
    for name in ("rms", "rms_low", "rms_high", "mean_abs", "max_abs", "zero_share"):
        value = getattr(s, name)[0]
        assert np.isfinite(value) or s.empty[0], name
    if not s.empty[0] and np.isfinite(s.rms[0]):
        assert s.rms_low[0] <= s.rms[0] * (1 + 1e-9) + 1e-300
        assert s.rms[0] / (1 + 1e-9) <= s.rms_high[0] + 1e-300
        assert 0 <= s.zero_share[0] <= 1 + 1e-12


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200), st.integers(1, 40))
def test_bounds_contain_the_true_rms_of_the_values(values, k):
    values = np.asarray(values)
    counts, edges_ = np.histogram(values, bins=k)
    s = layer_stats(series([edges_[:-1]], [edges_[1:]], [counts]))
    true = np.sqrt(np.mean(values**2))
    assert s.rms_low[0] <= true * (1 + 1e-9) + 1e-12
    assert true <= s.rms_high[0] * (1 + 1e-9) + 1e-12
