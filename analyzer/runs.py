"""Finding runs under the folders a user names, naming them, and reading hyperparameters off names.

A run is a directory that directly holds event files, named by its path relative to the folder
given. Keras writes ``train/`` and ``validation/`` beside each other: those stay one run, named after
their parent. Remote folders (``s3://`` and other schemes) are walked through TensorBoard's own file
layer, which reads S3 with boto3.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .problems import Problem

EVENT_FILE_MARKER = "tfevents"
# Subfolders Keras's TensorBoard callback (and many scripts) write per split: parts of one run.
SPLIT_FOLDERS = ("train", "validation", "val", "eval", "test")


@dataclass
class Run:
    """One run: its name (path relative to the folder given), folder and event files in read order."""

    name: str
    directory: str
    event_files: list[str] = field(default_factory=list)
    hparams: dict[str, str] = field(default_factory=dict)  # from the folder names; the logs may add more


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
    excluded = {os.path.realpath(p) for p in (exclude or []) if "://" not in p}
    runs: list[Run] = []
    problems: list[Problem] = []
    for root in roots:
        found, root_problems = _runs_below(root, excluded)
        runs.extend(found)
        problems.extend(root_problems)
    _make_names_unique(runs, roots)
    for run in runs:
        run.hparams = hparams_from_name(run.name)
    return Discovery(runs=runs, problems=problems)


def _runs_below(root: str, excluded: set[str]) -> tuple[list[Run], list[Problem]]:
    if "://" in root:
        return _group(root, _walk_remote(root))
    if not os.path.exists(root):
        return [], [Problem(root, "no such file or directory")]
    if os.path.isfile(root):
        if is_event_file(os.path.basename(root)):
            directory = os.path.dirname(root) or "."
            return [Run(os.path.basename(os.path.abspath(directory)) or ".", directory, [root])], []
        return [], [Problem(root, "is a file, not an event file or a folder of runs")]
    return _group(root, _walk_local(root, excluded))


def _walk_local(root: str, excluded: set[str]):
    """(directory, sorted event file names) for every folder below root, then problems, as a list."""
    problems: list[Problem] = []

    def on_error(err: OSError) -> None:
        problems.append(Problem(err.filename or root, f"cannot read directory ({err.strerror})"))

    found = []
    seen = {os.path.realpath(root)}
    for directory, subdirs, files in os.walk(root, onerror=on_error, followlinks=True):
        keep = []
        for d in sorted(subdirs):
            real = os.path.realpath(os.path.join(directory, d))
            if real not in excluded and real not in seen:
                seen.add(real)
                keep.append(d)
        subdirs[:] = keep
        names = sorted(f for f in files if is_event_file(f))
        if names:
            found.append((directory, names))
    return found, problems


def _walk_remote(root: str):
    from tensorboard.compat.tensorflow_stub.io import gfile

    problems: list[Problem] = []
    found = []
    try:
        for directory, _subdirs, files in gfile.walk(root.rstrip("/")):
            names = sorted(f for f in files if is_event_file(f))
            if names:
                found.append((directory, names))
    except Exception as err:  # the storage layer's errors vary by scheme: report, do not crash
        problems.append(Problem(root, f"cannot list ({type(err).__name__}: {err})"))
    return found, problems


# A folder named by a Unix time (PyTorch's SummaryWriter.add_hparams names its child folder so).
_TIMESTAMP = re.compile(r"^\d{9,}(\.\d+)?$")


def _group(root: str, walked) -> tuple[list[Run], list[Problem]]:
    found, problems = walked
    by_run: dict[str, Run] = {}
    with_files = {d for d, _ in found}
    for directory, names in found:
        run_dir = directory
        parent, leaf = _split(directory)
        if leaf.lower() in SPLIT_FOLDERS and parent not in with_files and _below(parent, root):
            run_dir = parent  # train/ and validation/ are parts of their parent's run
        elif _TIMESTAMP.match(leaf) and parent in with_files and _below(parent, root):
            run_dir = parent  # PyTorch's add_hparams writes the run's hparams into <run>/<time.time()>/
        rel = _relative(run_dir, root)
        name = _basename(root) if rel == "." else rel
        run = by_run.setdefault(run_dir, Run(name, run_dir, []))
        run.event_files.extend(_join(directory, n) for n in names)
    runs = list(by_run.values())
    for run in runs:  # a run's files in time order: event file names start with their creation time
        run.event_files.sort(key=lambda p: (_split(p)[1], p))
    if not runs and not problems:
        problems.append(Problem(root, "holds no event files (events.out.tfevents.*)"))
    return runs, problems


def _split(path: str) -> tuple[str, str]:
    path = path.rstrip("/")
    head, _, tail = path.rpartition("/")
    return head, tail


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name if "://" in directory else os.path.join(directory, name)


def _below(path: str, root: str) -> bool:
    return len(path.rstrip("/")) >= len(root.rstrip("/")) and path.startswith(root.rstrip("/"))


def _relative(path: str, root: str) -> str:
    if "://" in root:
        rel = path.rstrip("/")[len(root.rstrip("/")) :].strip("/")
        return rel or "."
    return PurePosixPath(os.path.relpath(path, root)).as_posix()


def _basename(root: str) -> str:
    return _split(os.path.abspath(root) if "://" not in root else root)[1] or "."


def _make_names_unique(runs: list[Run], roots: list[str]) -> None:
    """Two folders given on one command line may hold runs of the same relative name."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
    for run in runs:
        if seen[run.name] > 1:
            run.name = run.directory


_TOKEN = re.compile(r"\d*\.?\d+(?:e[-+]?\d+)?(?![A-Za-z])|[A-Za-z][A-Za-z0-9.]*", re.IGNORECASE)
_NUMBER = re.compile(r"^\d*\.?\d+(e[-+]?\d+)?$", re.IGNORECASE)
_FLAG = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


# Names that are hyperparameters wherever they stand, so `act_relu` or `opt-adam` is read as a pair
# although its value is not a number.
WELL_KNOWN_HPARAMS = frozenset(
    "lr learning_rate act activation opt optimizer bs batch batch_size dropout depth width layers "
    "units init initializer seed wd weight_decay momentum norm epochs steps".split()
)
# Of them, those whose value is a number: `experiment_lr_0.001` holds lr=0.001 wherever the pair
# stands. Any other `key_number` (version_0, DQN_1, run_2, epoch_10, checkpoint_500) is a name.
NUMERIC_HPARAMS = frozenset(
    "lr learning_rate bs batch batch_size dropout depth width layers units seed wd weight_decay "
    "momentum epochs steps".split()
)


def hparams_from_name(name: str) -> dict[str, str]:
    """Hyperparameters spelled in folder names, where they are unambiguous: ``lr=0.01,act=relu,bn``
    (any keys and values; a bare word between pairs is a flag, ``bn=true``); a name made wholly of
    alternating well-known keys and their values, ``lr_0.01-act_relu`` or ``opt-adam_lr-3e-4``; and
    anywhere in a name, a well-known numeric key and its number, ``experiment_lr_0.001``.
    ``dead_units_negative_bias``, ``elu_small_init_16``, ``version_0``, ``DQN_1`` and
    ``imdb-final-model-1690485375`` give none."""
    out: dict[str, str] = {}
    for part in name.split("/"):
        if part.lower() in SPLIT_FOLDERS:
            continue
        items = [p for p in re.split(r"[,;&\s]+", part) if p]
        if any("=" in item for item in items):
            for item in items:
                key, equals, value = item.partition("=")
                if equals and key and value:
                    out[key] = value
                elif not equals and _FLAG.match(item):
                    out[item] = "true"
            continue
        tokens = _TOKEN.findall(part)
        keys, values = tokens[0::2], tokens[1::2]
        if len(tokens) >= 2 and len(tokens) % 2 == 0 and all(k.lower() in WELL_KNOWN_HPARAMS for k in keys):
            out.update(zip(keys, values))
            continue
        for key, value in zip(tokens, tokens[1:]):
            if key.lower() in NUMERIC_HPARAMS and _NUMBER.match(value):
                out[key] = value
    return out
