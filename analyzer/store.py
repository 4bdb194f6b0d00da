"""One event file's histograms as they are collected, reduced to statistics a buffer at a time (long
tags only at the steps thinning keeps), and what a byte range of a file held (`Part`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .blocks import LegacyHistograms, ScalarBlock, Scalars, TensorHistograms
from .problems import Problem
from .reduction import (
    KEPT_STEPS,
    Thinning,
    final_stride,
    logging_interval,
    merge_pieces,
    reduce_blocks,
    reduce_stacked,
    thinned,
)
from .stats import LayerStats

TF2_HISTOGRAM_PLUGIN = "histograms"


TF2_SCALAR_PLUGIN = "scalars"
HPARAMS_PLUGIN = "hparams"


# The model's JSON config: Keras's TensorBoard callback (and gradaudit's) write it under the tag
# "keras" with this plugin; gradaudit's callback writes a subclassed model's layer list with the other.
MODEL_CONFIG_PLUGINS = ("graph_keras_model", "gradaudit_model")


TRUNCATED_END = "truncated_end"  # Problem.kind of a file that ends in a partial record


TagFilter = Callable[[str], object]  # which histogram tags to analyse (truthy: this one)


# Buckets of collected histograms, over all tags, that wait to be reduced to statistics: about 24 MB
# of TF2 histograms. Reducing more at once saves little: the reduction is one vectorised pass over
# all of them either way.
BUFFERED_BUCKETS = 500_000


class HistogramStore:
    """The histograms of one file's selected tags, reduced to statistics a buffer at a time.

    With `progress` (the share of the range being read that has been read), a long tag is reduced
    at the steps thinning will keep only: its length in the file is estimated from how many rows it
    logged in how much of the file, and from that the stride thinning will end at (``stats.Thinning``).
    Every row is still read and checked for NaN/Inf and counted."""

    def __init__(self, path: str, selected: TagFilter, spike_share: float) -> None:
        self._path = path
        self._selected = selected
        self._spike_share = spike_share  # ReadOptions.zero_spike_fit_share
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
        self.buffer_limit = BUFFERED_BUCKETS  # reduced past this many
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
        if self.buffered > self.buffer_limit:
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
            self._spike_share,
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
                self._spike_share,
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


@dataclass
class Part:
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


def blocks_of(collected: dict[str, Scalars]) -> dict[str, ScalarBlock]:
    return {tag: block for tag, scalars in collected.items() if (block := scalars.block()) is not None}
