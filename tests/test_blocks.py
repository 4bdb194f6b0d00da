"""Collecting one tag's histograms: legacy runs of empty buckets merged without changing a statistic."""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto import summary_pb2

from analyzer.blocks import HistogramBlock, LegacyHistograms
from analyzer.reduction import layer_stats
from analyzer.stats import abs_quantiles


def _histogram(limits, counts, low, high):
    counts = np.asarray(counts, float)
    return summary_pb2.HistogramProto(
        min=low, max=high, num=counts.sum(), sum=0.0, sum_squares=1.0, bucket_limit=limits, bucket=counts
    )


def _unmerged_series(histograms) -> HistogramBlock:
    """Every bucket as written: (limit[i-1], limit[i]], from the exact min, the last clipped at max."""
    width = max(len(h.bucket) for h in histograms)
    left, right, counts = (np.zeros((len(histograms), width)) for _ in range(3))
    for i, h in enumerate(histograms):
        limits = np.array(h.bucket_limit)
        k = len(limits)
        right[i, :k], counts[i, :k] = limits, h.bucket
        left[i, 0], left[i, 1:k] = h.min, limits[:-1]
        right[i, k - 1] = min(right[i, k - 1], max(h.max, left[i, k - 1]))
    moments = np.array([(h.num, h.sum, h.sum_squares) for h in histograms]).T
    return HistogramBlock(np.arange(len(histograms)), left, right, counts, *moments, "legacy")


def test_merging_runs_of_empty_buckets_changes_no_statistic():
    rng = np.random.default_rng(0)
    limits = np.concatenate([-np.logspace(2, -12, 200), [0.0, 1e-300], np.logspace(-12, 2, 200), [1.8e308]])
    histograms = []
    for scale in (1e-6, 1e-2, 1.0):
        values = np.concatenate([rng.standard_t(3, size=400) * scale, np.zeros(50)])  # exact zeros too
        bucket = np.searchsorted(limits, values, side="left")
        counts = np.bincount(bucket, minlength=len(limits))
        histograms.append(_histogram(limits, counts, values.min(), values.max()))
    collected = LegacyHistograms()
    for step, h in enumerate(histograms):
        collected.add(step, h)
    merged = collected.block()
    assert merged.counts.shape[1] < len(limits) / 2  # most empty buckets merged away
    reference = _unmerged_series(histograms)
    for name, value in vars(layer_stats(reference)).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(getattr(layer_stats(merged), name), value, rtol=1e-12, err_msg=name)
    steps = np.arange(3)
    np.testing.assert_allclose(abs_quantiles(merged, steps), abs_quantiles(reference, steps), rtol=1e-12)
