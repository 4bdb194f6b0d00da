"""Reading one event file into the statistics of each gradient tag, by either of two readers.

``streaming`` (default): the framing and CRC checks of ``records``, protobuf parsing, and
EventAccumulator's bookkeeping rules (a tag's first metadata names its plugin; legacy histograms purged
on restarts as it does; TF2 tensors never purged), each tag's histograms collected by ``blocks``.
``tensorboard``: TensorBoard's own EventAccumulator (without TensorFlow), its output collected the same
way. Tests hold the two to identical results on every corpus in the repository.

Histograms are reduced to their statistics (``stats``) as they are read, whenever those collected hold
more than ``store.BUFFERED_BUCKETS`` buckets, and long tags are thinned (``reduction.thinned``): the streaming
reader's memory is bounded by a run's width, whatever its length. The ``tensorboard`` reader keeps
every event in EventAccumulator's own store, by design.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .accumulator import read_with_event_accumulator
from .blocks import ScalarBlock
from .options import DEFAULT_READ_OPTIONS, READERS, ReadOptions
from .problems import Problem
from .reduction import KEPT_STEPS, merge_pieces, thinned
from .stats import LayerStats
from .store import TF2_HISTOGRAM_PLUGIN, TF2_SCALAR_PLUGIN, Part, TagFilter
from .streaming import file_version_at_start, read_part, size_of

if TYPE_CHECKING:  # at run time imported where a file is read: a cached re-run reads none
    pass


FileScalars = dict[str, ScalarBlock]


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
    path: str,
    options: ReadOptions = DEFAULT_READ_OPTIONS,
    selected: TagFilter = bool,
    processes: int | None = None,
) -> FileContents:
    """The statistics of the histogram tags `selected` accepts; the others are only named. With
    several processes (`processes`, else the options'), a large file is read in byte ranges in
    parallel (the streaming reader), by processes started for it and ended with it."""
    reader, share = options.reader, options.zero_spike_fit_share
    processes = options.processes if processes is None else processes
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; choose from {', '.join(READERS)}")
    try:
        size = size_of(path)
    except OSError as err:
        return FileContents({}, [Problem(path, f"cannot read file ({err.strerror or err})")], {})
    if size == 0:
        return FileContents({}, [Problem(path, "empty file (0 bytes)")], {})
    if reader == "tensorboard":
        return join_parts(path, [read_with_event_accumulator(path, selected, share)])
    if processes > 1 and size >= 2 * PART_BYTES and file_version_at_start(path) >= 2:
        count = -(-size // PART_BYTES)  # ranges of equal length: the last is no shorter than the rest
        starts = [size * k // count for k in range(count)]
        stops = starts[1:] + [size]
        ranges = [(path, start, stop, size, selected, start > 0, share) for start, stop in zip(starts, stops)]
        from concurrent.futures import ProcessPoolExecutor  # only for a file this large

        with ProcessPoolExecutor(processes) as pool:
            contents = join_parts(path, _in_order(pool, ranges))
        if contents is not None:
            return contents
        # A range began past a damaged record, or at what only looked like a record: read it whole.
    return join_parts(path, [read_part(path, 0, size, size, selected, spike_share=share)])


# Bytes per range when a large file is read by several processes: each range is a task, so a few per
# process balance the load; each costs a scan for its first record (at most one record's length).
PART_BYTES = 64 << 20


# Ranges read ahead of the one being joined: enough to keep every process busy, few enough that the
# results waiting to be joined stay small.
_AHEAD = 4


def _in_order(pool: Executor, ranges: list[tuple]) -> Iterator[Part]:
    """Each range read in `pool`, yielded in order as soon as it and those before it are read."""
    pending: deque = deque()
    try:
        for arguments in ranges:
            pending.append(pool.submit(read_part, *arguments))
            if len(pending) > _AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def join_parts(path: str, parts: Iterable[Part]) -> FileContents | None:
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
