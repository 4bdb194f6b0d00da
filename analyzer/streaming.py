"""gradaudit's own reader of an event file (or a byte range of one): the framing and CRC checks of
``records``, protobuf parsing, and EventAccumulator's bookkeeping rules (a tag's first metadata names
its plugin; legacy histograms purged on restarts as it does; TF2 tensors never purged)."""

from __future__ import annotations

import gc
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

from .blocks import Scalars
from .problems import Problem
from .records import RecordReader, first_record_at_or_after
from .reduction import SPIKE_SHARE
from .store import (
    HPARAMS_PLUGIN,
    MODEL_CONFIG_PLUGINS,
    TF2_HISTOGRAM_PLUGIN,
    TF2_SCALAR_PLUGIN,
    TRUNCATED_END,
    HistogramStore,
    Part,
    TagFilter,
    blocks_of,
)

if TYPE_CHECKING:  # at run time imported where a file is read: a cached re-run reads none
    from tensorboard.compat.proto import event_pb2

_SESSION_START = 1  # event_pb2.SessionLog.START: a restart


def file_version_at_start(path: str) -> float:
    """The file version its first record states; -1 if it states none."""
    from tensorboard.compat.proto import event_pb2

    try:
        with open_file(path) as stream:
            for payload in RecordReader(stream, size_of(path)):
                event = event_pb2.Event.FromString(payload)
                return _file_version(event.file_version) if event.HasField("file_version") else -1.0
    except Exception:
        pass
    return -1.0


def size_of(path: str) -> int:
    if "://" not in path:
        return os.path.getsize(path)
    from tensorboard.compat.tensorflow_stub.io import gfile

    return gfile.stat(path).length


def open_file(path: str):
    if "://" not in path:
        return open(path, "rb")
    from tensorboard.compat.tensorflow_stub.io import gfile

    return gfile.GFile(path, "rb")


def read_part(
    path: str,
    start: int,
    stop: int,
    size: int,
    selected: TagFilter,
    mid_file: bool = False,
    spike_share: float = SPIKE_SHARE,
) -> Part:
    """The records of the file at `path` that start in [start, stop); `mid_file`: `start` is
    anywhere, not a record's start, and the file is of version 2 (its first range has said so)."""
    try:
        with open_file(path) as stream:
            return read_stream(stream, path, start, stop, size, selected, mid_file, spike_share)
    except OSError as err:
        problem = Problem(path, f"cannot read file ({err.strerror or err})")
        return read_stream(io.BytesIO(), path, start, start, 0, selected, problems=[problem])


def read_stream(
    stream: BinaryIO,
    path: str,
    start: int,
    stop: int,
    size: int,
    selected: TagFilter,
    mid_file: bool = False,
    spike_share: float = SPIKE_SHARE,
    problems: list[Problem] | None = None,
) -> Part:
    """read_part on an open stream (a file, or records in memory); `path` names it in problems."""
    from tensorboard.compat.proto import event_pb2

    problems = list(problems or [])
    store = HistogramStore(path, selected, spike_share)
    accumulator = _StreamingAccumulator(store, file_version_2=mid_file)
    stopped, end = bool(problems), start
    try:
        with _cyclic_gc_paused():
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
    return Part(
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
        tensor_scalars=blocks_of(accumulator.tensor_scalars),
        simple_scalars=blocks_of(accumulator.simple_scalars),
        unresolved_scalars=blocks_of(accumulator.unresolved_scalars),
        restart_step=accumulator.restart_step,
        unselected_tensor_tags=list(store.unselected_tensor_tags),
        unselected_legacy_tags=list(store.unselected_legacy_tags),
        model_config=accumulator.model_config,
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

    def __init__(self, histograms: HistogramStore, file_version_2: bool = False) -> None:
        self.histograms = histograms
        self.file_version: float | None = None
        self._file_version_2 = file_version_2
        self._most_recent_step = -1
        self.plugin_of: dict[str, str] = {}  # from each tag's first metadata, as EventAccumulator
        # Legacy simple values are purged on restarts like legacy histograms; TF2 scalar tensors never.
        self.simple_scalars: dict[str, Scalars] = {}
        self.tensor_scalars: dict[str, Scalars] = {}
        self.unresolved_scalars: dict[str, Scalars] = {}  # see Part
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
                if histograms.buffered > histograms.buffer_limit:
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
            if plugin_of[tag] == HPARAMS_PLUGIN:
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
