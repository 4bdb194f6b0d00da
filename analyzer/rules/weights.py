"""Rules on weight histograms, for runs that logged no gradients (Keras's TensorBoard(histogram_freq=1)):
the weight-side symptoms of vanishing gradients (input-side layers that stay put while others move)
and of exploding ones (weights that grow by decades or turn NaN/Inf)."""

from __future__ import annotations

import re

import numpy as np

from ..facts import HealthyWeights, NonFiniteWeights, StillWeights, TooFewSteps, WeightGrowth
from ..findings import Diagnosis, Finding, not_judged, verdict_of
from ..runstats import RunStats
from ..thresholds import Thresholds
from ..trends import LossTrend, log10_positive
from ..vocabulary import Kind, Severity, Source
from . import loss as loss_rules

# Optimizers that divide each update by a running gradient scale: small gradients still move weights.
ADAPTIVE_OPTIMIZER = re.compile(r"(?i)adam|rmsprop|adagrad|adadelta|adafactor|adamax|nadam|lion|lamb|ftrl")


def diagnose_weights(
    stats: RunStats, loss: LossTrend | None, optimizer: str | None, limits: Thresholds
) -> Diagnosis:
    """`optimizer`: as the run logged it, or None."""
    if len(stats.steps) < limits.min_steps:
        return not_judged(TooFewSteps(len(stats.steps), limits.min_steps, Source.WEIGHTS), len(stats.layers))
    findings = _exploding(stats, limits) + _still(stats, optimizer, limits)
    for finding in findings:
        finding.source = Source.WEIGHTS
    loss_state = loss_rules.loss_state_of(loss, limits)
    loss_rules.apply_gate(findings, loss_state)
    movement = weight_movement(stats)[stats.depth_layers]
    basis = HealthyWeights(
        tags=len(stats.layers),
        steps=len(stats.steps),
        none_moved=bool(movement.size and np.nanmax(movement) < limits.weight_moving_decades),
        all_moved=movement.size >= 2,
        gated_kinds=tuple(sorted({f.kind for f in findings})),
    )
    return verdict_of(findings, stats.tags, loss_state, basis)


def weight_movement(stats: RunStats) -> np.ndarray:
    """Per layer: the summed |change of log10 RMS| between consecutive logged steps with a finite,
    positive RMS (decades); NaN with fewer than two."""
    out = np.full(len(stats.layers), np.nan)
    for i, row in enumerate(log10_positive(stats.rms)):
        finite = row[np.isfinite(row)]
        if finite.size >= 2:
            out[i] = float(np.abs(np.diff(finite)).sum())
    return out


def _exploding(stats: RunStats, limits: Thresholds) -> list[Finding]:
    bad = stats.nonfinite.any(axis=0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        tags = [stats.tags[i] for i in np.flatnonzero(stats.nonfinite.any(axis=1))]
        facts = NonFiniteWeights(int(stats.steps[first]), int(bad.sum()), len(stats.steps), len(stats.layers))
        steps = [int(s) for s in stats.steps[bad]]
        return [Finding(Kind.EXPLODING, Severity.CRITICAL, tags, steps, facts, limits, gateable=False)]
    log_rms = log10_positive(stats.rms)
    grown = []
    for i in stats.depth_layers:
        finite = np.flatnonzero(np.isfinite(log_rms[i]))
        if finite.size >= 2:
            growth = log_rms[i, finite[-1]] - log_rms[i, finite[0]]
            if growth >= limits.weight_growth_decades:
                grown.append((i, growth))
    if not grown:
        return []
    facts = WeightGrowth(float(max(growth for _, growth in grown)), len(grown))
    tags = [stats.tags[i] for i, _ in grown]
    return [Finding(Kind.EXPLODING, Severity.HIGH, tags, [int(stats.steps[-1])], facts, limits)]


def _still(stats: RunStats, optimizer: str | None, limits: Thresholds) -> list[Finding]:
    depth = stats.depth_layers
    movement = weight_movement(stats)
    if len(depth) < 2 or not np.isfinite(movement[depth]).all():
        return []
    most = float(movement[depth].max())
    if most < limits.weight_moving_decades:
        return []
    with np.errstate(divide="ignore"):
        below = np.log10(movement[depth] / most)
    if below[0] > -limits.weight_still_decades:
        return []
    still = [stats.tags[i] for i, b in zip(depth, below) if b <= -limits.weight_still_decades]
    adaptive = bool(optimizer and ADAPTIVE_OPTIMIZER.search(optimizer))
    facts = StillWeights(
        first_layer_movement_decades=float(movement[depth[0]]),
        most_movement_decades=most,
        movement_log10_ratio=float(below[0]),
        optimizer=optimizer or "not logged",
        optimizer_logged=optimizer is not None,
        adaptive=adaptive,
    )
    severity = Severity.MEDIUM if adaptive else Severity.HIGH
    return [Finding(Kind.VANISHING, severity, still, [int(stats.steps[-1])], facts, limits)]
