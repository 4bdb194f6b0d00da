"""A batch of runs: each analysed and rendered in parallel worker processes, results in run order.

A worker hands back what the outputs need of a run (its JSON, its index row, its page), never raw
histograms, so memory stays flat however many runs a sweep has.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from . import __version__
from .diagnosis import DEFAULT_THRESHOLDS, Thresholds
from .events import DEFAULT_LOSS_PATTERN, DEFAULT_TAG_PATTERN
from .jsonreport import run_document
from .outdir import write_atomic
from .pipeline import RunResult, analyse_run
from .problems import AnalyzerError, Problem
from .readers import READERS
from .report import IndexRow, index_row, render_run_page, run_view
from .runs import Run


@dataclass(frozen=True)
class BatchOptions:
    tag_pattern: str = DEFAULT_TAG_PATTERN
    reader: str = READERS[0]
    html: bool = True
    limits: Thresholds = DEFAULT_THRESHOLDS
    loss_pattern: str = DEFAULT_LOSS_PATTERN


@dataclass
class RunOutput:
    name: str
    document: dict  # the run's JSON
    row: IndexRow | None  # None without HTML
    page: tuple[str, str] | None  # (path relative to the output folder, HTML)
    problems: list[Problem] = field(default_factory=list)
    from_cache: bool = False

    @property
    def verdict(self) -> str:
        return self.document["verdict"]

    @property
    def finding_kinds(self) -> set[str]:
        """Kinds of the findings that set verdicts (not those the loss gate kept at low severity)."""
        return {f["kind"] for f in self.document["findings"] if not f["gated"]}


def process_runs(
    runs: list[Run],
    options: BatchOptions,
    workers: int | None = None,
    cache: RunCache | None = None,
    scheduler: str | None = None,
) -> Iterator[RunOutput]:
    """Outputs in the order of `runs`, from `workers` local processes (default: one per core) or from
    the Dask cluster at `scheduler`; runs whose event files are unchanged since the cached output was
    made are not read again."""
    keys = [cache.key(run, options) if cache else None for run in runs]
    cached = [cache.get(k) if cache else None for k in keys]
    todo = [run for run, hit in zip(runs, cached) if hit is None]
    job = partial(process_run, options=options)
    workers = min(workers or os.cpu_count() or 1, max(1, len(todo)))
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and not scheduler else None
    try:
        if scheduler:
            fresh = _on_dask(scheduler, job, todo)
        else:
            fresh = pool.map(job, todo, chunksize=1) if pool else map(job, todo)
        for key, hit in zip(keys, cached):
            output = hit if hit is not None else next(fresh)
            output.from_cache = hit is not None
            if cache and hit is None:
                cache.put(key, output)
            yield output
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        if cache:
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
        return analyse_run(run, options.tag_pattern, options.limits, options.reader, options.loss_pattern)
    except Exception as err:  # reported as that run's problem, with the run still listed
        empty = analyse_run(Run(run.name, run.directory, []), options.tag_pattern, options.limits)
        empty.problems.append(
            Problem(run.directory, f"internal error while analysing: {type(err).__name__}: {err}")
        )
        empty.diagnosis.reason = "could not be analysed (internal error; please report it)"
        return empty


class RunCache:
    """Outputs of runs, kept in the report folder and keyed by everything that makes them: each event
    file's path, size and modification time, the options and gradaudit's version (as coverage.py's
    HTML report keeps hashes of what it rendered)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def key(self, run: Run, options: BatchOptions) -> str:
        files = []
        for path in run.event_files:
            try:
                st = os.stat(path)
                files.append((path, st.st_size, st.st_mtime_ns))
            except OSError:
                files.append((path, None, None))  # unreadable now: never a hit
        described = [__version__, run.name, run.directory, files, asdict(options)]
        return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, key: str) -> RunOutput | None:
        try:
            with open(self.folder / key, "rb") as f:
                output = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
            return None
        return output if isinstance(output, RunOutput) else None

    def put(self, key: str, output: RunOutput) -> None:
        write_atomic(self.folder / key, pickle.dumps(output, protocol=pickle.HIGHEST_PROTOCOL))

    def forget_all_but(self, keys: list[str | None]) -> None:
        keep = set(keys)
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                if entry.name not in keep and len(entry.name) == 64:
                    entry.unlink(missing_ok=True)
