"""Magnitude statistics of gradient histograms, per tag and step, with bounds from bucket coarseness.

Inside a bucket values are assumed uniform. That gives point estimates; the bucket edges alone give
hard bounds (every value lies between its bucket's smallest and largest |g|), which say how coarse the
estimate is. Where the legacy encoding carries exact moments, the RMS is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .blocks import HistogramBlock, stack_field

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
_ROWS_PER_BLOCK = 1024


def layer_stats(block: HistogramBlock, tag: str = "") -> LayerStats:
    """Vectorised over steps and buckets; never raises on finite or non-finite input."""
    return reduce_blocks([(tag, block)])[0]


@dataclass
class _BucketMajor:
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
    def of(block: HistogramBlock, rows: slice | np.ndarray) -> _BucketMajor:
        """Those rows of a block, copied bucket-major (contiguous: strided views cost more than the copy)."""
        return _BucketMajor(
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


def _block_stats(series: _BucketMajor) -> dict[str, np.ndarray]:
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
        zero_excess, zero_spike_ratio = _zero_spike(c, holds_zero, b.weight)
        zero_excess_share = zero_excess / safe_weight

        nonfinite = _nonfinite(series, b.finite, b.total)

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


# The fit is made only where the zero bucket holds at least this share of a step's entries: its
# excess could not reach the least share any dead-units rule asks (half), and most steps of most
# layers are spared the fit (it costs more than every other statistic together).
_SPIKE_MIN_SHARE = 0.5


def _zero_spike(c: np.ndarray, holds_zero: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_zero_spike_fit on the steps ([K, R], bucket-major; `weight`: [R] sums of c) whose zero bucket
    holds at least _SPIKE_MIN_SHARE of the entries; (0, 0) elsewhere."""
    excess, ratio = np.zeros(c.shape[1]), np.zeros(c.shape[1])
    if not c.shape[1]:
        return excess, ratio
    at_zero = np.where(holds_zero, c, -1.0).max(axis=0)
    candidates = np.flatnonzero(at_zero >= _SPIKE_MIN_SHARE * weight)
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


def _nonfinite(series: _BucketMajor, finite: np.ndarray, total: np.ndarray) -> np.ndarray:
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
    return _abs_quantiles(_BucketMajor.of(series, rows))


def _abs_quantiles(series: _BucketMajor) -> np.ndarray:
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


# Tags of parameters whose gradients do not follow the depth profile of the weights: biases and
# normalization parameters. They are analysed, but the depth fit uses the weights when it can.
_NOT_A_WEIGHT = ("bias", "beta", "gamma", "moving_", "running_", "norm")
# Attention's query and key projections: their gradients scale with how much the attention logits
# matter (little while attention is near uniform), not with depth; the depth fit leaves them out.
_ATTENTION_QUERY_KEY = re.compile(r"(?i)(^|[/._])(query|key|q_proj|k_proj|wq|wk)([/._]|$)")


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


def reduce_blocks(
    blocks: list[tuple[str, HistogramBlock]], thinning: Thinning | None = None
) -> list[LayerStats]:
    """The statistics of each (tag, block), in one vectorised pass over every block's histograms
    (stacked, padded to one bucket count): per-block calls would spend their time in numpy's
    per-call overhead. Each block's |g| quantiles are computed at its last step with a finite RMS.
    `thinning`: see reduce_stacked."""
    if not blocks:
        return []
    parts = [block for _, block in blocks]
    if len(parts) == 1:
        stacked = parts[0]
    else:
        width = max(b.counts.shape[1] for b in parts)
        fields = ("steps", "left", "right", "counts", "num", "sum", "sum_squares")
        stacked = HistogramBlock(*(stack_field(parts, name, width) for name in fields), "")
    return reduce_stacked(
        [tag for tag, _ in blocks],
        [len(b.steps) for b in parts],
        stacked,
        [b.encoding for b in parts],
        thinning,
    )


@dataclass
class Thinning:
    """How sparsely each tag of a block is reduced ([T] arrays, one per tag): its steps on a grid of
    `stride` logging intervals (see steps_worth_reducing)."""

    interval: np.ndarray  # int: the tag's logging interval in steps (0: unknown, every row kept)
    stride: np.ndarray  # int: 1 keeps every row
    nonfinite_before: np.ndarray  # int8: the row before the block non-finite (1) or not (0); -1: none


def reduce_stacked(
    tags: list[str],
    lengths: list[int],
    stacked: HistogramBlock,
    encodings: list[str],
    thinning: Thinning | None = None,
) -> list[LayerStats]:
    """The statistics of the tags of a stacked block: tags[i] holds the next lengths[i] rows, in
    the encoding encodings[i]. With `thinning`, only the rows that thinning will keep are reduced
    (steps_worth_reducing); each tag's logged and non-finite steps still count all of its rows."""
    bounds = np.cumsum([0, *lengths])
    if thinning is None or (thinning.stride <= 1).all():
        chunks = [
            slice(start, start + _ROWS_PER_BLOCK) for start in range(0, max(bounds[-1], 1), _ROWS_PER_BLOCK)
        ]
        steps, logged, index = stacked.steps, [(-1, -1)] * len(tags), None
    else:
        kept, nonfinite = steps_worth_reducing(stacked, bounds, thinning)
        index = np.flatnonzero(kept)
        chunks = [
            index[start : start + _ROWS_PER_BLOCK] for start in range(0, max(len(index), 1), _ROWS_PER_BLOCK)
        ]
        steps = stacked.steps[index]
        logged = [
            (int(end - start), int(np.count_nonzero(nonfinite[start:end])))
            for start, end in zip(bounds, bounds[1:])
        ]
        bounds = np.searchsorted(index, bounds)  # the same tags' bounds among the kept rows
    passes = [_block_stats(_BucketMajor.of(stacked, rows)) for rows in chunks]
    per_step = {name: np.concatenate([p[name] for p in passes]) for name in passes[0]}
    last = np.array(
        [
            _latest_finite(per_step["rms"][start:end], steps[start:end], start)
            for start, end in zip(bounds, bounds[1:])
        ]
    )
    quantiles = np.full((len(tags), len(QUANTILES)), np.nan)
    found = last >= 0
    if found.any():
        rows = last[found] if index is None else index[last[found]]
        quantiles[found] = _abs_quantiles(_BucketMajor.of(stacked, rows))
    return [
        LayerStats(
            tag=tag,
            steps=steps[start:end],
            abs_quantiles_last=quantiles[i],
            encodings=(encoding,) if encoding else (),
            quantiles_step=int(steps[last[i]]) if found[i] else -1,
            logged_steps=logged_steps,
            logged_nonfinite=logged_nonfinite,
            **{name: values[start:end] for name, values in per_step.items()},
        )
        for i, (tag, encoding, start, end, (logged_steps, logged_nonfinite)) in enumerate(
            zip(tags, encodings, bounds, bounds[1:], logged)
        )
    ]


def merge_pieces(pieces: list[LayerStats]) -> LayerStats:
    """Statistics of one tag read in pieces (in reading order) as one, sorted by step; of a step read
    twice the last read wins. The quantiles are those of the last finite step where a piece that won
    it computed them there (always, unless a later file overwrote a piece's later steps)."""
    if len(pieces) == 1 and np.all(np.diff(pieces[0].steps) > 0):  # the common case: nothing to merge
        return pieces[0]
    steps = np.concatenate([p.steps for p in pieces])
    source = np.repeat(np.arange(len(pieces)), [len(p.steps) for p in pieces])
    if np.all(steps[1:] > steps[:-1]):  # pieces one after the other (ranges of a file): no step twice
        keep = np.arange(len(steps))
        merged = {name: np.concatenate([getattr(p, name) for p in pieces]) for name in PER_STEP}
    else:
        # np.unique keeps the first of equal values: look from the end so the last read wins.
        unique_steps, from_end = np.unique(steps[::-1], return_index=True)
        keep = len(steps) - 1 - from_end
        source = source[keep]
        merged = {name: np.concatenate([getattr(p, name) for p in pieces])[keep] for name in PER_STEP}
        merged["steps"] = unique_steps.astype(np.int64)
    quantiles, quantiles_step = np.full(len(QUANTILES), np.nan), -1
    finite = np.flatnonzero(np.isfinite(merged["rms"]))
    if finite.size:
        winner = pieces[source[finite[-1]]]
        if winner.quantiles_step == merged["steps"][finite[-1]]:
            quantiles, quantiles_step = winner.abs_quantiles_last, winner.quantiles_step
    # A step read twice counts once (steps a piece thinned away cannot be recognised: rare and few).
    overwritten = np.ones(len(steps), dtype=bool)
    overwritten[keep] = False
    nonfinite = np.concatenate([p.nonfinite for p in pieces])
    return LayerStats(
        tag=pieces[0].tag,
        abs_quantiles_last=quantiles,
        encodings=tuple(sorted({e for p in pieces for e in p.encodings})),
        quantiles_step=quantiles_step,
        logged_steps=sum(p.logged_steps for p in pieces) - int(overwritten.sum()),
        logged_nonfinite=sum(p.logged_nonfinite for p in pieces) - int((nonfinite & overwritten).sum()),
        **merged,
    )


# A tag's statistics keep at most twice this many steps: beyond that every other step is dropped
# (see thinned), so a run's memory is bounded by its width, not its length.
KEPT_STEPS = 512


def thinned(layer: LayerStats, kept_steps: int = KEPT_STEPS) -> LayerStats:
    """A long tag's statistics with every other step dropped while it holds more than 2 x kept_steps:
    trends and shares over thousands of evenly thinned steps are those of all of them. Kept whatever
    their rank: the last step, and the steps on either side of a change between finite and non-finite
    gradients (where a blow-up starts and the last finite step before it), and the quantiles' step.
    Tags logged at the same steps are thinned alike, so they stay aligned across depth."""
    while len(layer.steps) > 2 * kept_steps:
        rank = np.arange(len(layer.steps))
        keep = rank % 2 == 0
        keep[-1] = True
        change = np.flatnonzero(np.diff(layer.nonfinite))
        keep[change] = keep[change + 1] = True
        keep |= layer.steps == layer.quantiles_step
        if keep.all():
            break
        layer = layer.rows(keep)
    return layer


def logging_interval(steps: np.ndarray) -> int:
    """The interval a tag's steps are logged at: the greatest common divisor of their differences;
    0 where fewer than two steps say."""
    differences = np.diff(steps)
    differences = differences[differences > 0]
    return int(np.gcd.reduce(differences)) if differences.size else 0


def final_stride(expected_steps: float, kept_steps: int = KEPT_STEPS) -> int:
    """How sparse `thinned` leaves a tag that logs this many steps: the power of two that leaves
    between kept_steps and 2 x kept_steps of them."""
    stride = 1
    while expected_steps / (2 * stride) >= kept_steps:
        stride *= 2
    return stride


def steps_worth_reducing(
    stacked: HistogramBlock, bounds: np.ndarray, thinning: Thinning
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of the tags of a stacked block (tag i: rows bounds[i] to bounds[i + 1]) thinning
    will keep, so that only they are reduced to statistics: (kept, non-finite), per row. Kept: the
    steps on the tag's grid (step // interval a multiple of stride: tags logged at the same steps
    keep the same ones), each tag's last row, the rows either side of a change between finite and
    non-finite gradients, also across the block's start, and each tag's last row with finite
    entries, where its quantiles are read. Non-finite is found as the statistics find it, without
    computing them."""
    flags, has_entries = [], []
    for start in range(0, len(stacked.steps), _ROWS_PER_BLOCK):
        rows = _BucketMajor.of(stacked, slice(start, start + _ROWS_PER_BLOCK))
        finite = (
            np.isfinite(rows.left) & np.isfinite(rows.right) & np.isfinite(rows.counts) & (rows.counts >= 0)
        )
        total = np.where(finite, rows.counts, 0.0).sum(axis=0)
        flags.append(_nonfinite(rows, finite, total))
        has_entries.append(total > 0)
    nonfinite = np.concatenate(flags)
    starts, ends, lengths = bounds[:-1], bounds[1:] - 1, np.diff(bounds)
    interval = np.repeat(np.where(thinning.interval > 0, thinning.interval, 1), lengths)
    stride = np.repeat(thinning.stride, lengths)  # 1 where the interval is unknown
    kept = (stacked.steps // interval) % stride == 0
    kept[ends] = True
    change = np.flatnonzero(nonfinite[1:] != nonfinite[:-1])
    change = change[~np.isin(change + 1, starts)]  # not between one tag's last row and the next's first
    kept[change] = kept[change + 1] = True
    known = thinning.nonfinite_before >= 0
    kept[starts[known & (nonfinite[starts] != thinning.nonfinite_before.astype(bool))]] = True
    positions = np.where(np.concatenate(has_entries) & ~nonfinite, np.arange(len(nonfinite)), -1)
    last_finite = np.maximum.reduceat(positions, starts)
    kept[last_finite[last_finite >= starts]] = True
    return kept, nonfinite


def _latest_finite(values: np.ndarray, steps: np.ndarray, offset: int) -> int:
    """The row of the latest step with a finite value; of a step read twice (a restart), the row read
    last, which is the one that counts. -1 if none."""
    finite = np.flatnonzero(np.isfinite(values))
    if not finite.size:
        return -1
    finite_steps = steps[finite]
    return offset + int(finite[len(finite) - 1 - np.argmax(finite_steps[::-1])])


def resolves_exact_zeros(layer: LayerStats, resolution: float) -> np.ndarray:
    """Per step: the bucket holding zero is narrower than `resolution` x the layer's largest |g|, so
    its count is a count of exact zeros (log-spaced legacy buckets; not TF2's even ones)."""
    return layer.zero_bucket_width <= resolution * np.nan_to_num(layer.max_abs)


# The prefix of a per-parameter norm's tag (Lightning's grad_2.0_norm/<parameter>): it says "norm"
# of every parameter, so the markers above are read in the parameter name after it.
LIGHTNING_NORM = r"grad_([0-9.]+|inf)_norm"  # group 1: the norm type; events reads its tags with it


# Around a parameter's name in a histogram or norm tag: gradaudit's and other writers' gradient
# wrappers (gradients/…, grad/…, …/gradient, ….grad), Lightning's norm prefix, and the wrappers of
# weight histograms (weights/…, params/…, Keras's …/histogram), so that a gradient histogram, a norm
# and a weight histogram of one parameter give the same name.
_PARAMETER_WRAPPERS = re.compile(
    rf"(?i)^({LIGHTNING_NORM}|gradients|grads?|weights?|params|parameters)/|(/gradient|_grad|\.grad|/grads?|/histogram)$"
)


def parameter_name(tag: str) -> str:
    """The parameter a tag describes, its writer's wrappers removed (``grad/0.weight``,
    ``grad_2.0_norm/0.weight`` and ``weights/0.weight`` → ``0.weight``)."""
    return _PARAMETER_WRAPPERS.sub("", _PARAMETER_WRAPPERS.sub("", tag))


def is_weight_tag(tag: str) -> bool:
    lowered = parameter_name(tag).lower()
    return not any(marker in lowered for marker in _NOT_A_WEIGHT) and not _ATTENTION_QUERY_KEY.search(tag)


# Variables whose gradient only reaches the rows a batch looks up: Keras's Embedding (…/embeddings),
# PyTorch's nn.Embedding (embedding.weight, embed_tokens, wte) and lookup tables.
_SPARSE_BY_NAME = re.compile(r"(?i)embed|(^|[/._])(wte|tok_emb|lookup)([/._]|$)")
# From the data, where no name says so: the input-side weight (one-hot or bag-of-words inputs) whose
# entries are mostly exact zeros on nearly every logged step, the first included.
SPARSE_ZERO_SHARE = 0.5
SPARSE_STEP_SHARE = 0.9


def _sparse_layers(layers: list[LayerStats], zero_share: np.ndarray, exact_zeros: np.ndarray) -> np.ndarray:
    sparse = np.array([bool(_SPARSE_BY_NAME.search(layer.tag)) for layer in layers], dtype=bool)
    first = next((i for i, layer in enumerate(layers) if is_weight_tag(layer.tag) and not sparse[i]), None)
    if first is not None:
        with np.errstate(invalid="ignore"):
            mostly_zero = (exact_zeros[first] & (zero_share[first] >= SPARSE_ZERO_SHARE))[
                np.isfinite(zero_share[first])
            ]
        sparse[first] = bool(mostly_zero.size and mostly_zero[0] and mostly_zero.mean() >= SPARSE_STEP_SHARE)
    return sparse


def run_stats(layers: list[LayerStats], exact_zero_resolution: float = 1e-6) -> RunStats:
    """Layers (depth order) aligned on the union of their steps. `exact_zero_resolution`: a zero
    bucket narrower than this fraction of the layer's largest |g| counts exact zeros (finer
    histograms than TF2's even buckets)."""
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
        exact_zeros[i, at] = resolves_exact_zeros(layer, exact_zero_resolution)
    with np.errstate(invalid="ignore"):
        size = np.nanmax(np.where(np.isfinite(count), count, np.nan), axis=1, initial=0.0)
        missing = np.isfinite(count) & (count < size[:, None] - 0.5)
    sparse = _sparse_layers(layers, zero_share, exact_zeros)
    weights = np.array(
        [i for i, layer in enumerate(layers) if is_weight_tag(layer.tag) and not sparse[i]], dtype=int
    )
    dense = np.flatnonzero(~sparse)
    depth_layers = weights if len(weights) >= 2 else (dense if len(dense) >= 2 else np.arange(len(layers)))
    return RunStats(layers, steps, rms, zero_share, nonfinite, count, depth_layers, missing, sparse)
