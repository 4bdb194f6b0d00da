"""Reading one event file into the statistics of each gradient tag, by either of two readers.

``streaming`` (default): the framing and CRC checks of ``records``, protobuf parsing, and
EventAccumulator's bookkeeping rules (a tag's first metadata names its plugin; legacy histograms purged
on restarts as it does; TF2 tensors never purged), each tag's histograms collected by ``blocks``.
``tensorboard``: TensorBoard's own EventAccumulator (without TensorFlow), its output collected the same
way. Tests hold the two to identical results on every corpus in the repository.

Histograms are reduced to their statistics (``stats``) as they are read, whenever those collected hold
more than _BUFFERED_BUCKETS buckets, and long tags are thinned (``stats.thinned``): the streaming
reader's memory is bounded by a run's width, whatever its length. The ``tensorboard`` reader keeps
every event in EventAccumulator's own store, by design.
"""

from __future__ import annotations

import gc
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .blocks import LegacyHistograms, ScalarBlock, Scalars, TensorHistograms
from .problems import Problem
from .records import RecordReader, first_record_at_or_after, masked_crc32c
from .stats import (
    KEPT_STEPS,
    LayerStats,
    Thinning,
    final_stride,
    logging_interval,
    merge_pieces,
    reduce_blocks,
    reduce_stacked,
    thinned,
)

if TYPE_CHECKING:  # at run time imported where a file is read: a cached re-run reads none
    from tensorboard.compat.proto import event_pb2

TF2_HISTOGRAM_PLUGIN = "histograms"
TF2_SCALAR_PLUGIN = "scalars"
# The model's JSON config: Keras's TensorBoard callback (and gradaudit's) write it under the tag
# "keras" with this plugin; gradaudit's callback writes a subclassed model's layer list with the other.
MODEL_CONFIG_PLUGINS = ("graph_keras_model", "gradaudit_model")
READERS = ("streaming", "tensorboard")
_SESSION_START = 1  # event_pb2.SessionLog.START: a restart
TRUNCATED_END = "truncated_end"  # Problem.kind of a file that ends in a partial record


FileScalars = dict[str, ScalarBlock]
TagFilter = Callable[[str], object]  # which histogram tags to analyse (truthy: this one)


@dataclass
class FileContents:
    """What one event file holds for the analyzer."""

    layers: dict[str, LayerStats]  # statistics of each selected histogram tag (TF2 tags first, then
    #                                legacy, each in order of first appearance, as Tags() lists them)
    problems: list[Problem]
    hparams: dict[str, str]  # from the hparams plugin's session start, when logged
    scalars: FileScalars = field(default_factory=dict)  # every scalar tag, legacy or TF2
    other_histogram_tags: list[str] = field(default_factory=list)  # histogram tags not selected
    model_config: str | None = None  # the first model config logged (JSON text)


def read_file(
    path: str, reader: str = READERS[0], selected: TagFilter = bool, processes: int = 1
) -> FileContents:
    """The statistics of the histogram tags `selected` accepts; the others are only named. With a
    several `processes`, a large file is read in byte ranges in parallel (the streaming reader),
    by processes started for it and ended with it."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; choose from {', '.join(READERS)}")
    try:
        size = _size_of(path)
    except OSError as err:
        return FileContents({}, [Problem(path, f"cannot read file ({err.strerror or err})")], {})
    if size == 0:
        return FileContents({}, [Problem(path, "empty file (0 bytes)")], {})
    if reader == "tensorboard":
        return _join(path, [_read_with_event_accumulator(path, selected)])
    if processes > 1 and size >= 2 * PART_BYTES and _file_version_at_start(path) >= 2:
        count = -(-size // PART_BYTES)  # ranges of equal length: the last is no shorter than the rest
        starts = [size * k // count for k in range(count)]
        stops = starts[1:] + [size]
        ranges = [(path, start, stop, size, selected, start > 0) for start, stop in zip(starts, stops)]
        from concurrent.futures import ProcessPoolExecutor  # only for a file this large

        with ProcessPoolExecutor(processes) as pool:
            contents = _join(path, _in_order(pool, ranges))
        if contents is not None:
            return contents
        # A range began past a damaged record, or at what only looked like a record: read it whole.
    return _join(path, [_read_part(path, 0, size, size, selected)])


# Bytes per range when a large file is read by several processes: each range is a task, so a few per
# process balance the load; each costs a scan for its first record (at most one record's length).
PART_BYTES = 64 << 20


# Ranges read ahead of the one being joined: enough to keep every process busy, few enough that the
# results waiting to be joined stay small.
_AHEAD = 4


def _in_order(pool: Executor, ranges: list[tuple]) -> Iterator[_Part]:
    """Each range read in `pool`, yielded in order as soon as it and those before it are read."""
    pending: deque = deque()
    try:
        for arguments in ranges:
            pending.append(pool.submit(_read_part, *arguments))
            if len(pending) > _AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _file_version_at_start(path: str) -> float:
    """The file version its first record states; -1 if it states none."""
    from tensorboard.compat.proto import event_pb2

    try:
        with _open(path) as stream:
            for payload in RecordReader(stream, _size_of(path)):
                event = event_pb2.Event.FromString(payload)
                return _file_version(event.file_version) if event.HasField("file_version") else -1.0
    except Exception:
        pass
    return -1.0


# Buckets of collected histograms, over all tags, that wait to be reduced to statistics: about 24 MB
# of TF2 histograms. Reducing more at once saves little: the reduction is one vectorised pass over
# all of them either way.
_BUFFERED_BUCKETS = 500_000


class _HistogramStore:
    """The histograms of one file's selected tags, reduced to statistics a buffer at a time.

    With `progress` (the share of the range being read that has been read), a long tag is reduced
    at the steps thinning will keep only: its length in the file is estimated from how many rows it
    logged in how much of the file, and from that the stride thinning will end at (``stats.Thinning``).
    Every row is still read and checked for NaN/Inf and counted."""

    def __init__(self, path: str, selected: TagFilter) -> None:
        self._path = path
        self._selected = selected
        self.progress: Callable[[], float] | None = None  # set by a reader that can tell
        self.scale = 1.0  # the file's size over the range's
        self.tensors: dict[str, TensorHistograms] = {}
        self.legacy: dict[str, LegacyHistograms] = {}
        self._pieces: dict[tuple[str, str], list[LayerStats]] = {}  # (encoding, tag) → in reading order
        self._kept: dict[tuple[str, str], int] = {}  # steps in each tag's pieces
        self._rows: dict[tuple[str, str], int] = {}  # rows read of each tag, reduced or not
        self._intervals: dict[tuple[str, str], int] = {}  # each tag's logging interval, once known
        self._tag_problems: dict[str, list[Problem]] = {}  # reported if the tag is a histogram tag
        self.buffered = 0  # buckets collected and not yet reduced
        self.unselected_tensor_tags: dict[str, None] = {}
        self.unselected_legacy_tags: dict[str, None] = {}

    def add_tensor(self, tag: str, step: int, tensor) -> None:
        self._add(self.tensors, self.unselected_tensor_tags, TensorHistograms, tag, step, tensor)

    def add_legacy(self, tag: str, step: int, histogram) -> None:
        self._add(self.legacy, self.unselected_legacy_tags, LegacyHistograms, tag, step, histogram)

    def _add(self, collectors: dict, unselected: dict, kind: type, tag: str, step: int, value) -> None:
        collected = collectors.get(tag)
        if collected is None:
            if not self._selected(tag):
                unselected[tag] = None
                return
            collected = collectors[tag] = kind()
        self.buffered += collected.add(step, value)
        if self.buffered > _BUFFERED_BUCKETS:
            self.reduce()

    def purge_legacy(self, tags: list[str], step: int) -> None:
        """Forget legacy histograms logged at `step` or later (orphaned by a restart)."""
        for tag in tags:
            if tag in self.legacy:
                self.legacy[tag].drop_from(step)
            key = ("legacy", tag)
            if key in self._pieces:
                self._pieces[key] = [piece.before(step) for piece in self._pieces[key]]
                self._kept[key] = sum(len(piece.steps) for piece in self._pieces[key])

    def reduce(self) -> None:
        """Every collected histogram becomes statistics, in one pass; long tags are thinned."""
        blocks, joined = [], {}
        for tag, tensor_histograms in self.tensors.items():
            if tensor_histograms.uniform and tensor_histograms.steps:  # joined with its kind
                joined.setdefault(tensor_histograms.buckets, []).append((tag, tensor_histograms))
                continue
            problems = self._tag_problems.setdefault(tag, [])
            blocks.append((("tf2", tag), tensor_histograms.block(tag, self._path, problems)))
            tensor_histograms.clear()
        for tag, legacy_histograms in self.legacy.items():
            blocks.append((("legacy", tag), legacy_histograms.block()))
            legacy_histograms.clear()
        blocks = [(key, block) for key, block in blocks if block is not None]
        strides: dict[tuple, int] = {}  # tags logged at the same steps are thinned alike
        keys = [key for key, _ in blocks]
        layers = reduce_blocks(
            [(tag, block) for (_, tag), block in blocks],
            self._thinning(keys, [block.steps for _, block in blocks], strides),
        )
        reduced = list(zip(keys, layers))
        for group in joined.values():
            keys = [("tf2", tag) for tag, _ in group]
            lengths = [len(collected.steps) for _, collected in group]
            stacked = TensorHistograms.joined([collected for _, collected in group])
            steps = np.split(stacked.steps, np.cumsum(lengths)[:-1])
            layers = reduce_stacked(
                [tag for tag, _ in group],
                lengths,
                stacked,
                ["tf2"] * len(group),
                self._thinning(keys, steps, strides),
            )
            reduced += list(zip(keys, layers))
            for _, collected in group:
                collected.clear()
        for key, layer in reduced:
            pieces = self._pieces.setdefault(key, [])
            pieces.append(layer)
            self._kept[key] = self._kept.get(key, 0) + len(layer.steps)
            if self._kept[key] > 2 * KEPT_STEPS:
                self._pieces[key] = [thinned(merge_pieces(pieces))]
                self._kept[key] = len(self._pieces[key][0].steps)
        self.buffered = 0

    def _thinning(
        self, keys: list[tuple[str, str]], steps: list[np.ndarray], strides: dict
    ) -> Thinning | None:
        """How sparsely to reduce these tags' new rows (`steps`: each tag's)."""
        progress = self.progress() if self.progress is not None else 0.0
        if progress <= 0 or not keys:
            return None
        interval, stride, before = (
            np.zeros(len(keys), int),
            np.ones(len(keys), int),
            np.full(len(keys), -1, np.int8),
        )
        for i, (key, tag_steps) in enumerate(zip(keys, steps)):
            self._rows[key] = rows = self._rows.get(key, 0) + len(tag_steps)
            if not self._intervals.get(key):
                self._intervals[key] = logging_interval(tag_steps)
            interval[i] = self._intervals[key]
            if not interval[i] or not len(tag_steps):
                continue
            grid = (int(tag_steps[0]), int(tag_steps[-1]), len(tag_steps), int(interval[i]))
            stride[i] = strides.setdefault(grid, final_stride(rows / progress * self.scale))
            pieces = self._pieces.get(key)
            if pieces and len(pieces[-1].nonfinite):
                before[i] = pieces[-1].nonfinite[-1]
        return Thinning(interval, stride, before)

    def finish(self) -> tuple[dict[str, LayerStats], dict[str, LayerStats]]:
        """The statistics of every collected tag: (TF2 tags, legacy tags), each merged and thinned."""
        self.reduce()
        out: tuple[dict[str, LayerStats], dict[str, LayerStats]] = ({}, {})
        for merged, encoding, collected in ((out[0], "tf2", self.tensors), (out[1], "legacy", self.legacy)):
            for tag in collected:
                if (encoding, tag) in self._pieces:  # popped: each tag's pieces freed once merged
                    merged[tag] = thinned(merge_pieces(self._pieces.pop((encoding, tag))))
        return out

    def problems_of(self, tag: str) -> list[Problem]:
        return self._tag_problems.get(tag, [])


def _size_of(path: str) -> int:
    if "://" not in path:
        return os.path.getsize(path)
    from tensorboard.compat.tensorflow_stub.io import gfile

    return gfile.stat(path).length


def _open(path: str):
    if "://" not in path:
        return open(path, "rb")
    from tensorboard.compat.tensorflow_stub.io import gfile

    return gfile.GFile(path, "rb")


# --- the streaming reader --------------------------------------------------------------------------


@dataclass
class _Part:
    """What a byte range of an event file held, read as EventAccumulator reads: joined to the ranges
    before it (``_join``), it is what reading the whole file at once gives. A range that does not
    know a tag's plugin yet (its first metadata came in an earlier range) collects that tag's tensors
    as histograms, as EventAccumulator does, and its one-value tensors also as `unresolved_scalars`."""

    start: int  # offset of the first record read
    end: int  # offset of the first record not read (or where reading stopped)
    problems: list[Problem]
    stopped: bool  # at damage or an unreadable record: nothing after it counts
    file_version: float | None
    plugin_of: dict[str, str]  # each tag's first metadata in this range
    hparams_content: dict[str, bytes]  # tag → the hparams plugin's content, from its first metadata
    tensor_layers: dict[str, LayerStats]
    legacy_layers: dict[str, LayerStats]
    tag_problems: dict[str, list[Problem]]  # reported if the tag turns out a histogram tag
    tensor_scalars: dict[str, ScalarBlock]
    simple_scalars: dict[str, ScalarBlock]
    unresolved_scalars: dict[str, ScalarBlock]
    restart_step: int | None  # the least step of a SessionLog.START here: orphans earlier ranges' data
    unselected_tensor_tags: list[str]
    unselected_legacy_tags: list[str]
    model_config: bytes | None = None


def _read_part(
    path: str, start: int, stop: int, size: int, selected: TagFilter, mid_file: bool = False
) -> _Part:
    """The records that start in [start, stop); `mid_file`: `start` is anywhere, not a record's
    start, and the file is of version 2 (its first range has said so)."""
    from tensorboard.compat.proto import event_pb2

    problems: list[Problem] = []
    store = _HistogramStore(path, selected)
    accumulator = _StreamingAccumulator(store, file_version_2=mid_file)
    stopped, end = False, start
    try:
        with _open(path) as stream, _cyclic_gc_paused():
            if mid_file:
                start = end = first_record_at_or_after(stream, start, size)
                stream.seek(start)
            records = RecordReader(stream, size, start=start, stop=stop)
            store.progress = lambda: (records.end - start) / max(stop - start, 1)
            store.scale = size / max(stop - start, 1)
            parse, add = event_pb2.Event.FromString, accumulator.add  # looked up once: events are many
            for payload in records:
                try:
                    event = parse(payload)
                except Exception as err:  # valid CRCs, but not an Event
                    problems.append(
                        Problem(path, f"unreadable record ({type(err).__name__}); reading stopped")
                    )
                    stopped = True
                    break
                add(event)
            end = records.end
    except OSError as err:
        problems.append(Problem(path, f"cannot read file ({err.strerror or err})"))
        stopped = True
    else:
        if records.damage is not None:
            kind = TRUNCATED_END if records.damage.at_end else ""
            problems.append(Problem(path, records.damage.message, kind))
            stopped = True
    tensor_layers, legacy_layers = store.finish()
    return _Part(
        start=start,
        end=end,
        problems=problems,
        stopped=stopped,
        file_version=accumulator.file_version,
        plugin_of=accumulator.plugin_of,
        hparams_content=accumulator.hparams_content,
        tensor_layers=tensor_layers,
        legacy_layers=legacy_layers,
        tag_problems={tag: store.problems_of(tag) for tag in store.tensors if store.problems_of(tag)},
        tensor_scalars=_blocks_of(accumulator.tensor_scalars),
        simple_scalars=_blocks_of(accumulator.simple_scalars),
        unresolved_scalars=_blocks_of(accumulator.unresolved_scalars),
        restart_step=accumulator.restart_step,
        unselected_tensor_tags=list(store.unselected_tensor_tags),
        unselected_legacy_tags=list(store.unselected_legacy_tags),
        model_config=accumulator.model_config,
    )


def _blocks_of(collected: dict[str, Scalars]) -> dict[str, ScalarBlock]:
    return {tag: block for tag, scalars in collected.items() if (block := scalars.block()) is not None}


def _join(path: str, parts: Iterable[_Part]) -> FileContents | None:
    """The ranges of a file, in order, as one: up to the first range where reading stopped. None if
    a range does not begin where the one before it ended."""
    plugin_of: dict[str, str] = {}
    hparams_content: list[bytes] = []
    tensor_layers: dict[str, list[LayerStats]] = {}  # pieces in reading order
    legacy_layers: dict[str, list[LayerStats]] = {}
    tag_problems: dict[str, list[Problem]] = {}
    tensor_scalars: dict[str, list[ScalarBlock]] = {}
    simple_scalars: dict[str, list[ScalarBlock]] = {}
    unselected_tensor_tags: dict[str, None] = {}
    unselected_legacy_tags: dict[str, None] = {}
    problems: list[Problem] = []
    end, file_version, model_config = None, None, None
    for part in parts:
        if end is None:
            file_version = part.file_version
        elif part.start != end:
            return None
        end = part.end
        if part.restart_step is not None:  # what earlier ranges logged from that step on is orphaned
            legacy_layers = {
                tag: [piece.before(part.restart_step) for piece in pieces]
                for tag, pieces in legacy_layers.items()
            }
            simple_scalars = {
                tag: [block.before(part.restart_step) for block in blocks]
                for tag, blocks in simple_scalars.items()
            }
        for tag, block in part.unresolved_scalars.items():
            if plugin_of.get(tag) == TF2_SCALAR_PLUGIN:
                tensor_scalars.setdefault(tag, []).append(block)
        for tag, plugin in part.plugin_of.items():
            if tag not in plugin_of:
                plugin_of[tag] = plugin
                if tag in part.hparams_content:
                    hparams_content.append(part.hparams_content[tag])
        for joined, layers in ((tensor_layers, part.tensor_layers), (legacy_layers, part.legacy_layers)):
            for tag, layer in layers.items():
                pieces = joined.setdefault(tag, [])
                pieces.append(layer)
                if sum(len(piece.steps) for piece in pieces) > 2 * KEPT_STEPS:  # merged when long only
                    pieces[:] = [thinned(merge_pieces(pieces))]
        for tag, found in part.tag_problems.items():
            tag_problems.setdefault(tag, []).extend(found)
        for joined, blocks in ((tensor_scalars, part.tensor_scalars), (simple_scalars, part.simple_scalars)):
            for tag, block in blocks.items():
                joined.setdefault(tag, []).append(block)
        unselected_tensor_tags.update(dict.fromkeys(part.unselected_tensor_tags))
        unselected_legacy_tags.update(dict.fromkeys(part.unselected_legacy_tags))
        problems.extend(part.problems)
        model_config = model_config or part.model_config
        if part.stopped:
            break

    def is_histogram_tag(tag: str) -> bool:  # a tag's first metadata says what it is
        return plugin_of.get(tag) == TF2_HISTOGRAM_PLUGIN

    layers: dict[str, list[LayerStats]] = {}
    for tag, pieces in tensor_layers.items():
        if is_histogram_tag(tag):
            problems.extend(tag_problems.get(tag, []))
            layers[tag] = pieces
    for tag, pieces in legacy_layers.items():  # after the TF2 ones: of a step logged both ways, it wins
        layers.setdefault(tag, []).extend(pieces)
    other_tags = [tag for tag in unselected_tensor_tags if is_histogram_tag(tag)] + list(
        unselected_legacy_tags
    )
    scalars: FileScalars = {}
    for collected in (tensor_scalars, simple_scalars):  # a tag written both ways keeps its TF2 tensors
        for tag, blocks in collected.items():
            if tag not in scalars and blocks:
                scalars[tag] = ScalarBlock.joined(blocks)
    out = {tag: thinned(merge_pieces(pieces)) for tag, pieces in layers.items()}
    if not out and not other_tags and not problems and file_version is None:
        problems.append(Problem(path, "no events could be read"))
    config = model_config.decode("utf-8", "replace") if model_config else None
    return FileContents(
        out, problems, _hparams(hparams_content), scalars, list(dict.fromkeys(other_tags)), config
    )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Parsing keeps a few objects per logged value and makes no reference cycles; the cyclic
    collector, run every 700 allocations, would rescan them over and over (a third of parse time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _file_version(text: str) -> float:
    """As TensorBoard's event_util.ParseFileVersion: 'brain.Event:2' → 2.0, unparseable → -1."""
    try:
        return float(text.split("brain.Event:")[-1])
    except ValueError:
        return -1.0


class _StreamingAccumulator:
    """EventAccumulator's bookkeeping for histograms, without its reservoirs and compression."""

    def __init__(self, histograms: _HistogramStore, file_version_2: bool = False) -> None:
        self.histograms = histograms
        self.file_version: float | None = None
        self._file_version_2 = file_version_2
        self._most_recent_step = -1
        self.plugin_of: dict[str, str] = {}  # from each tag's first metadata, as EventAccumulator
        # Legacy simple values are purged on restarts like legacy histograms; TF2 scalar tensors never.
        self.simple_scalars: dict[str, Scalars] = {}
        self.tensor_scalars: dict[str, Scalars] = {}
        self.unresolved_scalars: dict[str, Scalars] = {}  # see _Part
        self.hparams_content: dict[str, bytes] = {}
        self.model_config: bytes | None = None
        self.restart_step: int | None = None
        # Tag → its collector's add, for selected tags whose first metadata said histograms: most
        # values of most files, which skip the general path's checks.
        self._histogram_adders: dict[str, Callable] = {}

    def add(self, event: event_pb2.Event) -> None:
        what = event.WhichOneof("what")  # one call instead of a HasField per kind: events are many
        if what != "summary" or not self._file_version_2:  # the summaries of TF2-era files skip this
            self._bookkeeping(event, what)
            if what != "summary":
                return
        step, histograms, adders = event.step, self.histograms, self._histogram_adders
        values = event.summary.value
        # Indexed, not iterated: under upb, iterating a repeated field costs 0.6 µs more per event
        # than reading its one value by index, a tenth of what reading a histogram costs in all.
        for i in range(len(values)):
            value = values[i]
            add = adders.get(value.tag)
            if add is not None and value.HasField("tensor"):
                histograms.buffered += add(step, value.tensor)
                if histograms.buffered > _BUFFERED_BUCKETS:
                    histograms.reduce()
            else:
                self._add_value(step, value)

    def _bookkeeping(self, event: event_pb2.Event, what: str | None) -> None:
        """The file's version, and orphaned legacy histograms: purged on SessionLog.START (file
        version >= 2) or on a step that goes back (older files), exactly as EventAccumulator does;
        TF2 tensors are never purged."""
        if what == "file_version":
            self.file_version = _file_version(event.file_version)
            self._file_version_2 = self.file_version >= 2
        if not self._file_version_2:
            if event.step < self._most_recent_step and what == "summary":
                self._purge_legacy([value.tag for value in event.summary.value], event.step)
            else:
                self._most_recent_step = event.step
        elif what == "session_log" and event.session_log.status == _SESSION_START:
            self._purge_legacy(list(self.histograms.legacy) + list(self.simple_scalars), event.step)
            self.restart_step = min(
                event.step, self.restart_step if self.restart_step is not None else event.step
            )

    def _add_value(self, step: int, value) -> None:
        plugin_of, histograms = self.plugin_of, self.histograms
        tag = value.tag
        if tag not in plugin_of and value.HasField("metadata"):
            plugin_of[tag] = value.metadata.plugin_data.plugin_name
            if plugin_of[tag] == _HPARAMS_PLUGIN:
                self.hparams_content[tag] = value.metadata.plugin_data.content
        kind = value.WhichOneof("value")
        if kind == "tensor":
            tag = tag or value.node_name  # TF1-era tensors may name only their node
            # A tag's plugin is that of its first metadata: known here, it is final.
            plugin = plugin_of.get(tag)
            if plugin is None or plugin == TF2_HISTOGRAM_PLUGIN:
                histograms.add_tensor(tag, step, value.tensor)
                if plugin is not None and tag == value.tag and tag in histograms.tensors:
                    self._histogram_adders[tag] = histograms.tensors[tag].add
                if plugin is None and not value.tensor.tensor_shape.dim:  # an earlier range's scalar?
                    self.unresolved_scalars.setdefault(tag, Scalars()).add_tensor(step, value.tensor)
            elif plugin == TF2_SCALAR_PLUGIN:
                self.tensor_scalars.setdefault(tag, Scalars()).add_tensor(step, value.tensor)
            elif plugin in MODEL_CONFIG_PLUGINS and self.model_config is None and value.tensor.string_val:
                self.model_config = value.tensor.string_val[0]
        elif kind == "simple_value":
            self.simple_scalars.setdefault(tag, Scalars()).add(step, value.simple_value)
        elif kind == "histo":
            histograms.add_legacy(tag, step, value.histo)

    def _purge_legacy(self, tags: list[str], step: int) -> None:
        self.histograms.purge_legacy(tags, step)
        for tag in tags:
            if tag in self.simple_scalars:
                self.simple_scalars[tag].drop_from(step)


# --- TensorBoard's EventAccumulator ----------------------------------------------------------------


@lru_cache(maxsize=1)
def _event_accumulator_module():
    """TensorBoard's reader, made to read without TensorFlow; imported only when asked for.

    Its modules resolve ``tensorboard.compat.tf`` on first use, which imports TensorFlow when it is
    installed (~5 s, ~530 MB). Registering ``tensorboard.compat.notf`` would avoid that for the whole
    process, breaking ``tf.summary`` for a user who trains and analyses in one notebook; instead only
    the three reader modules get the stub. The stub's CRC32C is pure Python (~4 MB/s): it gets the C one.
    """
    from tensorboard.backend.event_processing import (
        directory_watcher,
        event_accumulator,
        event_file_loader,
        io_wrapper,
    )
    from tensorboard.compat import tensorflow_stub
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    for module in (io_wrapper, event_file_loader, directory_watcher):
        module.tf = tensorflow_stub
    pywrap_tensorflow.masked_crc32c = masked_crc32c
    return event_accumulator


def _read_with_event_accumulator(path: str, selected: TagFilter) -> _Part:
    ea = _event_accumulator_module()
    # It keeps 10 random steps per tensor tag and 1 per histogram tag unless told 0 (all). It also
    # "compresses" every legacy histogram for a dashboard we never use: keep one, at a single point.
    size_guidance = {kind: 0 for kind in ea.STORE_EVERYTHING_SIZE_GUIDANCE}
    size_guidance[ea.COMPRESSED_HISTOGRAMS] = 1
    accumulator = ea.EventAccumulator(
        path, size_guidance=size_guidance, compression_bps=(10000,), purge_orphaned_data=True
    )
    problems: list[Problem] = []
    with _data_loss_messages() as losses:
        try:
            accumulator.Reload()
        except MemoryError:
            problems.append(Problem(path, "a record claims an impossible length; reading stopped"))
        except Exception as err:  # a record with valid CRCs but not an Event (DecodeError) and kin
            problems.append(Problem(path, f"unreadable record ({type(err).__name__}); reading stopped"))
    problems.extend(
        Problem(path, _describe_loss(loss), "" if "crc32" in loss else TRUNCATED_END) for loss in losses
    )
    store = _HistogramStore(path, selected)
    tags = accumulator.Tags()
    plugin_of = {tag: accumulator.SummaryMetadata(tag).plugin_data.plugin_name for tag in tags[ea.TENSORS]}
    for tag in tags[ea.TENSORS]:
        if plugin_of[tag] == TF2_HISTOGRAM_PLUGIN:
            for e in accumulator.Tensors(tag):
                store.add_tensor(tag, e.step, e.tensor_proto)
    for tag in tags[ea.HISTOGRAMS]:
        for e in accumulator.Histograms(tag):
            store.add_legacy(tag, e.step, e.histogram_value)
    try:
        hparams_content = dict(accumulator.PluginTagToContent(_HPARAMS_PLUGIN))
    except KeyError:
        hparams_content = {}
    tensor_scalars, simple_scalars = {}, {}
    for tag in tags[ea.TENSORS]:
        if plugin_of[tag] == TF2_SCALAR_PLUGIN:
            tensor_scalars[tag] = Scalars()
            for e in accumulator.Tensors(tag):
                tensor_scalars[tag].add_tensor(e.step, e.tensor_proto)
    for tag in tags[ea.SCALARS]:
        simple_scalars[tag] = Scalars()
        for e in accumulator.Scalars(tag):
            simple_scalars[tag].add(e.step, e.value)
    tensor_layers, legacy_layers = store.finish()
    configs = [
        e.tensor_proto.string_val[0]
        for tag in tags[ea.TENSORS]
        if plugin_of[tag] in MODEL_CONFIG_PLUGINS
        for e in accumulator.Tensors(tag)[:1]
        if e.tensor_proto.string_val
    ]
    return _Part(
        start=0,
        end=0,
        problems=problems,
        stopped=bool(problems),
        file_version=accumulator.file_version,
        plugin_of=plugin_of,
        hparams_content=hparams_content,
        tensor_layers=tensor_layers,
        legacy_layers=legacy_layers,
        tag_problems={tag: store.problems_of(tag) for tag in store.tensors if store.problems_of(tag)},
        tensor_scalars=_blocks_of(tensor_scalars),
        simple_scalars=_blocks_of(simple_scalars),
        unresolved_scalars={},
        restart_step=None,
        unselected_tensor_tags=list(store.unselected_tensor_tags),
        unselected_legacy_tags=list(store.unselected_legacy_tags),
        model_config=configs[0] if configs else None,
    )


_HPARAMS_PLUGIN = "hparams"


def _hparams(contents: list[bytes]) -> dict[str, str]:
    """Hyperparameters of a session, as the hparams plugin (Keras's hp.KerasCallback) logs them."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    out: dict[str, str] = {}
    for content in contents:
        try:
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
        except Exception:
            continue
        if data.HasField("session_start_info"):
            # sorted: a protobuf map iterates in an order that changes from process to process
            for key, value in sorted(data.session_start_info.hparams.items()):
                kind = value.WhichOneof("kind")
                if kind == "number_value":
                    out[key] = f"{value.number_value:g}"
                elif kind in ("string_value", "bool_value"):
                    out[key] = str(getattr(value, kind))
    return out


# --- EventAccumulator's silent data loss, made visible ---------------------------------------------


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
    return "the file ends in a truncated record (was the writer killed?); the rest of this file was not read"
