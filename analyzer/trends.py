"""Fits over steps and across depth of log10 gradient magnitude, with confidence intervals
(Thresholds.confidence, 95 % by default).

Theil–Sen over steps (robust to spikes) and least squares across depth, both vectorised in numpy over
all layers or all steps of a run at once. They compute what ``scipy.stats.theilslopes`` and
``scipy.stats.linregress`` compute (the tests hold them to it); importing ``scipy.stats`` alone takes
longer (~0.8 s) than analysing a typical run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .events import LossSeries, NormSeries
from .runstats import RunStats
from .thresholds import DEFAULT_THRESHOLDS, Thresholds

# Theil–Sen costs n² pair slopes: above this many logged steps, fit the medians of this many bins of
# consecutive steps instead (robust still, and the interval is honest for the binned points).
MAX_POINTS_FOR_FIT = 100
_Z_95 = 1.959963984540054  # standard normal quantile at 0.975


@dataclass
class TimeTrend:
    """Theil–Sen slope of log10(RMS) over steps, in decades per 1,000 steps."""

    decades_per_1k_steps: float
    ci_low: float
    ci_high: float
    intercept: float  # log10 RMS at step 0
    r2: float  # of the robust line, on the points it was fitted to
    points: int

    def predict_log10(self, steps: np.ndarray) -> np.ndarray:
        return self.intercept + self.decades_per_1k_steps * np.asarray(steps, float) / 1000.0


@dataclass
class DepthFit:
    """Least-squares slope of log10(RMS) over depth index at one step, in decades per layer."""

    step: int
    decades_per_layer: float
    ci_low: float
    ci_high: float
    r2: float
    layers: int


@dataclass
class LossTrend:
    """How the training loss moved: a Theil–Sen fit of log10(loss) over the later half of its logged
    points (decades per 1,000 of its own steps, with its interval), and its change over the whole run."""

    series: str  # which loss series: its folder and tag
    later_half: TimeTrend | None  # None with too few positive finite points to fit
    first: float  # the loss at its first logged point
    last: float  # the median of its last points (Thresholds.loss_end_share of them)
    nonfinite_points: int  # NaN/Inf values logged
    points: int

    @property
    def log10_change(self) -> float:
        """log10(last / first): -1 means the loss fell tenfold."""
        if not (self.first > 0 and self.last > 0):
            return float("nan")
        return math.log10(self.last / self.first)


@dataclass
class NormTrend:
    """The global gradient norm a run logged as a scalar, or the one its per-parameter norms make
    (the root of the sum of their squares, at steps where every parameter was logged)."""

    series: str  # the tag it came from, or "the N per-parameter norms"
    steps: np.ndarray  # int64 [S]
    values: np.ndarray  # float64 [S], NaN/Inf as logged
    trend: TimeTrend | None  # Theil–Sen over its positive finite points
    spikes: int  # points more than Thresholds.spike_decades above the median of the spike_window before them


def global_norm_series(norms: list[NormSeries]) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The total norm with the most points where one was logged, else the per-parameter norms
    combined (an L2 norm of norms of one type, at the steps every parameter was logged)."""
    training = [n for n in norms if not n.in_validation_folder]
    totals = [n for n in training if n.parameter is None and len(n.steps)]
    if totals:
        best = max(totals, key=lambda n: int(np.isfinite(n.values).sum()))
        return best.name, best.steps, best.values
    parameters = [n for n in training if n.parameter is not None and len(n.steps)]
    if not parameters:
        return None
    norm_type = parameters[0].norm_type
    parameters = [n for n in parameters if n.norm_type == norm_type]
    steps = parameters[0].steps
    for n in parameters[1:]:
        steps = np.intersect1d(steps, n.steps)
    with np.errstate(over="ignore", invalid="ignore"):
        squares = sum(n.values[np.searchsorted(n.steps, steps)] ** 2 for n in parameters)
    return f"the {len(parameters)} per-parameter norms combined", steps, np.sqrt(squares)


def norm_trend(norms: list[NormSeries], limits: Thresholds = DEFAULT_THRESHOLDS) -> NormTrend | None:
    found = global_norm_series(norms)
    if found is None:
        return None
    name, steps, values = found
    log_norm = log10_positive(values)
    window = limits.spike_window
    spikes = 0
    for i in range(window, len(values)):
        before = log_norm[i - window : i]
        before = before[np.isfinite(before)]
        if before.size and log_norm[i] > np.median(before) + limits.spike_decades:
            spikes += 1
    return NormTrend(name, steps, values, theil_sen(steps, log_norm, limits), spikes)


@dataclass
class RunTrends:
    layer_trends: list[TimeTrend | None]  # per layer, None when too few finite points
    global_norm: np.ndarray  # [T] L2 norm over all logged gradients; NaN where a layer was non-finite
    global_trend: TimeTrend | None
    depth_log10_ratio: np.ndarray  # [T] log10(RMS first depth layer / RMS last depth layer)
    depth_fits: list[DepthFit | None]  # [T]
    loss: LossTrend | None = None  # of the training loss, where the run logged one


def log10_positive(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def theil_sen(
    steps: np.ndarray, log10_values: np.ndarray, limits: Thresholds = DEFAULT_THRESHOLDS
) -> TimeTrend | None:
    return theil_sen_rows(steps, np.atleast_2d(log10_values), limits)[0]


def theil_sen_rows(
    steps: np.ndarray, log10_rows: np.ndarray, limits: Thresholds = DEFAULT_THRESHOLDS
) -> list[TimeTrend | None]:
    """Theil–Sen fit of every row of `log10_rows` [R, T] against steps [T]; NaN points are left out.

    Slopes of all point pairs (x in thousands of steps), their median, and Sen's (1968) interval:
    order statistics of the sorted slopes at (N ± z·σ)/2, σ² from n and the ties in y.
    """
    x = np.asarray(steps, float) / 1000.0
    rows = np.asarray(log10_rows, float)
    if x.size > MAX_POINTS_FOR_FIT:
        x, rows = _bin_medians(x, rows, MAX_POINTS_FOR_FIT)
    out: list[TimeTrend | None] = [None] * rows.shape[0]
    min_points, z = limits.min_points_for_fit, _z(limits.confidence)
    if x.size < min_points:
        return out
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    finite = np.isfinite(rows)
    together = np.zeros(rows.shape[0], dtype=bool)
    if (dx > 0).all():
        # The common case, every layer logged at every step with no two equal values, shares its
        # order statistics (the same n, pair count and σ), so those rows are fitted in one pass.
        together = finite.all(axis=1)
        together[together] = (np.diff(np.sort(rows[together], axis=1), axis=1) != 0).all(axis=1)
        for r, trend in zip(
            np.flatnonzero(together), _theil_sen_complete_rows(x, rows[together], i, j, dx, z)
        ):
            out[r] = trend
    # At most ~2M pair slopes at a time, so a run with thousands of tags stays small in memory.
    chunk = max(1, 2_000_000 // max(1, i.size))
    rest = np.flatnonzero(~together & (finite.sum(axis=1) >= min_points))
    for start in range(0, rest.size, chunk):
        block = rest[start : start + chunk]
        with np.errstate(invalid="ignore"):
            slopes = (rows[block][:, j] - rows[block][:, i]) / dx  # NaN where either point is missing
        valid = np.isfinite(slopes).sum(axis=1)
        for k in np.flatnonzero(valid > 0):
            r = block[k]
            out[r] = _theil_sen_row(x, rows[r], finite[r], slopes[k], int(valid[k]), z)
    return out


def _theil_sen_complete_rows(
    x: np.ndarray, rows: np.ndarray, i: np.ndarray, j: np.ndarray, dx: np.ndarray, z: float
) -> list[TimeTrend]:
    """_theil_sen_row for rows with every point finite and no ties in y, vectorised over the rows."""
    n, pairs = x.size, i.size
    lower, upper, middle = _order_statistics(pairs, math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0), z)
    out: list[TimeTrend] = []
    chunk = max(1, 2_000_000 // max(1, pairs))
    for start in range(0, rows.shape[0], chunk):
        y = rows[start : start + chunk]
        ordered = np.partition((y[:, j] - y[:, i]) / dx, sorted({lower, upper, *middle}), axis=1)
        slope = ordered[:, middle].mean(axis=1)
        intercept = np.median(y, axis=1) - slope * np.median(x)
        total = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        residual = ((y - (intercept[:, None] + slope[:, None] * x)) ** 2).sum(axis=1)
        r2 = 1.0 - residual / total  # total > 0: the row has no two equal values
        out += [
            TimeTrend(float(s), float(lo), float(hi), float(b), float(r), n)
            for s, lo, hi, b, r in zip(slope, ordered[:, lower], ordered[:, upper], intercept, r2)
        ]
    return out


def _order_statistics(pairs: int, sigma: float, z: float) -> tuple[int, int, list[int]]:
    """Positions in the sorted pair slopes of the interval's ends and of the median (Sen 1968)."""
    upper = min(int(np.round((pairs + z * sigma) / 2.0)), pairs - 1)
    lower = max(int(np.round((pairs - z * sigma) / 2.0)) - 1, 0)
    return lower, upper, sorted({(pairs - 1) // 2, pairs // 2})


def _bin_medians(x: np.ndarray, rows: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Medians of `bins` runs of consecutive points (sizes differ by at most one)."""
    edges = np.linspace(0, x.size, bins + 1).astype(int)
    width = int(np.diff(edges).max())
    index = edges[:-1, None] + np.arange(width)  # [bins, width]
    inside = index < edges[1:, None]
    index = np.minimum(index, x.size - 1)
    x_binned = _nanmedian_last_axis(np.where(inside, x[index], np.nan))
    rows_binned = _nanmedian_last_axis(np.where(inside, rows[:, index], np.nan))
    return x_binned, rows_binned


def _nanmedian_last_axis(a: np.ndarray) -> np.ndarray:
    """np.nanmedian over a short last axis (NaN where all are NaN), in one sort: nanmedian's own
    path for short axes goes through masked arrays and costs ten times as much."""
    ordered = np.sort(a, axis=-1)  # NaN sorts last
    n = (~np.isnan(a)).sum(axis=-1)
    low = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, (n // 2)[..., None], axis=-1)[..., 0]
    return np.where(n > 0, (low + high) / 2, np.nan)


def _theil_sen_row(
    x: np.ndarray, y: np.ndarray, finite: np.ndarray, slopes: np.ndarray, nt: int, z: float
) -> TimeTrend:
    xs, ys = x[finite], y[finite]
    n = xs.size
    _, y_ties = np.unique(ys, return_counts=True)
    y_ties = y_ties[y_ties > 1]
    sigma = math.sqrt(
        (n * (n - 1) * (2 * n + 5) - float((y_ties * (y_ties - 1) * (2 * y_ties + 5)).sum())) / 18.0
    )
    lower, upper, middle = _order_statistics(nt, sigma, z)
    kth = sorted({lower, upper, *middle})
    ordered = np.partition(np.where(np.isfinite(slopes), slopes, np.inf), kth)
    slope = float(ordered[middle].mean())
    intercept = float(np.median(ys) - slope * np.median(xs))
    return TimeTrend(
        slope, float(ordered[lower]), float(ordered[upper]), intercept, _r2(xs, ys, slope, intercept), n
    )


def _r2(x: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 1.0
    return 1.0 - float(((y - (intercept + slope * x)) ** 2).sum()) / total


def fit_depth(
    step: int, depth: np.ndarray, log10_rms: np.ndarray, limits: Thresholds = DEFAULT_THRESHOLDS
) -> DepthFit | None:
    return fit_depth_columns(np.array([step]), depth, log10_rms[:, None], limits)[0]


def fit_depth_columns(
    steps: np.ndarray, depth: np.ndarray, log10_rms: np.ndarray, limits: Thresholds = DEFAULT_THRESHOLDS
) -> list[DepthFit | None]:
    """Least squares of each column of `log10_rms` [D, T] against `depth` [D], NaN points left out."""
    w = np.isfinite(log10_rms)
    y = np.where(w, log10_rms, 0.0)
    x = np.where(w, np.asarray(depth, float)[:, None], 0.0)
    n = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = x.sum(axis=0) / n, y.sum(axis=0) / n
        dx, dy = np.where(w, x - mx, 0.0), np.where(w, y - my, 0.0)
        sxx, syy, sxy = (dx * dx).sum(axis=0), (dy * dy).sum(axis=0), (dx * dy).sum(axis=0)
        slope = sxy / sxx
        r2 = np.where(syy > 0, sxy * sxy / (sxx * syy), 1.0)
        residual = np.maximum(syy - slope * sxy, 0.0)
        stderr = np.sqrt(residual / (n - 2) / sxx)
    fits: list[DepthFit | None] = []
    for t, step in enumerate(steps):
        if n[t] < limits.min_points_for_fit or not sxx[t] > 0:
            fits.append(None)
            continue
        half = student_t_quantile(0.5 + limits.confidence / 2, int(n[t]) - 2) * stderr[t]
        fits.append(
            DepthFit(
                int(step),
                float(slope[t]),
                float(slope[t] - half),
                float(slope[t] + half),
                float(r2[t]),
                int(n[t]),
            )
        )
    return fits


@lru_cache(maxsize=256)
def student_t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t: closed forms for 1 and 2 degrees of freedom; otherwise the
    Cornish–Fisher series (Abramowitz & Stegun 26.7.5) refined by Newton steps on the CDF, which is
    integrated from the density with Simpson's rule (error far below 1e-8)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = _z(2 * p - 1)
    t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(v):
        return np.exp(log_norm - (df + 1) / 2 * np.log1p(v * v / df))

    for _ in range(4):
        grid = np.linspace(0.0, t, 2001)
        weights = np.ones(2001)
        weights[1:-1:2], weights[2:-1:2] = 4, 2
        cdf = 0.5 + float((weights * density(grid)).sum()) * t / 6000
        t -= (cdf - p) / float(density(np.array(t)))
    return t


@lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    """The standard normal quantile that bounds a two-sided interval at `confidence`."""
    return _Z_95 if confidence == 0.95 else _normal_quantile(0.5 + confidence / 2)


def _normal_quantile(p: float) -> float:
    """Bisection on the normal CDF (math.erfc) to machine precision; used for levels other than 95 %."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def training_loss(losses: list[LossSeries]) -> LossSeries | None:
    """The training loss a run's verdict reads: of the series that are not validation losses, the
    one with the most finite points (Keras's batch_loss over its epoch_loss, a per-step loss over a
    per-epoch one)."""
    training = [s for s in losses if not s.is_validation and len(s.steps)]
    if not training:
        return None
    return max(training, key=lambda s: int(np.isfinite(s.values).sum()))


def loss_trend(series: LossSeries | None, limits: Thresholds = DEFAULT_THRESHOLDS) -> LossTrend | None:
    if series is None:
        return None
    finite = np.isfinite(series.values)
    steps, values = series.steps[finite], series.values[finite]
    if not len(values):
        return LossTrend(series.name, None, float("nan"), float("nan"), int((~finite).sum()), 0)
    later = slice(int(len(values) * limits.loss_later_from), None)
    later_half = theil_sen(steps[later], log10_positive(values[later]), limits)
    last = float(np.median(values[-max(1, int(len(values) * limits.loss_end_share)) :]))
    return LossTrend(series.name, later_half, float(values[0]), last, int((~finite).sum()), len(values))


def run_trends(
    stats: RunStats, losses: list[LossSeries] | None = None, limits: Thresholds = DEFAULT_THRESHOLDS
) -> RunTrends:
    log_rms = log10_positive(stats.rms)
    layer_trends = theil_sen_rows(stats.steps, log_rms, limits) if len(stats.layers) else []
    with np.errstate(invalid="ignore", over="ignore"):
        squares = np.where(np.isfinite(stats.rms), stats.rms**2 * stats.count, np.nan)
        norm = np.sqrt(np.nansum(squares, axis=0)) if len(stats.layers) else np.zeros(len(stats.steps))
    norm[(stats.nonfinite | stats.missing).any(axis=0)] = np.nan  # a norm of what is left is no norm
    if len(stats.layers):
        norm[np.isnan(squares).all(axis=0)] = np.nan
    global_trend = theil_sen(stats.steps, log10_positive(norm), limits)

    depth_log = log_rms[stats.depth_layers]
    ratio = np.full(len(stats.steps), np.nan)
    finite = np.isfinite(depth_log)
    has_two = finite.sum(axis=0) >= 2
    if has_two.any():
        first = np.argmax(finite, axis=0)
        last = depth_log.shape[0] - 1 - np.argmax(finite[::-1], axis=0)
        columns = np.arange(len(stats.steps))
        ratio = np.where(has_two, depth_log[first, columns] - depth_log[last, columns], np.nan)
    fits = fit_depth_columns(stats.steps, np.arange(len(stats.depth_layers)), depth_log, limits)
    return RunTrends(
        layer_trends, norm, global_trend, ratio, fits, loss_trend(training_loss(losses or []), limits)
    )
