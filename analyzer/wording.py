"""Every sentence a person reads about a run, made from its findings, their facts and the thresholds
in force: finding summaries, the verdict's reason, the evidence in words, the notes, and the values
of evidence and thresholds with their units. The page, the terminal, the JSON and the TensorBoard tab
all take their words from here."""

from __future__ import annotations

import math
from collections.abc import Callable

from . import facts as F
from .findings import Diagnosis, Finding
from .vocabulary import ALL_KINDS, LossState, Source, Verdict

# --- finding summaries ----------------------------------------------------------------------------


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
    return (
        f"{how}{e.worst_zero_share:.0%} of gradient entries {zeros} in {len(f.tags)} tag(s), not recovering"
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
}


# --- the thresholds a finding crossed -------------------------------------------------------------


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
    raise TypeError(f"no thresholds for {type(e).__name__}")


# --- the evidence in words ------------------------------------------------------------------------

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
            "steps."
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
    raise TypeError(f"no words for {type(e).__name__}")


def _late_words(late_from: float) -> str:
    return "the second half" if late_from == 0.5 else f"the last {100 * (1 - late_from):g} %"


# --- the verdict's reason -------------------------------------------------------------------------


def reason(diagnosis: Diagnosis) -> str:
    """Why the run got its verdict: the worst finding's summary, else the facts behind the verdict."""
    counting = diagnosis.counting
    if counting:
        return summary(counting[0])
    return basis_words(diagnosis.basis)


def basis_words(basis) -> str:
    if isinstance(basis, F.TooFewSteps):
        if basis.of == Source.WEIGHTS:
            return f"only {basis.steps} logged step of weights; their change needs at least {basis.needed}"
        counted = f"value of {basis.series}" if basis.of == Source.GRADIENT_NORM else "step"
        return f"only {basis.steps} logged {counted}; trends need at least {basis.needed}"
    if isinstance(basis, F.HealthyGradients):
        parts = [f"{basis.tags} gradient tags over {basis.steps} steps, all finite"]
        if math.isfinite(basis.depth_decades):
            parts.append(f"first/last layer RMS within {abs(basis.depth_decades):.1f} decades")
        return "; ".join(parts + _gated_words(basis.gated_kinds))
    if isinstance(basis, F.HealthyNorm):
        return _healthy_norm(basis)
    if isinstance(basis, F.HealthyWeights):
        parts = [f"{basis.tags} weight tags over {basis.steps} logged steps, all finite"]
        if basis.none_moved:
            parts.append("no weight moved between logged steps (a frozen model, or gradients of zero)")
        elif basis.all_moved:
            parts.append("every weight layer moved")
        parts += _gated_words(basis.gated_kinds)
        parts.append("judged from weights: symptoms of vanishing or exploding gradients, not measurements")
        return "; ".join(parts)
    if isinstance(basis, F.NoGradients):
        return _no_gradients(basis)
    fixed = {
        F.NoHistograms: "no gradient histograms",
        F.EmptyHistograms: "the gradient histograms hold no entries at any step",
        F.InternalError: "could not be analysed (internal error; please report it)",
    }
    return fixed[type(basis)]


def _gated_words(kinds: tuple[str, ...]) -> list[str]:
    if not kinds:
        return []
    return [f"{' and '.join(kinds)} signs kept at low severity: the training loss falls"]


def _healthy_norm(basis: F.HealthyNorm) -> str:
    parts = [f"gradient norm ({basis.series}) finite over {basis.points} logged steps"]
    if basis.trend_ci is not None:
        low, high = basis.trend_ci
        parts.append(
            f"its trend {basis.trend_decades_per_1k_steps:+.2g} decades per 1k steps "
            f"({100 * basis.confidence:g} % CI {low:+.2g} to {high:+.2g})"
        )
    if basis.spikes:
        parts.append(
            f"{basis.spikes} spike(s) above {10**basis.spike_decades:g}x the median of the "
            f"{basis.spike_window} steps before"
        )
    if basis.gated:
        parts.append("exploding signs kept at low severity: the training loss falls")
    parts.append("judged for exploding only: a global norm cannot show vanishing gradients or dead units")
    return "; ".join(parts)


def _no_gradients(basis: F.NoGradients) -> str:
    other = basis.other_tags
    if not other:
        return "no histograms and no gradient-norm scalars in this run's event files"
    shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
    return (
        f"no gradient histograms (no tag matches {basis.tag_pattern!r}); histogram tags found: {shown}; "
        "pass --tags REGEX to analyse them"
    )


def run_reason(diagnosis: Diagnosis, notes: list) -> str:
    """The reason of a run: its diagnosis's, with how per-parameter norms were read where they alone
    made a healthy verdict."""
    text = reason(diagnosis)
    alone = [n for n in notes if isinstance(n, F.NormsJudged) and not n.beside_histograms]
    if alone and diagnosis.verdict is Verdict.HEALTHY:
        text += f"; {note(alone[0])}"
    return text


# --- notes ----------------------------------------------------------------------------------------


def note(fact) -> str:
    if isinstance(fact, F.Restarted):
        return (
            "the run restarted: a later event file went back to earlier steps; "
            "for each step the later file's histogram was used"
        )
    if isinstance(fact, F.StillWritten):
        return (
            f"still being written: read up to step {fact.last_step}; {fact.path} ends in a partial record "
            f"(changed {fact.age_seconds:.0f} s ago), as a writer mid-record leaves it"
        )
    if isinstance(fact, F.Thinned):
        return (
            f"a long run: of up to {fact.logged_steps:,} logged steps per tag, the statistics of "
            f"{fact.kept_steps:,} or more, evenly spread, were kept (with every change between finite and "
            "non-finite gradients)"
        )
    if isinstance(fact, F.NormsJudged):
        how = (
            "each norm divided by the square root of its parameter's size (from its weight histogram)"
            if fact.sized
            else f"the depth rules ask {fact.size_decades:g} decade more of norms, which carry "
            "their layers' sizes (the run logs no sizes)"
        )
        if fact.beside_histograms:
            return (
                f"per-parameter gradient norms of {fact.parameters} parameters without gradient histograms "
                f"judged for vanishing and exploding beside the histograms ({how})"
            )
        return (
            "from per-parameter gradient norms, judged for vanishing and exploding "
            f"(norms show no dead units; {how})"
        )
    if isinstance(fact, F.NormsBesideHistograms):
        return (
            f"gradient norms of {fact.parameters} parameters were logged beside their "
            "histograms; the histograms were used for them"
        )
    if isinstance(fact, F.FromWeights):
        return (
            "no gradient histograms: the verdict reads the weights, whose changes are symptoms of the "
            "gradients, not measurements of them; optimizer: "
            + (fact.optimizer or "not logged (under Adam or RMSprop, small gradients still move weights)")
        )
    if isinstance(fact, F.GlobalNormBeside):
        return f"a gradient norm was logged too ({fact.series}); the verdict rests on the histograms"
    raise TypeError(f"no words for {type(fact).__name__}")


def run_notes(notes: list) -> list[str]:
    """The notes shown with a run (norms read alone are said in its reason instead)."""
    return [note(n) for n in notes if not (isinstance(n, F.NormsJudged) and not n.beside_histograms)]


# --- what the evidence could judge ----------------------------------------------------------------


def judged_words(judged) -> str:
    """ "" where the evidence can show every kind of finding; else which kinds it can, in words."""
    if set(judged) >= set(ALL_KINDS):
        return ""
    return f"{' and '.join(judged)} only" if judged else "nothing judged"
