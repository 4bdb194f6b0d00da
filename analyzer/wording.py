"""Every sentence a person reads about a finding, made from its facts and the thresholds in force: its
summary, the thresholds it crossed, its evidence in words. With ``reasons`` (the run's words), the
page, the terminal, the JSON and the TensorBoard tab take all their words from here."""

from __future__ import annotations

import math
from collections.abc import Callable

from . import facts as F
from .findings import Finding
from .thresholds import Thresholds
from .vocabulary import LossState


def summary(finding: Finding) -> str:
    """One line, for people: what the rule found, then what the loss gate and dead units made of it."""
    text = _SUMMARIES[type(finding.facts)](finding, finding.facts)
    if finding.gate is LossState.FALLS:
        text += "; the training loss still falls, so this sets no verdict"
    elif finding.gate is LossState.STALLED:
        text += "; the training loss has stopped falling"
    if finding.explained_by_dead_units:
        text += "; units measured dead (exact zeros) pass no gradient and explain this ratio"
    return text


def _nonfinite_gradients(f: Finding, e: F.NonFiniteGradients) -> str:
    what = "gradient entries missing (left out as NaN/Inf)" if e.entries_dropped else "NaN/Inf gradients"
    return f"{what} from step {e.first_nonfinite_step} in {len(f.tags)} of {e.tags} tags"


def _norm_rise(f: Finding, e: F.NormRise) -> str:
    d = e.growth_decades
    return (
        f"global gradient norm rose {10**d:.3g}x (+{d:.1f} decades) above its early level "
        f"by step {e.peak_step}, on {e.steps_above_threshold} logged steps"
    )


def _loss_divergence(f: Finding, e: F.LossDivergence) -> str:
    d = e.loss_log10_change
    return (
        f"the training loss ({e.series}) rose {10**d:.3g}x (+{d:.1f} decades) from its "
        "first value: training diverged"
    )


def _depth_ratio(f: Finding, e: F.DepthRatio) -> str:
    m = e.median_depth_log10_ratio
    return f"input-side gradients {10**m:.3g}x larger than output-side (+{m:.1f} decades)"


def _depth_decay(f: Finding, e: F.DepthDecay) -> str:
    m = e.median_depth_log10_ratio
    return (
        f"first-layer {f.measure} is {10**m:.2g}x the last layer's ({m:.1f} decades) "
        f"on {e.step_share:.0%} of steps"
    )


def _zero_gradients(f: Finding, e: F.ZeroGradients) -> str:
    how = "an estimated " if e.zero_share_estimated else ""
    zeros = "zero (from coarse buckets)" if e.zero_share_estimated else "exactly zero"
    after = ""
    if e.jump_step is not None:
        d = e.jump_decades
        after = (
            f"; the gradient norm jumped {10**d:.3g}x (+{d:.1f} decades) at the first updates "
            f"(step {e.jump_step})"
        )
    return (
        f"{how}{e.worst_zero_share:.0%} of gradient entries {zeros} in {len(f.tags)} tag(s), not "
        f"recovering{after}"
    )


def _nonfinite_norm(f: Finding, e: F.NonFiniteNorm) -> str:
    return (
        f"gradient norm ({e.series}) NaN/Inf from step {e.first_nonfinite_step}, "
        f"at {e.nonfinite_steps} of {e.logged_steps} logged steps"
    )


def _nonfinite_weights(f: Finding, e: F.NonFiniteWeights) -> str:
    return (
        f"weights turned NaN/Inf from step {e.first_nonfinite_step} in {len(f.tags)} of "
        f"{e.tags} tags: the gradients exploded"
    )


def _weight_growth(f: Finding, e: F.WeightGrowth) -> str:
    return (
        f"weights of {e.layers_grown} layer(s) grew {e.weight_growth_decades:.1f} decades over the run: "
        "the updates, and the gradients behind them, grew"
    )


def _still_weights(f: Finding, e: F.StillWeights) -> str:
    if not e.optimizer_logged:
        how = "; the optimizer is not logged (under Adam or RMSprop small gradients still move weights)"
    elif e.adaptive:
        how = f"; under {e.optimizer}, which normalises each update, this means gradients near its epsilon"
    else:
        how = ""
    ratio = e.movement_log10_ratio
    moved = (
        f"the input-side weights moved {10**-ratio:.2g}x less than the most-moving layer"
        if math.isfinite(ratio)
        else "the input-side weights did not move at all while other layers' did"
    )
    return f"{moved} over the run: their gradients vanished{how}"


def _stalled_loss(f: Finding, e: F.StalledLoss) -> str:
    band = f.limits.stall_band
    how = (
        f"rose {100 * e.loss_change_share:.0f} %"
        if e.loss_change_share > band
        else f"stayed flat, within {100 * band:g} %"
    )
    if e.chance_loss is not None and e.loss_change_share < -band:  # fell, to chance
        how = f"fell {100 * -e.loss_change_share:.0f} % but only to chance level (ln C = {e.chance_loss:.4g})"
    return f"the training loss ({e.series}) {how} ({e.loss_start:.4g} → {e.loss_end:.4g}): {e.cause}"


def loss_change_words(change: float) -> str:
    """-0.7 → "fell 70 %", 0.5 → "rose 50 %", 0.001 → "did not move"."""
    if not math.isfinite(change):
        return "did not fall"
    if abs(change) < 0.005:
        return "did not move"
    if change < 0:
        return f"fell {-100 * change:.0f} %"
    return f"rose {100 * change:.0f} %"


def _unstable_loss(f: Finding, e: F.UnstableLoss) -> str:
    if e.loss_spikes:
        largest = (
            f", the largest {e.largest_spike_ratio:.3g}x the points before it"
            if e.largest_spike_ratio
            else ""
        )
        with_norm = ""
        if e.norm_spikes_with_them and e.norm_spikes_with_them == e.loss_spikes:
            with_norm = " with the gradient norm"
        elif e.norm_spikes_with_them:
            with_norm = (
                f" ({e.norm_spikes_with_them} with the gradient norm, the others between its logged steps)"
            )
        said = f"the training loss ({e.series}) spiked {e.loss_spikes} times{with_norm}{largest}"
    else:
        ratio = 10 ** (e.later_swing_decades or 0.0)
        said = f"the training loss ({e.series}) swings {ratio:.3g}x in its later half with no downward trend"
    warmup = ", with no warm-up of the learning rate" if e.warmup == F.NO_WARMUP else ""
    return said + warmup + ", without diverging"


_SUMMARIES: dict[type, Callable] = {
    F.NonFiniteGradients: _nonfinite_gradients,
    F.NormRise: _norm_rise,
    F.LossDivergence: _loss_divergence,
    F.DepthRatio: _depth_ratio,
    F.DepthDecay: _depth_decay,
    F.ZeroGradients: _zero_gradients,
    F.NonFiniteNorm: _nonfinite_norm,
    F.NonFiniteWeights: _nonfinite_weights,
    F.WeightGrowth: _weight_growth,
    F.StillWeights: _still_weights,
    F.StalledLoss: _stalled_loss,
    F.UnstableLoss: _unstable_loss,
}


def thresholds_of(finding: Finding) -> list[F.Limit]:
    """The thresholds in force that the finding's rule compared its evidence with."""
    t, e = finding.limits, finding.facts
    any_value = [F.Limit("nonfinite_values", "any")]
    if isinstance(e, F.NonFiniteGradients):
        return any_value + [F.Limit("missing_entries", "any")]
    if isinstance(e, (F.NonFiniteNorm, F.NonFiniteWeights)):
        return any_value
    if isinstance(e, F.NormRise):
        return [
            F.Limit("growth_decades", t.exploding_growth_decades, F.DECADES),
            F.Limit("min_steps_above", t.exploding_min_steps),
        ]
    if isinstance(e, F.LossDivergence):
        return [
            F.Limit("loss_growth_decades", t.exploding_loss_decades, F.DECADES),
            F.Limit("loss_growth_decades_with_rising_gradient_norm", t.exploding_loss_with_norm_decades),
        ]
    if isinstance(e, (F.DepthRatio, F.DepthDecay)):
        bound = (
            f">= {t.exploding_depth_decades}"
            if isinstance(e, F.DepthRatio)
            else f"<= -{t.vanishing_depth_decades}"
        )
        return [F.Limit("depth_log10_ratio", bound), F.Limit("step_share", t.vanishing_step_share, F.SHARE)]
    if isinstance(e, F.ZeroGradients):
        return [
            F.Limit("zero_share", t.dead_zero_share, F.SHARE),
            F.Limit("late_step_share", t.dead_step_share, F.SHARE),
            F.Limit("zero_bucket_width_vs_max_abs", t.exact_zero_resolution),
            F.Limit("coarse_zero_spike_ratio", t.coarse_zero_spike_ratio),
            F.Limit("coarse_zero_share", t.coarse_dead_zero_share, F.SHARE),
        ]
    if isinstance(e, F.WeightGrowth):
        return [F.Limit("weight_growth_decades", f">= {t.weight_growth_decades}")]
    if isinstance(e, F.StillWeights):
        return [F.Limit("movement_log10_ratio", f"<= -{t.weight_still_decades}")]
    if isinstance(e, F.StalledLoss):
        return [
            F.Limit("loss_change_share", f">= -{t.stall_band}"),
            F.Limit("edge_share", t.stall_edge_share, F.SHARE),
            F.Limit("min_points", t.stall_min_points),
            F.Limit("collapse_decades", t.collapse_decades, F.DECADES),
        ] + ([F.Limit("chance_share", f">= {t.chance_share}")] if e.chance_loss is not None else [])
    if isinstance(e, F.UnstableLoss):
        return [
            F.Limit("min_spikes", t.unstable_min_spikes),
            F.Limit("spike_ratio", t.unstable_spike_ratio),
            F.Limit("norm_spike_ratio", t.unstable_norm_spike_ratio),
            F.Limit("norm_spike_min_ratio", t.unstable_norm_spike_min_ratio),
            F.Limit("norm_spike_deviations", t.unstable_norm_spike_deviations),
            F.Limit("spike_window", t.spike_window),
            F.Limit("swing_decades", t.unstable_swing_decades, F.DECADES),
            F.Limit("max_fall_share", t.unstable_max_fall, F.SHARE),
        ]
    raise TypeError(f"no thresholds for {type(e).__name__}")


_POWERS = {
    1: "ten",
    2: "a hundred",
    3: "a thousand",
    4: "ten thousand",
    5: "a hundred thousand",
    6: "a million",
    7: "ten million",
    8: "a hundred million",
    9: "a billion",
}


def times_in_words(decades: float) -> str:
    """3.2 decades → "about a thousand times"; what a person says of a measured ratio of magnitudes."""
    if not math.isfinite(decades):
        return "an unknown number of times"
    whole = round(abs(decades))
    if whole == 0:
        return "about as much"
    return f"about {_POWERS.get(whole, f'10^{whole}')} times"


def limit_times(decades: float) -> str:
    """A threshold's ratio, exactly: 3 decades → "a thousand times", 0.3 → "twice", 2.5 → "316 times"."""
    ratio = 10**decades
    if f"{ratio:.2g}" == "2":
        return "twice"
    if float(decades).is_integer() and int(decades) in _POWERS:
        return f"{_POWERS[int(decades)]} times"
    return f"{ratio:.3g} times"


def share_in_words(share: float) -> str:
    """0.5 → "half", 0.75 → "three quarters", 0.9 → "90 %"."""
    named = {0.5: "half", 0.25: "a quarter", 0.75: "three quarters", 1.0: "all"}
    return named.get(share, f"{100 * share:g} %")


def _share_of(share: float, what: str) -> str:
    """0.5, "the steps" → "half the steps"; 0.25 → "a quarter of the steps"."""
    return f"half {what}" if share == 0.5 else f"{share_in_words(share)} of {what}"


def count_in_words(n: int) -> str:
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n < len(words) else str(n)


def _jump_before(e: F.ZeroGradients, t: Thresholds) -> str:
    if e.jump_step is None:
        return ""
    return (
        f" At the first updates the global gradient norm jumped {times_in_words(e.jump_decades)} above "
        f"its early level (its peak at step {e.jump_step}) and came back down: a jump of "
        f"{limit_times(t.exploding_growth_decades)} at the first updates is no verdict of its own, but "
        "the likely cause of units that stopped activating."
    )


def evidence_in_words(finding: Finding) -> str:
    """The finding's evidence as a sentence, with the rule it crossed as the thresholds in force set it;
    the numbers stay in the table."""
    e, t = finding.facts, finding.limits
    share = getattr(e, "step_share", None)
    on = f" on {share:.0%} of logged steps" if isinstance(share, float) else ""
    depth_share = _share_of(t.vanishing_step_share, "the steps")
    if isinstance(e, F.DepthDecay):
        return (
            f"The first layer gets {times_in_words(e.median_depth_log10_ratio)} less gradient than the "
            f"last{on}; the rule fires at {limit_times(t.vanishing_depth_decades)} less on {depth_share}."
        )
    if isinstance(e, F.DepthRatio):
        return (
            f"The first layer gets {times_in_words(e.median_depth_log10_ratio)} more gradient than the "
            f"last{on}; the rule fires at {limit_times(t.exploding_depth_decades)} more on {depth_share}."
        )
    if isinstance(e, F.ZeroGradients):
        how = "an estimated " if e.zero_share_estimated else ""
        zero = "zero" if how else "exactly zero"
        needed = t.coarse_dead_zero_share if e.zero_share_estimated else t.dead_zero_share
        return (
            f"In {len(finding.tags)} tag(s), {how}{e.worst_zero_share:.0%} of the gradient entries are "
            f"{zero} through {_late_words(t.dead_late_from)} of training; the rule fires at "
            f"{share_in_words(needed)} of a layer's entries on {share_in_words(t.dead_step_share)} of those "
            "steps." + _jump_before(e, t)
        )
    if isinstance(e, (F.NonFiniteGradients, F.NonFiniteNorm, F.NonFiniteWeights)):
        what = "Weights were" if isinstance(e, F.NonFiniteWeights) else "Gradients were"
        return (
            f"{what} NaN/Inf or missing from step {e.first_nonfinite_step}, on "
            f"{e.nonfinite_steps} of {e.logged_steps} logged steps; any such value fires the rule."
        )
    if isinstance(e, F.NormRise):
        return (
            f"The global gradient norm rose {times_in_words(e.growth_decades)} above its early level and "
            f"stayed there on {e.steps_above_threshold} logged steps; the rule fires at "
            f"{limit_times(t.exploding_growth_decades)} on {count_in_words(t.exploding_min_steps)} steps."
        )
    if isinstance(e, F.LossDivergence):
        return (
            f"The training loss ended {times_in_words(e.loss_log10_change)} higher than it began; the rule "
            f"fires at {limit_times(t.exploding_loss_decades)}, or "
            f"{limit_times(t.exploding_loss_with_norm_decades)} while the gradient norm rises."
        )
    if isinstance(e, F.WeightGrowth):
        return (
            f"The weights of {e.layers_grown} layer(s) grew {times_in_words(e.weight_growth_decades)} over "
            f"the run; the rule fires at {limit_times(t.weight_growth_decades)}."
        )
    if isinstance(e, F.StillWeights):
        return (
            f"The input-side weights moved {times_in_words(-e.movement_log10_ratio)} less than the layer "
            f"that moved most; the rule fires at {limit_times(t.weight_still_decades)} less."
        )
    if isinstance(e, F.StalledLoss):
        edge = f"{100 * t.stall_edge_share:g} %"
        return (
            f"The median of the training loss's last {edge} of points "
            f"{loss_change_words(e.loss_change_share)} "
            f"from the median of its first {edge}, and no more along its trend; the rule fires where "
            "it did not fall by more than "
            f"{100 * t.stall_band:g} %. Why, as the gradients show it: {e.cause}."
        )
    if isinstance(e, F.UnstableLoss):
        return (
            f"The training loss spiked {e.loss_spikes} separate times; the rule fires at "
            f"{count_in_words(t.unstable_min_spikes)} spikes of "
            f"{limit_times(math.log10(t.unstable_spike_ratio))} "
            f"the median of the {t.spike_window} points before each (with the gradient norm "
            f"{limit_times(math.log10(t.unstable_norm_spike_ratio))} its own where it is logged, or "
            f"{limit_times(math.log10(t.unstable_norm_spike_min_ratio))} and "
            f"{t.unstable_norm_spike_deviations:g} deviations of its own noise), or at a "
            f"later half that swings {limit_times(t.unstable_swing_decades)} with no "
            f"downward trend; not where the loss fell by more than {100 * t.unstable_max_fall:g} % "
            "(for spikes, at its ends and along its trend, and not only to chance level)."
        )
    raise TypeError(f"no words for {type(e).__name__}")


def _late_words(late_from: float) -> str:
    return "the second half" if late_from == 0.5 else f"the last {100 * (1 - late_from):g} %"
