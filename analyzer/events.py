"""A run's event files → one histogram series per gradient tag, in depth order.

Both encodings become the same plain data: per step, buckets as (left edge, right edge, count), plus
the exact moments (num, sum, sum of squares) where the legacy ``HistogramProto`` carries them.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .blocks import HistogramBlock, ScalarBlock
from .problems import Problem
from .readers import READERS, TRUNCATED_END, read_file
from .runs import SPLIT_FOLDERS, Run

# The default choice of gradient tags: any tag that mentions a gradient ("grad", "gradient", "Grad").
DEFAULT_TAG_PATTERN = r"(?i)grad"
# The default choice of loss scalars: a tag with "loss" as a word of its own (Keras's epoch_loss and
# batch_loss, gradaudit's probe/loss, PyTorch users' loss, Loss/train, train/loss, train_loss).
DEFAULT_LOSS_PATTERN = r"(?i)(^|[/_. -])loss($|[/_. -])"
# A run still being written: its newest file (in each folder) ends in a partial record and changed
# less than this long ago. A partial record that stays longer is a killed writer, and an error.
LIVE_WRITE_SECONDS = 600
# A loss series is a validation loss when its folder or its tag says so; the rest are training losses.
_VALIDATION = re.compile(r"(?i)(^|[/_. -])(val|valid|validation|eval|test)($|[/_. -])")


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
class LossSeries:
    """One loss scalar of a run, by step. Training and validation losses are separate series, and
    so are the same tag in train/ and validation/ folders: they are never spliced."""

    tag: str
    split: str  # the Keras split folder it came from ("train", "validation", ...) or ""
    steps: np.ndarray  # int64 [S], ascending, unique
    values: np.ndarray  # float64 [S], NaN/Inf as logged

    @property
    def name(self) -> str:
        return f"{self.split}/{self.tag}" if self.split else self.tag

    @property
    def is_validation(self) -> bool:
        return bool(_VALIDATION.search(self.name))


@dataclass
class RunData:
    """What a run's files held: gradient series in depth order, and what else was seen."""

    run: Run
    series: list[HistogramSeries]
    other_histogram_tags: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    restarted: bool = False  # a later file went back to steps an earlier file had logged
    hparams: dict[str, str] = field(default_factory=dict)  # logged with the hparams plugin
    losses: list[LossSeries] = field(default_factory=list)  # in order of first appearance
    live: dict[str, float] = field(default_factory=dict)  # file still being written → seconds since change

    @property
    def last_step(self) -> int | None:
        steps = [int(s.steps[-1]) for s in self.series if len(s.steps)]
        return max(steps) if steps else None


def read_run(
    run: Run,
    tag_pattern: str = DEFAULT_TAG_PATTERN,
    reader: str = READERS[0],
    loss_pattern: str = DEFAULT_LOSS_PATTERN,
) -> RunData:
    """Read every event file of a run in name order; a later file's value for a step wins."""
    selected = re.compile(tag_pattern)
    is_loss = re.compile(loss_pattern)
    loss_blocks: dict[tuple[str, str], list[ScalarBlock]] = {}
    blocks: dict[str, list[HistogramBlock]] = {}
    other_tags: dict[str, None] = {}
    problems: list[Problem] = []
    hparams: dict[str, str] = {}
    restarted = False
    for path in run.event_files:
        contents = read_file(path, reader)
        problems.extend(contents.problems)
        hparams.update(contents.hparams)
        split = _split_of(path)
        for tag, scalar_block in contents.scalars.items():
            if is_loss.search(tag):
                loss_blocks.setdefault((split, tag), []).append(scalar_block)
        for tag, tag_blocks in contents.histograms.items():
            if not selected.search(tag):
                other_tags.setdefault(tag)
                continue
            known = blocks.setdefault(tag, [])
            if known and min(b.steps.min() for b in tag_blocks) <= max(b.steps.max() for b in known):
                restarted = True
            known.extend(tag_blocks)
    series = [_merge(tag, tag_blocks) for tag, tag_blocks in blocks.items()]
    live = _being_written(run.event_files, problems)
    problems = [p for p in problems if p.path not in live or p.kind != TRUNCATED_END]
    return RunData(
        run=run,
        series=_in_depth_order(series),
        other_histogram_tags=list(other_tags),
        problems=problems,
        restarted=restarted,
        hparams=hparams,
        losses=[_merge_scalars(tag, split, parts) for (split, tag), parts in loss_blocks.items()],
        live=live,
    )


def _being_written(paths: list[str], problems: list[Problem]) -> dict[str, float]:
    """The newest file of each folder that ends in a partial record and changed within
    LIVE_WRITE_SECONDS: a writer mid-record, as every live training leaves its file between flushes."""
    newest: dict[str, str] = {}
    for path in paths:
        folder = os.path.dirname(path)
        if folder not in newest or os.path.basename(path) > os.path.basename(newest[folder]):
            newest[folder] = path
    live = {}
    for problem in problems:
        if problem.kind != TRUNCATED_END or problem.path not in newest.values() or "://" in problem.path:
            continue
        try:
            age = time.time() - os.path.getmtime(problem.path)
        except OSError:
            continue
        if age < LIVE_WRITE_SECONDS:
            live[problem.path] = max(age, 0.0)
    return live


def _split_of(path: str) -> str:
    folder = path.replace("\\", "/").rstrip("/").split("/")[-2:-1]
    return folder[0] if folder and folder[0].lower() in SPLIT_FOLDERS else ""


def _merge_scalars(tag: str, split: str, blocks: list[ScalarBlock]) -> LossSeries:
    steps = np.concatenate([b.steps for b in blocks])
    values = np.concatenate([b.values for b in blocks])
    unique_steps, from_end = np.unique(steps[::-1], return_index=True)  # the last read wins
    return LossSeries(tag, split, unique_steps.astype(np.int64), values[len(steps) - 1 - from_end])


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


def _merge(tag: str, blocks: list[HistogramBlock]) -> HistogramSeries:
    """Blocks in reading order → one series sorted by step; of repeated steps the last read wins."""
    if len(blocks) == 1 and np.all(np.diff(blocks[0].steps) > 0):  # the common case: nothing to merge
        b = blocks[0]
        return HistogramSeries(
            tag, b.steps, b.left, b.right, b.counts, b.num, b.sum, b.sum_squares, (b.encoding,)
        )
    width = max(b.counts.shape[1] for b in blocks)

    def stacked(name: str) -> np.ndarray:
        return stack_field(blocks, name, width)

    steps = np.concatenate([b.steps for b in blocks])
    # np.unique keeps the first of equal values: look from the end so the last read wins.
    unique_steps, from_end = np.unique(steps[::-1], return_index=True)
    keep = len(steps) - 1 - from_end
    return HistogramSeries(
        tag=tag,
        steps=unique_steps.astype(np.int64),
        left=stacked("left")[keep],
        right=stacked("right")[keep],
        counts=stacked("counts")[keep],
        num=stacked("num")[keep],
        sum=stacked("sum")[keep],
        sum_squares=stacked("sum_squares")[keep],
        encodings=tuple(sorted({b.encoding for b in blocks})),
    )


def stack_field(items: list, name: str, width: int) -> np.ndarray:
    """One field of several blocks or series, stacked along steps; bucket arrays are padded to `width`
    buckets with empty ones (left = right = count = 0), which no statistic counts."""
    parts = [getattr(item, name) for item in items]
    if parts[0].ndim == 2:
        parts = [p if p.shape[1] == width else np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts]
    return np.concatenate(parts)
