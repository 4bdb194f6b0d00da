"""A batch of runs: each analysed and rendered in parallel worker processes, results in run order.

A worker hands back what the outputs need of a run (its JSON, its index row, its page), never raw
histograms, so memory stays flat however many runs a sweep has.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from . import __version__
from .diagnosis import DEFAULT_THRESHOLDS, Thresholds
from .events import DEFAULT_LOSS_PATTERN, DEFAULT_NORM_PATTERN, DEFAULT_TAG_PATTERN
from .jsonreport import run_document
from .outdir import write_atomic
from .pipeline import RunResult, analyse_run
from .problems import AnalyzerError, Problem
from .readers import READERS
from .report import IndexRow, depth_sparkline, index_row, render_run_page, run_page_name, run_view
from .runs import Run


@dataclass(frozen=True)
class BatchOptions:
    tag_pattern: str = DEFAULT_TAG_PATTERN
    reader: str = READERS[0]
    html: bool = True
    limits: Thresholds = DEFAULT_THRESHOLDS
    loss_pattern: str = DEFAULT_LOSS_PATTERN
    norm_pattern: str = DEFAULT_NORM_PATTERN


@dataclass
class RunOutput:
    name: str
    document: dict  # the run's JSON
    row: IndexRow | None  # None without HTML
    page: tuple[str, str] | None  # (path relative to the output folder, HTML)
    problems: list[Problem] = field(default_factory=list)
    from_cache: bool = False
    # The document as one line of JSON, encoded once, where the run was analysed: the JSON output
    # and the cache write it as it is (a re-run of a sweep spent a seventh of its time encoding).
    document_line: str = ""

    def __post_init__(self) -> None:
        if not self.document_line:
            self.document_line = json.dumps(self.document, allow_nan=False)

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
        return analyse_run(
            run,
            options.tag_pattern,
            options.limits,
            options.reader,
            options.loss_pattern,
            processes,
            options.norm_pattern,
        )
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

    def __init__(self, folder: Path, holds_page: Callable[[str], bool] = lambda rel: False):
        """`holds_page`: whether the report folder still holds a page an earlier report wrote. The
        cache keeps no HTML: a hit needs its page in place, so nothing read back is ever written."""
        self.folder = folder
        self.holds_page = holds_page

    def key(self, run: Run, options: BatchOptions) -> str:
        files = []
        for path in run.event_files:
            try:
                st = os.stat(path)
                files.append((path, st.st_size, st.st_mtime_ns))
            except OSError:
                files.append((path, None, None))  # unreadable now: never a hit
        described = [__version__, run.name, run.directory, files, _described(options)]
        return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, key: str) -> RunOutput | None:
        """The cached output, or None. A report folder is shared (committed, unpacked, handed over
        as a CI artifact) and its cache keys can be predicted, so an entry is untrusted input: plain
        JSON, every field checked, and anything damaged or crafted a miss. Nothing in it can run."""
        try:
            with open(self.folder / key, "rb") as f:
                output = _output_from_json(f.read())
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None
        if output.page is not None and not self.holds_page(output.page[0]):
            return None
        return output

    def put(self, key: str, output: RunOutput) -> None:
        write_atomic(self.folder / key, _output_to_json(output))

    def forget_all_but(self, keys: list[str | None]) -> None:
        keep = set(keys)
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                if entry.name not in keep and len(entry.name) == 64:
                    entry.unlink(missing_ok=True)


@lru_cache(maxsize=8)
def _described(options: BatchOptions) -> dict:
    """The options as plain data, once per options (asdict copies every threshold: a tenth of a
    cached re-run when made per run)."""
    return asdict(options)


def _output_to_json(output: RunOutput) -> bytes:
    """Two lines of JSON: what the index and the terminal need of the run, then its document."""
    row = asdict(output.row) if output.row else None
    if row:
        del row["sparkline"]  # drawn again from its numbers: no markup is read back
    head = {
        "name": output.name,
        "row": row,
        "page": output.page[0] if output.page else None,
        "problems": [[p.path, p.message] for p in output.problems],
    }
    return f"{json.dumps(head)}\n{output.document_line}".encode()


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _output_from_json(entry: bytes) -> RunOutput:
    """Raises ValueError, TypeError or KeyError on anything but what _output_to_json writes."""
    head_line, _, document_line = entry.partition(b"\n")
    if b"\n" in document_line:  # the JSON output writes it as one line
        raise ValueError("not one line")
    data = json.loads(head_line)
    # NaN and Infinity are no JSON: the output, which writes the line as it is, must stay JSON.
    document = json.loads(document_line, parse_constant=_not_json)
    name = data["name"]
    if not isinstance(name, str) or not isinstance(document, dict):
        raise TypeError("not a cached run")
    for field_name, kind in (("verdict", str), ("reason", str), ("findings", list), ("layers", list)):
        if not isinstance(document.get(field_name), kind):
            raise TypeError(f"document.{field_name}")
    if not all(isinstance(f, dict) and isinstance(f.get("kind"), str) for f in document["findings"]):
        raise TypeError("document.findings")
    page = data["page"]
    if page is not None and page != f"runs/{run_page_name(name)}":
        raise TypeError("page")
    problems = [Problem(str(path), str(message)) for path, message in data["problems"]]
    row = _row_from_json(data["row"])
    page_and_html = (page, "") if page else None
    return RunOutput(name, document, row, page_and_html, problems, document_line=document_line.decode())


def _row_from_json(row: dict | None) -> IndexRow | None:
    if row is None:
        return None
    if set(row) != {f.name for f in fields(IndexRow)} - {"sparkline"}:
        raise TypeError("row")
    if not all(
        isinstance(row[k], str)
        for k in ("name", "page", "verdict", "reason", "worst_layer", "growth_text", "judged")
    ):
        raise TypeError("row text")
    if not all(isinstance(row[k], (int, float)) or row[k] is None for k in ("depth_ratio", "growth")):
        raise TypeError("row numbers")
    if not all(isinstance(row[k], int) for k in ("steps", "problems")):
        raise TypeError("row counts")
    if row["severity"] not in (None, "low", "medium", "high", "critical"):
        raise TypeError("row severity")
    profile = row["depth_profile"]
    if not (isinstance(profile, list) and all(isinstance(v, (int, float)) or v is None for v in profile)):
        raise TypeError("row depth_profile")
    hparams = row["hparams"]
    if not (isinstance(hparams, dict) and all(isinstance(v, str) for v in hparams.values())):
        raise TypeError("row hparams")
    values = np.array([np.nan if v is None else v for v in profile], dtype=float)
    return IndexRow(**row, sparkline=depth_sparkline(values, row["name"]))
