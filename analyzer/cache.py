"""A run's output as a worker hands it back (its JSON, its index row, its page), and the cache of the
outputs of runs whose event files did not change, kept in the report folder as plain JSON."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import __version__
from .outdir import write_atomic
from .problems import Problem
from .runs import Run
from .views import IndexRow, depth_sparkline, run_page_name
from .vocabulary import Severity


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


class RunCache:
    """Outputs of runs, kept in the report folder and keyed by everything that makes them: each event
    file's path, size and modification time, the options and gradaudit's version (as coverage.py's
    HTML report keeps hashes of what it rendered)."""

    def __init__(self, folder: Path, holds_page: Callable[[str], bool] = lambda rel: False):
        """`holds_page`: whether the report folder still holds a page an earlier report wrote. The
        cache keeps no HTML: a hit needs its page in place, so nothing read back is ever written."""
        self.folder = folder
        self.holds_page = holds_page

    def key(self, run: Run, options) -> str:
        """`options`: the batch's options (a frozen dataclass), part of what makes an output."""
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
def _described(options) -> dict:
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
    if row["severity"] is not None and row["severity"] not in tuple(Severity):
        raise TypeError("row severity")
    profile = row["depth_profile"]
    if not (isinstance(profile, list) and all(isinstance(v, (int, float)) or v is None for v in profile)):
        raise TypeError("row depth_profile")
    hparams = row["hparams"]
    if not (isinstance(hparams, dict) and all(isinstance(v, str) for v in hparams.values())):
        raise TypeError("row hparams")
    values = np.array([np.nan if v is None else v for v in profile], dtype=float)
    return IndexRow(**row, sparkline=depth_sparkline(values, row["name"]))
