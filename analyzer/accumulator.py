"""TensorBoard's own EventAccumulator (without TensorFlow) as the second reader of an event file, its
output collected as the streaming reader's is, and the data loss it only logs made visible."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from .blocks import Scalars
from .problems import Problem
from .records import masked_crc32c
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


def read_with_event_accumulator(path: str, selected: TagFilter, spike_share: float) -> Part:
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
    store = HistogramStore(path, selected, spike_share)
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
        hparams_content = dict(accumulator.PluginTagToContent(HPARAMS_PLUGIN))
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
    return Part(
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
        tensor_scalars=blocks_of(tensor_scalars),
        simple_scalars=blocks_of(simple_scalars),
        unresolved_scalars={},
        restart_step=None,
        unselected_tensor_tags=list(store.unselected_tensor_tags),
        unselected_legacy_tags=list(store.unselected_legacy_tags),
        model_config=configs[0] if configs else None,
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
    return "the file ends in a truncated record (was the writer killed?); the rest of this file was not read"
