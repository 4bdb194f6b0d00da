"""Whether a training learned, as its logs show it: the course of the training loss (its level at the
start and at the end, its spikes and swings, where it went NaN), the learning rate's course, and
the gradients' or weights' course over steps that explains a loss that did not fall."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .architecture import Architecture
from .events import LossSeries, ScalarSeries
from .runstats import RunStats
from .thresholds import DEFAULT_THRESHOLDS, Thresholds
from .trends import log10_positive, theil_sen
from .vocabulary import LossShape


@dataclass
class Spike:
    step: int
    ratio: float  # the value over the median of the points before it


@dataclass
class LossCourse:
    """What the training loss did over the run (its finite points)."""

    series: str
    points: int  # finite points
    nonfinite_points: int
    first_nonfinite_step: int | None  # where it went NaN/Inf after finite points, if it did
    start: float  # median of its first points (Thresholds.stall_edge_share of them)
    end: float  # median of its last points
    spikes: list[Spike] = field(default_factory=list)  # separate jumps above the points before them
    swing_decades: float = float("nan")  # log10 of the later half's 90th over 10th percentile (of means)
    later_slope_ci_high: float = float("nan")  # upper end of the later half's Theil–Sen interval
    trend_change: float = float("nan")  # end / start - 1 along the whole run's Theil–Sen line
    trend_falls: bool = False  # that line's interval lies below zero: a fall, not the noise of its points
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # of the finite points

    def fell(self, band: float) -> bool:
        """It fell by more than `band`: its ends say so, or its Theil–Sen line does with an interval
        below zero (ten noisy points give a line that tilts either way by chance)."""
        return self.change < -band or (self.trend_change < -band and self.trend_falls)

    @property
    def change(self) -> float:
        """end / start - 1: -0.7 means it fell by 70 %."""
        return self.end / self.start - 1 if self.start > 0 else float("nan")


@dataclass
class RateCourse:
    """The learning rate as the run logged it."""

    series: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def zero(self) -> bool:
        finite = self.values[np.isfinite(self.values)]
        return bool(finite.size) and bool((finite == 0).all())

    @property
    def warms_up(self) -> bool | None:
        """It rises before it falls: its first logged value is below half its peak over the first
        quarter of the run (a warm-up); None with fewer than two finite values."""
        finite = self.values[np.isfinite(self.values)]
        if finite.size < 2:
            return None
        early = finite[: max(2, finite.size // 4)]
        return bool(finite[0] < 0.5 * early.max())

    def raised_at(self, limits: Thresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
        """Steps where it went up by Thresholds.restart_factor or more (a warm restart), the first
        logged step excepted (warm-up starts there)."""
        v = self.values
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.flatnonzero(v[1:] >= limits.restart_factor * v[:-1]) + 1
        return self.steps[up]


@dataclass
class GradientCourse:
    """How the gradients (or weights) evolved, as far as the run's evidence shows: the global norm over
    steps, each layer's early and late level, and whether weights moved."""

    source: str  # "gradients", "gradient norms" (per parameter), "gradient norm", "weights" or "" (none)
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    norm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # global norm per step, NaN where unknown
    layer_drop_decades: np.ndarray = field(default_factory=lambda: np.zeros(0))  # early - late, per layer
    early_jump_decades: float = float("nan")  # largest rise over the first point among the early ones
    weights_moved: bool | None = None  # weights evidence: did any layer move after its first points


def loss_course(series: LossSeries | None, limits: Thresholds = DEFAULT_THRESHOLDS) -> LossCourse | None:
    if series is None:
        return None
    finite = np.isfinite(series.values)
    steps, values = series.steps[finite], series.values[finite]
    bad = np.flatnonzero(~finite)
    first_bad = int(series.steps[bad[0]]) if bad.size and finite[: bad[0]].any() else None
    if not len(values):
        return LossCourse(series.name, 0, int(bad.size), first_bad, float("nan"), float("nan"))
    # its ends: their share of the points, and at least early_min_points of them so that one noisy
    # batch decides nothing (a third of a short series at most)
    edge = max(
        1, min(len(values) // 3, max(limits.early_min_points, int(len(values) * limits.stall_edge_share)))
    )
    later = values[int(len(values) * limits.loss_later_from) :]
    swing = float("nan")
    if len(later) >= limits.min_points_for_fit and (later >= 0).all():
        # a dense loss's level, not each batch's noise: means of swing_mean_points where ten of them fit
        window = limits.swing_mean_points if len(later) >= 10 * limits.swing_mean_points else 1
        level = later[: len(later) // window * window].reshape(-1, window).mean(1)
        high, low = np.percentile(level, 90), np.percentile(level, 10)
        # a loss that reaches 0 on some batches and not on others swings without bound
        swing = float(np.log10(high / low)) if low > 0 else (float("inf") if high > 0 else 0.0)
    trend = theil_sen(steps[int(len(values) * limits.loss_later_from) :], log10_positive(later), limits)
    whole = theil_sen(steps, log10_positive(values), limits)
    return LossCourse(
        series=series.name,
        points=len(values),
        nonfinite_points=int(bad.size),
        first_nonfinite_step=first_bad,
        start=float(np.median(values[:edge])),
        end=float(np.median(values[-edge:])),
        spikes=_spikes(steps, values, float(values[0]), limits),
        trend_change=_trend_change(whole, steps),
        trend_falls=whole is not None and whole.ci_high < 0,
        swing_decades=swing,
        later_slope_ci_high=trend.ci_high if trend else float("nan"),
        steps=steps,
    )


def logged_every(steps: np.ndarray) -> float:
    """The median gap between logged steps (inf with fewer than two)."""
    return float(np.median(np.diff(steps))) if len(steps) > 1 else float("inf")


def _trend_change(trend, steps: np.ndarray) -> float:
    if trend is None or len(steps) < 2:
        return float("nan")
    return float(10 ** (trend.decades_per_1k_steps * (steps[-1] - steps[0]) / 1000.0) - 1)


def _spikes(steps: np.ndarray, values: np.ndarray, first: float, limits: Thresholds) -> list[Spike]:
    """Points at least Thresholds.unstable_spike_ratio times the median of the spike_window points
    before them and at least unstable_spike_of_start of the loss's first value; a run of such points
    is one spike, at its first point."""
    floor = limits.unstable_spike_of_start * first
    out: list[Spike] = []
    previous = False
    for i in range(1, len(values)):
        before = values[max(0, i - limits.spike_window) : i]
        median = float(np.median(before))
        is_spike = median > 0 and values[i] >= max(limits.unstable_spike_ratio * median, floor)
        if is_spike and not previous:
            out.append(Spike(int(steps[i]), float(values[i] / median)))
        previous = is_spike
    return out


def rate_course(rates: list[ScalarSeries]) -> RateCourse | None:
    """The training learning rate with the most points."""
    training = [r for r in rates if not r.in_validation_folder and len(r.steps)]
    if not training:
        return None
    best = max(training, key=lambda r: len(r.steps))
    return RateCourse(best.name, best.steps, best.values)


def gradient_course(
    stats: RunStats, global_norm: np.ndarray, source: str, limits: Thresholds
) -> GradientCourse:
    """The course of layer magnitudes over steps: each depth layer's early level (median of its first
    points) against its late level (median of its last points), and the global norm."""
    if not len(stats.layers):
        return GradientCourse("")
    return _course(stats.steps, log10_positive(stats.rms)[stats.depth_layers], global_norm, source, limits)


def norm_course(steps: np.ndarray, norm: np.ndarray, limits: Thresholds) -> GradientCourse:
    """The course of a gradient norm logged as a scalar: one row, the norm itself."""
    return _course(steps, log10_positive(norm)[None, :], norm, "gradient norm", limits)


def _course(
    steps: np.ndarray, log_rms: np.ndarray, global_norm: np.ndarray, source: str, limits: Thresholds
) -> GradientCourse:
    drops, jumps = [], []
    for row in log_rms:
        finite = row[np.isfinite(row)]
        if finite.size < 2:
            continue
        head = limits.early_points(finite.size)
        edge = max(1, int(finite.size * limits.stall_edge_share))
        drops.append(float(np.median(finite[:head]) - np.median(finite[-edge:])))
        jumps.append(float(np.max(finite[:head]) - finite[0]))
    moved = None
    if source == "weights":  # after its first points: a jump at the first updates is no learning
        late = [
            _movement(row[np.isfinite(row)][limits.early_points(np.isfinite(row).sum()) - 1 :])
            for row in log_rms
        ]
        moved = bool(late) and max(late) >= limits.weight_moving_decades
    return GradientCourse(
        source=source,
        steps=steps,
        norm=global_norm,
        layer_drop_decades=np.array(drops),
        early_jump_decades=max(jumps) if jumps else float("nan"),
        weights_moved=moved,
    )


def _movement(log_rms: np.ndarray) -> float:
    """Summed |change of log10 RMS| between consecutive points (decades)."""
    return float(np.abs(np.diff(log_rms)).sum()) if log_rms.size >= 2 else 0.0


def loss_shape(course: LossCourse | None, limits: Thresholds = DEFAULT_THRESHOLDS) -> LossShape:
    """Fell, flat or rose: the median of its last points against its first (Thresholds.stall_edge_share
    of them) and the change along its Theil–Sen line, beyond Thresholds.stall_band; or went NaN/Inf,
    too few points (below stall_min_points), not logged."""
    if course is None:
        return LossShape.NOT_LOGGED
    if course.first_nonfinite_step is not None:
        return LossShape.DIVERGED
    if course.points < limits.stall_min_points:
        return LossShape.TOO_FEW
    if course.fell(limits.stall_band):
        return LossShape.FELL
    return LossShape.ROSE if course.change > limits.stall_band else LossShape.FLAT


def chance_loss(
    architecture: Architecture | None, course: LossCourse | None, limits: Thresholds
) -> float | None:
    """ln C, the loss of a C-way cross-entropy classifier that guesses, where the run shows it is one:
    its output layer's width C (its bias) is known and at least 2, and that layer applies a softmax or
    the loss starts within Thresholds.chance_start_share of ln C. None otherwise."""
    output = architecture.output if architecture is not None else None
    if output is None or not output.outputs or output.outputs < 2 or course is None or not course.points:
        return None
    chance = math.log(output.outputs)
    starts_there = abs(course.start / chance - 1) <= limits.chance_start_share
    return chance if output.activation == "softmax" or starts_there else None
