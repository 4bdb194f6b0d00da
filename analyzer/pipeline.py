"""One run from files to diagnosis: read → statistics → trends → diagnosis → remedies."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    hparams: dict[str, str] = field(default_factory=dict)  # from folder names, then as logged


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
        hparams={**run.hparams, **data.hparams},
    )


def _no_gradients_reason(other_tags: list[str], tag_pattern: str) -> str:
    if not other_tags:
        return "no histograms in this run's event files"
    shown = ", ".join(other_tags[:5]) + (f" and {len(other_tags) - 5} more" if len(other_tags) > 5 else "")
    return (
        f"no gradient histograms (no tag matches {tag_pattern!r}); histogram tags found: {shown}; "
        "pass --tags REGEX to analyse them"
    )
