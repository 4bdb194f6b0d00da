"""The ``gradaudit`` command: arguments, progress, exit codes. Glue only."""

from __future__ import annotations

import argparse
import os
import re
import sys

# Exit codes, in one place.
OK, FOUND, ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .vocabulary import EVERY_KIND

    parser = argparse.ArgumentParser(
        prog="gradaudit",
        description="Diagnose vanishing, exploding and dead gradients from TensorBoard histogram logs.",
    )
    parser.add_argument("--version", action="version", version=f"gradaudit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report",
        help="analyse runs and write an HTML report (and JSON)",
        description="Every directory below PATH that directly holds events.out.tfevents.* files is a run.",
    )
    report.add_argument(
        "paths", nargs="+", metavar="PATH", help="a run folder, a folder of runs, or an event file"
    )
    report.add_argument(
        "-o",
        "--output",
        metavar="OUTDIR",
        default="gradaudit-report",
        help="folder for index.html and one page per run (default: gradaudit-report)",
    )
    report.add_argument("--json", metavar="FILE", help="also write results as JSON to FILE ('-' for stdout)")
    report.add_argument("--no-html", action="store_true", help="write no HTML (with --json, for CI jobs)")
    report.add_argument(
        "--tags",
        metavar="REGEX",
        default=None,
        help="gradient tags to analyse (Python regex, searched anywhere in the tag); "
        "default: tags containing 'grad', any case",
    )
    report.add_argument(
        "--loss-tags",
        metavar="REGEX",
        default=None,
        help="loss scalars to read as the second symptom (Python regex); default: tags with 'loss' as a "
        "word (epoch_loss, probe/loss, Loss/train, train_loss); validation losses are told apart by "
        "their folder or tag; '^$' reads none",
    )
    report.add_argument(
        "--norm-tags",
        metavar="REGEX",
        default=None,
        help="gradient-norm scalars to read where a run has no gradient histograms (Python regex); "
        "default: Lightning's grad_2.0_norm_total and grad_2.0_norm/<parameter>, Hugging Face's "
        "train/grad_norm, grad_norm, grad/norm, gradient_norm and grads/<parameter>; '^$' reads none",
    )
    report.add_argument(
        "--fail-on",
        metavar="KIND[,KIND]",
        default="",
        help=f"exit with {FOUND} when a run has a finding of these kinds "
        f"({', '.join(EVERY_KIND)}, or 'any', which includes stalled and unstable); findings the loss gate "
        "kept at low severity do not count",
    )
    report.add_argument(
        "-j",
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="analyse runs in N processes (default: one per core); results do not depend on N",
    )
    report.add_argument(
        "--reader",
        choices=("streaming", "tensorboard"),
        default="streaming",
        help="streaming (default): gradaudit's record reader with EventAccumulator's rules, ~4x faster; "
        "tensorboard: TensorBoard's EventAccumulator itself. Both give identical results",
    )
    report.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="analyse runs on this existing Dask cluster instead of local processes (gradaudit[dask]); "
        "its workers must reach the same paths",
    )
    report.add_argument(
        "--no-cache",
        action="store_true",
        help="re-read every run; by default runs whose event files are unchanged (size and modification "
        "time) since the last report into the same folder are taken from its cache",
    )
    report.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a threshold of analyzer/thresholds.py (repeatable); over those of [tool.gradaudit.thresholds] "
        "in pyproject.toml",
    )
    report.add_argument(
        "--config",
        metavar="FILE",
        default="pyproject.toml",
        help="the pyproject.toml whose [tool.gradaudit] table holds thresholds, fail-on and baseline "
        "(default: ./pyproject.toml, where it exists)",
    )
    report.add_argument(
        "--baseline",
        metavar="FILE",
        default=None,
        help="accepted findings (run and kind): --fail-on trips only on findings not in it",
    )
    report.add_argument(
        "--write-baseline",
        metavar="FILE",
        default=None,
        help="write this report's verdict-setting findings to FILE as the accepted ones",
    )
    report.add_argument(
        "--lock-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for another report writing the same output folder (default: 10)",
    )
    report.add_argument(
        "--pass-without-data",
        action="store_true",
        help="with --fail-on, exit 0 even when no run could be judged (by default a gate that judged "
        f"nothing exits {ERROR})",
    )
    report.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only problems, the runs that tripped --fail-on and the summary line",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pathlib import Path

    from .config import read_pyproject, thresholds_from
    from .problems import AnalyzerError

    try:
        settings = read_pyproject(Path(args.config))
        args.limits = thresholds_from(settings, args.threshold, args.config)
        args.baseline = args.baseline or settings.get("baseline")
        configured = settings.get("fail-on", "")
        configured = configured if isinstance(configured, str) else ",".join(map(str, configured))
        fail_on = _parse_fail_on(args.fail_on or configured)
        for pattern in (args.tags, args.loss_tags, args.norm_tags):
            if pattern is not None:
                re.compile(pattern)
    except (AnalyzerError, ValueError, re.error) as err:
        print(f"gradaudit: error: {err}", file=sys.stderr)
        return ERROR
    return _report(args, fail_on)


def _with_progress(outputs, total: int, quiet: bool):
    """A progress bar on stderr for batches, only when a person watches (a terminal)."""
    if quiet or total < 2 or not sys.stderr.isatty():
        return outputs
    from tqdm import tqdm

    return tqdm(outputs, total=total, unit="run", file=sys.stderr, leave=False)


def _parse_fail_on(text: str) -> set[str]:
    from .vocabulary import EVERY_KIND

    kinds = {k.strip() for k in text.split(",") if k.strip()}
    if "any" in kinds:
        return set(EVERY_KIND)
    unknown = kinds - set(EVERY_KIND)
    if unknown:
        raise ValueError(
            f"--fail-on: unknown kind {', '.join(sorted(unknown))}; choose from {', '.join(EVERY_KIND)}"
        )
    return kinds


def _report(args: argparse.Namespace, fail_on: set[str]) -> int:
    # Heavy imports only once arguments are known, so --help stays instant.
    from pathlib import Path

    from .batch import BatchOptions, process_runs
    from .cache import RunCache
    from .config import read_baseline, write_baseline
    from .jsonreport import document, document_text
    from .options import DEFAULT_LOSS_PATTERN, DEFAULT_NORM_PATTERN, DEFAULT_TAG_PATTERN
    from .outdir import ReportFolder, write_json_file
    from .problems import AnalyzerError
    from .report import render_index
    from .runs import find_runs
    from .terminal import file_link, judged_nothing, tripped, use_colour, verdict_line, worst_first

    if args.workers is not None and args.workers < 1:
        print("gradaudit: error: --workers must be at least 1", file=sys.stderr)
        return ERROR
    out_dir = None if args.no_html else args.output
    discovery = find_runs(args.paths, exclude=[out_dir] if out_dir else None)
    for problem in discovery.problems:
        print(f"gradaudit: {problem}", file=sys.stderr)
    if not discovery.runs:
        print("gradaudit: error: nothing to analyse (no event files found)", file=sys.stderr)
        return ERROR
    options = BatchOptions(
        tag_pattern=args.tags or DEFAULT_TAG_PATTERN,
        reader=args.reader,
        html=bool(out_dir),
        loss_pattern=args.loss_tags if args.loss_tags is not None else DEFAULT_LOSS_PATTERN,
        norm_pattern=args.norm_tags if args.norm_tags is not None else DEFAULT_NORM_PATTERN,
        limits=args.limits,
    )
    documents, lines, rows, counts = [], [], [], {}
    folder = None
    try:
        folder = ReportFolder(out_dir, args.lock_wait) if out_dir else None
        if folder:
            folder.check("index.html")
        cache = (
            RunCache(folder.root / ".gradaudit-cache", folder.holds) if folder and not args.no_cache else None
        )
        outputs = process_runs(discovery.runs, options, args.workers, cache, args.scheduler)
        for output in _with_progress(outputs, len(discovery.runs), args.quiet):
            for problem in output.problems:
                print(f"gradaudit: {problem}", file=sys.stderr)
            documents.append(output.document)
            lines.append(output.document_line)
            counts[output.verdict] = counts.get(output.verdict, 0) + 1
            if folder and output.page:
                (folder.keep if output.from_cache else folder.write)(*output.page)
                rows.append(output.row)
        if folder:
            folder.write(
                "index.html", render_index(rows, discovery.problems, confidence=args.limits.confidence)
            )
            folder.close()
        if args.json:
            write_json_file(args.json, document_text(document(documents, discovery.problems), lines))
        if args.write_baseline:
            write_baseline(Path(args.write_baseline), documents)
        accepted = read_baseline(Path(args.baseline)) if args.baseline else set()
    except (AnalyzerError, OSError) as err:
        if isinstance(err, AnalyzerError):
            print(f"gradaudit: error: {err}", file=sys.stderr)
        else:
            print(f"gradaudit: error: {err.filename or out_dir}: {err.strerror}", file=sys.stderr)
        if folder:
            folder.abort()
        return ERROR
    colour = use_colour(sys.stderr)
    if not args.quiet:
        for doc in worst_first(documents):
            print(verdict_line(doc, colour), file=sys.stderr)
    failing = tripped(documents, fail_on, accepted)
    if failing:
        print(
            f"gradaudit: --fail-on {','.join(sorted(fail_on))}: {len(failing)} run(s) tripped it",
            file=sys.stderr,
        )
        if accepted:
            print(f"gradaudit: findings accepted by {args.baseline} do not count", file=sys.stderr)
        if args.quiet:  # the lines above were not printed: the runs that fail the gate always are
            for doc in failing:
                print(verdict_line(doc, colour), file=sys.stderr)
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    print(f"gradaudit: {len(documents)} run(s): {summary}", file=sys.stderr)
    if not any(doc["layers"] or not doc["errors"] for doc in documents):
        print("gradaudit: error: no run could be read (see the problems above)", file=sys.stderr)
        return ERROR
    if out_dir:
        print(f"gradaudit: report: {file_link(os.path.join(out_dir, 'index.html'))}", file=sys.stderr)
    if fail_on and judged_nothing(documents) and not args.pass_without_data:
        print(
            f"gradaudit: error: --fail-on judged nothing: none of the {len(documents)} run(s) had gradient "
            "evidence to judge (--pass-without-data to pass anyway)",
            file=sys.stderr,
        )
        return ERROR
    return FOUND if failing else OK


if __name__ == "__main__":
    sys.exit(main())
