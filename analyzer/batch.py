"""A batch of runs: each analysed and rendered in parallel worker processes, results in run order.

A worker hands back what the outputs need of a run (its JSON, its index row, its page), never raw
histograms, so memory stays flat however many runs a sweep has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

from .cache import RunCache, RunOutput
from .facts import InternalError
from .jsonreport import run_document
from .options import DEFAULT_LOSS_PATTERN, DEFAULT_NORM_PATTERN, DEFAULT_TAG_PATTERN, READERS, ReadOptions
from .pipeline import RunResult, analyse_run
from .problems import AnalyzerError, Problem
from .report import render_run_page
from .runs import Run
from .thresholds import DEFAULT_THRESHOLDS, Thresholds
from .views import index_row, run_view


@dataclass(frozen=True)
class BatchOptions:
    tag_pattern: str = DEFAULT_TAG_PATTERN
    reader: str = READERS[0]
    html: bool = True
    limits: Thresholds = DEFAULT_THRESHOLDS
    loss_pattern: str = DEFAULT_LOSS_PATTERN
    norm_pattern: str = DEFAULT_NORM_PATTERN

    def read_options(self, processes: int = 1) -> ReadOptions:
        return ReadOptions(self.tag_pattern, self.loss_pattern, self.norm_pattern, self.reader, processes)


def process_runs(
    runs: list[Run],
    options: BatchOptions,
    workers: int | None = None,
    cache: RunCache | None = None,
    scheduler: str | None = None,
    executor: Executor | None = None,
    forget_others: bool = True,
) -> Iterator[RunOutput]:
    """Outputs in the order of `runs`, from `workers` local processes (default: one per core), from
    the Dask cluster at `scheduler`, or from a long-lived `executor` the caller owns; runs whose event
    files are unchanged since the cached output was made are not read again. `forget_others`: the
    cache keeps only these runs' entries (False where `runs` are a part of what is kept)."""
    keys = [cache.key(run, options) if cache else None for run in runs]
    cached = [cache.get(k) if cache else None for k in keys]
    todo = [run for run, hit in zip(runs, cached) if hit is None]
    processes = workers or os.cpu_count() or 1
    workers = min(processes, max(1, len(todo)))
    local = executor is None and not scheduler
    pool = None
    if workers > 1 and local:
        # Imported here: a re-run whose runs are all cached starts no process (multiprocessing's
        # import is a tenth of such a run's start-up).
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers)
    # Fewer runs than processes: the runs are analysed here, one by one, and processes started for
    # each large file read its byte ranges in parallel.
    reading_processes = processes if len(todo) < processes and local else 1
    job = partial(process_run, options=options, processes=reading_processes)
    try:
        if scheduler:
            fresh = _on_dask(scheduler, job, todo)
        else:
            fresh = (executor or pool).map(job, todo) if executor or pool else map(job, todo)
        for key, hit in zip(keys, cached):
            output = hit if hit is not None else next(fresh)
            output.from_cache = hit is not None
            if cache and hit is None:
                cache.put(key, output)
            yield output
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        if cache and forget_others:
            cache.forget_all_but(keys)


def _on_dask(scheduler: str, job, runs: list[Run]) -> Iterator[RunOutput]:
    """Each run a task on an existing Dask cluster (the optional extra gradaudit[dask]); results come
    back in run order, and the workers read the event files from where the paths point."""
    try:
        from distributed import Client
    except ImportError as err:
        raise AnalyzerError(scheduler, "--scheduler needs Dask: pip install 'gradaudit[dask]'") from err
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as err:
        raise AnalyzerError(scheduler, f"cannot reach the Dask scheduler ({err})") from err
    try:
        futures = client.map(job, runs, pure=False)
        for run, future in zip(runs, futures):
            try:
                yield future.result()
            except Exception as err:  # the cluster's failure, not the run's: stop, and say so plainly
                raise AnalyzerError(
                    scheduler,
                    f"the cluster failed on {run.name} ({type(err).__name__}: {err}); "
                    "is gradaudit installed on its workers?",
                ) from err
    finally:
        client.close()


def process_run(run: Run, options: BatchOptions, processes: int = 1) -> RunOutput:
    """`processes`: how many may read a large file's byte ranges in parallel."""
    result = _analyse_safely(run, options, processes)
    row, page = None, None
    if options.html:
        view = run_view(result)
        row, page = index_row(view), (f"runs/{view.page}", render_run_page(view))
    return RunOutput(run.name, run_document(result), row, page, result.problems)


def _analyse_safely(run: Run, options: BatchOptions, processes: int = 1) -> RunResult:
    """A bug met on one run's data must not cost the other runs their results."""
    try:
        return analyse_run(run, options.read_options(processes), options.limits)
    except Exception as err:  # reported as that run's problem, with the run still listed
        empty = analyse_run(Run(run.name, run.directory, []), options.read_options(), options.limits)
        empty.problems.append(
            Problem(run.directory, f"internal error while analysing: {type(err).__name__}: {err}")
        )
        empty.diagnosis.basis = InternalError()
        return empty
