"""Rules on whether the training learned, read from its loss beside whatever gradient evidence it
has: stalled (the loss did not fall) and unstable (it spiked or swung without diverging). They never
outrank a pathology of the gradients (exploding, vanishing, dead units), which they are listed beside."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..facts import NO_WARMUP, WARMUP_SEEN, NormRise, StalledLoss, StillWeights, UnstableLoss, WeightGrowth
from ..findings import Diagnosis, Finding, ranked
from ..learning import GradientCourse, LossCourse, RateCourse, Spike, logged_every
from ..thresholds import Thresholds
from ..vocabulary import Kind, Severity, StallCause, Verdict


def judge_learning(
    diagnosis: Diagnosis,
    course: LossCourse | None,
    gradients: GradientCourse,
    rate: RateCourse | None,
    limits: Thresholds,
    chance: float | None = None,
) -> Diagnosis:
    """`diagnosis` with the stalled and unstable findings the loss shows; a run the gradients called
    healthy but whose loss did not fall, or that ends at the `chance` level of a classifier (ln C where
    the run shows it is one), is stalled. Without a loss of enough points, unchanged."""
    if course is None or course.points < limits.stall_min_points:
        return diagnosis
    findings = list(diagnosis.findings)
    unstable = _unstable(course, gradients, rate, limits, chance)
    pathology = any(f.kind.from_gradients and not f.gated for f in findings)
    stalled = _stalled(course, gradients, rate, limits, chance, unstable is not None, pathology)
    if stalled is not None:
        if stalled.facts.cause == StallCause.JUMP_THEN_COLLAPSE:  # the jump is the stall's cause
            findings = [f for f in findings if not isinstance(f.facts, NormRise)]
        if stalled.facts.cause in (StallCause.JUMP_THEN_STILL, StallCause.FROZEN):
            # No weight moved after the first updates: what the weight rules saw (a layer that grew, a
            # layer that moved less than the one that moved most) is that first jump, the stall's cause.
            findings = [f for f in findings if not isinstance(f.facts, (WeightGrowth, StillWeights))]
        findings.append(stalled)
    if unstable is not None:
        findings.append(unstable)
    if len(findings) == len(diagnosis.findings) and stalled is None:
        return diagnosis
    _, counting = ranked(findings, [])
    if not counting:
        return replace(diagnosis, findings=findings)
    return replace(diagnosis, verdict=Verdict(counting[0].kind), findings=findings, basis=None)


def _stalled(
    course: LossCourse,
    gradients: GradientCourse,
    rate: RateCourse | None,
    limits: Thresholds,
    chance: float | None = None,
    swings: bool = False,
    pathology: bool = False,
) -> Finding | None:
    """`swings`: the same loss is unstable, which then explains a stall the gradients do not;
    `pathology`: a finding of the gradients (vanishing, exploding, dead units) stands, and explains it."""
    if course.first_nonfinite_step is not None:
        return None  # it went NaN/Inf (diverged: exploding's)
    at_chance = _at_chance(course, limits, chance)
    fell = course.fell(limits.stall_band) or not np.isfinite(course.change)  # NaN: no start to judge
    if fell and not at_chance:
        return None  # it fell (along its noisy ends or its trend): learning
    drops = gradients.layer_drop_decades
    collapsed = bool(drops.size) and float(drops.min()) >= limits.collapse_decades
    if rate is not None and rate.zero:
        cause = StallCause.ZERO_RATE
    elif fell:  # at chance after a fall from a worse start: it learned the class prior, nothing more
        cause = StallCause.CHANCE
    elif gradients.source == "weights" and not gradients.weights_moved:
        jumped = gradients.early_jump_decades >= limits.weight_growth_decades
        cause = StallCause.JUMP_THEN_STILL if jumped else StallCause.FROZEN
    elif gradients.source == "weights":
        cause = StallCause.NORMAL
    elif not gradients.source:
        cause = StallCause.UNSEEN
    elif collapsed and gradients.early_jump_decades >= limits.exploding_growth_decades:
        cause = StallCause.JUMP_THEN_COLLAPSE
    elif collapsed:
        cause = StallCause.COLLAPSE
    elif gradients.norm.size and np.nanmax(np.abs(gradients.norm), initial=0.0) == 0:
        cause = StallCause.FROZEN
    elif pathology:
        cause = StallCause.PATHOLOGY
    elif swings:
        cause = StallCause.SWINGS
    elif gradients.source in ("gradient norm", "gradient norms"):
        cause = StallCause.NORM_STAYS
    elif course.change > limits.stall_band:
        cause = StallCause.RISES
    else:
        cause = StallCause.NORMAL
    facts = StalledLoss(
        loss_start=course.start,
        loss_end=course.end,
        loss_change_share=course.change,
        loss_points=course.points,
        cause=cause,
        gradient_drop_decades=float(drops.min()) if drops.size else None,
        early_jump_decades=gradients.early_jump_decades
        if cause in (StallCause.JUMP_THEN_COLLAPSE, StallCause.JUMP_THEN_STILL)
        else None,
        chance_loss=chance if at_chance else None,
        series=course.series,
    )
    steps = [int(s) for s in course.steps]
    return Finding(Kind.STALLED, Severity.HIGH, [], steps, facts, limits, reads_loss=True, gateable=False)


def _unstable(
    course: LossCourse,
    gradients: GradientCourse,
    rate: RateCourse | None,
    limits: Thresholds,
    chance: float | None = None,
) -> Finding | None:
    restarts = rate.raised_at(limits) if rate is not None else np.zeros(0, np.int64)
    spikes = [s for s in course.spikes if not _at_restart(s, restarts, course.steps, limits)]
    excused = len(course.spikes) - len(spikes)
    with_norm = None
    if gradients.norm.size and np.isfinite(gradients.norm).any() and gradients.source != "weights":
        # Where the norm is logged less often than the loss (histograms every N steps, the loss every
        # step), a spike between its points stands on the loss alone; where both are logged as often,
        # a step without a norm (one the loss scaler skipped) shows none.
        sparser = logged_every(gradients.steps) > logged_every(course.steps)
        norm_spiked = {s.step: _norm_spike_at(s.step, gradients, limits, sparser) for s in spikes}
        spikes = [s for s in spikes if norm_spiked[s.step] is not False]
        with_norm = sum(1 for s in spikes if norm_spiked[s.step])
    by_spikes = len(spikes) >= limits.unstable_min_spikes and not _survived(course, limits, chance)
    by_swing = (
        course.swing_decades >= limits.unstable_swing_decades
        and course.later_slope_ci_high >= 0
        and course.change > -limits.unstable_max_fall
    )
    if not (by_spikes or by_swing):
        return None
    warms_up = rate.warms_up if rate is not None else None
    norms = gradients.norm[np.isfinite(gradients.norm)] if gradients.source != "weights" else np.zeros(0)
    facts = UnstableLoss(
        warmup=None if warms_up is None else (WARMUP_SEEN if warms_up else NO_WARMUP),
        typical_gradient_norm=float(np.median(norms)) if norms.size else None,
        loss_spikes=len(spikes),
        largest_spike_ratio=max((s.ratio for s in spikes), default=None),
        norm_spikes_with_them=with_norm,
        restarts_excused=excused or None,
        later_swing_decades=course.swing_decades if np.isfinite(course.swing_decades) else None,
        series=course.series,
    )
    steps = [s.step for s in spikes] or [int(s) for s in course.steps[len(course.steps) // 2 :]]
    return Finding(Kind.UNSTABLE, Severity.HIGH, [], steps, facts, limits, reads_loss=True, gateable=False)


def _survived(course: LossCourse, limits: Thresholds, chance: float | None) -> bool:
    """The loss fell by more than unstable_max_fall at its ends and along its whole line, and not only
    to a classifier's chance level: its spikes were what a fast step cost a training that learned (a
    BatchNorm CNN under a one-cycle schedule spiked 6.6x six times with its norm and fell 64 %). Both
    measures, since the ends of a sparse loss are noisy: thinned to every 8 steps, two phases of truly
    unstable runs fell by half at their ends alone."""
    return (
        course.change <= -limits.unstable_max_fall
        and course.trend_change <= -limits.unstable_max_fall
        and not _at_chance(course, limits, chance)
    )


def _at_chance(course: LossCourse, limits: Thresholds, chance: float | None) -> bool:
    """A classifier (its chance-level loss known) ends at chance_share of it or above."""
    return chance is not None and course.end >= limits.chance_share * chance


def _at_restart(spike: Spike, restarts: np.ndarray, loss_steps: np.ndarray, limits: Thresholds) -> bool:
    """The learning rate rose within the spike_window loss points before the spike (or at it): after a
    warm restart the loss climbs for a few steps, and a run logged every step shows its top there."""
    if not restarts.size:
        return False
    before = loss_steps[loss_steps < spike.step]
    since = before[-limits.spike_window] if len(before) >= limits.spike_window else -1
    return bool(((restarts > since) & (restarts <= spike.step)).any())


def _norm_spike_at(step: int, gradients: GradientCourse, limits: Thresholds, sparser: bool) -> bool | None:
    """The gradient norm at `step` stands unstable_norm_spike_ratio times above the median of the
    spike_window points before it, or unstable_norm_spike_min_ratio times and
    unstable_norm_spike_deviations robust deviations of their log norm above it. Where it is not
    logged at that step: None (nothing to say) if the norm is logged `sparser` than the loss, else
    False; False where it is NaN (a step the scaler skipped)."""
    at = np.flatnonzero(gradients.steps == step)
    if not at.size:
        return None if sparser else False
    i = int(at[0])
    if not np.isfinite(gradients.norm[i]):
        return False
    before = gradients.norm[max(0, i - limits.spike_window) : i]
    before = before[np.isfinite(before)]
    if not before.size:
        return False
    ratio = gradients.norm[i] / np.median(before)
    if ratio >= limits.unstable_norm_spike_ratio:
        return True
    # a norm that barely varies spikes less far: measured in robust deviations of its log
    logs = np.log(before[before > 0])
    if ratio < limits.unstable_norm_spike_min_ratio or logs.size < 3:
        return False
    spread = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))  # a normal sigma, from the MAD
    above = float(np.log(gradients.norm[i]) - np.median(logs))
    return above >= limits.unstable_norm_spike_deviations * spread
