"""A batch of runs: each analysed and rendered in parallel worker processes, results in run order.

A worker hands back what the outputs need of a run (its JSON, its index row, its page), never raw
histograms, so memory stays flat however many runs a sweep has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from .diagnosis import DEFAULT_THRESHOLDS, Thresholds
from .events import DEFAULT_TAG_PATTERN
from .jsonreport import run_document
from .pipeline import RunResult, analyse_run
from .problems import Problem
from .readers import READERS
from .report import IndexRow, index_row, render_run_page, run_view
from .runs import Run


@dataclass(frozen=True)
class BatchOptions:
    tag_pattern: str = DEFAULT_TAG_PATTERN
    reader: str = READERS[0]
    html: bool = True
    limits: Thresholds = DEFAULT_THRESHOLDS


@dataclass
class RunOutput:
    name: str
    document: dict  # the run's JSON
    row: IndexRow | None  # None without HTML
    page: tuple[str, str] | None  # (path relative to the output folder, HTML)
    problems: list[Problem] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.document["verdict"]

    @property
    def finding_kinds(self) -> set[str]:
        return {f["kind"] for f in self.document["findings"]}


def process_runs(runs: list[Run], options: BatchOptions, workers: int | None = None) -> Iterator[RunOutput]:
    """Outputs in the order of `runs`, from `workers` processes (default: one per core)."""
    job = partial(process_run, options=options)
    workers = min(workers or os.cpu_count() or 1, max(1, len(runs)))
    if workers == 1:
        yield from map(job, runs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(job, runs, chunksize=1)


def process_run(run: Run, options: BatchOptions) -> RunOutput:
    result = _analyse_safely(run, options)
    row, page = None, None
    if options.html:
        view = run_view(result)
        row, page = index_row(view), (f"runs/{view.page}", render_run_page(view))
    return RunOutput(run.name, run_document(result), row, page, result.problems)


def _analyse_safely(run: Run, options: BatchOptions) -> RunResult:
    """A bug met on one run's data must not cost the other runs their results."""
    try:
        return analyse_run(run, options.tag_pattern, options.limits, options.reader)
    except Exception as err:  # reported as that run's problem, with the run still listed
        empty = analyse_run(Run(run.name, run.directory, []), options.tag_pattern, options.limits)
        empty.problems.append(
            Problem(run.directory, f"internal error while analysing: {type(err).__name__}: {err}")
        )
        empty.diagnosis.reason = "could not be analysed (internal error; please report it)"
        return empty
