"""The words about a run as a whole: why it got its verdict (its worst finding's summary, or the facts
behind a verdict no finding sets), its notes, and what its evidence could judge."""

from __future__ import annotations

import math

from . import facts as F
from .findings import Diagnosis
from .learning import loss_shape
from .vocabulary import ALL_KINDS, LossShape, Source, Verdict
from .wording import summary


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
        "pass --tags REGEX to judge them: a chosen tag without 'grad' in it is read as weights"
    )


def run_reason(diagnosis: Diagnosis, notes: list) -> str:
    """The reason of a run: its diagnosis's, with how per-parameter norms were read where they alone
    made a healthy verdict."""
    text = reason(diagnosis)
    alone = [n for n in notes if isinstance(n, F.NormsJudged) and not n.beside_histograms]
    if alone and diagnosis.verdict is Verdict.HEALTHY:
        text += f"; {note(alone[0])}"
    return text


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
    if isinstance(fact, F.LossSparse):
        return (
            f"the training loss ({fact.series}) is logged every {fact.every} steps: a spike lasting a few "
            "steps shows only where it falls on a logged step, so unstable rests on its swings; log the "
            "loss at every step (a scalar) to count its spikes"
        )
    if isinstance(fact, F.LossScaled):
        skipped = (
            f"; {len(fact.skipped_steps)} logged step(s) of NaN/Inf, each followed by a finite one, were "
            f"left out as the scaler's skipped updates (steps {', '.join(map(str, fact.skipped_steps[:5]))})"
            if fact.skipped_steps
            else ""
        )
        if not fact.scale_known and not fact.scale_changes:  # no scale seen: only its skipped steps
            return (
                f"{len(fact.skipped_steps)} logged step(s) of NaN/Inf between finite ones while the loss "
                f"stayed finite (steps {', '.join(map(str, fact.skipped_steps[:5]))}) were left out as a "
                "loss scaler's skipped updates (mixed precision); the magnitudes are as logged, "
                "perhaps scaled"
            )
        relative = "" if fact.scale_known else " (magnitudes relative to the first logged scale)"
        return (
            f"gradients logged before unscaling (a loss scale, as mixed precision's GradScaler applies it), "
            f"found by {fact.how}: judged unscaled{relative}{skipped}"
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


# What each kind of evidence is called where the words say what it cannot show.
_IN = {
    "weight histograms": "weights",
    "gradient norm": "a global gradient norm",
    "per-parameter gradient norms": "gradient norms",
}
_UNSEEN = {"vanishing": "vanishing gradients", "exploding": "exploding gradients", "dead_units": "dead units"}


def judged_words(judged, verdict: str = "healthy", evidence: str = "") -> str:
    """ "" where the evidence can show every kind of gradient finding, or nothing was judged; else
    what it showed and what it cannot: "no sign of vanishing or exploding gradients; dead units cannot
    be seen in weights" (for a healthy run), "dead units cannot be seen in weights" (for another)."""
    shown = [k for k in judged if k in ALL_KINDS]  # what the loss shows is said apart
    if set(shown) >= set(ALL_KINDS) or not shown or verdict == Verdict.INSUFFICIENT_DATA:
        return ""
    unseen = [_UNSEEN[k] for k in ALL_KINDS if k not in shown]
    cannot = f"{' and '.join(unseen)} cannot be seen in {_IN.get(str(evidence), 'this evidence')}"
    if verdict != Verdict.HEALTHY:
        return cannot
    return f"no sign of {' or '.join(_UNSEEN[k].split()[0] for k in shown)} gradients; {cannot}"


def loss_words(course, limits) -> str:
    """What the training loss did, in the words the page, the JSON and the terminal share."""
    shape = loss_shape(course, limits)
    if shape is LossShape.DIVERGED:
        return f"went NaN/Inf at step {course.first_nonfinite_step}"
    if shape is LossShape.TOO_FEW:
        return f"was logged at {course.points} point(s), too few to say"
    if shape is LossShape.FELL and course.change < -limits.stall_band:
        return f"fell {-100 * course.change:.0f} % ({course.start:.4g} → {course.end:.4g})"
    if shape is LossShape.FELL:  # along its trend line, not between its noisy ends
        return (
            f"fell {-100 * course.trend_change:.0f} % along its trend line "
            f"(its noisy ends {course.start:.4g} → {course.end:.4g})"
        )
    if shape is LossShape.ROSE:
        return f"rose {100 * course.change:.0f} % ({course.start:.4g} → {course.end:.4g})"
    if shape is LossShape.FLAT:
        return f"stayed flat, within {100 * limits.stall_band:g} % ({course.start:.4g} → {course.end:.4g})"
    return "was not logged"
