"""Fits over steps and across depth of log10 gradient magnitude, with 95 % confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from .stats import RunStats

CONFIDENCE = 0.95
MIN_POINTS_FOR_FIT = 3


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
class RunTrends:
    layer_trends: list[TimeTrend | None]  # per layer, None when too few finite points
    global_norm: np.ndarray  # [T] L2 norm over all logged gradients; NaN where a layer was non-finite
    global_trend: TimeTrend | None
    depth_log10_ratio: np.ndarray  # [T] log10(RMS first depth layer / RMS last depth layer)
    depth_fits: list[DepthFit | None]  # [T]


def theil_sen(steps: np.ndarray, log10_values: np.ndarray) -> TimeTrend | None:
    ok = np.isfinite(log10_values)
    x, y = np.asarray(steps, float)[ok] / 1000.0, log10_values[ok]
    if len(x) < MIN_POINTS_FOR_FIT or np.ptp(x) == 0:
        return None
    slope, intercept, low, high = scipy_stats.theilslopes(y, x, alpha=CONFIDENCE)
    return TimeTrend(
        float(slope), float(low), float(high), float(intercept), _r2(x, y, slope, intercept), int(len(x))
    )


def _r2(x: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 1.0
    return 1.0 - float(((y - (intercept + slope * x)) ** 2).sum()) / total


def log10_positive(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def fit_depth(step: int, depth: np.ndarray, log10_rms: np.ndarray) -> DepthFit | None:
    ok = np.isfinite(log10_rms)
    x, y = depth[ok].astype(float), log10_rms[ok]
    if len(x) < MIN_POINTS_FOR_FIT or np.ptp(x) == 0:
        return None
    fit = scipy_stats.linregress(x, y)
    t = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 2)
    half = t * fit.stderr if np.isfinite(fit.stderr) else np.nan
    return DepthFit(
        int(step),
        float(fit.slope),
        float(fit.slope - half),
        float(fit.slope + half),
        float(fit.rvalue**2),
        int(len(x)),
    )


def run_trends(stats: RunStats) -> RunTrends:
    log_rms = log10_positive(stats.rms)
    layer_trends = [theil_sen(stats.steps, log_rms[i]) for i in range(len(stats.layers))]
    with np.errstate(invalid="ignore", over="ignore"):
        squares = np.where(np.isfinite(stats.rms), stats.rms**2 * stats.count, np.nan)
        norm = np.sqrt(np.nansum(squares, axis=0))
    norm[stats.nonfinite.any(axis=0)] = np.nan
    norm[np.isnan(squares).all(axis=0)] = np.nan
    global_trend = theil_sen(stats.steps, log10_positive(norm))

    depth = stats.depth_layers
    depth_log = log_rms[depth]
    ratio = np.full(len(stats.steps), np.nan)
    fits: list[DepthFit | None] = []
    for t, step in enumerate(stats.steps):
        column = depth_log[:, t]
        finite = np.flatnonzero(np.isfinite(column))
        if len(finite) >= 2:
            ratio[t] = column[finite[0]] - column[finite[-1]]
        fits.append(fit_depth(step, np.arange(len(depth)), column))
    return RunTrends(layer_trends, norm, global_trend, ratio, fits)
