"""Magnitude statistics of gradient histograms, per tag and step, with bounds from bucket coarseness.

Inside a bucket values are assumed uniform. That gives point estimates; the bucket edges alone give
hard bounds (every value lies between its bucket's smallest and largest |g|), which say how coarse the
estimate is. Where the legacy encoding carries exact moments, the RMS is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import HistogramBlock
from .zeros import zero_spike

QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class LayerStats:
    """Statistics of one tag's gradients; every array is indexed by step ([S])."""

    tag: str
    steps: np.ndarray  # int64
    count: np.ndarray  # gradient entries seen (finite ones)
    rms: np.ndarray  # root mean square of g, same unit as the gradient
    rms_low: np.ndarray  # hard lower bound from bucket edges (== rms where exact)
    rms_high: np.ndarray  # hard upper bound
    rms_exact: np.ndarray  # bool: from exact sum of squares
    mean_abs: np.ndarray  # mean |g|
    mean_abs_low: np.ndarray
    mean_abs_high: np.ndarray
    abs_quantiles_last: np.ndarray  # [len(QUANTILES)] quantiles of |g| at the last step with a finite
    #                                 RMS (NaN if none): where the report gives them
    max_abs: np.ndarray  # largest |g| (to the resolution of the outermost bucket edge)
    zero_share: np.ndarray  # share of entries in the bucket(s) containing zero
    zero_bucket_width: np.ndarray  # width of that bucket: how exact "zero" is (0 = exact zeros)
    zero_excess_share: np.ndarray  # share in the zero bucket above what its neighbours predict: the
    #                                spike of exact zeros that coarse buckets cannot isolate, estimated
    zero_spike_ratio: np.ndarray  # the zero bucket's count over that prediction (0 where none can be
    #                               made: a density as peaked as the neighbours say could fill it)
    nonfinite: np.ndarray  # bool: NaN or Inf gradients were logged at this step
    empty: np.ndarray  # bool: the histogram held no finite entries at all
    encodings: tuple[str, ...] = ()  # "tf2" and/or "legacy"
    quantiles_step: int = -1  # the step abs_quantiles_last is at; -1: none
    logged_steps: int = -1  # steps logged; more than len(steps) where a long run was thinned
    logged_nonfinite: int = -1  # of them with NaN or Inf gradients

    def __post_init__(self) -> None:
        if self.logged_steps < 0:
            self.logged_steps = len(self.steps)
        if self.logged_nonfinite < 0:
            self.logged_nonfinite = int(np.count_nonzero(self.nonfinite))

    @property
    def size(self) -> int:
        """The parameter's entry count: its histograms' largest (a writer that drops NaN logs fewer)."""
        counts = self.count[np.isfinite(self.count)]
        return int(counts.max()) if counts.size else 0

    def rows(self, index: np.ndarray) -> LayerStats:
        """These steps only (an index or a mask into steps); the logged counts are kept."""
        kept = {name: getattr(self, name)[index] for name in PER_STEP}
        has_quantiles = self.quantiles_step in kept["steps"]
        return LayerStats(
            tag=self.tag,
            abs_quantiles_last=self.abs_quantiles_last if has_quantiles else np.full(len(QUANTILES), np.nan),
            encodings=self.encodings,
            quantiles_step=self.quantiles_step if has_quantiles else -1,
            logged_steps=self.logged_steps,
            logged_nonfinite=self.logged_nonfinite,
            **kept,
        )

    def before(self, step: int) -> LayerStats:
        """The steps before `step` only: what a restart orphaned is forgotten, as never logged."""
        keep = self.steps < step
        out = self.rows(keep)
        out.logged_steps -= int(np.count_nonzero(~keep))
        out.logged_nonfinite -= int(np.count_nonzero(self.nonfinite & ~keep))
        return out


# The fields of LayerStats indexed by step.
PER_STEP = (
    "steps",
    "count",
    "rms",
    "rms_low",
    "rms_high",
    "rms_exact",
    "mean_abs",
    "mean_abs_low",
    "mean_abs_high",
    "max_abs",
    "zero_share",
    "zero_bucket_width",
    "zero_excess_share",
    "zero_spike_ratio",
    "nonfinite",
    "empty",
)


# Rows (steps) per pass. A run stacks every tag's steps (9,000 rows x 30 buckets is common): in one
# pass each of the ~50 temporaries is a fresh 2 MB array, and the page faults of allocating them cost
# more than the arithmetic. Blocks of 1,024 rows keep temporaries in cache and reuse freed memory.
ROWS_PER_BLOCK = 1024


@dataclass
class BucketMajor:
    """Histograms of some steps laid out bucket by bucket: [K, R] arrays, each bucket's values of
    every step contiguous. Every statistic sums or takes the largest over a step's buckets; over
    contiguous steps that is K vectorised passes, where along a row of ~30 buckets numpy reduces
    row by row."""

    left: np.ndarray  # [K, R]
    right: np.ndarray
    counts: np.ndarray
    num: np.ndarray  # [R]
    sum: np.ndarray
    sum_squares: np.ndarray

    @staticmethod
    def of(block: HistogramBlock, rows: slice | np.ndarray) -> BucketMajor:
        """Those rows of a block, copied bucket-major (contiguous: strided views cost more than the copy)."""
        return BucketMajor(
            block.left[rows].T.copy(),
            block.right[rows].T.copy(),
            block.counts[rows].T.copy(),
            block.num[rows],
            block.sum[rows],
            block.sum_squares[rows],
        )


@dataclass
class _Buckets:
    """Buckets of some steps ([K, R], bucket-major) made safe to compute with: non-finite buckets
    emptied, edges ordered, and edges near 1e308 or absurd counts rescaled so squares and sums cannot
    overflow."""

    finite: np.ndarray  # bool: the bucket's edges and count are finite numbers, the count >= 0
    lo_edge: np.ndarray  # in units of step_scale
    hi_edge: np.ndarray
    abs_left: np.ndarray
    abs_right: np.ndarray
    abs_lo: np.ndarray  # smallest |g| in the bucket
    abs_hi: np.ndarray  # largest |g| in the bucket
    c: np.ndarray  # counts of finite buckets, in units of a step's peak count if that is absurd (> 1e100)
    total: np.ndarray  # [R] entries
    weight: np.ndarray  # [R] sum of c
    straddles: np.ndarray  # the bucket reaches from <= 0 to >= 0
    step_scale: np.ndarray  # [R] unit of the edges


def _buckets(left: np.ndarray, right: np.ndarray, counts: np.ndarray) -> _Buckets:
    """`left`, `right`, `counts`: [K, R], bucket-major."""
    finite = np.isfinite(left) & np.isfinite(right) & np.isfinite(counts) & (counts >= 0)
    with np.errstate(all="ignore"):
        if finite.all() and (left <= right).all():  # what every writer writes: no copies needed
            lo_edge, hi_edge, raw = left, right, counts
        else:
            lo_edge = np.where(finite, np.minimum(left, right), 0.0)
            hi_edge = np.where(finite, np.maximum(left, right), 0.0)
            raw = np.where(finite, counts, 0.0)
        abs_left, abs_right = np.abs(lo_edge), np.abs(hi_edge)
        abs_hi = np.maximum(abs_left, abs_right)
        step_scale = abs_hi.max(axis=0, initial=0.0)
        step_scale = np.where((step_scale > 1e100) | (step_scale < 1e-100), step_scale, 1.0)
        step_scale[step_scale == 0] = 1.0
        if (step_scale != 1.0).any():  # every statistic is a ratio or scales back linearly
            lo_edge, hi_edge, abs_left, abs_right, abs_hi = (
                a / step_scale for a in (lo_edge, hi_edge, abs_left, abs_right, abs_hi)
            )
        total = raw.sum(axis=0)
        peak = raw.max(axis=0, initial=0.0)
        absurd = peak > 1e100
        c = raw / np.where(absurd, peak, 1.0) if absurd.any() else raw
        straddles = (lo_edge <= 0) & (hi_edge >= 0)
        abs_lo = np.minimum(abs_left, abs_right)
        abs_lo[straddles] = 0.0
    weight = c.sum(axis=0) if c is not raw else total
    return _Buckets(
        finite,
        lo_edge,
        hi_edge,
        abs_left,
        abs_right,
        abs_lo,
        abs_hi,
        c,
        total,
        weight,
        straddles,
        step_scale,
    )


def block_stats(series: BucketMajor, spike_share: float) -> dict[str, np.ndarray]:
    """The per-step statistics of some steps, as LayerStats fields."""
    counts, num, sum_squares = series.counts, series.num, series.sum_squares
    b = _buckets(series.left, series.right, counts)
    c, lo_edge, hi_edge, step_scale = b.c, b.lo_edge, b.hi_edge, b.step_scale
    with np.errstate(all="ignore"):
        empty = ~(b.total > 0)
        safe_weight = np.where(b.weight > 0, b.weight, 1.0)
        # Which bucket holds an exact 0: writers bin as [left, right), the last bucket closed (TF2's
        # histogram op, TF1's C++ Histogram, numpy.histogram in PyTorch and tensorboardX).
        occupied = c > 0
        bucket = np.arange(c.shape[0])[:, None]
        last = np.where(occupied, bucket, -1).max(axis=0)
        last[last < 0] = c.shape[0] - 1  # no bucket occupied: the last one
        holds_zero = b.straddles & ((hi_edge > 0) | (lo_edge == 0) | (bucket == last))
        width = hi_edge - lo_edge
        # E|g| and E[g^2] of a uniform distribution on [lo, hi]
        has_width = width > 0
        mean_abs_bucket = hi_edge * b.abs_right
        mean_abs_bucket -= lo_edge * b.abs_left
        mean_abs_bucket /= 2 * np.where(has_width, width, 1)
        np.copyto(mean_abs_bucket, b.abs_left, where=~has_width)
        mean_sq_bucket = lo_edge * lo_edge
        mean_sq_bucket += lo_edge * hi_edge
        mean_sq_bucket += hi_edge * hi_edge
        mean_sq_bucket /= 3

        def weighted(*values: np.ndarray) -> np.ndarray:
            subscripts = ",".join(["ij"] * (len(values) + 1)) + "->j"
            return np.einsum(subscripts, c, *values) / safe_weight

        mean_abs = weighted(mean_abs_bucket) * step_scale
        mean_abs_low = weighted(b.abs_lo) * step_scale
        mean_abs_high = weighted(b.abs_hi) * step_scale
        rms = np.sqrt(weighted(mean_sq_bucket)) * step_scale
        rms_low = np.sqrt(weighted(b.abs_lo, b.abs_lo)) * step_scale
        rms_high = np.sqrt(weighted(b.abs_hi, b.abs_hi)) * step_scale

        exact = np.isfinite(num) & (num > 0) & np.isfinite(sum_squares)
        exact_rms = np.sqrt(np.where(exact, sum_squares, 0.0) / np.where(exact, num, 1.0))
        exact &= np.isfinite(exact_rms)
        rms = np.where(exact, exact_rms, rms)
        rms_low = np.where(exact, exact_rms, rms_low)
        rms_high = np.where(exact, exact_rms, rms_high)

        max_abs = np.where(occupied, b.abs_hi, 0.0).max(axis=0, initial=0.0) * step_scale
        zero_share = weighted(holds_zero)
        zero_bucket_width = np.where(holds_zero & occupied, width, 0.0).max(axis=0, initial=0.0) * step_scale
        zero_excess, zero_spike_ratio = zero_spike(c, holds_zero, b.weight, spike_share)
        zero_excess_share = zero_excess / safe_weight

        nonfinite = nonfinite_of(series, b.finite, b.total)

    for array in (
        mean_abs,
        mean_abs_low,
        mean_abs_high,
        rms,
        rms_low,
        rms_high,
        max_abs,
        zero_share,
        zero_excess_share,
    ):
        array[empty] = np.nan
    return dict(
        count=np.where(np.isfinite(num) & ~nonfinite, num, b.total),
        rms=rms,
        rms_low=rms_low,
        rms_high=rms_high,
        rms_exact=exact,
        mean_abs=mean_abs,
        mean_abs_low=mean_abs_low,
        mean_abs_high=mean_abs_high,
        max_abs=max_abs,
        zero_share=zero_share,
        zero_bucket_width=zero_bucket_width,
        zero_excess_share=zero_excess_share,
        zero_spike_ratio=zero_spike_ratio,
        nonfinite=nonfinite,
        empty=empty,
    )


def nonfinite_of(series: BucketMajor, finite: np.ndarray, total: np.ndarray) -> np.ndarray:
    """NaN/Inf shows differently per writer: TF2 turns every edge to NaN; legacy writers put it in
    the moments, or leave entries out of the buckets (num larger than the bucket total)."""
    if finite.all():
        bad_bucket = all_edges_nan = np.zeros(len(total), dtype=bool)
    else:
        counts = series.counts
        bad_bucket = (~finite & ((counts != 0) | ~np.isfinite(counts))).any(axis=0)
        # A TF2 histogram of NaN input: every edge NaN and every count 0.
        all_edges_nan = np.isnan(series.left).all(axis=0) & (series.left.shape[0] > 0)
    num = series.num
    has_moments = np.isfinite(num)
    bad_moments = has_moments & ~(np.isfinite(series.sum) & np.isfinite(series.sum_squares))
    missing_entries = has_moments & (total < num - 0.5)
    return bad_bucket | all_edges_nan | bad_moments | missing_entries


def abs_quantiles(series: HistogramBlock, rows: np.ndarray) -> np.ndarray:
    """Quantiles (QUANTILES) of |g| at the given rows (steps) of a series: [len(rows), 3], NaN for
    a step with no entries."""
    return bucket_abs_quantiles(BucketMajor.of(series, rows))


def bucket_abs_quantiles(series: BucketMajor) -> np.ndarray:
    """Buckets are folded onto |g|, sorted by their upper end, and interpolated inside the bucket
    where the cumulative share crosses q: exact to within one bucket's width."""
    b = _buckets(series.left, series.right, series.counts)
    abs_lo, abs_hi, c = b.abs_lo.T, b.abs_hi.T, b.c.T  # few steps: row by row
    count, k = c.shape
    # Gathers through flat indices: take_along_axis builds a broadcast index per element, 7x slower.
    row_start = np.arange(count) * k
    order = (np.argsort(abs_hi, axis=1, kind="stable") + row_start[:, None]).ravel()
    lo = np.ravel(abs_lo).take(order)
    hi = np.ravel(abs_hi).take(order)
    mass = np.ravel(c).take(order)
    cumulative = np.cumsum(mass.reshape(count, k), axis=1)
    out = np.full((count, len(QUANTILES)), np.nan)
    for j, q in enumerate(QUANTILES):
        target = q * b.weight
        at = row_start + np.minimum((cumulative < target[:, None]).sum(axis=1), k - 1)
        before = np.where(at > row_start, cumulative.ravel()[at - 1], 0.0)
        inside = mass[at]
        with np.errstate(all="ignore"):
            frac = np.clip(np.where(inside > 0, (target - before) / inside, 1.0), 0.0, 1.0)
        out[:, j] = lo[at] + frac * (hi[at] - lo[at])
    out[b.weight <= 0] = np.nan
    return out * b.step_scale[:, None]


def resolves_exact_zeros(layer: LayerStats, resolution: float) -> np.ndarray:
    """Per step: the bucket holding zero is narrower than `resolution` x the layer's largest |g|, so
    its count is a count of exact zeros (log-spaced legacy buckets; not TF2's even ones)."""
    return layer.zero_bucket_width <= resolution * np.nan_to_num(layer.max_abs)
