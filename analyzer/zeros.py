"""The zero bucket of coarse histograms: how far its count stands above what a heavy-tailed density
fitted to its neighbours predicts, the spike of exact zeros that TF2's 30 even buckets cannot isolate."""

from __future__ import annotations

import numpy as np

# Neighbouring buckets on each side of the zero bucket that the heavy-tailed fit reads.
_SPIKE_NEIGHBOURS = 3


# The fitted family: Student's t with 3 degrees of freedom (heavy tails, finite variance), centred on
# zero, its scale searched on a log grid in units of the bucket width.
_T_SCALES = np.logspace(-2.5, 2.5, 201)


def _t3_cdf(t: np.ndarray) -> np.ndarray:
    return 0.5 + (t / (np.sqrt(3.0) * (1.0 + t * t / 3.0)) + np.arctan(t / np.sqrt(3.0))) / np.pi


def _t3_bucket_masses() -> np.ndarray:
    """[scales, 1 + neighbours]: the zero bucket's mass (both halves) then each neighbour's (one side),
    for buckets of width 1 centred on zero."""
    edges = np.arange(_SPIKE_NEIGHBOURS + 1) + 0.5  # 0.5, 1.5, 2.5, 3.5
    cdf = _t3_cdf(edges[None, :] / _T_SCALES[:, None])
    zero = 2 * cdf[:, 0] - 1
    return np.column_stack([zero, np.diff(cdf, axis=1)])


_T3_MASSES = _t3_bucket_masses()


def zero_spike(
    c: np.ndarray, holds_zero: np.ndarray, weight: np.ndarray, min_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """_zero_spike_fit on the steps ([K, R], bucket-major; `weight`: [R] sums of c) whose zero bucket
    holds at least `min_share` of the entries (Thresholds.zero_spike_fit_share: below it the excess
    could not reach what any dead-units rule asks, and most steps of most layers are spared the fit,
    which costs more than every other statistic together); (0, 0) elsewhere."""
    excess, ratio = np.zeros(c.shape[1]), np.zeros(c.shape[1])
    if not c.shape[1]:
        return excess, ratio
    at_zero = np.where(holds_zero, c, -1.0).max(axis=0)
    candidates = np.flatnonzero(at_zero >= min_share * weight)
    if candidates.size:  # the fit reads few steps, row by row
        excess[candidates], ratio[candidates] = _zero_spike_fit(
            c[:, candidates].T, holds_zero[:, candidates].T
        )
    return excess, ratio


def _zero_spike_fit(c: np.ndarray, holds_zero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The zero bucket's count beyond what a heavy-tailed density fitted to its neighbours predicts,
    and the ratio of its count to that prediction.

    Coarse even buckets (TF2's 30 from min to max) put most of a sharply peaked gradient into the
    bucket that holds zero, so a spike over the neighbours is no evidence of exact zeros by itself.
    The neighbours 1..3 buckets away (both sides pooled) fix the scale of a Student t(3) density
    centred on zero, by the shape of their decay; that density then says how much the zero bucket
    would hold relative to its neighbours. A decay steeper than any t(3) makes the prediction
    unbounded (the smallest scale of the grid), so nothing is claimed there.
    """
    rows = np.arange(c.shape[0])
    if not len(rows):
        return np.zeros(0), np.zeros(0)
    z = np.argmax(np.where(holds_zero, c, -1.0), axis=1)
    k = c.shape[1]
    at_zero = c[rows, z]
    per_distance = []
    for d in range(1, _SPIKE_NEIGHBOURS + 1):
        left = np.where(z - d >= 0, c[rows, np.maximum(z - d, 0)], np.nan)
        right = np.where(z + d < k, c[rows, np.minimum(z + d, k - 1)], np.nan)
        both = np.isfinite(left) & np.isfinite(right)
        per_distance.append(np.where(both, (left + right) / 2, np.where(np.isfinite(left), left, right)))
    m = np.stack(per_distance, axis=1)  # [R, 3] mean count per side
    usable = np.isfinite(m) & (m > 0)
    with np.errstate(all="ignore"):
        observed = np.log(np.where(usable, m, 1.0) / np.where(usable[:, :1], m[:, :1], 1.0))  # log(m_k/m_1)
        model = np.log(_T3_MASSES[:, 1:] / _T3_MASSES[:, 1:2])  # [G, 3]
        error = (np.where(usable[:, None, :], observed[:, None, :] - model[None, :, :], 0.0) ** 2).sum(axis=2)
    best = np.argmin(error, axis=1)
    predicted = m[:, 0] * _T3_MASSES[best, 0] / _T3_MASSES[best, 1]
    fitted = usable[:, 0] & (usable.sum(axis=1) >= 2) & (best > 0) & holds_zero.any(axis=1)
    predicted = np.where(fitted, predicted, np.inf)
    excess = np.where(fitted, np.maximum(at_zero - predicted, 0.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(fitted, at_zero / predicted, 0.0)
    return excess, ratio
