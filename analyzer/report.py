"""The report: results as plain views, rendered with Jinja2 (autoescape on) into a self-contained folder.

Also the JSON for machines. Nothing here decides what is wrong; it presents what the diagnosis found.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from . import __version__, charts
from .pipeline import RunResult
from .problems import AnalyzerError, Problem
from .trends import log10_positive

SCHEMA_VERSION = 1
MANIFEST = ".gradaudit-manifest.json"
GENERATOR = "gradaudit"
MAX_LINES_CHART_LAYERS = 6
_UMASK = os.umask(0)
os.umask(_UMASK)


# --- views: plain data for the templates ---------------------------------------------------------


@dataclass
class LayerRow:
    depth: int
    tag: str
    verdict: str
    rms_first: float
    rms_last: float
    rms_exact: bool
    zero_share_last: float
    max_abs: float
    trend: str  # "+0.123 [−0.01, +0.2] dec/1k steps" or "—"
    steps: int


@dataclass
class RunView:
    name: str
    page: str  # file name of the run page, relative to runs/
    verdict: str
    reason: str
    worst_layer: str
    depth_ratio: float  # log10 first/last layer RMS, median over steps
    growth: float  # decades per 1k steps of the global norm
    growth_ci: tuple[float, float]
    steps: int
    last_step: int
    layers: int
    encodings: list[str]
    findings: list[dict] = field(default_factory=list)
    layer_rows: list[LayerRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    other_histogram_tags: list[str] = field(default_factory=list)
    sparkline: Markup = Markup("")
    heatmap: Markup = Markup("")
    over_steps: Markup = Markup("")
    profile: Markup = Markup("")


def run_page_name(run_name: str) -> str:
    """A safe, unique file name for any run name (which comes from untrusted folder names)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name).strip("._")[:60] or "run"
    return f"{slug}-{hashlib.sha1(run_name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}.html"


def run_view(result: RunResult) -> RunView:
    stats, trends, diagnosis = result.stats, result.trends, result.diagnosis
    log_rms = log10_positive(stats.rms)
    finite_ratio = trends.depth_log10_ratio[np.isfinite(trends.depth_log10_ratio)]
    g = trends.global_trend
    view = RunView(
        name=result.run.name,
        page=run_page_name(result.run.name),
        verdict=diagnosis.verdict,
        reason=diagnosis.reason,
        worst_layer=_worst_layer(result),
        depth_ratio=float(np.median(finite_ratio)) if finite_ratio.size else math.nan,
        growth=g.decades_per_1k_steps if g else math.nan,
        growth_ci=(g.ci_low, g.ci_high) if g else (math.nan, math.nan),
        steps=len(stats.steps),
        last_step=int(stats.steps[-1]) if len(stats.steps) else 0,
        layers=len(stats.layers),
        encodings=result.encodings,
        problems=result.problems,
        notes=result.notes,
        other_histogram_tags=result.other_histogram_tags,
    )
    view.findings = [{"finding": f, "remedies": r} for f, r in zip(diagnosis.findings, result.remedies)]
    view.layer_rows = [_layer_row(result, i) for i in range(len(stats.layers))]
    last_column = log_rms[stats.depth_layers, -1] if len(stats.steps) else np.zeros(0)
    view.sparkline = charts.sparkline(last_column, f"depth profile of {result.run.name}")
    if len(stats.steps):
        view.heatmap = charts.heatmap(stats.tags, stats.steps, log_rms, stats.nonfinite)
        view.over_steps = charts.magnitude_over_steps(
            stats.tags, stats.steps, log_rms, trends.layer_trends, _layers_to_draw(result)
        )
        view.profile = charts.depth_profile(stats.tags, stats.depth_layers, stats.steps, log_rms)
    return view


def _layers_to_draw(result: RunResult) -> list[int]:
    """First, last and the affected depth layers: the lines that tell the story, at most six."""
    depth = list(result.stats.depth_layers)
    chosen = [depth[0], depth[-1]] if depth else []
    for f in result.diagnosis.findings:
        chosen += [result.stats.tags.index(t) for t in f.layers if result.stats.tags.index(t) in depth]
    chosen += depth[1:-1]
    unique = list(dict.fromkeys(chosen))[:MAX_LINES_CHART_LAYERS]
    return sorted(unique)


def _worst_layer(result: RunResult) -> str:
    for f in result.diagnosis.findings:
        if f.layers:
            return f.layers[0]
    return ""


def _layer_row(result: RunResult, i: int) -> LayerRow:
    layer, trend = result.stats.layers[i], result.trends.layer_trends[i]
    finite = np.flatnonzero(np.isfinite(layer.rms))
    first = float(layer.rms[finite[0]]) if finite.size else math.nan
    last = float(layer.rms[finite[-1]]) if finite.size else math.nan
    trend_text = (
        f"{trend.decades_per_1k_steps:+.3f} [{trend.ci_low:+.3f}, {trend.ci_high:+.3f}]" if trend else "—"
    )
    return LayerRow(
        depth=i,
        tag=layer.tag,
        verdict=result.diagnosis.layer_verdicts[i] if result.diagnosis.layer_verdicts else "",
        rms_first=first,
        rms_last=last,
        rms_exact=bool(layer.rms_exact.all()),
        zero_share_last=float(layer.zero_share[finite[-1]]) if finite.size else math.nan,
        max_abs=float(np.nanmax(layer.max_abs)) if np.isfinite(layer.max_abs).any() else math.nan,
        trend=trend_text,
        steps=len(layer.steps),
    )


# --- JSON -----------------------------------------------------------------------------------------


def results_json(results: list[RunResult], problems: list[Problem]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": GENERATOR,
        "version": __version__,
        "runs": [_run_json(r) for r in results],
        "errors": [str(p) for p in problems],
    }


def _run_json(result: RunResult) -> dict:
    view_rows = [_layer_row(result, i) for i in range(len(result.stats.layers))]
    g = result.trends.global_trend
    return _clean(
        {
            "run": result.run.name,
            "path": result.run.directory,
            "verdict": result.diagnosis.verdict,
            "reason": result.diagnosis.reason,
            "steps": [int(s) for s in result.stats.steps],
            "encodings": result.encodings,
            "global_norm_trend": None
            if g is None
            else {"decades_per_1k_steps": g.decades_per_1k_steps, "ci95": [g.ci_low, g.ci_high], "r2": g.r2},
            "findings": [
                {
                    "kind": f.kind,
                    "severity": f.severity,
                    "summary": f.summary,
                    "layers": f.layers,
                    "steps": f.steps,
                    "evidence": f.evidence,
                    "threshold": f.threshold,
                    "remedies": [r.action for r in remedies],
                }
                for f, remedies in zip(result.diagnosis.findings, result.remedies)
            ],
            "layers": [
                {
                    "tag": row.tag,
                    "depth": row.depth,
                    "verdict": row.verdict,
                    "steps": row.steps,
                    "rms_first": row.rms_first,
                    "rms_last": row.rms_last,
                    "rms_exact": row.rms_exact,
                    "zero_share_last": row.zero_share_last,
                    "max_abs": row.max_abs,
                    "trend_decades_per_1k_steps": _trend_json(result.trends.layer_trends[row.depth]),
                }
                for row in view_rows
            ],
            "other_histogram_tags": result.other_histogram_tags,
            "notes": result.notes,
            "errors": [str(p) for p in result.problems],
        }
    )


def _trend_json(trend):
    if trend is None:
        return None
    return {"slope": trend.decades_per_1k_steps, "ci95": [trend.ci_low, trend.ci_high], "r2": trend.r2}


def _clean(value):
    """JSON has no NaN/Infinity: write null instead; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# --- rendering ------------------------------------------------------------------------------------


def template_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_templates_dir())),
        autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sci"] = _sci
    env.filters["pct"] = lambda v: "—" if not _finite(v) else f"{100 * v:.1f} %"
    env.filters["signed"] = lambda v, digits=2: "—" if not _finite(v) else f"{v:+.{digits}f}"
    env.filters["fixed"] = lambda v, digits=2: "—" if not _finite(v) else f"{v:.{digits}f}"
    env.filters["evidence"] = _evidence_value
    return env


def _templates_dir() -> Path:
    """Inside an installed wheel the templates ship in the package; in a checkout they sit beside it."""
    packaged = resources.files("analyzer") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "templates"


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.floating)) and math.isfinite(v)


def _sci(v) -> str:
    if not _finite(v):
        return "—"
    return "0" if v == 0 else f"{v:.3g}"


def _evidence_value(v) -> str:
    if isinstance(v, float):
        return _sci(v) if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-2) else f"{v:.4g}"
    return str(v)


def render(results: list[RunResult], problems: list[Problem]) -> dict[str, str]:
    """Every file of the report, by relative path."""
    env = template_environment()
    views = [run_view(r) for r in results]
    counts: dict[str, int] = {}
    for v in views:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    files = {
        "index.html": env.get_template("index.html").render(
            runs=views, counts=counts, problems=problems, version=__version__, root=""
        )
    }
    for view in views:
        files[f"runs/{view.page}"] = env.get_template("run.html").render(
            run=view, version=__version__, root="../"
        )
    return files


# --- the output folder ----------------------------------------------------------------------------


def write_report(out_dir: str, files: dict[str, str]) -> None:
    """Write atomically; refuse to overwrite a file gradaudit did not write there itself."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    ours = set(_read_manifest(manifest_path))
    for rel in files:
        target = out / rel
        if target.exists() and rel not in ours:
            raise AnalyzerError(
                str(target),
                "exists and was not written by gradaudit; choose another output folder or remove it",
            )
    for rel, text in files.items():
        write_atomic(out / rel, text)
    # Files of an earlier report (runs since gone) are ours to remove.
    for rel in ours - set(files):
        stale = out / rel
        if stale.is_file():
            stale.unlink()
    write_atomic(manifest_path, json.dumps({"generator": GENERATOR, "files": sorted(files)}, indent=1))


def _read_manifest(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text())
        return [f for f in data.get("files", []) if isinstance(f, str) and ".." not in f]
    except (OSError, ValueError, AttributeError):
        return []


def write_json(path: str, payload: dict) -> None:
    text = json.dumps(payload, indent=1, allow_nan=False)
    if path == "-":
        print(text)
        return
    target = Path(path)
    if target.exists() and not _is_our_json(target):
        raise AnalyzerError(path, "exists and is not a gradaudit JSON report; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)


def _is_our_json(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
        return b'"generator": "gradaudit"' in head
    except OSError:
        return False


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a report is as readable as any file
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
