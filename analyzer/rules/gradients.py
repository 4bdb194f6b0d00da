"""Rules on per-layer gradient magnitudes (histograms, or per-parameter norms read as layers):
exploding (non-finite or missing entries, a sustained rise of the global norm, a diverging loss,
input-side layers far above the output side), vanishing (input-side layers far below) and dead units
(layers mostly exactly zero through the later steps)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..facts import (
    DepthDecay,
    DepthRatio,
    EmptyHistograms,
    HealthyGradients,
    LossDivergence,
    NoHistograms,
    NonFiniteGradients,
    TooFewSteps,
    ZeroGradients,
)
from ..findings import Diagnosis, Finding, not_judged, verdict_of
from ..runstats import RunStats
from ..stats import LayerStats, resolves_exact_zeros
from ..tags import follows_depth
from ..thresholds import Thresholds
from ..trends import RunTrends, log10_positive, theil_sen
from ..vocabulary import Kind, Measure, Severity, Source
from . import loss as loss_rules
from .norms import early_jump, early_log10, norm_rise


def diagnose(
    stats: RunStats,
    trends: RunTrends,
    limits: Thresholds,
    source: Source = Source.GRADIENTS,
    measure: Measure = Measure.RMS,
) -> Diagnosis:
    """`source`: what the layer statistics came from (histograms, or per-parameter norms logged as
    scalars); `measure`: what their magnitude is (a norm where norms could not be divided by their
    layers' sizes)."""
    if not stats.layers:
        return not_judged(NoHistograms(), 0)
    if len(stats.steps) < limits.min_steps:
        return not_judged(
            TooFewSteps(len(stats.steps), limits.min_steps, Source.GRADIENTS), len(stats.layers)
        )
    if not (np.isfinite(stats.rms).any() or stats.nonfinite.any()):
        return not_judged(EmptyHistograms(), len(stats.layers))
    findings = [f for rule in (_exploding, _vanishing, _dead_units) for f in rule(stats, trends, limits)]
    for finding in findings:
        finding.source, finding.measure = source, measure
    loss_state = loss_rules.loss_state_of(trends.loss, limits)
    loss_rules.apply_gate(findings, loss_state)
    _defer_to_measured_dead_units(findings)
    ratio = trends.depth_log10_ratio
    basis = HealthyGradients(
        tags=len(stats.layers),
        steps=len(stats.steps),
        depth_decades=float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else np.nan,
        gated_kinds=tuple(sorted({f.kind for f in findings})),
        source=source,
    )
    return verdict_of(findings, stats.tags, loss_state, basis)


def _exploding(stats: RunStats, trends: RunTrends, limits: Thresholds) -> list[Finding]:
    found: list[Finding] = []
    nonfinite = _nonfinite(stats, trends, limits)
    if nonfinite is not None:
        found.append(nonfinite)
    growing = _layers_growing(stats, limits)
    rise = norm_rise(
        stats.steps,
        trends.global_norm,
        lambda by_trend: (_layers_rising(stats, trends) if by_trend else growing) or list(stats.tags),
        limits,
        trends.loss,
    )
    if rise is not None:
        found.append(rise)
    elif trends.loss is not None and loss_rules.loss_diverged(trends.loss, trends.global_trend, limits):
        found.append(_loss_rise(stats, trends, limits))
    above = trends.depth_log10_ratio >= limits.exploding_depth_decades
    depth_share = _share(above, trends)
    if depth_share >= limits.vanishing_step_share:
        facts = DepthRatio(float(np.nanmedian(trends.depth_log10_ratio)), depth_share)
        tags = _layers_vs_output(stats, lambda d: d >= limits.exploding_depth_decades)
        found.append(Finding(Kind.EXPLODING, Severity.HIGH, tags, _steps_where(stats, above), facts, limits))
    return found


def _nonfinite(stats: RunStats, trends: RunTrends, limits: Thresholds) -> Finding | None:
    # A variable's size does not change: entries missing from its histogram were left out by a
    # writer that drops NaN/Inf, and count as non-finite.
    bad = stats.nonfinite | stats.missing
    bad_steps = np.flatnonzero(bad.any(axis=0))
    if not len(bad_steps):
        return None
    # PyTorch's writer raises at the first all-non-finite tensor: the tags after it in that step
    # have no histogram there at all, and the run's log ends. Tags that stop being logged from
    # the first bad step on, or whose RMS had risen by the growth threshold, were caught too.
    logged = np.isfinite(stats.count) | stats.nonfinite
    stopped = (~logged & (np.arange(len(stats.steps)) >= bad_steps[0])).any(axis=1)
    caught = bad.any(axis=1) | stopped
    caught[[stats.tags.index(t) for t in _layers_growing(stats, limits)]] = True
    facts = NonFiniteGradients(
        first_nonfinite_step=int(stats.steps[bad_steps[0]]),
        nonfinite_steps=int(len(bad_steps)),
        steps_with_missing_entries=int(stats.missing.any(axis=0).sum()),
        logged_steps=int(len(stats.steps)),
        early_global_norm=float(10 ** early_log10(trends.global_norm, limits)),
        last_finite_global_norm=_last_finite(trends.global_norm[: bad_steps[0]]),
        entries_dropped=not stats.nonfinite.any(),
        tags=len(stats.tags),
    )
    tags = [stats.tags[i] for i in np.flatnonzero(caught)]
    steps = [int(s) for s in stats.steps[bad_steps]]
    return Finding(Kind.EXPLODING, Severity.CRITICAL, tags, steps, facts, limits, gateable=False)


def _vanishing(stats: RunStats, trends: RunTrends, limits: Thresholds) -> list[Finding]:
    below = trends.depth_log10_ratio <= -limits.vanishing_depth_decades
    share = _share(below, trends)
    if share < limits.vanishing_step_share:
        return []
    median = float(np.nanmedian(trends.depth_log10_ratio))
    fit = _median_depth_fit(trends)
    facts = DepthDecay(
        median_depth_log10_ratio=median,
        first_last_rms_ratio=float(10**median),
        step_share=share,
        decades_per_layer=fit.decades_per_layer if fit else None,
        decades_per_layer_ci_low=fit.ci_low if fit else None,
        decades_per_layer_ci_high=fit.ci_high if fit else None,
        depth_fit_r2=fit.r2 if fit else None,
    )
    critical = median <= -limits.vanishing_critical_decades
    tags = _layers_vs_output(stats, lambda d: d <= -limits.vanishing_depth_decades)
    severity = Severity.CRITICAL if critical else Severity.HIGH
    return [Finding(Kind.VANISHING, severity, tags, _steps_where(stats, below), facts, limits)]


def _dead_units(stats: RunStats, trends: RunTrends, limits: Thresholds) -> list[Finding]:
    late = _late(stats, limits)
    first_weight = next((i for i, t in enumerate(stats.tags) if follows_depth(t)), None)
    dead_layers, shares, steps, estimated = [], [], set(), False
    for i, layer in enumerate(stats.layers):
        if i == first_weight or stats.sparse[i]:
            continue  # zeros here may be constant input features or untouched rows, not dead units
        # Exact zeros where the histogram resolves them; else the zero bucket's excess over a
        # heavy-tailed fit to its neighbours, where it stands far above that fit.
        exact = resolves_exact_zeros(layer, limits.exact_zero_resolution)
        spike = layer.zero_spike_ratio >= limits.coarse_zero_spike_ratio
        share = np.where(exact, layer.zero_share, np.where(spike, layer.zero_excess_share, 0.0))
        needed = np.where(exact, limits.dead_zero_share, limits.coarse_dead_zero_share)
        zero = (share >= needed) & ~layer.nonfinite
        if zero.any() and not exact.all():  # the line is fitted only where coarse steps could count
            zero &= ~_range_widened(layer, exact, limits)
        in_late = late[np.searchsorted(stats.steps, layer.steps)]
        if in_late.sum() == 0 or zero[in_late].mean() < limits.dead_step_share:
            continue
        dead_layers.append(layer.tag)
        shares.append(float(np.nanmedian(share[in_late])))
        steps.update(int(s) for s in layer.steps[zero])
        estimated |= not exact[in_late].all()
    if not dead_layers:
        return []
    if estimated:
        dead_layers += _coarse_layers_beside(stats, dead_layers, first_weight, late, limits)
        dead_layers.sort(key=stats.tags.index)
    worst = max(shares)
    facts = ZeroGradients(worst, float(np.median(shares)), estimated)
    jump = early_jump(stats.steps, trends.global_norm, trends.loss, limits)
    # Units alive at the first logged step that died after a jump at the first updates: the jump is
    # their likely cause (_came_back keeps it within the early window, long before the later half).
    if jump is not None and min(steps) > stats.steps[0]:
        facts.jump_decades, facts.jump_step = jump.growth_decades, jump.peak_step
        facts.early_global_norm = jump.early_global_norm
    severity = Severity.HIGH if worst >= limits.dead_high_share else Severity.MEDIUM
    # Exact zeros are a measured fact; an estimate from coarse buckets is a weak sign that the loss
    # gate weighs like a depth ratio.
    return [Finding(Kind.DEAD_UNITS, severity, dead_layers, sorted(steps), facts, limits, gateable=estimated)]


def _range_widened(layer: LayerStats, exact: np.ndarray, limits: Thresholds) -> np.ndarray:
    """Per step: coarse buckets whose range a few outliers stretched, its largest |g| standing
    widened_range_decades above the layer's own course (the Theil–Sen line of log10 max |g| over its
    steps, which a range growing with the gradients follows). TF2's 30 even buckets then put the
    layer's ordinary entries into the bucket holding zero, with the outliers' tail beside it: what
    looks like a spike of zeros is the bulk of the gradient."""
    log_max = log10_positive(layer.max_abs)
    finite = np.isfinite(log_max)
    if not finite.any():
        return np.zeros(len(log_max), bool)
    line = theil_sen(layer.steps[finite], log_max[finite], limits)
    usual = line.predict_log10(layer.steps) if line is not None else np.nanmedian(log_max)
    with np.errstate(invalid="ignore"):
        return ~exact & (log_max >= usual + limits.widened_range_decades)


def _late(stats: RunStats, limits: Thresholds) -> np.ndarray:
    """The later logged steps, which dead units do not recover in."""
    return np.arange(len(stats.steps)) >= int(len(stats.steps) * limits.dead_late_from)


def _coarse_layers_beside(
    stats: RunStats, claimed: list[str], first_weight: int | None, late: np.ndarray, limits: Thresholds
) -> list[str]:
    """Once coarse buckets show dead units in some layer, the layers whose zero bucket holds as much
    but whose neighbours are empty (no fit possible: nearly every entry in one bucket) are named too."""
    out = []
    for i, layer in enumerate(stats.layers):
        if layer.tag in claimed or i == first_weight or stats.sparse[i]:
            continue
        in_late = late[np.searchsorted(stats.steps, layer.steps)]
        unfitted = (layer.zero_spike_ratio == 0) & (layer.zero_share >= limits.coarse_dead_zero_share)
        if unfitted.any():
            exact = resolves_exact_zeros(layer, limits.exact_zero_resolution)
            unfitted &= ~_range_widened(layer, exact, limits)
        if in_late.any() and unfitted[in_late].mean() >= limits.dead_step_share:
            out.append(layer.tag)
    return out


def _defer_to_measured_dead_units(findings: list[Finding]) -> None:
    """Dead units measured from exact zeros pass no gradient back: a depth ratio beside them is their
    consequence, so the vanishing finding ranks below the dead-units one."""
    measured = [
        f for f in findings if f.kind is Kind.DEAD_UNITS and not f.gated and not f.facts.zero_share_estimated
    ]
    if not measured:
        return
    below = max(measured[0].severity.rank - 1, 1)
    for f in findings:
        if f.kind is Kind.VANISHING and not f.gated and f.severity.rank > below:
            f.severity = Severity.of_rank(below)
            f.explained_by_dead_units = True


def _loss_rise(stats: RunStats, trends: RunTrends, limits: Thresholds) -> Finding:
    loss = trends.loss
    rising = _layers_rising(stats, trends)  # a divergence caught at its onset
    facts = LossDivergence(loss.first, loss.last, loss.log10_change, loss.nonfinite_points, loss.series)
    steps = [int(s) for s in stats.steps]
    return Finding(
        Kind.EXPLODING,
        Severity.CRITICAL,
        rising or list(stats.tags),
        steps,
        facts,
        limits,
        reads_loss=True,
        gateable=False,
    )


def _layers_rising(stats: RunStats, trends: RunTrends) -> list[str]:
    """Tags whose RMS rose over the run (their Theil–Sen interval above zero), however far."""
    return [t for t, trend in zip(stats.tags, trends.layer_trends) if trend is not None and trend.ci_low > 0]


def _layers_growing(stats: RunStats, limits: Thresholds) -> list[str]:
    """Tags whose own RMS rose by the growth threshold over their early level."""
    if not stats.layers:
        return []
    log_rms = log10_positive(stats.rms)
    head = limits.early_points(len(stats.steps))
    out = []
    for i, tag in enumerate(stats.tags):
        row = log_rms[i]
        early = row[:head][np.isfinite(row[:head])]
        if early.size and np.nanmax(row) >= np.median(early) + limits.exploding_growth_decades:
            out.append(tag)
    return out


def _share(mask: np.ndarray, trends: RunTrends) -> float:
    known = np.isfinite(trends.depth_log10_ratio)
    return float(mask[known].mean()) if known.any() else 0.0


def _steps_where(stats: RunStats, mask: np.ndarray) -> list[int]:
    return [int(s) for s in stats.steps[np.flatnonzero(mask)]]


def _layers_vs_output(stats: RunStats, crosses: Callable[[float], bool]) -> list[str]:
    """Tags whose median log10 RMS, relative to the output-side depth layer, crosses the threshold."""
    log_rms = log10_positive(stats.rms)
    last = stats.depth_layers[-1]
    with np.errstate(invalid="ignore"):
        relative = log_rms - log_rms[last]
    out = []
    for i, tag in enumerate(stats.tags):
        row = relative[i][np.isfinite(relative[i])]
        if len(row) and not stats.sparse[i] and crosses(float(np.median(row))):
            out.append(tag)
    return out


def _median_depth_fit(trends: RunTrends):
    fits = [f for f in trends.depth_fits if f is not None]
    if not fits:
        return None
    return sorted(fits, key=lambda f: f.decades_per_layer)[len(fits) // 2]


def _last_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else float("nan")
