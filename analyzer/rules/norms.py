"""Rules on a gradient norm over steps: its rise above its early level (shared with the histogram
rules, which read the global norm their layers make), and a run whose only evidence is one global
norm logged as a scalar, judged for exploding only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..facts import HealthyNorm, NonFiniteNorm, NormRise, TooFewSteps
from ..findings import Diagnosis, Finding, not_judged, verdict_of
from ..thresholds import Thresholds
from ..trends import LossTrend, NormTrend, log10_positive, theil_sen
from ..vocabulary import Kind, Severity, Source
from . import loss as loss_rules


def early_log10(norm: np.ndarray, limits: Thresholds) -> float:
    """log10 of a norm's early level: the median of its first finite points (Thresholds.early_points)."""
    log_norm = log10_positive(norm)
    finite = log_norm[np.isfinite(log_norm)]
    head = limits.early_points(len(finite))
    return float(np.median(finite[:head])) if len(finite) else np.nan


def norm_rise(
    steps: np.ndarray,
    norm: np.ndarray,
    layers: Callable[[bool], list[str]],
    limits: Thresholds,
    loss: LossTrend | None = None,
) -> Finding | None:
    """The norm rose by the growth threshold over its early level on enough logged steps, or to the
    last finite one (a rise cut short by NaN is no spike), or at the last logged point along a
    Theil–Sen line whose interval lies above zero (a lasting rise that sparse logging caught once), and
    did not come back down while the `loss` stayed finite. `layers(by_trend)`: the tags to name, for a
    rise shown by its trend (True) or by its points (False)."""
    log_norm, early, above = _above_early(norm, limits)
    if not np.isfinite(early) or _came_back(norm, early, above, loss, limits):
        return None
    finite = np.flatnonzero(np.isfinite(norm))  # a norm of exactly 0 is logged and finite
    # A rise that lasts until the gradients stop being finite or logged is not a spike.
    reaches_end = len(above) > 0 and above[-1] == finite[-1]
    cut_short = reaches_end and log_norm[above[-1]] >= early + limits.exploding_cut_short_decades
    by_points = len(above) >= limits.exploding_min_steps or cut_short
    if not by_points:
        # A rise that lasts to the last logged point along a line whose interval lies above zero: sparse
        # logging (ten points) shows a sustained rise by its trend, not by three points above the threshold.
        whole = (
            theil_sen(steps[finite], log_norm[finite], limits) if reaches_end and len(finite) >= 2 else None
        )
        if whole is None or not whole.ci_low > 0:
            return None
    peak = int(np.nanargmax(log_norm))
    rise = theil_sen(steps[: peak + 1], log_norm[: peak + 1], limits)
    facts = NormRise(
        growth_decades=float(log_norm[peak] - early),
        early_global_norm=float(10**early),
        peak_global_norm=float(norm[peak]),
        steps_above_threshold=int(len(above)),
        rise_decades_per_1k_steps=rise.decades_per_1k_steps if rise else None,
        rise_ci_low=rise.ci_low if rise else None,
        rise_ci_high=rise.ci_high if rise else None,
        peak_step=int(steps[peak]),
    )
    return Finding(
        Kind.EXPLODING, Severity.HIGH, layers(not by_points), [int(s) for s in steps[above]], facts, limits
    )


@dataclass(frozen=True)
class EarlyJump:
    """A rise of the norm at the first updates that came back down (no verdict of its own)."""

    growth_decades: float  # its peak over the norm's early level
    peak_step: int
    early_global_norm: float


def early_jump(
    steps: np.ndarray, norm: np.ndarray, loss: LossTrend | None, limits: Thresholds
) -> EarlyJump | None:
    """The jump `norm_rise` leaves out because it came back down (_came_back): what follows it, a
    saturated output or dead units, names it as its cause."""
    log_norm, early, above = _above_early(norm, limits)
    if not np.isfinite(early) or not _came_back(norm, early, above, loss, limits):
        return None
    peak = int(above[np.argmax(log_norm[above])])
    return EarlyJump(float(log_norm[peak] - early), int(steps[peak]), float(10**early))


def _above_early(norm: np.ndarray, limits: Thresholds) -> tuple[np.ndarray, float, np.ndarray]:
    """log10 of the norm, its early level, and the indices of its points the growth threshold above it."""
    log_norm = log10_positive(norm)
    early = early_log10(norm, limits)
    return log_norm, early, np.flatnonzero(log_norm >= early + limits.exploding_growth_decades)


def _came_back(
    norm: np.ndarray, early: float, above: np.ndarray, loss: LossTrend | None, limits: Thresholds
) -> bool:
    """A jump at the first updates that came back down: every point `above` the growth threshold lies
    within twice the early window, the norm's last points (their median, zeros included) are back
    below the threshold, and the training loss, logged at enough points, never went NaN/Inf nor
    diverged. Such a jump did not explode the training: it is the cause of what followed (a
    saturated output, dead units), not a verdict of its own. A rise later in the run stays exploding."""
    if loss is None or loss.nonfinite_points or loss.points < limits.stall_min_points or not len(above):
        return False
    if above[-1] >= 2 * limits.early_points(int(np.isfinite(norm).sum())):
        return False
    if not loss.log10_change < limits.exploding_loss_decades:
        return False
    finite = norm[np.isfinite(norm)]
    if finite.size < 2 * limits.early_min_points:
        return False
    late = float(np.median(finite[-limits.early_points(finite.size) :]))
    return late < 10 ** (early + limits.exploding_growth_decades)


def diagnose_norm(norm: NormTrend, loss: LossTrend | None, limits: Thresholds) -> Diagnosis:
    """A run whose only gradient evidence is a global norm logged as a scalar: judged for exploding
    only. Non-finite values are never excused by the loss: Hugging Face's Trainer leaves NaN/Inf
    out of the loss it logs (logging_nan_inf_filter) while the norm shows them."""
    if len(norm.values) < limits.min_steps:
        return not_judged(
            TooFewSteps(len(norm.values), limits.min_steps, Source.GRADIENT_NORM, norm.series), 0
        )
    finite = np.isfinite(norm.values)
    findings = []
    if not finite.all():
        bad = np.flatnonzero(~finite)
        before = norm.values[: bad[0]][finite[: bad[0]]]
        facts = NonFiniteNorm(
            first_nonfinite_step=int(norm.steps[bad[0]]),
            nonfinite_steps=int(len(bad)),
            logged_steps=int(len(norm.values)),
            last_finite_global_norm=float(before[-1]) if before.size else float("nan"),
            series=norm.series,
        )
        steps = [int(s) for s in norm.steps[bad]]
        findings.append(
            Finding(
                Kind.EXPLODING,
                Severity.CRITICAL,
                [norm.series],
                steps,
                facts,
                limits,
                Source.GRADIENT_NORM,
                gateable=False,
            )
        )
    rise = norm_rise(norm.steps, np.where(finite, norm.values, np.nan), lambda _: [norm.series], limits, loss)
    if rise is not None:
        rise.source = Source.GRADIENT_NORM
        rise.facts.spikes = norm.spikes or None
        findings.append(rise)
    loss_state = loss_rules.loss_state_of(loss, limits)
    loss_rules.apply_gate(findings, loss_state)
    trend = norm.trend
    basis = HealthyNorm(
        series=norm.series,
        points=len(norm.values),
        trend_decades_per_1k_steps=trend.decades_per_1k_steps if trend else None,
        trend_ci=(trend.ci_low, trend.ci_high) if trend else None,
        confidence=limits.confidence,
        spikes=norm.spikes,
        spike_decades=limits.spike_decades,
        spike_window=limits.spike_window,
        gated=bool(findings),
    )
    return verdict_of(findings, [], loss_state, basis)
