"""One tag's histograms from one event file, collected as they are read and decoded into arrays.

Collecting copies out of each protobuf message what its histogram needs and keeps no reference to the
message: a kept message keeps its whole event's parse arena alive, and on a file with one histogram
per event that costs more memory and time than parsing it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from .problems import Problem

if TYPE_CHECKING:  # at run time imported where a tensor is copied: a cached re-run reads no event
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2

_DT_FLOAT, _DT_DOUBLE = 1, 2


@dataclass
class HistogramBlock:
    """Histograms of one tag from one file in one encoding, in file order; arrays padded to K buckets."""

    steps: np.ndarray  # int64 [n]
    left: np.ndarray  # float64 [n, K]
    right: np.ndarray  # float64 [n, K]
    counts: np.ndarray  # float64 [n, K]
    num: np.ndarray  # float64 [n], NaN where the encoding has no exact moments
    sum: np.ndarray
    sum_squares: np.ndarray
    encoding: str  # "tf2" | "legacy"


def stack_field(items: list, name: str, width: int) -> np.ndarray:
    """One field of several blocks, stacked along steps; bucket arrays are padded to `width` buckets
    with empty ones (left = right = count = 0), which no statistic counts."""
    parts = [getattr(item, name) for item in items]
    if parts[0].ndim == 2:
        parts = [p if p.shape[1] == width else np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts]
    return np.concatenate(parts)


class TensorHistograms:
    """TF2 histograms (float64 [k, 3] tensors) of one tag. The bytes of every tensor like the first
    one (float64, as many bytes) are joined into one buffer when the block is taken, which becomes the
    array without another copy (``joined``: of several tags at once); any other tensor is kept whole
    (a copy) and decoded on its own as TensorBoard's make_ndarray would."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        # The tensors' bytes, joined into one buffer when the block is taken: appending to a list is
        # 5x cheaper than growing a bytearray per tag, whose reallocations move it again and again.
        self._raw: list[bytes] = []
        self._odd: dict[int, tensor_pb2.TensorProto] = {}  # by position in steps
        self._shape: tensor_shape_pb2.TensorShapeProto | None = None
        self._nbytes = -1  # of a [k, 3] float64 histogram of that shape; -1: the first was not one
        self._buckets = 1  # k

    def clear(self) -> None:
        """Forget the histograms collected (their block was taken); the shape seen first stays."""
        self.steps, self._raw, self._odd = [], [], {}

    def add(self, step: int, tensor: tensor_pb2.TensorProto) -> int:
        """Collect one histogram; returns its size in buckets (what it costs to keep). The hot path
        of reading: a histogram of the first one's shape is three field reads and an append."""
        content = tensor.tensor_content
        # The shape is read on the tag's first tensor only: comparing each one's shape message would
        # cost a tenth of reading the event, and a tag's float64 tensors of the first one's byte
        # length are its [k, 3] histograms (TF2's histogram op never writes another layout).
        if len(content) == self._nbytes and tensor.dtype == _DT_DOUBLE:
            self._raw.append(content)
            self.steps.append(step)
            return self._buckets
        return self._add_other(step, tensor, content)

    def _add_other(self, step: int, tensor: tensor_pb2.TensorProto, content: bytes) -> int:
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2

        if self._shape is None:
            self._shape = tensor_shape_pb2.TensorShapeProto()
            self._shape.CopyFrom(tensor.tensor_shape)
            dims = [d.size for d in self._shape.dim]
            if len(dims) == 2 and dims[0] > 0 and dims[1] == 3:
                self._nbytes, self._buckets = dims[0] * 24, dims[0]
            if len(content) == self._nbytes and tensor.dtype == _DT_DOUBLE:
                return self.add(step, tensor)
        copy = tensor_pb2.TensorProto()
        copy.CopyFrom(tensor)
        self._odd[len(self.steps)] = copy
        self.steps.append(step)
        return len(content) // 24 or 1

    @property
    def buckets(self) -> int:
        return self._buckets

    @property
    def uniform(self) -> bool:
        """Every histogram collected has the first one's [k, 3] shape."""
        return not self._odd and self._nbytes > 0

    @staticmethod
    def joined(collected: list[TensorHistograms]) -> HistogramBlock:
        """The histograms of several uniform tags of one bucket count, one tag after the other, as
        one block: their bytes joined once, the array a view of them (no copy per tag)."""
        raw = b"".join(chain.from_iterable(c._raw for c in collected))
        stacked = np.frombuffer(raw, "<f8").reshape(-1, collected[0]._buckets, 3)
        return _tf2_block(np.fromiter(chain.from_iterable(c.steps for c in collected), np.int64), stacked)

    def block(self, tag: str, path: str, problems: list[Problem]) -> HistogramBlock | None:
        if not self.steps:
            return None
        uniform = np.frombuffer(b"".join(self._raw), "<f8").reshape(-1, max(self._nbytes, 24) // 24, 3)
        if not self._odd:
            return _tf2_block(np.array(self.steps, np.int64), uniform)
        steps, arrays, next_uniform = [], [], iter(uniform)
        for position, step in enumerate(self.steps):
            odd = self._odd.get(position)
            array = next(next_uniform) if odd is None else _tensor_array(odd)
            if array is None:
                problems.append(Problem(path, f"tag {tag!r} step {step}: not a [k, 3] histogram; skipped"))
                continue
            steps.append(step)
            arrays.append(array)
        if not arrays:
            return None
        width = max(1, max(a.shape[0] for a in arrays))
        stacked = np.zeros((len(arrays), width, 3))
        for i, a in enumerate(arrays):
            stacked[i, : a.shape[0]] = a
        return _tf2_block(np.array(steps, np.int64), stacked)


def _tensor_array(tensor: tensor_pb2.TensorProto) -> np.ndarray | None:
    try:
        shape = [d.size for d in tensor.tensor_shape.dim]
        if tensor.tensor_content and tensor.dtype in (_DT_FLOAT, _DT_DOUBLE):
            dtype = "<f8" if tensor.dtype == _DT_DOUBLE else "<f4"
            array = np.frombuffer(tensor.tensor_content, dtype).astype(np.float64).reshape(shape)
        else:
            from tensorboard.util import tensor_util

            array = np.asarray(tensor_util.make_ndarray(tensor), dtype=np.float64)
    except Exception:
        return None
    if array.size == 0:  # an empty input tensor: TF writes a [0, 3] histogram
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        return None
    return array


def _tf2_block(steps: np.ndarray, stacked: np.ndarray) -> HistogramBlock:
    nan = np.full(len(steps), np.nan)
    return HistogramBlock(
        steps, stacked[:, :, 0], stacked[:, :, 1], stacked[:, :, 2], nan, nan.copy(), nan.copy(), "tf2"
    )


@dataclass
class ScalarBlock:
    """Scalar values of one tag from one file, in file order."""

    steps: np.ndarray  # int64 [n]
    values: np.ndarray  # float64 [n]; NaN and infinities kept as logged

    @staticmethod
    def joined(blocks: list[ScalarBlock]) -> ScalarBlock:
        """Blocks read one after the other, as one (in reading order)."""
        if len(blocks) == 1:
            return blocks[0]
        return ScalarBlock(
            np.concatenate([b.steps for b in blocks]), np.concatenate([b.values for b in blocks])
        )

    def before(self, step: int) -> ScalarBlock:
        """The values logged before `step` (what a restart orphaned forgotten)."""
        keep = self.steps < step
        return ScalarBlock(self.steps[keep], self.values[keep])


class Scalars:
    """Scalars of one tag: legacy ``simple_value`` or TF2 scalar tensors (plugin ``scalars``)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)

    def drop_from(self, step: int) -> None:
        kept = [i for i, s in enumerate(self.steps) if s < step]
        self.steps = [self.steps[i] for i in kept]
        self.values = [self.values[i] for i in kept]

    def add_tensor(self, step: int, tensor: tensor_pb2.TensorProto) -> None:
        value = _scalar_of(tensor)
        if value is not None:
            self.add(step, value)

    def block(self) -> ScalarBlock | None:
        if not self.steps:
            return None
        return ScalarBlock(np.array(self.steps, np.int64), np.array(self.values, np.float64))


def _scalar_of(tensor: tensor_pb2.TensorProto) -> float | None:
    """A one-element float tensor's value (Keras and tf.summary.scalar write float32 or float64)."""
    if tensor.float_val:
        return float(tensor.float_val[0])
    if tensor.double_val:
        return float(tensor.double_val[0])
    if tensor.dtype in (_DT_FLOAT, _DT_DOUBLE) and len(tensor.tensor_content) in (4, 8):
        return float(np.frombuffer(tensor.tensor_content, "<f4" if tensor.dtype == _DT_FLOAT else "<f8")[0])
    return None


class LegacyHistograms:
    """Legacy HistogramProtos of one tag (or EventAccumulator's HistogramValues: the same fields).

    Each is kept as numpy arrays with its runs of empty buckets merged: writers such as tensorboardX
    log ~600 buckets of which ~100 hold anything, and every statistic of a merged run is that of the
    run (no entries, same outer edges), so the first bucket, the last, every occupied one and the
    empty one just before each are kept.
    """

    def __init__(self) -> None:
        self.steps: list[int] = []
        self._moments: list[tuple[float, float, float, float, float]] = []  # min, max, num, sum, squares
        self._limits: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def clear(self) -> None:
        """Forget the histograms collected (their block was taken)."""
        self.steps, self._moments, self._limits, self._counts = [], [], [], []

    def add(self, step: int, h) -> int:
        """Collect one histogram; returns its size in buckets once merged (what it costs to keep)."""
        limits = np.array(h.bucket_limit, dtype=np.float64)  # from a protobuf field: 7x faster than list()
        counts = np.array(h.bucket, dtype=np.float64)
        k = min(len(limits), len(counts))
        limits, counts = limits[:k], counts[:k]
        if k > 2:
            occupied = counts != 0  # NaN counts too
            keep = occupied.copy()
            keep[:-1] |= occupied[1:]
            keep[0] = keep[-1] = True
            limits, counts = limits[keep], counts[keep]
        self.steps.append(step)
        self._moments.append((h.min, h.max, h.num, h.sum, h.sum_squares))
        self._limits.append(limits)
        self._counts.append(counts)
        return len(limits) or 1

    def drop_from(self, step: int) -> None:
        """Forget histograms logged at `step` or later (orphaned by a restart)."""
        kept = [i for i, s in enumerate(self.steps) if s < step]
        self.steps = [self.steps[i] for i in kept]
        self._moments = [self._moments[i] for i in kept]
        self._limits = [self._limits[i] for i in kept]
        self._counts = [self._counts[i] for i in kept]

    def block(self) -> HistogramBlock | None:
        """Bucket i spans (limit[i-1], limit[i]]; the first starts at the exact min, and the last ends
        at the exact max rather than at the DBL_MAX limit writers often use. All rows at once."""
        n = len(self.steps)
        if not n:
            return None
        lengths = np.array([len(limits) for limits in self._limits])
        width = max(1, int(lengths.max()))
        low, high, num, total, squares = np.array(self._moments, dtype=np.float64).T.copy()
        left, right, counts = np.zeros((n, width)), np.zeros((n, width)), np.zeros((n, width))
        if lengths.sum():
            limits = np.concatenate(self._limits)
            row = np.repeat(np.arange(n), lengths)
            column = np.arange(len(limits)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            right[row, column] = limits
            counts[row, column] = np.concatenate(self._counts)
            inner = column > 0
            left[row[inner], column[inner]] = limits[np.flatnonzero(inner) - 1]
            has = np.flatnonzero(lengths)
            left[has, 0] = np.where(np.isfinite(low[has]), low[has], right[has, 0])
            last = lengths[has] - 1
            clip = np.isfinite(high[has]) & (high[has] < right[has, last])
            rows = has[clip]
            right[rows, last[clip]] = np.maximum(high[rows], left[rows, last[clip]])
        return HistogramBlock(
            np.array(self.steps, np.int64), left, right, counts, num, total, squares, "legacy"
        )
