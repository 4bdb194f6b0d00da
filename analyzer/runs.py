"""Finding runs under the folders a user names: every directory that directly holds event files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .problems import Problem

EVENT_FILE_MARKER = "tfevents"


@dataclass
class Run:
    """One run: a directory with event files, named by its path relative to the folder given."""

    name: str
    directory: str
    event_files: list[str] = field(default_factory=list)  # in name order, as TensorBoard reads them


@dataclass
class Discovery:
    runs: list[Run]
    problems: list[Problem]


def is_event_file(name: str) -> bool:
    return EVENT_FILE_MARKER in name and not name.startswith(".")


def find_runs(roots: list[str], exclude: list[str] | None = None) -> Discovery:
    """Walk each root, following symlinked folders (runs are often linked into a sweep) but never into
    a folder already seen, so a symlink loop cannot trap the walk.

    `exclude` names directories never to descend into, such as the report's own output folder.
    """
    excluded = {os.path.realpath(p) for p in (exclude or [])}
    runs: list[Run] = []
    problems: list[Problem] = []
    for root in roots:
        found, root_problems = _runs_below(root, excluded)
        runs.extend(found)
        problems.extend(root_problems)
    _make_names_unique(runs, roots)
    return Discovery(runs=runs, problems=problems)


def _runs_below(root: str, excluded: set[str]) -> tuple[list[Run], list[Problem]]:
    problems: list[Problem] = []
    if not os.path.exists(root):
        return [], [Problem(root, "no such file or directory")]
    if os.path.isfile(root):
        if is_event_file(os.path.basename(root)):
            directory = os.path.dirname(root) or "."
            return [Run(os.path.basename(directory) or ".", directory, [root])], []
        return [], [Problem(root, "is a file, not an event file or a folder of runs")]

    def on_error(err: OSError) -> None:
        problems.append(Problem(err.filename or root, f"cannot read directory ({err.strerror})"))

    runs: list[Run] = []
    seen = {os.path.realpath(root)}
    for directory, subdirs, files in os.walk(root, onerror=on_error, followlinks=True):
        keep = []
        for d in sorted(subdirs):
            real = os.path.realpath(os.path.join(directory, d))
            if real not in excluded and real not in seen:
                seen.add(real)
                keep.append(d)
        subdirs[:] = keep
        event_files = sorted(f for f in files if is_event_file(f))
        if not event_files:
            continue
        rel = os.path.relpath(directory, root)
        name = Path(os.path.abspath(root)).name if rel == "." else Path(rel).as_posix()
        runs.append(Run(name, directory, [os.path.join(directory, f) for f in event_files]))
    if not runs and not problems:
        problems.append(Problem(root, "holds no event files (events.out.tfevents.*)"))
    return runs, problems


def _make_names_unique(runs: list[Run], roots: list[str]) -> None:
    """Two folders given on one command line may hold runs of the same relative name."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
    if all(n == 1 for n in seen.values()) or len(roots) == 1:
        return
    for run in runs:
        if seen[run.name] > 1:
            run.name = Path(os.path.relpath(run.directory, os.path.commonpath(roots))).as_posix()
