"""Statistics built by hand, for the rules: a layer's RMS, zeros and non-finite steps as plain lists,
and a run of them aligned and fitted by the same pure functions the pipeline uses."""

from __future__ import annotations

import numpy as np

from analyzer.events import LossSeries
from analyzer.findings import Diagnosis
from analyzer.rules.gradients import diagnose
from analyzer.rules.weights import diagnose_weights
from analyzer.runstats import RunStats, run_stats
from analyzer.stats import LayerStats
from analyzer.thresholds import DEFAULT_THRESHOLDS, Thresholds
from analyzer.trends import RunTrends, run_trends


def layer(
    tag: str,
    rms,
    *,
    zero=0.0,
    exact: bool = True,
    spike=0.0,
    excess=0.0,
    nonfinite=None,
    count=1000.0,
    zero_width=None,
    steps=None,
    widen=0.0,
) -> LayerStats:
    """One tag's statistics: `rms` per step (NaN: nothing finite), the share of zeros (`zero`), counted
    exactly (`exact`: a zero bucket of width 0) or in a coarse bucket a tenth of the largest |g| wide
    with its spike ratio and excess share over the fit; `zero_width`: the zero bucket's width as a
    share of the largest |g|, where a test sets it; `widen`: decades by which outliers stretched the
    largest |g| (and so the coarse buckets) per step."""
    rms = np.asarray(rms, float)
    n = len(rms)

    def per_step(value, dtype=float):
        return np.broadcast_to(np.asarray(value, dtype), (n,)).copy()

    max_abs = np.where(
        np.isfinite(rms), 4 * rms * 10 ** np.broadcast_to(np.asarray(widen, float), (n,)), np.nan
    )
    if zero_width is None:
        zero_width = 0.0 if exact else 0.1
    return LayerStats(
        tag=tag,
        steps=np.arange(n, dtype=np.int64) if steps is None else np.asarray(steps, np.int64),
        count=per_step(count),
        rms=rms,
        rms_low=rms,
        rms_high=rms,
        rms_exact=np.ones(n, bool),
        mean_abs=rms,
        mean_abs_low=rms,
        mean_abs_high=rms,
        abs_quantiles_last=np.full(3, np.nan),
        max_abs=max_abs,
        zero_share=per_step(zero),
        zero_bucket_width=per_step(zero_width) * np.nan_to_num(max_abs),
        zero_excess_share=per_step(excess),
        zero_spike_ratio=per_step(spike),
        nonfinite=per_step(False if nonfinite is None else nonfinite, bool),
        empty=np.zeros(n, bool),
    )


def decaying(depth: int, steps: int, decades: float, tag: str = "grad/l{}/kernel") -> list[LayerStats]:
    """`depth` layers whose RMS falls by `decades` in all from the output side to the input side, on
    every step."""
    return [
        layer(tag.format(i), [10 ** (-decades * (depth - 1 - i) / (depth - 1))] * steps) for i in range(depth)
    ]


def three(tag="grad/l{}/kernel", steps=10, **hidden) -> list:
    """Input, hidden and output layers of RMS 1; the hidden one with `hidden`'s zeros."""
    return [
        layer(tag.format(0), [1.0] * steps),
        layer(tag.format(1), [1.0] * steps, **hidden),
        layer(tag.format(2), [1.0] * steps),
    ]


def loss(values, steps=None, tag: str = "loss") -> LossSeries:
    values = np.asarray(values, float)
    steps = np.arange(len(values), dtype=np.int64) if steps is None else np.asarray(steps, np.int64)
    return LossSeries(tag, "", steps, values)


def fitted(
    layers: list[LayerStats], limits: Thresholds = DEFAULT_THRESHOLDS, losses=None
) -> tuple[RunStats, RunTrends]:
    stats = run_stats(layers, limits)
    return stats, run_trends(stats, losses or [], limits)


def judged(layers: list[LayerStats], limits: Thresholds = DEFAULT_THRESHOLDS, losses=None) -> Diagnosis:
    """The gradient rules' diagnosis of these layers."""
    stats, trends = fitted(layers, limits, losses)
    return diagnose(stats, trends, limits)


def judged_weights(
    layers: list[LayerStats],
    limits: Thresholds = DEFAULT_THRESHOLDS,
    optimizer: str | None = None,
    losses=None,
) -> Diagnosis:
    """The weight rules' diagnosis of these layers read as weight histograms."""
    stats, trends = fitted(layers, limits, losses)
    return diagnose_weights(stats, trends.loss, optimizer, limits)


def learned(
    values, layers=None, limits: Thresholds = DEFAULT_THRESHOLDS, rate=None, steps=None, chance=None
) -> Diagnosis:
    """The gradient rules', then the learning rules' diagnosis of a run whose training loss is
    `values` (one point per step unless `steps` says), beside `layers` (three healthy ones by default);
    `chance`: the chance-level loss of the classifier the run shows."""
    from analyzer.learning import gradient_course, loss_course
    from analyzer.rules.learning import judge_learning

    series = loss(values, steps)
    layers = layers if layers is not None else three(steps=len(values))
    stats, trends = fitted(layers, limits, [series])
    diagnosis = diagnose(stats, trends, limits)
    course = loss_course(series, limits)
    gradients = gradient_course(stats, trends.global_norm, "gradients", limits)
    return judge_learning(diagnosis, course, gradients, rate, limits, chance)


def rate(values, steps=None):
    from analyzer.learning import RateCourse

    values = np.asarray(values, float)
    steps = np.arange(len(values), dtype=np.int64) if steps is None else np.asarray(steps, np.int64)
    return RateCourse("lr", steps, values)
