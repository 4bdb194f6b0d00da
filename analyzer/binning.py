"""Gradients → TensorBoard's legacy histograms, in plain numpy: log-spaced buckets with a bucket of exact
zeros, and exact moments. Every framework's logger bins with it, and it is tested without any of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUCKETS_PER_DECADE = 10
# float32 spans 1.4e-45 (smallest subnormal) to 3.4e38: these limits cover every finite value.
_SMALLEST_DECADE, _LARGEST_DECADE = -45, 39


def bucket_limits(buckets_per_decade: int = BUCKETS_PER_DECADE) -> np.ndarray:
    """Right edges of the buckets [limit[i-1], limit[i]), as TF1 and PyTorch bin; the bucket that starts
    at 0 ends at 1e-45, below the smallest float32 (1.4e-45), so it holds exact zeros only."""
    exponents = np.arange(_SMALLEST_DECADE * buckets_per_decade, _LARGEST_DECADE * buckets_per_decade + 1)
    positive = 10.0 ** (exponents / buckets_per_decade)
    return np.concatenate([-positive[::-1], [0.0], positive])


@dataclass(frozen=True)
class Histogram:
    """One gradient's histogram as a HistogramProto holds it: the non-empty buckets, each a right
    edge and a count (a run of empty buckets is one empty bucket), and exact moments of the finite
    entries; the sums are NaN when an entry is not finite."""

    bucket_limit: np.ndarray
    bucket: np.ndarray
    minimum: float
    maximum: float
    num: int
    total: float
    total_squares: float

    def fill(self, histo) -> None:
        histo.min, histo.max = self.minimum, self.maximum
        histo.num, histo.sum, histo.sum_squares = float(self.num), self.total, self.total_squares
        histo.bucket_limit.extend(self.bucket_limit.tolist())
        histo.bucket.extend(self.bucket.tolist())


# A probe's gradients are binned a chunk of entries at a time, into arrays made once and reused:
# numpy's cost per call is what the many small variables of a model (biases, norms) cost, so those
# are binned together, up to a chunk's entries; a larger gradient is binned chunk by chunk. A
# chunk's arrays stay in the cache, and arrays as large as a whole gradient, made and freed at each
# probe, cost a page fault per 4 KB on every probe (on this VM, 15 ms of each 20 ms to bin 1 M entries).
_CHUNK_ENTRIES = 1 << 16


class Binning:
    """Bins gradients into the log-spaced buckets of bucket_limits(): each entry goes to the bucket i
    with limits[i - 1] <= entry < limits[i], as numpy.searchsorted(limits, entry, side="right") gives.

    A binary search over the ~1,700 limits costs about 35 ns an entry, as much as the probe's forward
    and backward pass on a dense layer. Float32 entries (and float16 and bfloat16, which float32 holds
    exactly) are bucketed by table instead, in a few ns: a float's bits, with the magnitude bits of
    negative floats flipped, are an integer that orders floats as their values do, so each cell of
    2^15 consecutive such integers is an interval of floats. A cell of normal floats spans at most
    0.4 % of its values' magnitude and a bucket 26 %, so it holds at most one bucket edge: an entry's
    bucket is its cell's first bucket, plus one from the first float at or past that edge. The few
    cells of subnormals around zero hold several edges: their entries are searched. The cell that
    ends at +0.0 holds -0.0 and negative subnormals: it gives the zero bucket, and the rare
    subnormals among its entries are searched when the zero bucket holds more than the zeros.
    Float64 entries, which may lie between two float32s, are searched too.

    Its arrays are reused from call to call: one instance serves one thread (the probe thread).
    """

    _CELL_BITS = 15
    _CELLS = 1 << (32 - _CELL_BITS)
    _SEARCHED = -1  # the first bucket of a cell whose entries are searched

    def __init__(self, limits: np.ndarray, chunk_entries: int = _CHUNK_ENTRIES):
        self.limits = limits
        # Bucket len(limits) ends at the largest float64: float64 gradients may exceed float32's range.
        self._right_edges = np.append(limits, np.finfo(np.float64).max)
        self._zero = int(np.searchsorted(limits, 0.0, side="right"))
        # Cell c holds the ordered integers from (c - 1) * 2^15 + 1 to c * 2^15 (+0.0, 0, ends cell
        # 0), of which only the finite floats count: the infinities share cells with the largest.
        last = (np.arange(self._CELLS, dtype=np.int64) - self._CELLS // 2) << self._CELL_BITS
        first = last - (1 << self._CELL_BITS) + 1
        largest = int(np.array(np.finfo(np.float32).max).view(np.int32))  # a positive float's bits
        low, high = (
            _ordered_float32(np.clip(o, -largest, largest).astype(np.int32))
            .view(np.float32)
            .astype(np.float64)
            for o in (first, last)
        )
        first_bucket = np.searchsorted(limits, low, side="right")
        last_bucket = np.searchsorted(limits, high, side="right")
        one_edge = last_bucket - first_bucket == 1
        edge = limits[last_bucket[one_edge] - 1]
        at_edge = edge.astype(np.float32)  # the first float32 at or past the edge
        at_edge = np.where(at_edge < edge, np.nextafter(at_edge, np.float32(np.inf)), at_edge)
        self._first_bucket = first_bucket.astype(np.int32)
        self._first_bucket[last_bucket - first_bucket > 1] = self._SEARCHED
        self._first_bucket[self._CELLS // 2] = self._zero  # the cell of -0.0 and +0.0
        self._next_from = np.full(self._CELLS, np.iinfo(np.int32).max, dtype=np.int32)
        self._next_from[one_edge] = _ordered_float32(at_edge.view(np.int32))
        self._chunk = chunk_entries
        self._arrays: dict[str, np.ndarray] = {}

    def histograms(self, gradients: list[np.ndarray], zeros: list[int] | None = None):
        """The Histogram of each gradient, in order, with as many more zeros in each as `zeros`
        says (the entries of a sparse gradient that are not given)."""
        zeros = zeros or [0] * len(gradients)
        for start, stop in self._groups([g.size for g in gradients]):
            group = gradients[start:stop]
            large = group[0].size > self._chunk  # alone in its group
            tally = self._tally_large(group[0]) if large else self._tally_group(group)
            yield from self._histograms_of(tally.plus_zeros(zeros[start:stop], self._zero))

    def from_counts(
        self,
        counts: np.ndarray,
        sizes: np.ndarray,
        total: np.ndarray,
        total_squares: np.ndarray,
        minimum: np.ndarray,
        maximum: np.ndarray,
    ):
        """The Histogram of each row of bucket counts and moments of finite entries reduced elsewhere
        (on the device a gradient lives on), as histograms() makes them: a row that counts fewer
        entries than its size had non-finite ones, and its sums are NaN."""
        counts = np.asarray(counts, dtype=np.float64)
        not_counted = counts.sum(axis=1) < sizes
        total = np.where(not_counted, np.nan, total)
        total_squares = np.where(not_counted, np.nan, total_squares)
        return self._histograms_of(_Tally(counts, np.asarray(sizes), total, total_squares, minimum, maximum))

    def _groups(self, sizes: list[int]):
        """(start, stop) of consecutive gradients of up to a chunk's entries in all; a gradient
        larger than a chunk alone."""
        start, entries = 0, 0
        for i, size in enumerate(sizes):
            if i > start and (entries + size > self._chunk or size > self._chunk):
                yield start, i
                start, entries = i, 0
            entries += size
        if sizes:
            yield start, len(sizes)

    def bucket_index(self, values: np.ndarray) -> np.ndarray:
        """The bucket of each value (float32 by table, any other dtype by search). Up to a chunk of
        values, the result is one of this instance's arrays, valid until its next call."""
        if values.dtype != np.float32:
            return np.searchsorted(self.limits, values, side="right")
        n = values.size
        ordered, cell, next_from, bucket = (self._array(name, np.int32, n) for name in ("o", "c", "n", "b"))
        at_or_past = self._array("p", np.bool_, n)
        bits = values.view(np.int32)
        np.right_shift(bits, 31, out=ordered)
        np.bitwise_and(ordered, 0x7FFFFFFF, out=ordered)
        np.bitwise_xor(ordered, bits, out=ordered)
        # The NaNs past the largest ordered integer wrap around to the first cell, of NaNs too.
        np.add(ordered, (1 << self._CELL_BITS) - 1, out=cell)
        np.right_shift(cell, self._CELL_BITS, out=cell)
        np.add(cell, self._CELLS // 2, out=cell)
        np.take(self._first_bucket, cell, out=bucket, mode="clip")  # "clip": unbuffered; all in range
        np.take(self._next_from, cell, out=next_from, mode="clip")
        np.greater_equal(ordered, next_from, out=at_or_past)
        np.add(bucket, at_or_past, out=bucket)
        searched = np.flatnonzero(bucket == self._SEARCHED)
        if searched.size:
            bucket[searched] = np.searchsorted(self.limits, values[searched], side="right")
        zero_bucket = bucket == self._zero
        bucketed_zero = np.count_nonzero(zero_bucket)
        if bucketed_zero and bucketed_zero != np.count_nonzero(values == 0):  # negative subnormals
            searched = np.flatnonzero(zero_bucket & (values != 0))
            bucket[searched] = np.searchsorted(self.limits, values[searched], side="right")
        return bucket

    def _array(self, name: str, dtype, n: int) -> np.ndarray:
        """n entries of this instance's array `name`: made once, at a chunk's size."""
        if n > self._chunk:
            return np.empty(n, dtype)
        if name not in self._arrays:
            self._arrays[name] = np.empty(self._chunk, dtype)
        return self._arrays[name][:n]

    def _tally_group(self, gradients: list[np.ndarray]) -> _Tally:
        """The tally of a few gradients of a chunk's entries in all, binned in one pass."""
        sizes = np.array([g.size for g in gradients])
        # Float16 and bfloat16 gradients are bucketed as the float32s that hold them exactly.
        narrow = all(np.can_cast(g.dtype, np.float32, casting="safe") for g in gradients)
        dtype = np.float32 if narrow else np.float64
        flat = self._array("f32" if narrow else "f64", dtype, int(sizes.sum()))
        np.concatenate([np.ravel(g) for g in gradients], out=flat, casting="same_kind")
        return self._tally(flat, sizes)

    def _tally_large(self, gradient: np.ndarray) -> _Tally:
        """The tally of one gradient larger than a chunk, added up chunk by chunk."""
        flat = np.ravel(gradient)
        if not np.can_cast(flat.dtype, np.float32, casting="safe"):
            flat = flat.astype(np.float64, copy=False)
        elif flat.dtype != np.float32:
            flat = flat.astype(np.float32)
        pieces = (flat[start : start + self._chunk] for start in range(0, flat.size, self._chunk))
        return _Tally.added([self._tally(piece, np.array([piece.size])) for piece in pieces])

    def _tally(self, flat: np.ndarray, sizes: np.ndarray) -> _Tally:
        """The bucket counts and moments of consecutive gradients of the given sizes, flat."""
        rows, per_gradient = len(sizes), len(self.limits) + 1
        finite = np.isfinite(flat, out=self._array("finite", np.bool_, flat.size))
        all_finite = bool(finite.all())
        bucket = self.bucket_index(flat)
        if rows > 1:  # one row of buckets per gradient
            bucket = bucket + np.repeat(np.arange(rows) * per_gradient, sizes)
        counts = np.bincount(bucket if all_finite else bucket[finite], minlength=rows * per_gradient)

        values = flat
        if flat.dtype != np.float64:  # moments in float64
            values = self._array("f64", np.float64, flat.size)
            np.copyto(values, flat)
        # Moments by segment; empty gradients have no segment and keep zeros, and no finite entry
        # gives a minimum of +inf and a maximum of -inf.
        has_entries = sizes > 0
        starts = (np.cumsum(sizes) - sizes)[has_entries]
        minimum, maximum = np.full(rows, np.inf), np.full(rows, -np.inf)
        if starts.size:
            minimum[has_entries] = np.minimum.reduceat(
                values if all_finite else np.where(finite, values, np.inf), starts
            )
            maximum[has_entries] = np.maximum.reduceat(
                values if all_finite else np.where(finite, values, -np.inf), starts
            )
        if not all_finite:
            values = np.where(finite, values, 0.0)  # flat may be the gradient itself: not in place
        total, total_squares = np.zeros(rows), np.zeros(rows)
        with np.errstate(over="ignore"):  # a sum of squares past float64's range is inf, silently
            if rows == 1 and values.size:  # one gradient: no temporary array of squares
                total[0], total_squares[0] = values.sum(), np.dot(values, values)
            elif starts.size:
                total[has_entries] = np.add.reduceat(values, starts)
                total_squares[has_entries] = np.add.reduceat(values * values, starts)
        if not all_finite:
            not_counted = counts.reshape(rows, per_gradient).sum(axis=1) < sizes
            total[not_counted] = total_squares[not_counted] = np.nan
        return _Tally(counts.reshape(rows, per_gradient), sizes, total, total_squares, minimum, maximum)

    def _histograms_of(self, tally: _Tally):
        """Each row of a tally as a Histogram of its non-empty buckets, each run of empty buckets
        before one written as one empty bucket ending where it starts: a reader takes each bucket's
        left edge from the previous limit, so edges stay exact and 40 decades cost at most twice the
        non-empty buckets."""
        rows, per_gradient = tally.counts.shape
        counts = tally.counts.ravel()
        occupied = np.flatnonzero(counts)
        row, column = np.divmod(occupied, per_gradient)
        after_gap = np.zeros(len(occupied), dtype=bool)
        after_gap[1:] = (np.diff(occupied) > 1) & (row[1:] == row[:-1])
        position = np.arange(len(occupied)) + np.cumsum(after_gap)
        bucket_limit = np.empty(len(occupied) + int(after_gap.sum()))
        bucket_count = np.zeros_like(bucket_limit)
        bucket_limit[position], bucket_count[position] = self._right_edges[column], counts[occupied]
        bucket_limit[position[after_gap] - 1] = self._right_edges[column[after_gap] - 1]
        bounds = np.append(position, len(bucket_limit))[np.searchsorted(row, np.arange(rows + 1))]
        no_finite = ~np.isfinite(tally.minimum)  # min and max as for an empty gradient
        for i, size in enumerate(tally.sizes.tolist()):
            yield Histogram(
                bucket_limit=bucket_limit[bounds[i] : bounds[i + 1]],
                bucket=bucket_count[bounds[i] : bounds[i + 1]],
                minimum=0.0 if no_finite[i] else float(tally.minimum[i]),
                maximum=0.0 if no_finite[i] else float(tally.maximum[i]),
                num=size,
                total=float(tally.total[i]),
                total_squares=float(tally.total_squares[i]),
            )


@dataclass(frozen=True)
class _Tally:
    """Bucket counts (one row per gradient) and moments of the finite entries of a few gradients."""

    counts: np.ndarray
    sizes: np.ndarray
    total: np.ndarray
    total_squares: np.ndarray
    minimum: np.ndarray  # +inf where no entry is finite
    maximum: np.ndarray  # -inf where no entry is finite

    def plus_zeros(self, zeros: list[int], zero_bucket: int) -> _Tally:
        """This tally with as many more zero entries in each row as `zeros` says."""
        zeros = np.asarray(zeros)
        if not zeros.any():
            return self
        counts = self.counts.copy()
        counts[:, zero_bucket] += zeros
        some = zeros > 0
        return _Tally(
            counts=counts,
            sizes=self.sizes + zeros,
            total=self.total,
            total_squares=self.total_squares,
            minimum=np.where(some, np.minimum(self.minimum, 0.0), self.minimum),
            maximum=np.where(some, np.maximum(self.maximum, 0.0), self.maximum),
        )

    @staticmethod
    def added(tallies: list[_Tally]) -> _Tally:
        """The tally of the entries of all of them: of one gradient's consecutive chunks."""
        return _Tally(
            counts=sum(t.counts for t in tallies),
            sizes=sum(t.sizes for t in tallies),
            total=sum(t.total for t in tallies),
            total_squares=sum(t.total_squares for t in tallies),
            minimum=np.minimum.reduce([t.minimum for t in tallies]),
            maximum=np.maximum.reduce([t.maximum for t in tallies]),
        )


def _ordered_float32(bits: np.ndarray) -> np.ndarray:
    """Float32 bits as int32 in the order of the floats' values (negative floats' magnitude bits
    flipped, -0.0 just below 0.0); its own inverse."""
    ordered = bits >> 31
    ordered &= 0x7FFFFFFF
    ordered ^= bits
    return ordered
