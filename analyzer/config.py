"""Settings a project keeps for its gate: thresholds from ``[tool.gradaudit.thresholds]`` of its
``pyproject.toml`` and from ``--threshold NAME=VALUE``, and a baseline file of accepted findings, so
that a CI gate fails only on new ones."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

from .problems import AnalyzerError
from .thresholds import DEFAULT_THRESHOLDS, Thresholds

BASELINE_VERSION = 1


def read_pyproject(path: Path) -> dict:
    """The ``[tool.gradaudit]`` table of a pyproject.toml ({} where the file or the table is absent)."""
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError as err:
            raise AnalyzerError(str(path), "reading pyproject.toml needs Python 3.11, or tomli") from err
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("gradaudit", {})
    except (OSError, ValueError) as err:
        raise AnalyzerError(str(path), f"not readable as TOML ({err})") from err
    if not isinstance(table, dict):
        raise AnalyzerError(str(path), "[tool.gradaudit] is not a table")
    return table


def thresholds_from(settings: dict, overrides: list[str], source: str) -> Thresholds:
    """DEFAULT_THRESHOLDS with the ``thresholds`` table of `settings` (from `source`), then each
    NAME=VALUE of `overrides` (the command line) applied."""
    values: dict[str, object] = {}
    table = settings.get("thresholds", {})
    if not isinstance(table, dict):
        raise AnalyzerError(source, "[tool.gradaudit.thresholds] is not a table")
    for name, value in table.items():
        values[name] = _value(name, value, source)
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep:
            raise AnalyzerError("--threshold", f"{item!r} is not NAME=VALUE")
        values[name.strip()] = _value(name.strip(), text.strip(), "--threshold")
    return replace(DEFAULT_THRESHOLDS, **values)


_FIELDS = {f.name: f for f in fields(Thresholds)}


def _value(name: str, value: object, source: str) -> float | int:
    if name not in _FIELDS:
        raise AnalyzerError(source, f"no threshold named {name!r}; see analyzer/thresholds.py")
    kind = int if isinstance(getattr(DEFAULT_THRESHOLDS, name), int) else float
    try:
        number = kind(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number:
        raise AnalyzerError(
            source, f"threshold {name} takes a{'n integer' if kind is int else ' number'}, not {value!r}"
        )
    return number


def baseline_entries(documents: list[dict]) -> list[dict]:
    """The findings that set verdicts, as a baseline accepts them: run and kind."""
    found = {(d["run"], f["kind"]) for d in documents for f in d["findings"] if not f["gated"]}
    return [{"run": run, "kind": kind} for run, kind in sorted(found)]


def write_baseline(path: Path, documents: list[dict]) -> None:
    text = json.dumps(
        {"baseline_version": BASELINE_VERSION, "accepted": baseline_entries(documents)}, indent=1
    )
    path.write_text(text + "\n", encoding="utf-8")


def read_baseline(path: Path) -> set[tuple[str, str]]:
    """(run, kind) pairs accepted. The file is untrusted input: plain JSON, every field checked."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        accepted = document["accepted"]
        pairs = {(entry["run"], entry["kind"]) for entry in accepted}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AnalyzerError(str(path), f"not a gradaudit baseline ({type(err).__name__})") from err
    if not all(isinstance(run, str) and isinstance(kind, str) for run, kind in pairs):
        raise AnalyzerError(str(path), "not a gradaudit baseline (runs and kinds must be text)")
    return pairs


def new_findings(document: dict, accepted: set[tuple[str, str]]) -> list[dict]:
    """The run's verdict-setting findings the baseline does not accept."""
    return [
        f for f in document["findings"] if not f["gated"] and (document["run"], f["kind"]) not in accepted
    ]
