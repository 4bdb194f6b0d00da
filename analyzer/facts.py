"""What the rules measured, as plain dataclasses with units: the evidence of each finding, the basis of
a verdict no finding sets, and the notes a run carries. Rules fill them; the wording, the JSON and
the report read them. Nothing here is a sentence.

A field's metadata gives its unit (`unit`), the digits the JSON and the report round it to
(`digits`), and whether it is shown as evidence at all (`shown`: False for what only the wording
needs, such as a series' name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

# Units of evidence and threshold values.
NUMBER = ""
SHARE = "share"  # a fraction, shown in %
DECADES = "decades"  # log10 of a ratio
PER_LAYER = "decades/layer"
RATE = "decades/1k steps"  # shown in the run's own unit (per epoch, per logged step)
STEP = "step"  # a step number
STEPS = "steps"  # a count of logged steps
TEXT = "text"


def measured(unit: str = NUMBER, digits: int | None = None, default=None):
    """A shown field: its unit, and the digits it is rounded to where it is shown."""
    return field(default=default, metadata={"unit": unit, "digits": digits})


def hidden(default=None):
    """A field the wording reads and the evidence does not show."""
    return field(default=default, metadata={"shown": False})


@dataclass(frozen=True)
class Limit:
    """One threshold a finding crossed: its name in the JSON, its value (a number, or a comparison
    such as ">= 3.0") and its unit."""

    name: str
    value: float | int | str
    unit: str = NUMBER


@dataclass(frozen=True)
class Shown:
    """One value of evidence as shown: its name in the JSON, the value rounded, and its unit."""

    name: str
    value: float | int | str | bool
    unit: str


def shown(facts) -> list[Shown]:
    """The fields of `facts` that are evidence, rounded, in declaration order; absent optional ones
    (None) left out. An infinite value rounded to digits is shown as text ("-inf"): JSON has none."""
    out = []
    for f in fields(facts):
        if f.metadata.get("shown", True) is False:
            continue
        value = getattr(facts, f.name)
        if value is None:
            continue
        digits = f.metadata.get("digits")
        if digits is not None and isinstance(value, float):
            value = round(value, digits) if not math.isinf(value) else str(value)
        out.append(Shown(f.name, value, f.metadata.get("unit", NUMBER)))
    return out


# --- evidence of findings, by rule ----------------------------------------------------------------


@dataclass
class NonFiniteGradients:
    """Gradient histograms held NaN/Inf, or fewer entries than the parameter has (a writer that drops
    non-finite values)."""

    first_nonfinite_step: int = measured(STEP)
    nonfinite_steps: int = measured(STEPS)
    steps_with_missing_entries: int = measured()
    logged_steps: int = measured(STEPS)
    early_global_norm: float = measured()
    last_finite_global_norm: float = measured()
    entries_dropped: bool = hidden(False)  # no NaN/Inf logged, only entries missing
    tags: int = hidden(0)  # gradient tags in the run


@dataclass
class NormRise:
    """The global gradient norm rose above its early level and stayed there."""

    growth_decades: float = measured(DECADES, 3)
    early_global_norm: float = measured()
    peak_global_norm: float = measured()
    steps_above_threshold: int = measured()
    rise_decades_per_1k_steps: float | None = measured(RATE, 4)
    rise_ci_low: float | None = measured(RATE, 4)
    rise_ci_high: float | None = measured(RATE, 4)
    spikes: int | None = measured()  # points above the spike limit, where a logged norm is the evidence
    peak_step: int = hidden(0)


@dataclass
class LossDivergence:
    """The training loss ended far above where it began."""

    loss_first: float = measured()
    loss_last: float = measured()
    loss_log10_change: float = measured(NUMBER, 3)
    loss_nonfinite_points: int = measured()
    series: str = hidden("")


@dataclass
class DepthRatio:
    """Input-side gradients far larger than the output side's (exploding across depth)."""

    median_depth_log10_ratio: float = measured(DECADES, 3)
    step_share: float = measured(SHARE, 3)


@dataclass
class DepthDecay:
    """Input-side gradients far smaller than the output side's (vanishing), with the fit across
    depth at the median step."""

    median_depth_log10_ratio: float = measured(DECADES, 3)
    first_last_rms_ratio: float = measured()
    step_share: float = measured(SHARE, 3)
    decades_per_layer: float | None = measured(PER_LAYER, 4)
    decades_per_layer_ci_low: float | None = measured(PER_LAYER, 4)
    decades_per_layer_ci_high: float | None = measured(PER_LAYER, 4)
    depth_fit_r2: float | None = measured(NUMBER, 3)


@dataclass
class ZeroGradients:
    """Layers whose gradient entries are mostly zero through the later steps (dead units)."""

    worst_zero_share: float = measured(SHARE, 4)
    median_zero_share: float = measured(SHARE, 4)
    zero_share_estimated: bool = measured()  # from coarse buckets, not counted exactly
    # The gradient norm's jump at the first updates that came back down before the units died (their
    # likely cause: one large update drives a unit's input negative for good); None without one.
    jump_decades: float | None = measured(DECADES, 2)
    jump_step: int | None = measured(STEP)
    early_global_norm: float | None = measured(NUMBER, 4)


@dataclass
class NonFiniteNorm:
    """A gradient norm logged as a scalar went NaN/Inf."""

    first_nonfinite_step: int = measured(STEP)
    nonfinite_steps: int = measured(STEPS)
    logged_steps: int = measured(STEPS)
    last_finite_global_norm: float = measured()
    series: str = hidden("")


@dataclass
class NonFiniteWeights:
    first_nonfinite_step: int = measured(STEP)
    nonfinite_steps: int = measured(STEPS)
    logged_steps: int = measured(STEPS)
    tags: int = hidden(0)  # weight tags in the run


@dataclass
class WeightGrowth:
    weight_growth_decades: float = measured(DECADES, 3)
    layers_grown: int = measured()


@dataclass
class StillWeights:
    """The input-side weights moved far less than the layer that moved most."""

    first_layer_movement_decades: float = measured(DECADES, 6)
    most_movement_decades: float = measured(DECADES, 6)
    movement_log10_ratio: float = measured(DECADES, 3)  # -inf: the first layer did not move
    optimizer: str = measured(TEXT)  # as logged, or "not logged"
    optimizer_logged: bool = hidden(False)
    adaptive: bool = hidden(False)  # the optimizer normalises each update (Adam, RMSprop ...)


@dataclass
class StalledLoss:
    """The training loss did not fall: its end against its start, and what the gradients say of it."""

    loss_start: float = measured()  # median of its first points
    loss_end: float = measured()  # median of its last points
    loss_change_share: float = measured(SHARE, 4)  # end / start - 1
    loss_points: int = measured()
    cause: str = measured(TEXT)  # a StallCause
    gradient_drop_decades: float | None = measured(DECADES, 3)  # the least any layer fell, early to late
    early_jump_decades: float | None = measured(DECADES, 3)  # the rise over the first logged point
    chance_loss: float | None = measured(NUMBER, 4)  # ln C of a C-way classifier, where it ended there
    series: str = hidden("")


@dataclass
class UnstableLoss:
    """The training loss spiked or swung without diverging."""

    loss_spikes: int = measured()  # separate spikes, restarts of the learning rate excused
    largest_spike_ratio: float | None = measured(NUMBER, 3)  # over the median of the points before it
    norm_spikes_with_them: int | None = measured()  # of them with a gradient-norm spike, where logged
    restarts_excused: int | None = measured()  # spikes at a warm restart of the learning rate
    later_swing_decades: float | None = measured(DECADES, 3)  # the later half's 90th over 10th percentile
    warmup: str | None = measured(TEXT)  # WARMUP_SEEN or NO_WARMUP where the learning rate is logged
    typical_gradient_norm: float | None = measured(NUMBER, 3)  # the global norm's median, where logged
    series: str = hidden("")


NO_WARMUP = "none: the logged learning rate starts at its peak"
WARMUP_SEEN = "the logged learning rate rises first"


# --- the basis of a verdict no finding sets -------------------------------------------------------


@dataclass
class NoHistograms:
    """The rules had no layer to read."""


@dataclass
class TooFewSteps:
    steps: int
    needed: int
    of: str  # what was counted: gradient steps, weight steps or a norm's values (Source)
    series: str = ""  # the norm's series


@dataclass
class EmptyHistograms:
    """Histograms were logged, but none held an entry."""


@dataclass
class HealthyGradients:
    tags: int
    steps: int
    depth_decades: float  # median log10 ratio first/last layer; NaN where none
    gated_kinds: tuple[str, ...]  # kinds of findings the falling loss kept low
    source: str  # gradient histograms or per-parameter norms (Source)


@dataclass
class HealthyNorm:
    series: str
    points: int
    trend_decades_per_1k_steps: float | None
    trend_ci: tuple[float, float] | None
    confidence: float  # of that interval
    spikes: int
    spike_decades: float
    spike_window: int
    gated: bool


@dataclass
class HealthyWeights:
    tags: int
    steps: int
    none_moved: bool
    all_moved: bool
    gated_kinds: tuple[str, ...]


@dataclass
class NoGradients:
    """No gradient evidence in the run: its other histogram tags, and the pattern that missed them."""

    other_tags: list[str]
    tag_pattern: str


@dataclass
class InternalError:
    """The analysis failed on this run's data (a bug)."""


# --- notes a run carries --------------------------------------------------------------------------


@dataclass
class Restarted:
    """A later event file went back to earlier steps."""


@dataclass
class StillWritten:
    path: str
    age_seconds: float
    last_step: int


@dataclass
class Thinned:
    logged_steps: int
    kept_steps: int


@dataclass
class NormsJudged:
    """Per-parameter norms judged as layers: beside histograms, or alone."""

    parameters: int
    sized: bool
    size_decades: float
    beside_histograms: bool


@dataclass
class NormsBesideHistograms:
    parameters: int


@dataclass
class LossScaled:
    """Gradients logged before unscaling, judged unscaled."""

    how: str
    scale_changes: int
    skipped_steps: list[int]
    scale_known: bool


@dataclass
class LossSparse:
    """The training loss logged every `every` steps (the median gap between its points)."""

    series: str
    every: int


@dataclass
class FromWeights:
    optimizer: str | None


@dataclass
class GlobalNormBeside:
    series: str
