"""A run's event files → one histogram series per gradient tag, in depth order.

Both encodings become the same plain data: per step, buckets as (left edge, right edge, count), plus
the exact moments (num, sum, sum of squares) where the legacy ``HistogramProto`` carries them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .problems import Problem
from .readers import READERS, Histogram, read_file
from .runs import Run

# The default choice of gradient tags: any tag that mentions a gradient ("grad", "gradient", "Grad").
DEFAULT_TAG_PATTERN = r"(?i)grad"


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


def read_run(run: Run, tag_pattern: str = DEFAULT_TAG_PATTERN, reader: str = READERS[0]) -> RunData:
    """Read every event file of a run in name order; a later file's value for a step wins."""
    selected = re.compile(tag_pattern)
    by_tag: dict[str, dict[int, Histogram]] = {}
    other_tags: dict[str, None] = {}
    problems: list[Problem] = []
    restarted = False
    for path in run.event_files:
        file_histograms, file_problems = read_file(path, reader)
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


def _to_series(tag: str, by_step: dict[int, Histogram]) -> HistogramSeries:
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
