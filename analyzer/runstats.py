"""The statistics of a run's layers aligned on one axis of steps ([L, T] matrices), with the layers the
depth fit reads and those sparse by construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import LayerStats, resolves_exact_zeros
from .tags import follows_depth, is_sparse_by_name
from .thresholds import DEFAULT_THRESHOLDS, Thresholds


@dataclass
class RunStats:
    """Per-layer statistics of one run aligned on the union of logged steps ([L, T] matrices)."""

    layers: list[LayerStats]  # depth order, input side first
    steps: np.ndarray  # int64 [T]
    rms: np.ndarray  # [L, T], NaN where a layer has no finite value at that step
    zero_share: np.ndarray  # [L, T]
    nonfinite: np.ndarray  # bool [L, T]
    count: np.ndarray  # [L, T] entries per layer
    depth_layers: np.ndarray  # int indices into `layers` used for fits across depth
    missing: np.ndarray  # bool [L, T]: fewer entries than the layer's size (its largest count): a
    #                      writer left values out, as writers that drop NaN/Inf do
    sparse: np.ndarray  # bool [L]: gradient sparse by construction (embedding tables, one-hot inputs)

    @property
    def tags(self) -> list[str]:
        return [layer.tag for layer in self.layers]


def _sparse_layers(
    layers: list[LayerStats], zero_share: np.ndarray, exact_zeros: np.ndarray, limits: Thresholds
) -> np.ndarray:
    sparse = np.array([is_sparse_by_name(layer.tag) for layer in layers], dtype=bool)
    first = next((i for i, layer in enumerate(layers) if follows_depth(layer.tag) and not sparse[i]), None)
    if first is not None:
        with np.errstate(invalid="ignore"):
            mostly_zero = (exact_zeros[first] & (zero_share[first] >= limits.sparse_zero_share))[
                np.isfinite(zero_share[first])
            ]
        sparse[first] = bool(
            mostly_zero.size and mostly_zero[0] and mostly_zero.mean() >= limits.sparse_step_share
        )
    return sparse


def run_stats(layers: list[LayerStats], limits: Thresholds = DEFAULT_THRESHOLDS) -> RunStats:
    """Layers (depth order) aligned on the union of their steps. A zero bucket narrower than
    `limits.exact_zero_resolution` of the layer's largest |g| counts exact zeros (finer histograms
    than TF2's even buckets)."""
    steps = np.unique(np.concatenate([layer.steps for layer in layers])) if layers else np.zeros(0, int)
    shape = (len(layers), len(steps))
    rms, zero_share, count = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    nonfinite, exact_zeros = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for i, layer in enumerate(layers):
        at = np.searchsorted(steps, layer.steps)
        rms[i, at] = layer.rms
        zero_share[i, at] = layer.zero_share
        count[i, at] = layer.count
        nonfinite[i, at] = layer.nonfinite
        exact_zeros[i, at] = resolves_exact_zeros(layer, limits.exact_zero_resolution)
    with np.errstate(invalid="ignore"):
        size = np.nanmax(np.where(np.isfinite(count), count, np.nan), axis=1, initial=0.0)
        missing = np.isfinite(count) & (count < size[:, None] - 0.5)
    sparse = _sparse_layers(layers, zero_share, exact_zeros, limits)
    weights = np.array(
        [i for i, layer in enumerate(layers) if follows_depth(layer.tag) and not sparse[i]], dtype=int
    )
    dense = np.flatnonzero(~sparse)
    depth_layers = weights if len(weights) >= 2 else (dense if len(dense) >= 2 else np.arange(len(layers)))
    return RunStats(layers, steps, rms, zero_share, nonfinite, count, depth_layers, missing, sparse)
