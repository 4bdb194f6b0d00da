"""The words every layer shares: finding kinds, verdicts, severities, evidence and the loss's state,
and the order in which runs and findings are ranked.

Each word is a str enum: it compares, hashes and serialises as its text, so the JSON, the cache and
the templates read plain strings while the code names them.
"""

from __future__ import annotations

from enum import Enum


class Word(str, Enum):
    """A word of the vocabulary: its text wherever it is printed, formatted or encoded."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    __hash__ = str.__hash__  # equal to its text, so hashed as its text


class Kind(Word):
    """What a finding says went wrong."""

    VANISHING = "vanishing"
    EXPLODING = "exploding"
    DEAD_UNITS = "dead_units"
    UNSTABLE = "unstable"  # the loss spikes or swings without diverging
    STALLED = "stalled"  # the training stopped learning

    @property
    def from_gradients(self) -> bool:
        """A pathology of the gradients, which outranks what the loss alone says (stalled, unstable)."""
        return self in GRADIENT_KINDS


class Verdict(Word):
    """What a run is called: the kind of its worst finding, or why it has none."""

    VANISHING = "vanishing"
    EXPLODING = "exploding"
    DEAD_UNITS = "dead_units"
    UNSTABLE = "unstable"
    STALLED = "stalled"
    HEALTHY = "healthy"
    INSUFFICIENT_DATA = "insufficient_data"

    @property
    def judged(self) -> bool:
        """The run could be judged: a verdict other than insufficient data."""
        return self is not Verdict.INSUFFICIENT_DATA

    @property
    def went_wrong(self) -> bool:
        return self not in (Verdict.HEALTHY, Verdict.INSUFFICIENT_DATA)


class Severity(Word):
    LOW = "low"  # kept low by the loss gate: sets no verdict
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITIES.index(self) + 1

    def raised(self) -> Severity:
        """One step more severe (critical stays critical)."""
        return _SEVERITIES[min(self.rank, len(_SEVERITIES) - 1)]

    @staticmethod
    def of_rank(rank: int) -> Severity:
        return _SEVERITIES[rank - 1]


_SEVERITIES = tuple(Severity)


class Source(Word):
    """What one finding rests on (its JSON `evidence_source` adds " and loss" where the loss counted)."""

    GRADIENTS = "gradients"  # gradient histograms
    PARAMETER_NORMS = "per-parameter gradient norms"  # logged as scalars, one per parameter
    GRADIENT_NORM = "gradient norm"  # one global norm logged as a scalar
    WEIGHTS = "weights"  # weight histograms: symptoms of the gradients, not measurements


class Evidence(Word):
    """What a run's verdict rests on."""

    GRADIENT_HISTOGRAMS = "gradient histograms"
    PARAMETER_NORMS = "per-parameter gradient norms"
    HISTOGRAMS_AND_NORMS = "gradient histograms and per-parameter gradient norms"
    GRADIENT_NORM = "gradient norm"
    WEIGHT_HISTOGRAMS = "weight histograms"
    NONE = "none"


class Measure(Word):
    """What a layer's magnitude is: an RMS, or a logged norm that still carries its layer's size."""

    RMS = "gradient RMS"
    NORM = "gradient norm"


class StallCause(Word):
    """Why a training loss did not fall, as the gradient (or weight) evidence shows it."""

    JUMP_THEN_COLLAPSE = "a jump at the first updates, then gradients collapsed"
    COLLAPSE = "gradients collapsed to a small fraction of their start in every layer"
    JUMP_THEN_STILL = "a jump of the weights at the first updates, then no weight moved"
    FROZEN = "no weight moved"
    ZERO_RATE = "the learning rate is zero"
    CHANCE = "it fell only to the loss of a classifier that guesses"
    NORMAL = "gradients look normal while the loss does not move"
    PATHOLOGY = "the gradient finding beside it explains it: the layers it names cannot learn"
    RISES = "gradients look normal while the loss rose: steps that overshoot, not steps too small"
    SWINGS = (
        "the loss swings without settling (the unstable finding): each swing undoes what the steps "
        "between learned"
    )
    NORM_STAYS = (
        "the gradient norm did not collapse; norms cannot show vanishing gradients in early layers or dead "
        "units"
    )
    UNSEEN = "the run logs no gradient evidence"


class LossShape(Word):
    """What the training loss did over the run, as its words say it (learning.loss_shape)."""

    FELL = "fell"
    FLAT = "flat"
    ROSE = "rose"
    DIVERGED = "went NaN/Inf"
    TOO_FEW = "too few points"
    NOT_LOGGED = "not logged"


class LossState(Word):
    """What the loss gate read of the training loss: whether it is still falling."""

    FALLS = "still falling"  # its later half's trend is surely downward, or it fell a decade
    STALLED = "no longer falling"
    UNKNOWN = "not read"  # no training loss, or too few points to fit


# What each kind of evidence can show: a global norm cannot show vanishing gradients in early layers
# (the output side dominates it) or dead units; norms and weights have no zeros to count.
GRADIENT_KINDS: tuple[Kind, ...] = (Kind.VANISHING, Kind.EXPLODING, Kind.DEAD_UNITS)
ALL_KINDS = GRADIENT_KINDS  # what gradient histograms show
# What a training loss shows, with or without gradient evidence.
LEARNING_KINDS: tuple[Kind, ...] = (Kind.UNSTABLE, Kind.STALLED)
EVERY_KIND: tuple[Kind, ...] = GRADIENT_KINDS + LEARNING_KINDS  # --fail-on any
NORM_KINDS: tuple[Kind, ...] = (Kind.EXPLODING,)
PARAMETER_NORM_KINDS: tuple[Kind, ...] = (Kind.VANISHING, Kind.EXPLODING)
WEIGHT_KINDS: tuple[Kind, ...] = (Kind.VANISHING, Kind.EXPLODING)  # a dead unit's weights stay put

# Findings of equal severity rank by kind in this order.
KIND_ORDER: tuple[Kind, ...] = (Kind.EXPLODING, Kind.VANISHING, Kind.DEAD_UNITS, Kind.UNSTABLE, Kind.STALLED)
# Worst first, as a person triages runs: by the most severe verdict-setting finding, then by verdict.
TRIAGE_ORDER: tuple[Verdict, ...] = (
    Verdict.EXPLODING,
    Verdict.VANISHING,
    Verdict.DEAD_UNITS,
    Verdict.UNSTABLE,
    Verdict.STALLED,
    Verdict.INSUFFICIENT_DATA,
    Verdict.HEALTHY,
)


def triage_rank(verdict: str, severity: str | None) -> tuple[int, int]:
    """Sort key of a run, smallest first: critical findings first, then exploding, vanishing, dead
    units, unstable, stalled, runs that could not be judged, healthy ones. Takes the words as text
    (from JSON too)."""
    order = TRIAGE_ORDER.index(verdict) if verdict in TRIAGE_ORDER else len(TRIAGE_ORDER)
    rank = Severity(severity).rank if severity in _SEVERITIES else 0
    return (-rank, order)
