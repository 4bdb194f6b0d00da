"""Reading a run's event files with TensorBoard's EventAccumulator into one histogram series per tag.

Both encodings become the same plain data: per step, buckets as (left edge, right edge, count), plus
the exact moments (num, sum, sum of squares) where the legacy ``HistogramProto`` carries them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .problems import Problem
from .runs import Run

# The default choice of gradient tags: any tag that mentions a gradient ("grad", "gradient", "Grad").
DEFAULT_TAG_PATTERN = r"(?i)grad"

TF2_HISTOGRAM_PLUGIN = "histograms"


def _read_without_tensorflow() -> None:
    """Give TensorBoard's event reader its TensorFlow stub, and the stub a C CRC32C.

    TensorBoard's reader modules resolve ``tensorboard.compat.tf`` on first use, and that imports
    TensorFlow when it is installed (~5 s, ~530 MB). Registering ``tensorboard.compat.notf`` would
    avoid it for the whole process, breaking ``tf.summary`` for a user who trains and analyses in
    one notebook. Instead only the three reader modules get the stub, which reads the same records.
    The stub checks CRCs in pure Python (~4 MB/s); the ``crc32c`` C extension is 5-8x faster.
    """
    from tensorboard.backend.event_processing import directory_watcher, event_file_loader, io_wrapper
    from tensorboard.compat import tensorflow_stub
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    for module in (io_wrapper, event_file_loader, directory_watcher):
        module.tf = tensorflow_stub
    try:
        import crc32c as _crc32c
    except ImportError:  # still correct, only slower
        return

    def masked_crc32c(data: bytes) -> int:
        x = _crc32c.crc32c(data)
        return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    pywrap_tensorflow.masked_crc32c = masked_crc32c


_read_without_tensorflow()

from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

_READ_EVERYTHING = {kind: 0 for kind in ea.STORE_EVERYTHING_SIZE_GUIDANCE}
# EventAccumulator also "compresses" every legacy histogram for the distributions dashboard; we never
# use that, so keep only the last one, compressed to a single point (an empty tuple would raise).
_READ_EVERYTHING[ea.COMPRESSED_HISTOGRAMS] = 1
_ONE_COMPRESSION_POINT = (10000,)


@dataclass
class HistogramSeries:
    """All logged histograms of one tag, by step; arrays are padded to a common bucket count."""

    tag: str
    steps: np.ndarray  # int64 [S], ascending, unique
    left: np.ndarray  # float64 [S, K] bucket left edges
    right: np.ndarray  # float64 [S, K] bucket right edges
    counts: np.ndarray  # float64 [S, K]; padding buckets have count 0
    num: np.ndarray  # float64 [S] exact element count, NaN where the encoding lacks it
    sum: np.ndarray  # float64 [S] exact sum, NaN where unknown
    sum_squares: np.ndarray  # float64 [S] exact sum of squares, NaN where unknown
    encodings: tuple[str, ...]  # "tf2" and/or "legacy"


@dataclass
class RunData:
    """What a run's files held: gradient series in depth order, and what else was seen."""

    run: Run
    series: list[HistogramSeries]
    other_histogram_tags: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    restarted: bool = False  # a later file went back to steps an earlier file had logged


@dataclass
class _Histogram:
    step: int
    left: np.ndarray
    right: np.ndarray
    counts: np.ndarray
    num: float = np.nan
    sum: float = np.nan
    sum_squares: float = np.nan
    encoding: str = "tf2"


def read_run(run: Run, tag_pattern: str = DEFAULT_TAG_PATTERN) -> RunData:
    """Read every event file of a run in name order; a later file's value for a step wins."""
    selected = re.compile(tag_pattern)
    by_tag: dict[str, dict[int, _Histogram]] = {}
    other_tags: dict[str, None] = {}
    problems: list[Problem] = []
    restarted = False
    for path in run.event_files:
        file_histograms, file_problems = _read_file(path)
        problems.extend(file_problems)
        for tag, histograms in file_histograms.items():
            if not selected.search(tag):
                other_tags.setdefault(tag)
                continue
            known = by_tag.setdefault(tag, {})
            if known and histograms and histograms[0].step <= max(known):
                restarted = True
            for h in histograms:
                known[h.step] = h
    series = [_to_series(tag, hs) for tag, hs in by_tag.items() if hs]
    return RunData(
        run=run,
        series=_in_depth_order(series),
        other_histogram_tags=list(other_tags),
        problems=problems,
        restarted=restarted,
    )


def _in_depth_order(series: list[HistogramSeries]) -> list[HistogramSeries]:
    """Depth order is the order tags first appear: writers log layers from input to output.

    EventAccumulator keeps first-appearance order within one encoding only, so a run that mixes TF2
    and legacy histograms falls back to a natural sort of the tag names (``layer10`` after ``layer9``).
    """
    if len({s.encodings for s in series}) > 1:
        return sorted(series, key=lambda s: natural_key(s.tag))
    return series


def natural_key(tag: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", tag)]


def _read_file(path: str) -> tuple[dict[str, list[_Histogram]], list[Problem]]:
    problems: list[Problem] = []
    try:
        size = os.path.getsize(path)
    except OSError as err:
        return {}, [Problem(path, f"cannot read file ({err.strerror})")]
    if size == 0:
        return {}, [Problem(path, "empty file (0 bytes)")]
    accumulator = ea.EventAccumulator(
        path, size_guidance=_READ_EVERYTHING, compression_bps=_ONE_COMPRESSION_POINT, purge_orphaned_data=True
    )
    with _data_loss_messages() as losses:
        try:
            accumulator.Reload()
        except MemoryError:
            problems.append(Problem(path, "a record claims an impossible length; reading stopped"))
        except Exception as err:  # a record with valid CRCs but not an Event (DecodeError) and kin
            problems.append(Problem(path, f"unreadable record ({type(err).__name__}); reading stopped"))
    for loss in losses:
        problems.append(Problem(path, _describe_loss(loss)))
    histograms = _histograms_of(accumulator, path, problems)
    if not histograms and not problems and accumulator.file_version is None:
        problems.append(Problem(path, "no events could be read"))
    return histograms, problems


def _histograms_of(
    accumulator: ea.EventAccumulator, path: str, problems: list[Problem]
) -> dict[str, list[_Histogram]]:
    tags = accumulator.Tags()
    out: dict[str, list[_Histogram]] = {}
    for tag in tags[ea.TENSORS]:
        metadata = accumulator.SummaryMetadata(tag)
        if metadata.plugin_data.plugin_name != TF2_HISTOGRAM_PLUGIN:
            continue
        for event in accumulator.Tensors(tag):
            h = _from_tensor(event.step, event.tensor_proto)
            if h is None:
                problems.append(Problem(path, f"tag {tag!r} step {event.step}: not a [k, 3] histogram"))
                continue
            out.setdefault(tag, []).append(h)
    for tag in tags[ea.HISTOGRAMS]:
        for event in accumulator.Histograms(tag):
            out.setdefault(tag, []).append(_from_legacy(event.step, event.histogram_value))
    return out


def _from_tensor(step: int, tensor_proto: object) -> _Histogram | None:
    try:
        array = np.asarray(tensor_util.make_ndarray(tensor_proto), dtype=np.float64)
    except Exception:
        return None
    if array.size == 0:  # an empty input tensor: TF writes a [0, 3] histogram
        array = np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        return None
    return _Histogram(step, array[:, 0], array[:, 1], array[:, 2])


def _from_legacy(step: int, value: ea.HistogramValue) -> _Histogram:
    limits = np.asarray(value.bucket_limit, dtype=np.float64)
    counts = np.asarray(value.bucket, dtype=np.float64)
    k = min(len(limits), len(counts))
    limits, counts = limits[:k], counts[:k]
    left = np.empty(k)
    if k:
        left[0] = value.min if np.isfinite(value.min) else limits[0]
        left[1:] = limits[:-1]
    right = limits.copy()
    # The last limit is often DBL_MAX; the exact max is the true right edge.
    if k and np.isfinite(value.max) and value.max < right[-1]:
        right[-1] = max(value.max, left[-1])
    return _Histogram(
        step,
        left,
        right,
        counts,
        num=float(value.num),
        sum=float(value.sum),
        sum_squares=float(value.sum_squares),
        encoding="legacy",
    )


def _to_series(tag: str, by_step: dict[int, _Histogram]) -> HistogramSeries:
    steps = np.array(sorted(by_step), dtype=np.int64)
    ordered = [by_step[s] for s in steps]
    width = max(1, max(len(h.counts) for h in ordered))
    shape = (len(ordered), width)
    left, right, counts = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for i, h in enumerate(ordered):
        n = len(h.counts)
        left[i, :n], right[i, :n], counts[i, :n] = h.left, h.right, h.counts
    return HistogramSeries(
        tag=tag,
        steps=steps,
        left=left,
        right=right,
        counts=counts,
        num=np.array([h.num for h in ordered]),
        sum=np.array([h.sum for h in ordered]),
        sum_squares=np.array([h.sum_squares for h in ordered]),
        encodings=tuple(sorted({h.encoding for h in ordered})),
    )


class _DataLossCollector(logging.Handler):
    """TensorBoard's reader stops at a truncated or corrupt record and only logs it at debug level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Truncated record in"):
            self.messages.append(message)


@contextmanager
def _data_loss_messages() -> Iterator[list[str]]:
    from tensorboard.util import tb_logging

    logger = tb_logging.get_logger()
    collector = _DataLossCollector()
    saved_level, saved_propagate = logger.level, logger.propagate
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # keep TensorBoard's debug chatter away from the user's handlers
    try:
        yield collector.messages
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate


def _describe_loss(message: str) -> str:
    if "crc32" in message:
        return "a record failed its CRC check (corrupt); the rest of this file was not read"
    return "the file ends in a truncated record (was the writer killed?); read up to it"
