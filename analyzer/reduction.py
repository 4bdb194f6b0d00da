"""Collected histograms → statistics, many tags in one vectorised pass, and gradaudit's reservoir: a
long tag is reduced and kept only at the steps thinning keeps, so memory follows a run's width."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import HistogramBlock, stack_field
from .stats import (
    PER_STEP,
    QUANTILES,
    ROWS_PER_BLOCK,
    BucketMajor,
    LayerStats,
    block_stats,
    bucket_abs_quantiles,
    nonfinite_of,
)
from .thresholds import DEFAULT_THRESHOLDS

SPIKE_SHARE = DEFAULT_THRESHOLDS.zero_spike_fit_share  # where no thresholds are given


def layer_stats(block: HistogramBlock, tag: str = "", spike_share: float = SPIKE_SHARE) -> LayerStats:
    """Vectorised over steps and buckets; never raises on finite or non-finite input."""
    return reduce_blocks([(tag, block)], spike_share=spike_share)[0]


def reduce_blocks(
    blocks: list[tuple[str, HistogramBlock]],
    thinning: Thinning | None = None,
    spike_share: float = SPIKE_SHARE,
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
        spike_share,
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
    spike_share: float = SPIKE_SHARE,
) -> list[LayerStats]:
    """The statistics of the tags of a stacked block: tags[i] holds the next lengths[i] rows, in
    the encoding encodings[i]. With `thinning`, only the rows that thinning will keep are reduced
    (steps_worth_reducing); each tag's logged and non-finite steps still count all of its rows."""
    bounds = np.cumsum([0, *lengths])
    if thinning is None or (thinning.stride <= 1).all():
        chunks = [
            slice(start, start + ROWS_PER_BLOCK) for start in range(0, max(bounds[-1], 1), ROWS_PER_BLOCK)
        ]
        steps, logged, index = stacked.steps, [(-1, -1)] * len(tags), None
    else:
        kept, nonfinite = steps_worth_reducing(stacked, bounds, thinning)
        index = np.flatnonzero(kept)
        chunks = [
            index[start : start + ROWS_PER_BLOCK] for start in range(0, max(len(index), 1), ROWS_PER_BLOCK)
        ]
        steps = stacked.steps[index]
        logged = [
            (int(end - start), int(np.count_nonzero(nonfinite[start:end])))
            for start, end in zip(bounds, bounds[1:])
        ]
        bounds = np.searchsorted(index, bounds)  # the same tags' bounds among the kept rows
    passes = [block_stats(BucketMajor.of(stacked, rows), spike_share) for rows in chunks]
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
        quantiles[found] = bucket_abs_quantiles(BucketMajor.of(stacked, rows))
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
    for start in range(0, len(stacked.steps), ROWS_PER_BLOCK):
        rows = BucketMajor.of(stacked, slice(start, start + ROWS_PER_BLOCK))
        finite = (
            np.isfinite(rows.left) & np.isfinite(rows.right) & np.isfinite(rows.counts) & (rows.counts >= 0)
        )
        total = np.where(finite, rows.counts, 0.0).sum(axis=0)
        flags.append(nonfinite_of(rows, finite, total))
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
