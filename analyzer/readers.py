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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from tensorboard.compat.proto import event_pb2

from .blocks import LegacyHistograms, ScalarBlock, Scalars, TensorHistograms
from .problems import Problem
from .records import RecordReader, masked_crc32c
from .stats import KEPT_STEPS, LayerStats, merge_pieces, reduce_blocks, thinned

TF2_HISTOGRAM_PLUGIN = "histograms"
TF2_SCALAR_PLUGIN = "scalars"
READERS = ("streaming", "tensorboard")
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


def read_file(path: str, reader: str = READERS[0], selected: TagFilter = bool) -> FileContents:
    """The statistics of the histogram tags `selected` accepts; the others are only named."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; choose from {', '.join(READERS)}")
    try:
        size = _size_of(path)
    except OSError as err:
        return FileContents({}, [Problem(path, f"cannot read file ({err.strerror or err})")], {})
    if size == 0:
        return FileContents({}, [Problem(path, "empty file (0 bytes)")], {})
    if reader == "tensorboard":
        return _read_with_event_accumulator(path, selected)
    return _read_streaming(path, size, selected)


# Buckets of collected histograms, over all tags, that wait to be reduced to statistics: about 24 MB
# of TF2 histograms. Reducing more at once saves little: the reduction is one vectorised pass over
# all of them either way.
_BUFFERED_BUCKETS = 1_000_000


class _HistogramStore:
    """The histograms of one file's selected tags, reduced to statistics a buffer at a time."""

    def __init__(self, path: str, selected: TagFilter) -> None:
        self._path = path
        self._selected = selected
        self.tensors: dict[str, TensorHistograms] = {}
        self.legacy: dict[str, LegacyHistograms] = {}
        self._pieces: dict[tuple[str, str], list[LayerStats]] = {}  # (encoding, tag) → in reading order
        self._tag_problems: dict[str, list[Problem]] = {}  # reported if the tag is a histogram tag
        self._buffered = 0
        self._unselected_tensor_tags: dict[str, None] = {}
        self._unselected_legacy_tags: dict[str, None] = {}

    def add_tensor(self, tag: str, step: int, tensor) -> None:
        collected = self.tensors.get(tag)
        if collected is None:
            if not self._selected(tag):
                self._unselected_tensor_tags[tag] = None
                return
            collected = self.tensors[tag] = TensorHistograms()
        self._buffered += collected.add(step, tensor)
        if self._buffered > _BUFFERED_BUCKETS:
            self._reduce()

    def add_legacy(self, tag: str, step: int, histogram) -> None:
        collected = self.legacy.get(tag)
        if collected is None:
            if not self._selected(tag):
                self._unselected_legacy_tags[tag] = None
                return
            collected = self.legacy[tag] = LegacyHistograms()
        self._buffered += collected.add(step, histogram)
        if self._buffered > _BUFFERED_BUCKETS:
            self._reduce()

    def purge_legacy(self, tags: list[str], step: int) -> None:
        """Forget legacy histograms logged at `step` or later (orphaned by a restart)."""
        for tag in tags:
            if tag in self.legacy:
                self.legacy[tag].drop_from(step)
            key = ("legacy", tag)
            if key in self._pieces:
                self._pieces[key] = [piece.before(step) for piece in self._pieces[key]]

    def _reduce(self) -> None:
        """Every collected histogram becomes statistics, in one pass; long tags are thinned."""
        blocks = []
        for tag, tensor_histograms in self.tensors.items():
            problems = self._tag_problems.setdefault(tag, [])
            blocks.append((("tf2", tag), tensor_histograms.block(tag, self._path, problems)))
            tensor_histograms.clear()
        for tag, legacy_histograms in self.legacy.items():
            blocks.append((("legacy", tag), legacy_histograms.block()))
            legacy_histograms.clear()
        blocks = [(key, block) for key, block in blocks if block is not None]
        reduced = reduce_blocks([(tag, block) for (_, tag), block in blocks])
        for (key, _), layer in zip(blocks, reduced):
            pieces = self._pieces.setdefault(key, [])
            pieces.append(layer)
            if sum(len(piece.steps) for piece in pieces) > 2 * KEPT_STEPS:
                self._pieces[key] = [thinned(merge_pieces(pieces))]
        self._buffered = 0

    def layers(
        self, is_histogram_tag: Callable[[str], bool], problems: list[Problem]
    ) -> dict[str, LayerStats]:
        self._reduce()
        out: dict[str, list[LayerStats]] = {}
        for tag in self.tensors:
            if is_histogram_tag(tag):
                problems.extend(self._tag_problems.get(tag, []))
                out.setdefault(tag, []).extend(self._pieces.get(("tf2", tag), []))
        for tag in self.legacy:
            out.setdefault(tag, []).extend(self._pieces.get(("legacy", tag), []))
        return {tag: thinned(merge_pieces(pieces)) for tag, pieces in out.items() if pieces}

    def other_tags(self, is_histogram_tag: Callable[[str], bool]) -> list[str]:
        tensor_tags = [tag for tag in self._unselected_tensor_tags if is_histogram_tag(tag)]
        return list(dict.fromkeys(tensor_tags + list(self._unselected_legacy_tags)))


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


def _read_streaming(path: str, size: int, selected: TagFilter) -> FileContents:
    problems: list[Problem] = []
    accumulator = _StreamingAccumulator(_HistogramStore(path, selected))
    try:
        with _open(path) as stream, _cyclic_gc_paused():
            records = RecordReader(stream, size)
            for payload in records:
                try:
                    event = event_pb2.Event.FromString(payload)
                except Exception as err:  # valid CRCs, but not an Event
                    problems.append(
                        Problem(path, f"unreadable record ({type(err).__name__}); reading stopped")
                    )
                    break
                accumulator.add(event)
    except OSError as err:
        problems.append(Problem(path, f"cannot read file ({err.strerror or err})"))
    else:
        if records.damage is not None:
            kind = TRUNCATED_END if records.damage.at_end else ""
            problems.append(Problem(path, records.damage.message, kind))
    layers = accumulator.histograms.layers(accumulator.is_histogram_tag, problems)
    other_tags = accumulator.histograms.other_tags(accumulator.is_histogram_tag)
    if not layers and not other_tags and not problems and accumulator.file_version is None:
        problems.append(Problem(path, "no events could be read"))
    return FileContents(
        layers, problems, _hparams(accumulator.hparams_content), accumulator.scalar_blocks(), other_tags
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

    def __init__(self, histograms: _HistogramStore) -> None:
        self.histograms = histograms
        self.file_version: float | None = None
        self._file_version_2 = False
        self._most_recent_step = -1
        self._plugin_of: dict[str, str] = {}  # from each tag's first metadata, as EventAccumulator
        # Legacy simple values are purged on restarts like legacy histograms; TF2 scalar tensors never.
        self._simple_scalars: dict[str, Scalars] = {}
        self._tensor_scalars: dict[str, Scalars] = {}
        self.hparams_content: list[bytes] = []

    def is_histogram_tag(self, tag: str) -> bool:
        """A TF2 tensor tag is a histogram tag when its first metadata says so (final once read)."""
        return self._plugin_of.get(tag) == TF2_HISTOGRAM_PLUGIN

    def add(self, event: event_pb2.Event) -> None:
        what = event.WhichOneof("what")  # one call instead of a HasField per kind: events are many
        if what == "file_version":
            self.file_version = _file_version(event.file_version)
            self._file_version_2 = self.file_version >= 2
        # Orphaned legacy histograms: purged on SessionLog.START (file version >= 2) or on a step that
        # goes back (older files), exactly as EventAccumulator does; TF2 tensors are never purged.
        if not self._file_version_2:
            if event.step < self._most_recent_step and what == "summary":
                self._purge_legacy([value.tag for value in event.summary.value], event.step)
            else:
                self._most_recent_step = event.step
        elif what == "session_log" and event.session_log.status == event_pb2.SessionLog.START:
            self._purge_legacy(list(self.histograms.legacy) + list(self._simple_scalars), event.step)
        if what != "summary":
            return
        step, plugin_of, histograms = event.step, self._plugin_of, self.histograms
        for value in event.summary.value:
            tag = value.tag
            if tag not in plugin_of and value.HasField("metadata"):
                plugin_of[tag] = value.metadata.plugin_data.plugin_name
                if plugin_of[tag] == _HPARAMS_PLUGIN:
                    self.hparams_content.append(value.metadata.plugin_data.content)
            kind = value.WhichOneof("value")
            if kind == "tensor":
                tag = tag or value.node_name  # TF1-era tensors may name only their node
                # A tag's plugin is that of its first metadata: known here, it is final.
                plugin = plugin_of.get(tag, TF2_HISTOGRAM_PLUGIN)
                if plugin == TF2_HISTOGRAM_PLUGIN:
                    histograms.add_tensor(tag, step, value.tensor)
                elif plugin == TF2_SCALAR_PLUGIN:
                    self._tensor_scalars.setdefault(tag, Scalars()).add_tensor(step, value.tensor)
            elif kind == "simple_value":
                self._simple_scalars.setdefault(tag, Scalars()).add(step, value.simple_value)
            elif kind == "histo":
                histograms.add_legacy(tag, step, value.histo)

    def _purge_legacy(self, tags: list[str], step: int) -> None:
        self.histograms.purge_legacy(tags, step)
        for tag in tags:
            if tag in self._simple_scalars:
                self._simple_scalars[tag].drop_from(step)

    def scalar_blocks(self) -> FileScalars:
        out: FileScalars = {}
        for collected in (self._tensor_scalars, self._simple_scalars):
            for tag, scalars in collected.items():
                _add_scalars(out, tag, scalars.block())
        return out


def _add_scalars(out: FileScalars, tag: str, block: ScalarBlock | None) -> None:
    if block is not None and tag not in out:  # a tag written both ways keeps its TF2 tensors
        out[tag] = block


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


def _read_with_event_accumulator(path: str, selected: TagFilter) -> FileContents:
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
    histograms = _HistogramStore(path, selected)
    tags = accumulator.Tags()
    histogram_tags = {
        tag
        for tag in tags[ea.TENSORS]
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == TF2_HISTOGRAM_PLUGIN
    }
    for tag in tags[ea.TENSORS]:
        if tag in histogram_tags:
            for e in accumulator.Tensors(tag):
                histograms.add_tensor(tag, e.step, e.tensor_proto)
    for tag in tags[ea.HISTOGRAMS]:
        for e in accumulator.Histograms(tag):
            histograms.add_legacy(tag, e.step, e.histogram_value)
    layers = histograms.layers(histogram_tags.__contains__, problems)
    other_tags = histograms.other_tags(histogram_tags.__contains__)
    if not layers and not other_tags and not problems and accumulator.file_version is None:
        problems.append(Problem(path, "no events could be read"))
    try:
        hparams = _hparams(list(accumulator.PluginTagToContent(_HPARAMS_PLUGIN).values()))
    except KeyError:
        hparams = {}
    scalars: FileScalars = {}
    for tag in tags[ea.TENSORS]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == TF2_SCALAR_PLUGIN:
            tensor_scalars = Scalars()
            for e in accumulator.Tensors(tag):
                tensor_scalars.add_tensor(e.step, e.tensor_proto)
            _add_scalars(scalars, tag, tensor_scalars.block())
    for tag in tags[ea.SCALARS]:
        simple_scalars = Scalars()
        for e in accumulator.Scalars(tag):
            simple_scalars.add(e.step, e.value)
        _add_scalars(scalars, tag, simple_scalars.block())
    return FileContents(layers, problems, hparams, scalars, other_tags)


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
