"""One run from files to diagnosis: read → statistics → trends → diagnosis → remedies."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from .diagnosis import DEFAULT_THRESHOLDS, Diagnosis, Thresholds, diagnose
from .events import DEFAULT_TAG_PATTERN, read_run
from .problems import Problem
from .readers import READERS
from .remedies import Remedy, remedies_for
from .runs import Run
from .stats import RunStats, run_stats
from .trends import RunTrends, run_trends


@dataclass
class RunResult:
    """Everything the report and the JSON need about one run; plain data, picklable."""

    run: Run
    stats: RunStats
    trends: RunTrends
    diagnosis: Diagnosis
    remedies: list[list[Remedy]]  # per finding, same order as diagnosis.findings
    encodings: list[str]
    other_histogram_tags: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def analyse_runs(
    runs: list[Run],
    tag_pattern: str = DEFAULT_TAG_PATTERN,
    workers: int | None = None,
    reader: str = READERS[0],
    limits: Thresholds = DEFAULT_THRESHOLDS,
) -> Iterator[RunResult]:
    """Results in the order of `runs`, analysed in `workers` processes (default: one per core).

    Each worker reads one run at a time and hands back statistics, never raw histograms, so memory
    stays flat however many runs there are.
    """
    job = partial(_analyse_safely, tag_pattern=tag_pattern, reader=reader, limits=limits)
    workers = min(workers or os.cpu_count() or 1, max(1, len(runs)))
    if workers == 1:
        yield from map(job, runs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(job, runs, chunksize=1)


def _analyse_safely(run: Run, tag_pattern: str, reader: str, limits: Thresholds) -> RunResult:
    """A bug met on one run's data must not cost the other runs their results."""
    try:
        return analyse_run(run, tag_pattern, limits, reader)
    except Exception as err:  # reported as that run's problem, with the run still listed
        empty = analyse_run(Run(run.name, run.directory, []), tag_pattern, limits, reader)
        empty.problems.append(
            Problem(run.directory, f"internal error while analysing: {type(err).__name__}: {err}")
        )
        empty.diagnosis.reason = "could not be analysed (internal error; please report it)"
        return empty


def analyse_run(
    run: Run,
    tag_pattern: str = DEFAULT_TAG_PATTERN,
    limits: Thresholds = DEFAULT_THRESHOLDS,
    reader: str = READERS[0],
) -> RunResult:
    data = read_run(run, tag_pattern, reader)
    stats = run_stats(data.series)
    trends = run_trends(stats)
    diagnosis = diagnose(stats, trends, limits)
    notes = []
    if data.restarted:
        notes.append(
            "the run restarted: a later event file went back to earlier steps; "
            "for each step the later file's histogram was used"
        )
    if not data.series:
        diagnosis.reason = _no_gradients_reason(data.other_histogram_tags, tag_pattern)
    return RunResult(
        run=run,
        stats=stats,
        trends=trends,
        diagnosis=diagnosis,
        remedies=[remedies_for(f) for f in diagnosis.findings],
        encodings=sorted({e for s in data.series for e in s.encodings}),
        other_histogram_tags=data.other_histogram_tags,
        problems=data.problems,
        notes=notes,
    )


def _no_gradients_reason(other_tags: list[str], tag_pattern: str) -> str:
    if not other_tags:
        return "no histograms in this run's event files"
    shown = ", ".join(other_tags[:5]) + (f" and {len(other_tags) - 5} more" if len(other_tags) > 5 else "")
    return (
        f"no gradient histograms (no tag matches {tag_pattern!r}); histogram tags found: {shown}; "
        "pass --tags REGEX to analyse them"
    )
