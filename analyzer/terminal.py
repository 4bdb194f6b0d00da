"""What a person reads on the terminal: runs worst first, verdicts in colour where it helps, the runs
that tripped --fail-on, and a link to the report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from .config import new_findings
from .reasons import judged_words
from .vocabulary import Severity, Verdict, triage_rank

_COLOUR = {
    Verdict.EXPLODING: "31",
    Verdict.VANISHING: "35",
    Verdict.DEAD_UNITS: "33",
    Verdict.UNSTABLE: "91",
    Verdict.STALLED: "36",
    Verdict.INSUFFICIENT_DATA: "2",
    Verdict.HEALTHY: "32",
}


def worst_first(documents: list[dict]) -> list[dict]:
    """Run documents ordered as a person triages them."""

    def rank(doc: dict) -> tuple:
        ranked = [f["severity"] for f in doc["findings"] if not f["gated"]]
        worst = max(ranked, key=lambda s: Severity(s).rank, default=None)
        return (*triage_rank(doc["verdict"], worst), doc["run"])

    return sorted(documents, key=rank)


def use_colour(stream: TextIO) -> bool:
    """Colour only for a person at a terminal, and never when NO_COLOR is set (no-color.org)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def verdict_line(doc: dict, colour: bool) -> str:
    verdict = f"{doc['verdict']:>17}"
    if colour:
        verdict = f"\033[{_COLOUR.get(doc['verdict'], '0')}m{verdict}\033[0m"
    problems = f"  [{len(doc['errors'])} read problem(s)]" if doc["errors"] else ""
    judged = doc.get("judged") or []
    said = judged_words(judged, doc["verdict"], doc.get("evidence", ""))
    only = f" ({said})" if said else ""
    return f"{verdict}{only}  {doc['run']}  — {doc['reason']}{problems}"


def tripped(
    documents: list[dict], fail_on: set[str], accepted: set[tuple[str, str]] = frozenset()
) -> list[dict]:
    """Runs with a verdict-setting finding of a kind in `fail_on` that the baseline does not accept
    (`accepted`: run and kind pairs), worst first."""
    return [d for d in worst_first(documents) if {f["kind"] for f in new_findings(d, accepted)} & fail_on]


def judged_nothing(documents: list[dict]) -> bool:
    """No run had gradient evidence to judge: a gate that passed would have passed on nothing."""
    return all(d["verdict"] == Verdict.INSUFFICIENT_DATA for d in documents)


def file_link(index: str) -> str:
    """A file:// address that terminals make clickable."""
    return Path(index).resolve().as_uri()
