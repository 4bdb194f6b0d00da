"""The binning every logger shares, in plain numpy: log buckets with a bucket of exact zeros, the
table lookup against binary search, and gradients binned together as each would be alone."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.binning import Binning, bucket_limits


def test_bucket_limits_isolate_exact_zero():
    limits = bucket_limits()
    zero = int(np.flatnonzero(limits == 0)[0])
    assert 0 < limits[zero + 1] < np.finfo(np.float32).smallest_subnormal  # [0, 1e-45): zeros only
    assert np.all(np.diff(limits) > 0)
    assert limits[-1] > np.finfo(np.float32).max


@pytest.mark.parametrize("buckets_per_decade", [1, 10, 37])
def test_float32_buckets_by_table_are_the_buckets_binary_search_gives(buckets_per_decade):
    """The table lookup against numpy.searchsorted on float32 values of every kind: a sweep of all
    bit patterns, each limit and its float32 neighbours, zeros of both signs, subnormals, extremes."""
    limits = bucket_limits(buckets_per_decade)
    patterns = np.arange(-(1 << 31), 1 << 31, 1009, dtype=np.int64).astype(np.int32).view(np.float32)
    finite_limits = limits[np.abs(limits) < np.finfo(np.float32).max].astype(np.float32)
    tiny = np.finfo(np.float32).smallest_subnormal
    values = np.concatenate(
        [
            patterns,
            finite_limits,
            np.nextafter(finite_limits, np.float32(np.inf)),
            np.nextafter(finite_limits, np.float32(-np.inf)),
            np.array([0.0, -0.0, tiny, -tiny, 2 * tiny, np.finfo(np.float32).tiny], dtype=np.float32),
            np.array([np.finfo(np.float32).max, np.finfo(np.float32).min], dtype=np.float32),
            np.arange(1, 70_000, dtype=np.int32).view(np.float32),  # the subnormal cells, searched
        ]
    )
    values = values[np.isfinite(values)]
    binning = Binning(limits)  # more values than a chunk: arrays made for the call
    by_chunk = Binning(limits, chunk_entries=values.size)  # the arrays it keeps and reuses
    for signed in (values, -values):
        expected = np.searchsorted(limits, signed.astype(np.float64), side="right")
        np.testing.assert_array_equal(binning.bucket_index(signed), expected)
        np.testing.assert_array_equal(by_chunk.bucket_index(signed), expected)


def assert_buckets_hold(bucket_limit, bucket, values, limits):
    """Each bucket [previous limit, limit) holds exactly the finite values in it: the non-empty ones
    as binned here, with the left edge a reader takes from the bucket before; runs of empty buckets
    merged into one, so at most twice as many buckets as non-empty ones."""
    right_edges = np.append(limits, np.finfo(np.float64).max)
    finite = values[np.isfinite(values)]
    expected = np.bincount(np.searchsorted(limits, finite, side="right"), minlength=len(right_edges))
    occupied = np.flatnonzero(expected)
    assert {limit: count for limit, count in zip(bucket_limit, bucket) if count} == {
        right_edges[i]: expected[i] for i in occupied
    }
    for k, (limit, count) in enumerate(zip(bucket_limit, bucket)):
        if count and k:
            i = int(np.flatnonzero(right_edges == limit)[0])
            assert bucket_limit[k - 1] == right_edges[i - 1]
    assert len(bucket) <= 2 * len(occupied)


def test_gradients_binned_together_get_the_histograms_each_would_get_alone():
    """Variables are binned in groups in one numpy pass; every edge case of one gradient must come out
    as if it were binned alone, whatever the grouping."""
    rng = np.random.default_rng(3)
    limits = bucket_limits()
    mixed = rng.normal(size=500) * 10.0 ** rng.integers(-12, 3, size=500)
    mixed[[3, 70, 71]] = [np.nan, np.inf, -np.inf]
    gradients = [
        rng.normal(size=(7, 3)).astype(np.float32) * 1e-3,
        np.zeros(0, dtype=np.float32),  # a variable with no entries
        np.array([np.nan, np.nan], dtype=np.float32),  # nothing finite
        mixed,
        np.zeros(40, dtype=np.float32),  # dead: exact zeros only
        np.array([1e300, -1e-300, 0.0]),  # float64 beyond float32's range
        (rng.normal(size=3000) * 1e-8).astype(np.float32),
        rng.normal(size=(2, 2)).astype(np.float32),
    ]
    for chunk_entries in (1, 64, 600, 1 << 20):
        histograms = list(Binning(limits, chunk_entries).histograms(gradients))
        assert len(histograms) == len(gradients)
        for histogram, gradient in zip(histograms, gradients):
            values = gradient.astype(np.float64).ravel()
            finite = values[np.isfinite(values)]
            assert_buckets_hold(list(histogram.bucket_limit), list(histogram.bucket), values, limits)
            assert histogram.num == values.size
            assert (histogram.minimum, histogram.maximum) == (
                (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
            )
            if finite.size < values.size:
                assert np.isnan(histogram.total) and np.isnan(histogram.total_squares)
            else:
                assert histogram.total == pytest.approx(finite.sum(), rel=1e-12, abs=1e-300)
                with np.errstate(over="ignore"):
                    squares = np.dot(finite, finite)
                assert histogram.total_squares == pytest.approx(squares, rel=1e-12)
