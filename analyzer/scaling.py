"""Gradients logged before unscaling (mixed precision's loss scale, as PyTorch's GradScaler applies it):
recognised by a logged scale or by steps where every layer moved by the same power of two, and
brought back to unscaled magnitudes; the scaler's skipped steps (NaN/Inf, each followed by a finite
step) are told apart from a divergence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .events import ScalarSeries
from .learning import LossCourse
from .stats import LayerStats
from .thresholds import Thresholds

# The per-step fields of LayerStats that are magnitudes: divided by the scale.
_MAGNITUDES = ("rms", "rms_low", "rms_high", "mean_abs", "mean_abs_low", "mean_abs_high", "max_abs")


@dataclass
class LossScaling:
    """How the run's gradients were found scaled, and what was done about it."""

    how: str  # "the logged scale (<tag>)" or "steps where every layer moved by the same power of two"
    scale_changes: list[tuple[int, int]] = field(default_factory=list)  # (step, log2 of the change)
    skipped_steps: list[int] = field(default_factory=list)  # NaN/Inf steps left out as the scaler's skips
    scale_known: bool = False  # absolute magnitudes are true ones (a logged scale), not relative


def unscaled(
    layers: list[LayerStats], scale: ScalarSeries | None, course: LossCourse | None, limits: Thresholds
) -> tuple[list[LayerStats], LossScaling | None]:
    """The layers with their magnitudes unscaled and the scaler's skipped steps left out, and how; the
    layers as they are where nothing says they were scaled."""
    if not layers:
        return layers, None
    steps = np.unique(np.concatenate([layer.steps for layer in layers]))
    if scale is not None and np.isfinite(scale.values).any():
        factor = _logged_factor(steps, scale)
        scaling = LossScaling(f"the logged scale ({scale.name})", scale_known=True)
    else:
        changes = _power_of_two_changes(layers, steps, limits)
        if not changes:
            # No scale seen to change (batch noise hides its steps when every step is logged), yet
            # NaN/Inf steps between finite ones while the loss stays finite: in full precision an
            # overflowing gradient leaves NaN weights, which no later step recovers from. They are a
            # scaler's skipped updates; the magnitudes are left as logged (relative measures hold).
            skipped = _skipped(layers, steps, course, limits)
            if not skipped or course is None:
                return layers, None
            changes, factor = [], np.ones(len(steps))
            scaling = LossScaling(SKIPS_ONLY, changes)
            return _unscale(layers, steps, factor, scaling, skipped)
        factor = np.ones(len(steps))
        for step, k in changes:
            factor[steps >= step] *= 2.0**k
        factor /= factor[0]  # relative to the first logged scale
        scaling = LossScaling("steps where every layer moved by the same power of two", changes)
    return _unscale(layers, steps, factor, scaling, _skipped(layers, steps, course, limits))


SKIPS_ONLY = "NaN/Inf steps between finite ones while the loss stayed finite"


def _unscale(
    layers: list[LayerStats], steps: np.ndarray, factor: np.ndarray, scaling: LossScaling, skipped: list[int]
) -> tuple[list[LayerStats], LossScaling]:
    scaling.skipped_steps = skipped
    out = []
    for layer in layers:
        at = np.searchsorted(steps, layer.steps)
        keep = ~np.isin(layer.steps, scaling.skipped_steps)
        rows = layer.rows(keep)
        divide = factor[at][keep]
        for name in _MAGNITUDES:
            setattr(rows, name, getattr(rows, name) / divide)
        rows.logged_nonfinite -= int(np.count_nonzero(layer.nonfinite & ~keep))
        rows.logged_steps -= int(np.count_nonzero(~keep))  # skipped updates: as never logged
        out.append(rows)
    return out, scaling


def _logged_factor(steps: np.ndarray, scale: ScalarSeries) -> np.ndarray:
    """The scale in force at each step: its last logged value at or before it (its first before it)."""
    finite = np.isfinite(scale.values) & (scale.values > 0)
    scale_steps, values = scale.steps[finite], scale.values[finite]
    at = np.clip(np.searchsorted(scale_steps, steps, side="right") - 1, 0, len(values) - 1)
    return values[at]


def _power_of_two_changes(
    layers: list[LayerStats], steps: np.ndarray, limits: Thresholds
) -> list[tuple[int, int]]:
    """Steps where the RMS of (nearly) every layer changed from the step before by one power of two,
    the same for all, to within Thresholds.scale_step_tolerance (log2): a scale changing, not the
    gradients, which never move in lockstep by exact powers of two."""
    log2 = np.full((len(layers), len(steps)), np.nan)
    for i, layer in enumerate(layers):
        with np.errstate(divide="ignore", invalid="ignore"):
            log2[i, np.searchsorted(steps, layer.steps)] = np.where(layer.rms > 0, np.log2(layer.rms), np.nan)
    if len(layers) < 2 or len(steps) < 2:
        return []
    changes = []
    previous = 0  # the last step with finite values: a skipped step (Inf) is compared past, and the
    # scaler's back-off that follows it shows against the step before the skip
    for t in range(1, len(steps)):
        d = log2[:, t] - log2[:, previous]
        d = d[np.isfinite(d)]
        if d.size < 2:
            if np.isfinite(log2[:, t]).sum() >= 2:
                previous = t
            continue
        previous = t
        k = int(np.round(np.median(d)))
        close = np.abs(d - k) <= limits.scale_step_tolerance
        if k != 0 and close.mean() >= limits.scale_layer_share:
            changes.append((int(steps[t]), k))
    return changes


def _skipped(
    layers: list[LayerStats], steps: np.ndarray, course: LossCourse | None, limits: Thresholds
) -> list[int]:
    """The non-finite steps that are the scaler's skips: each followed by a finite step, at most
    Thresholds.skipped_max_share of the logged steps, while the loss stays finite and does not rise.
    Otherwise none: a divergence is a divergence."""
    bad = np.zeros(len(steps), bool)
    for layer in layers:
        bad[np.searchsorted(steps, layer.steps)] |= layer.nonfinite
    where = np.flatnonzero(bad)
    if not where.size:
        return []
    followed = all(i + 1 < len(steps) and not bad[i + 1] for i in where)
    few = where.size <= limits.skipped_max_share * len(steps)
    loss_fine = course is None or (
        course.first_nonfinite_step is None and not course.change > limits.stall_band
    )
    return [int(steps[i]) for i in where] if followed and few and loss_fine else []
