"""The HTML report: results as plain views, rendered with Jinja2 (autoescape on), charts inline.

Nothing here decides what is wrong; it presents what the diagnosis found. Pages open offline from
disk: no script, style or font is fetched from anywhere.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from . import __version__, charts
from .architecture import layer_path
from .diagnosis import ALL_KINDS, GRADIENT_NORMS, WEIGHT_HISTOGRAMS, Finding, triage_rank
from .pipeline import LayerSummary, ModelLayerSummary, RunResult, layer_summary, model_layer_summaries
from .problems import Problem
from .stats import RunStats
from .trends import log10_positive

MAX_LINES_CHART_LAYERS = 6


# --- views: plain data for the templates ---------------------------------------------------------


@dataclass
class LayerRow:
    summary: LayerSummary
    trend: str  # "+0.123 dec/epoch [−0.01, +0.2]" in the run's own unit, or "—"


@dataclass
class RunView:
    name: str
    page: str  # file name of the run page, relative to runs/
    verdict: str
    reason: str
    worst_layer: str
    depth_ratio: float  # log10 first/last layer RMS, median over steps
    growth: float  # decades per 1k steps of the global norm
    unit: charts.RateUnit  # the run's own unit for rates: per epoch, per logged step or per 1k steps
    growth_text: str  # the global norm's trend in that unit
    steps: int
    last_step: int
    layers: int
    encodings: list[str]
    findings: list[dict] = field(default_factory=list)
    layer_rows: list[LayerRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    other_histogram_tags: list[str] = field(default_factory=list)
    hparams: dict[str, str] = field(default_factory=dict)
    severity: str | None = None  # of the most severe verdict-setting finding
    where: str = ""  # the first screen's answers: where, since when, what to do first
    since: str = ""
    first_remedy: str = ""
    other_charts: list[tuple[str, Markup]] = field(default_factory=list)
    sparkline: Markup = Markup("")
    depth_profile: list[float] = field(default_factory=list)  # log10 RMS by depth, what the sparkline draws
    heatmap: Markup = Markup("")
    over_steps: Markup = Markup("")
    profile: Markup = Markup("")
    loss_chart: Markup = Markup("")
    norm_chart: Markup = Markup("")  # the gradient norm logged as a scalar, where it is the evidence
    norm_series: str = ""
    parameter_norms: bool = False  # the layers are per-parameter norms logged as scalars
    norms_sized: bool = False  # ... divided by their parameters' sizes: RMS
    weights: bool = False  # the layers are weight histograms: the run logged no gradients
    norm_layers: set[str] = field(default_factory=set)  # tags of per-parameter norms judged beside histograms
    norm_layers_chart: Markup = Markup("")
    model_layers: list[ModelLayerSummary] = field(default_factory=list)  # the compact model table
    model_source: str = ""
    model_class: str = ""
    model_has: str = ""  # "normalization and residual connections", as the config says
    judged: str = ""  # what the evidence could not judge shows here: "exploding only"
    loss_state: str = ""  # what the training loss did, as the verdict read it
    loss_series: str = ""  # which series that was
    sparse_tags: list[str] = field(default_factory=list)  # sparse by construction, shown apart


def run_page_name(run_name: str) -> str:
    """A safe, unique file name for any run name (which comes from untrusted folder names)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name).strip("._")[:60] or "run"
    return f"{slug}-{hashlib.sha1(run_name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}.html"


def run_view(result: RunResult) -> RunView:
    stats, trends, diagnosis = result.stats, result.trends, result.diagnosis
    log_rms = log10_positive(stats.rms)
    finite_ratio = trends.depth_log10_ratio[np.isfinite(trends.depth_log10_ratio)]
    norm = result.norm if not stats.layers else None  # the evidence where there are no histograms
    g = trends.global_trend if norm is None else norm.trend
    steps = stats.steps if norm is None else norm.steps
    unit = rate_unit(steps, result.losses)
    view = RunView(
        name=result.run.name,
        page=run_page_name(result.run.name),
        verdict=diagnosis.verdict,
        reason=diagnosis.reason,
        worst_layer=_worst_layer(result),
        depth_ratio=float(np.median(finite_ratio)) if finite_ratio.size else math.nan,
        growth=g.decades_per_1k_steps if g else math.nan,
        unit=unit,
        growth_text=unit.rate(g).split(" [")[0] if g else "—",
        steps=len(steps),
        last_step=int(steps[-1]) if len(steps) else 0,
        layers=len(stats.layers),
        encodings=result.encodings,
        problems=result.problems,
        notes=result.notes,
        other_histogram_tags=result.other_histogram_tags,
        hparams=result.hparams,
    )
    view.findings = [{"finding": f, "remedies": r} for f, r in zip(diagnosis.findings, result.remedies)]
    view.severity = next((f.severity for f in diagnosis.findings if not f.gated), None)
    view.layer_rows = [
        LayerRow(layer_summary(result, i), unit.rate(trend)) for i, trend in enumerate(trends.layer_trends)
    ]
    profile = _last_depth_profile(log_rms[stats.depth_layers])
    view.depth_profile = [float(v) for v in profile]
    view.sparkline = depth_sparkline(profile, result.run.name)
    if len(stats.steps):
        view.heatmap = charts.heatmap(stats.tags, stats.steps, log_rms, stats.nonfinite, unit.axis)
        view.over_steps = charts.magnitude_over_steps(
            stats.tags,
            stats.steps,
            log_rms,
            trends.layer_trends,
            _layers_to_draw(stats, diagnosis.findings),
            unit,
        )
        view.profile = charts.depth_profile(stats.tags, stats.depth_layers, stats.steps, log_rms)
    _add_loss(view, result)
    view.judged = judged_text(result.judged)
    view.parameter_norms = result.evidence == GRADIENT_NORMS
    view.norms_sized = result.norms_sized
    view.weights = result.evidence == WEIGHT_HISTOGRAMS
    if norm is not None:
        view.norm_series = norm.series
        view.norm_chart = charts.loss_curves(
            [(norm.series, norm.steps, norm.values)], norm.trend, unit, "gradient norm", later_half=False
        )
    if result.norm_layers is not None and result.norm_layer_trends is not None:
        beside = result.norm_layers
        view.norm_layers = {layer.tag for layer in beside.layers}
        view.norm_layers_chart = charts.magnitude_over_steps(
            beside.tags,
            beside.steps,
            log10_positive(beside.rms),
            result.norm_layer_trends.layer_trends,
            _layers_to_draw(beside, diagnosis.findings),
            unit,
        )
    if result.architecture is not None and result.architecture.layers:
        model = result.architecture
        view.model_layers = model_layer_summaries(result)
        view.model_source, view.model_class = model.source, model.model_class
        view.model_has = " and ".join(
            what
            for what, has in (
                ("normalization", model.has_normalization),
                ("residual connections", model.has_residual),
            )
            if has
        )
    view.sparse_tags = [t for t, sparse in zip(stats.tags, stats.sparse) if sparse]
    _place_evidence(view)
    if diagnosis.findings:
        top = diagnosis.findings[0]
        shown = ", ".join(top.layers[:3]) + (
            f" and {len(top.layers) - 3} more" if len(top.layers) > 3 else ""
        )
        if norm is not None:
            view.where = f"the global gradient norm ({norm.series})"
        elif top.model_layers and view.model_layers:  # in the model's words: its layers
            named = ", ".join(top.model_layers[:4]) + (
                f" and {len(top.model_layers) - 4} more" if len(top.model_layers) > 4 else ""
            )
            view.where = f"{len(top.model_layers)} of {len(view.model_layers)} layers: {named}"
        else:
            view.where = f"{len(top.layers)} of {len(stats.layers) + len(view.norm_layers)} tags: {shown}"
        view.since = f"step {top.steps[0]} (of {view.last_step})" if top.steps else ""
        view.first_remedy = result.remedies[0][0].action if result.remedies and result.remedies[0] else ""
    return view


def judged_text(judged: tuple[str, ...]) -> str:
    """ "" where the evidence can show every kind of finding; else which kinds it can, in words."""
    if set(judged) >= set(ALL_KINDS):
        return ""
    return f"{' and '.join(judged)} only" if judged else "nothing judged"


def _add_loss(view: RunView, result: RunResult) -> None:
    """The loss curves, the series the verdict read first."""
    view.loss_state = result.diagnosis.loss_state
    loss = result.trends.loss
    if not result.losses:
        return
    read = loss.series if loss else ""
    ordered = sorted(result.losses, key=lambda s: s.name != read)
    view.loss_series = read
    view.loss_chart = charts.loss_curves(
        [(s.name, s.steps, s.values) for s in ordered], loss.later_half if loss else None, view.unit
    )


def depth_sparkline(log10_rms_by_depth: np.ndarray, run_name: str) -> Markup:
    return charts.sparkline(log10_rms_by_depth, f"depth profile of {run_name}")


# At most this many logged steps, in a run shorter than 1,000 steps, and rates read per logged step.
FEW_LOGGED_STEPS = 60


def rate_unit(steps: np.ndarray, losses: list) -> charts.RateUnit:
    """Rates in the run's own unit. Keras's epoch-level logging (gradients at the steps of its
    epoch_ scalars) counts epochs; a run shorter than 1,000 steps with few logs reads per logged
    step (decades per 1,000 steps over a 12-epoch run mean nothing); longer runs per 1,000 steps."""
    if not len(steps):
        return charts.PER_1K_STEPS
    logged = set(steps.tolist())
    if any(s.tag.startswith("epoch_") and logged <= set(s.steps.tolist()) for s in losses):
        return charts.RateUnit("epoch", 1.0, "epoch")
    if len(steps) <= FEW_LOGGED_STEPS and steps[-1] < 1000:
        interval = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
        return charts.RateUnit("logged step", interval, "training step")
    return charts.PER_1K_STEPS


def _with_unit(key: str, value, unit: charts.RateUnit = charts.PER_1K_STEPS) -> str:
    """Evidence and thresholds as people read them: shares in %, logs in decades, rates in the run's
    own unit."""
    if isinstance(value, str):
        return value
    if "share" in key and isinstance(value, (int, float)):
        return f"{100 * value:.1f} %"
    if ("per_1k_steps" in key or key.startswith("rise_ci")) and isinstance(value, (int, float)):
        return f"{_evidence_value(unit.per_unit(float(value)))} decades/{unit.name}"
    text = _evidence_value(value)
    if "per_layer" in key:
        return f"{text} decades/layer"
    if "log10_ratio" in key or key.endswith("decades"):
        return f"{text} decades"
    if key.endswith("steps") or key.endswith("_step"):
        return f"{text} steps" if key.endswith("steps") else f"step {text}"
    return text


_POWERS = {
    1: "ten",
    2: "a hundred",
    3: "a thousand",
    4: "ten thousand",
    5: "a hundred thousand",
    6: "a million",
    7: "ten million",
    8: "a hundred million",
    9: "a billion",
}


def times_in_words(decades: float) -> str:
    """3.2 decades → "about a thousand times"; what a person says of a ratio of magnitudes."""
    if not math.isfinite(decades):
        return "an unknown number of times"
    whole = round(abs(decades))
    if whole == 0:
        return "about as much"
    return f"about {_POWERS.get(whole, f'10^{whole}')} times"


def evidence_in_words(finding) -> str:
    """The finding's evidence as a sentence, with the rule it crossed; the numbers stay in the table."""
    e, kind = finding.evidence, finding.kind
    share = e.get("step_share")
    on = f" on {share:.0%} of logged steps" if isinstance(share, float) else ""
    if kind == "vanishing":
        ratio = e.get("median_depth_log10_ratio", float("nan"))
        return (
            f"The first layer gets {times_in_words(ratio)} less gradient than the last{on}; "
            "the rule fires at a thousand times less on half the steps."
        )
    if kind == "dead_units":
        worst = e.get("worst_zero_share", float("nan"))
        how = "an estimated" if e.get("zero_share_estimated") else ""
        zero = "zero" if how else "exactly zero"
        return (
            f"In {len(finding.layers)} tag(s), {how + ' ' if how else ''}{worst:.0%} of the gradient entries "
            f"are {zero} through the second half of training; the rule fires at half of a layer's entries "
            "on half of those steps."
        )
    if "first_nonfinite_step" in e:
        return (
            f"Gradients were NaN/Inf or missing from step {e['first_nonfinite_step']}, on "
            f"{e['nonfinite_steps']} of {e['logged_steps']} logged steps; any such value fires the rule."
        )
    if "growth_decades" in e:
        return (
            f"The global gradient norm rose {times_in_words(e['growth_decades'])} above its early level and "
            f"stayed there on {e['steps_above_threshold']} logged steps; the rule fires at a hundred times "
            "on three steps."
        )
    if "loss_log10_change" in e:
        return (
            f"The training loss ended {times_in_words(e['loss_log10_change'])} higher than it began; "
            "the rule fires at a hundred times, or twice while the gradient norm rises."
        )
    ratio = e.get("median_depth_log10_ratio", float("nan"))
    return (
        f"The first layer gets {times_in_words(ratio)} more gradient than the last{on}; the rule fires "
        "at a thousand times more on half the steps."
    )


def _evidence_rows(finding, unit: charts.RateUnit) -> list[tuple[str, str]]:
    rows = [
        (k.replace("_", " ").replace("1k steps", unit.name), _with_unit(k, v, unit))
        for k, v in finding.evidence.items()
    ]
    rows += [(f"threshold: {k.replace('_', ' ')}", _with_unit(k, v)) for k, v in finding.threshold.items()]
    return rows


# The chart that shows each finding's evidence best, placed next to it on the run page.
_EVIDENCE_CHART = {"vanishing": "profile", "exploding": "over_steps", "dead_units": "heatmap"}


def _place_evidence(view: RunView) -> None:
    used = set()
    for item in view.findings:
        item["evidence"] = _evidence_rows(item["finding"], view.unit)
        item["words"] = evidence_in_words(item["finding"])
        if view.norm_chart:
            name = "norm_chart"
        elif set(item["finding"].layers) & view.norm_layers:
            name = "norm_layers_chart"
        else:
            name = _EVIDENCE_CHART[item["finding"].kind]
        item["chart"] = getattr(view, name) if name not in used else Markup("")
        used.add(name)
    view.other_charts = [
        (title, getattr(view, name))
        for name, title in (
            ("heatmap", "Gradient magnitude by layer and step"),
            ("over_steps", "Magnitude over steps, with fitted trends"),
            ("profile", "Depth profile"),
            ("norm_chart", "Gradient norm over steps, with its fitted trend"),
            ("norm_layers_chart", "Per-parameter gradient norms (parameters without histograms) over steps"),
        )
        if name not in used and getattr(view, name)
    ]


def _last_depth_profile(depth_log_rms: np.ndarray) -> np.ndarray:
    """The depth profile at the last step with at least two finite layers (a run that ended in NaN
    still shows how it looked before)."""
    usable = np.flatnonzero(np.isfinite(depth_log_rms).sum(axis=0) >= 2)
    return depth_log_rms[:, usable[-1]] if usable.size else np.zeros(0)


def _layers_to_draw(stats: RunStats, findings: list[Finding]) -> list[int]:
    """First, last and the affected depth layers: the lines that tell the story, at most six."""
    depth = list(stats.depth_layers)
    chosen = [depth[0], depth[-1]] if depth else []
    for f in findings:
        chosen += [i for i in (stats.tags.index(t) for t in f.layers if t in stats.tags) if i in depth]
    chosen += depth[1:-1]
    unique = list(dict.fromkeys(chosen))[:MAX_LINES_CHART_LAYERS]
    return sorted(unique)


def _worst_layer(result: RunResult) -> str:
    for f in result.diagnosis.findings:
        if f.layers:
            return f.layers[0]
    return ""


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
    env.filters["layer_name"] = layer_name
    return env


def _templates_dir() -> Path:
    """Inside an installed wheel the templates ship in the package; in a checkout they sit beside it."""
    packaged = resources.files("analyzer") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "templates"


def template_text(name: str) -> str:
    """A file of the templates folder as it is (the dashboard's script)."""
    return (_templates_dir() / name).read_text(encoding="utf-8")


def layer_name(tag: str) -> str:
    """A tag shortened to its layer for a table cell (``gradients/sequential/dense_1/kernel`` →
    ``dense_1``, ``grad/encoder.layers.1.linear1.weight`` → ``encoder.layers.1.linear1``)."""
    return layer_path(tag).split("/")[-1] or tag


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


@dataclass
class IndexRow:
    """What the index shows of one run: small, so a sweep of thousands of runs stays light."""

    name: str
    page: str
    verdict: str
    reason: str
    worst_layer: str
    depth_ratio: float
    growth: float
    growth_text: str  # in the run's own unit
    steps: int
    problems: int
    sparkline: Markup
    hparams: dict[str, str]
    depth_profile: list[float]  # the sparkline's numbers (the cache keeps these, never its markup)
    severity: str | None  # of the most severe verdict-setting finding
    judged: str = ""  # "exploding only" where the evidence cannot show every kind

    @property
    def triage(self) -> str:
        """Sortable text: the index sorts its verdict column by it, worst first."""
        severity_rank, order = triage_rank(self.verdict, self.severity)
        return f"{5 + severity_rank}-{order}"


@dataclass
class HparamSummary:
    """How the runs with one value of one hyperparameter were judged: where a cause stands out."""

    key: str
    value: str
    runs: int
    verdicts: dict[str, int]  # verdict → runs
    dominant: str  # the most common verdict
    dominant_share: float

    @property
    def stands_out(self) -> bool:
        """Every run with this setting went the same bad way."""
        return (
            self.dominant not in ("healthy", "insufficient_data")
            and self.dominant_share == 1
            and self.runs > 1
        )


def index_row(view: RunView) -> IndexRow:
    return IndexRow(
        view.name,
        view.page,
        view.verdict,
        view.reason,
        view.worst_layer,
        view.depth_ratio,
        view.growth,
        view.growth_text,
        view.steps,
        len(view.problems),
        view.sparkline,
        view.hparams,
        view.depth_profile,
        view.severity,
        view.judged,
    )


def hparam_summaries(rows: list[IndexRow]) -> list[HparamSummary]:
    """Per hyperparameter value, the verdicts of its runs; keys with a single value and settings of
    a single run (seeds, timestamps) are left out, and values whose runs all went one bad way come
    first."""
    by_value: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        for key, value in row.hparams.items():
            counts = by_value.setdefault((key, value), {})
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
    values_per_key: dict[str, int] = {}
    for key, _ in by_value:
        values_per_key[key] = values_per_key.get(key, 0) + 1
    out = []
    for (key, value), counts in by_value.items():
        total = sum(counts.values())
        if values_per_key[key] < 2 or total < 2:
            continue
        dominant = max(counts, key=lambda v: (counts[v], v != "healthy"))
        out.append(
            HparamSummary(key, value, total, dict(sorted(counts.items())), dominant, counts[dominant] / total)
        )

    def badness(s: HparamSummary):
        return (s.dominant in ("healthy", "insufficient_data"), -s.dominant_share, -s.runs, s.key, s.value)

    return sorted(out, key=badness)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return template_environment()


def render_run_page(view: RunView) -> str:
    return _environment().get_template("run.html").render(run=view, version=__version__, root="../")


def render_index(
    rows: list[IndexRow],
    problems: list[Problem],
    covers: dict[str, list[str]] | None = None,
    pending: int = 0,
) -> str:
    """The index page. Inside TensorBoard: `covers` names the TensorBoard runs (event-file folders)
    of each run, and `pending` counts the runs still being analysed."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    rows = sorted(rows, key=lambda r: (r.triage, r.name))  # worst first
    counts = dict(sorted(counts.items(), key=lambda item: triage_rank(item[0], None)[1]))
    keys = sorted({k for row in rows for k in row.hparams})
    return (
        _environment()
        .get_template("index.html")
        .render(
            runs=rows,
            counts=counts,
            problems=problems,
            hparam_keys=keys,
            hparam_summary=hparam_summaries(rows),
            version=__version__,
            root="",
            covers=covers or {},
            pending=pending,
        )
    )
