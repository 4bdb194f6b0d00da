"""Reading one event file into blocks of histograms per tag, by either of two readers.

``streaming`` (default): the framing and CRC checks of ``records``, protobuf parsing, and
EventAccumulator's bookkeeping rules (a tag's first metadata names its plugin; legacy histograms purged
on restarts as it does; TF2 tensors never purged), each tag's histograms collected by ``blocks``.
``tensorboard``: TensorBoard's own EventAccumulator (without TensorFlow), its output collected the same
way. Tests hold the two to identical results on every corpus in the repository.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from tensorboard.compat.proto import event_pb2

from .blocks import HistogramBlock, LegacyHistograms, ScalarBlock, Scalars, TensorHistograms
from .problems import Problem
from .records import RecordReader, masked_crc32c

TF2_HISTOGRAM_PLUGIN = "histograms"
TF2_SCALAR_PLUGIN = "scalars"
READERS = ("streaming", "tensorboard")
TRUNCATED_END = "truncated_end"  # Problem.kind of a file that ends in a partial record


FileHistograms = dict[str, list[HistogramBlock]]
FileScalars = dict[str, ScalarBlock]


@dataclass
class FileContents:
    """What one event file holds for the analyzer."""

    histograms: FileHistograms
    problems: list[Problem]
    hparams: dict[str, str]  # from the hparams plugin's session start, when logged
    scalars: FileScalars = field(default_factory=dict)  # every scalar tag, legacy or TF2


def read_file(path: str, reader: str = READERS[0]) -> FileContents:
    """Histogram blocks per tag (TF2 tags first, then legacy, each in order of first appearance)."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; choose from {', '.join(READERS)}")
    try:
        size = _size_of(path)
    except OSError as err:
        return FileContents({}, [Problem(path, f"cannot read file ({err.strerror or err})")], {})
    if size == 0:
        return FileContents({}, [Problem(path, "empty file (0 bytes)")], {})
    if reader == "tensorboard":
        return _read_with_event_accumulator(path)
    return _read_streaming(path, size)


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


def _read_streaming(path: str, size: int) -> FileContents:
    problems: list[Problem] = []
    accumulator = _StreamingAccumulator()
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
    histograms = accumulator.blocks(path, problems)
    if not histograms and not problems and accumulator.file_version is None:
        problems.append(Problem(path, "no events could be read"))
    return FileContents(
        histograms, problems, _hparams(accumulator.hparams_content), accumulator.scalar_blocks()
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

    def __init__(self) -> None:
        self.file_version: float | None = None
        self._file_version_2 = False
        self._most_recent_step = -1
        self._plugin_of: dict[str, str] = {}  # from each tag's first metadata, as EventAccumulator
        self._tensors: dict[str, TensorHistograms] = {}
        self._legacy: dict[str, LegacyHistograms] = {}
        # Legacy simple values are purged on restarts like legacy histograms; TF2 scalar tensors never.
        self._simple_scalars: dict[str, Scalars] = {}
        self._tensor_scalars: dict[str, Scalars] = {}
        self.hparams_content: list[bytes] = []

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
            self._purge_legacy(list(self._legacy), event.step)
        if what != "summary":
            return
        step, plugin_of, tensors = event.step, self._plugin_of, self._tensors
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
                    collected = tensors.get(tag)
                    if collected is None:
                        collected = tensors[tag] = TensorHistograms()
                    collected.add(step, value.tensor)
                elif plugin == TF2_SCALAR_PLUGIN:
                    self._tensor_scalars.setdefault(tag, Scalars()).add_tensor(step, value.tensor)
            elif kind == "simple_value":
                self._simple_scalars.setdefault(tag, Scalars()).add(step, value.simple_value)
            elif kind == "histo":
                collected = self._legacy.get(tag)
                if collected is None:
                    collected = self._legacy[tag] = LegacyHistograms()
                collected.add(step, value.histo)

    def _purge_legacy(self, tags: list[str], step: int) -> None:
        for tag in tags:
            if tag in self._legacy:
                self._legacy[tag].drop_from(step)
            if tag in self._simple_scalars:
                self._simple_scalars[tag].drop_from(step)

    def scalar_blocks(self) -> FileScalars:
        out: FileScalars = {}
        for collected in (self._tensor_scalars, self._simple_scalars):
            for tag, scalars in collected.items():
                _add_scalars(out, tag, scalars.block())
        return out

    def blocks(self, path: str, problems: list[Problem]) -> FileHistograms:
        """TF2 tags first, then legacy ones, each in order of first appearance (as Tags() lists them)."""
        out: FileHistograms = {}
        for tag, tensor_histograms in self._tensors.items():
            if self._plugin_of.get(tag) == TF2_HISTOGRAM_PLUGIN:
                _add(out, tag, tensor_histograms.block(tag, path, problems))
        for tag, legacy_histograms in self._legacy.items():
            _add(out, tag, legacy_histograms.block())
        return out


def _add(out: FileHistograms, tag: str, block: HistogramBlock | None) -> None:
    if block is not None:
        out.setdefault(tag, []).append(block)


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


def _read_with_event_accumulator(path: str) -> FileContents:
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
    out: FileHistograms = {}
    tags = accumulator.Tags()
    for tag in tags[ea.TENSORS]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == TF2_HISTOGRAM_PLUGIN:
            tensor_histograms = TensorHistograms()
            for e in accumulator.Tensors(tag):
                tensor_histograms.add(e.step, e.tensor_proto)
            _add(out, tag, tensor_histograms.block(tag, path, problems))
    for tag in tags[ea.HISTOGRAMS]:
        legacy_histograms = LegacyHistograms()
        for e in accumulator.Histograms(tag):
            legacy_histograms.add(e.step, e.histogram_value)
        _add(out, tag, legacy_histograms.block())
    if not out and not problems and accumulator.file_version is None:
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
    return FileContents(out, problems, hparams, scalars)


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
