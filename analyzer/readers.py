"""Reading one event file into blocks of histograms per tag, by either of two readers.

``streaming`` (default): the framing and CRC checks of ``records``, protobuf parsing, and
EventAccumulator's bookkeeping rules (a tag's first metadata names its plugin; legacy histograms purged
on restarts as it does; TF2 tensors never purged), decoding each tag's TF2 histograms in one numpy
call. ``tensorboard``: TensorBoard's own EventAccumulator (without TensorFlow). Tests hold the two to
identical results on every corpus in the repository.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter, methodcaller

import numpy as np
from tensorboard.compat.proto import event_pb2

from .problems import Problem
from .records import RecordReader, masked_crc32c

TF2_HISTOGRAM_PLUGIN = "histograms"
READERS = ("streaming", "tensorboard")
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


FileHistograms = dict[str, list[HistogramBlock]]


@dataclass
class FileContents:
    """What one event file holds for the analyzer."""

    histograms: FileHistograms
    problems: list[Problem]
    hparams: dict[str, str]  # from the hparams plugin's session start, when logged


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
        with _open(path) as stream:
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
            problems.append(Problem(path, records.damage.message))
    histograms = accumulator.blocks(path, problems)
    if not histograms and not problems and accumulator.file_version is None:
        problems.append(Problem(path, "no events could be read"))
    return FileContents(histograms, problems, _hparams(accumulator.hparams_content))


def _file_version(text: str) -> float:
    """As TensorBoard's event_util.ParseFileVersion: 'brain.Event:2' → 2.0, unparseable → -1."""
    try:
        return float(text.split("brain.Event:")[-1])
    except ValueError:
        return -1.0


_KIND = methodcaller("WhichOneof", "value")
_TENSOR, _HISTO = attrgetter("tensor"), attrgetter("histo")


class _StreamingAccumulator:
    """EventAccumulator's bookkeeping for histograms, without its reservoirs and compression.

    Per value it only files the value under its tag: what kind each value is, and its decoding, are
    found per tag afterwards in C-level maps, which is most of what makes this reader fast.
    """

    def __init__(self) -> None:
        self.file_version: float | None = None
        self._most_recent_step = -1
        self._plugin_of: dict[str, str] = {}  # from each tag's first metadata, as EventAccumulator
        self._logged: dict[str, tuple[list[int], list]] = {}  # tag → (steps, Summary.Values) in order
        self.hparams_content: list[bytes] = []

    def add(self, event: event_pb2.Event) -> None:
        if event.HasField("file_version"):
            self.file_version = _file_version(event.file_version)
        self._maybe_purge(event)
        if not event.HasField("summary"):
            return
        step, plugin_of, logged = event.step, self._plugin_of, self._logged
        for value in event.summary.value:
            tag = value.tag
            if tag not in plugin_of and value.HasField("metadata"):
                plugin_of[tag] = value.metadata.plugin_data.plugin_name
                if plugin_of[tag] == _HPARAMS_PLUGIN:
                    self.hparams_content.append(value.metadata.plugin_data.content)
            if not tag and value.HasField("tensor"):  # TF1-era tensors may name only their node
                tag = value.node_name
            entries = logged.get(tag)
            if entries is None:
                entries = logged[tag] = ([], [])
            entries[0].append(step)
            entries[1].append(value)

    def _maybe_purge(self, event: event_pb2.Event) -> None:
        """Orphaned legacy histograms: purged on SessionLog.START (file version >= 2) or on a step that
        goes back (older files), exactly as EventAccumulator does; TF2 tensors are never purged."""
        if self.file_version and self.file_version >= 2:
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                self._purge_legacy(list(self._logged), event.step)
        elif event.step < self._most_recent_step and event.HasField("summary"):
            self._purge_legacy([value.tag for value in event.summary.value], event.step)
        else:
            self._most_recent_step = event.step

    def _purge_legacy(self, tags: list[str], step: int) -> None:
        for tag in tags:
            if tag in self._logged:
                steps, values = self._logged[tag]
                kept = [(s, v) for s, v in zip(steps, values) if s < step or _KIND(v) != "histo"]
                self._logged[tag] = ([s for s, _ in kept], [v for _, v in kept])

    def blocks(self, path: str, problems: list[Problem]) -> FileHistograms:
        out: FileHistograms = {}
        legacy: list[tuple[str, list[int], list]] = []
        for tag, (steps, values) in self._logged.items():
            kinds = set(map(_KIND, values))
            if kinds == {"tensor"} and self._plugin_of.get(tag) == TF2_HISTOGRAM_PLUGIN:
                _add_tensor_block(out, tag, steps, list(map(_TENSOR, values)), path, problems)
            elif kinds == {"histo"}:
                legacy.append((tag, steps, list(map(_HISTO, values))))
            elif "tensor" in kinds or "histo" in kinds:  # one tag, several kinds: rare, split it
                for kind, kind_values in _split_by_kind(steps, values).items():
                    if kind == "tensor" and self._plugin_of.get(tag) == TF2_HISTOGRAM_PLUGIN:
                        _add_tensor_block(out, tag, *kind_values, path, problems)
                    elif kind == "histo":
                        legacy.append((tag, *kind_values))
        for tag, steps, histograms in legacy:  # TF2 tags first, as EventAccumulator's Tags() lists them
            out.setdefault(tag, []).append(_legacy_block(steps, histograms))
        return out


def _split_by_kind(steps: list[int], values: list) -> dict[str, tuple[list[int], list]]:
    out: dict[str, tuple[list[int], list]] = {}
    for step, value in zip(steps, values):
        kind = _KIND(value)
        if kind in ("tensor", "histo"):
            entries = out.setdefault(kind, ([], []))
            entries[0].append(step)
            entries[1].append(getattr(value, kind))
    return out


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
    problems.extend(Problem(path, _describe_loss(loss)) for loss in losses)
    out: FileHistograms = {}
    tags = accumulator.Tags()
    for tag in tags[ea.TENSORS]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == TF2_HISTOGRAM_PLUGIN:
            events = accumulator.Tensors(tag)
            _add_tensor_block(
                out, tag, [e.step for e in events], [e.tensor_proto for e in events], path, problems
            )
    for tag in tags[ea.HISTOGRAMS]:
        events = accumulator.Histograms(tag)
        out.setdefault(tag, []).append(
            _legacy_block([e.step for e in events], [e.histogram_value for e in events])
        )
    if not out and not problems and accumulator.file_version is None:
        problems.append(Problem(path, "no events could be read"))
    try:
        hparams = _hparams(list(accumulator.PluginTagToContent(_HPARAMS_PLUGIN).values()))
    except KeyError:
        hparams = {}
    return FileContents(out, problems, hparams)


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
            for key, value in data.session_start_info.hparams.items():
                kind = value.WhichOneof("kind")
                if kind == "number_value":
                    out[key] = f"{value.number_value:g}"
                elif kind in ("string_value", "bool_value"):
                    out[key] = str(getattr(value, kind))
    return out


# --- histograms to arrays --------------------------------------------------------------------------


def _add_tensor_block(
    out: FileHistograms, tag: str, steps: list[int], tensors: list, path: str, problems: list[Problem]
) -> None:
    """TF2 histograms are float64 [k, 3] tensors: decode a whole tag in one numpy call when they
    share a shape, else one by one (make_ndarray reads the same bytes)."""
    first = tensors[0]
    shape = [d.size for d in first.tensor_shape.dim]
    contents = list(map(_CONTENT, tensors))
    nbytes = len(contents[0])
    if (
        len(shape) == 2
        and shape[1] == 3
        and shape[0] > 0
        and nbytes == shape[0] * 24
        and set(map(len, contents)) == {nbytes}
        and set(map(_DTYPE, tensors)) == {_DT_DOUBLE}
        and all(map(first.tensor_shape.__eq__, map(_SHAPE, tensors)))
    ):
        stacked = np.frombuffer(b"".join(contents), "<f8").reshape(len(tensors), *shape)
        out.setdefault(tag, []).append(_tf2_block(np.array(steps, np.int64), stacked))
        return
    kept_steps, arrays = [], []
    for step, tensor in zip(steps, tensors):
        array = _tensor_array(tensor)
        if array is None:
            problems.append(Problem(path, f"tag {tag!r} step {step}: not a [k, 3] histogram; skipped"))
            continue
        kept_steps.append(step)
        arrays.append(array)
    if arrays:
        width = max(1, max(a.shape[0] for a in arrays))
        stacked = np.zeros((len(arrays), width, 3))
        for i, a in enumerate(arrays):
            stacked[i, : a.shape[0]] = a
        out.setdefault(tag, []).append(_tf2_block(np.array(kept_steps, np.int64), stacked))


_CONTENT, _DTYPE, _SHAPE = attrgetter("tensor_content"), attrgetter("dtype"), attrgetter("tensor_shape")


def _tensor_array(tensor) -> np.ndarray | None:
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


def _legacy_block(steps: list[int], histograms: list) -> HistogramBlock:
    """From HistogramProtos or EventAccumulator's HistogramValues (the same fields).

    Bucket i spans (limit[i-1], limit[i]]; the first starts at the exact min, and the last ends at the
    exact max rather than at the DBL_MAX limit writers often use.
    """
    n = len(histograms)
    width = max(1, max(min(len(h.bucket_limit), len(h.bucket)) for h in histograms))
    left, right, counts = np.zeros((n, width)), np.zeros((n, width)), np.zeros((n, width))
    moments = np.empty((n, 3))
    for i, h in enumerate(histograms):
        k = min(len(h.bucket_limit), len(h.bucket))
        limits = np.array(h.bucket_limit[:k], dtype=np.float64)
        counts[i, :k] = h.bucket[:k]
        if k:
            right[i, :k] = limits
            left[i, 0] = h.min if np.isfinite(h.min) else limits[0]
            left[i, 1:k] = limits[:-1]
            if np.isfinite(h.max) and h.max < limits[-1]:
                right[i, k - 1] = max(h.max, left[i, k - 1])
        moments[i] = (h.num, h.sum, h.sum_squares)
    return HistogramBlock(
        np.array(steps, np.int64), left, right, counts, moments[:, 0], moments[:, 1], moments[:, 2], "legacy"
    )


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
