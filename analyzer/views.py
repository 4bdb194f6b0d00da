"""A run's results as plain views for the pages: what the run page and the index show of it, the
evidence with its units, and the charts placed beside the findings they show. Nothing here decides
what is wrong, and nothing renders HTML but the inline charts."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

import numpy as np
from markupsafe import Markup

from . import charts, heatmaps, reasons, wording
from .facts import DECADES, PER_LAYER, RATE, SHARE, STEP, STEPS, shown
from .findings import Finding, worst_severity
from .pipeline import LayerSummary, ModelLayerSummary, RunResult, layer_summary, model_layer_summaries
from .problems import Problem
from .runstats import RunStats
from .trends import log10_positive
from .vocabulary import Evidence, Kind, Verdict, triage_rank

MAX_LINES_CHART_LAYERS = 6


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
    loss_chart_placed: bool = False  # drawn beside a finding (stalled, unstable), not again below
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
    judged: str = ""  # what the evidence could not judge: "dead units cannot be seen in weights"
    loss_state: str = ""  # what the training loss did, as the verdict read it
    loss_series: str = ""  # which series that was
    sparse_tags: list[str] = field(default_factory=list)  # sparse by construction, shown apart
    interval: str = "95 %"  # the confidence of the intervals shown (Thresholds.confidence)
    quantity: str = "gradient"  # what the magnitudes are of: "gradient", or "weight" for weight histograms


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
        reason=reasons.run_reason(diagnosis, result.notes),
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
        notes=reasons.run_notes(result.notes),
        other_histogram_tags=result.other_histogram_tags,
        hparams=result.hparams,
    )
    view.findings = [
        {
            "finding": f,
            "remedies": r,
            "summary": wording.summary(f),
            "model_layers": result.model_layers_of(f),
        }
        for f, r in zip(diagnosis.findings, result.remedies)
    ]
    view.severity = worst_severity(diagnosis.findings)
    view.layer_rows = [
        LayerRow(layer_summary(result, i), unit.rate(trend)) for i, trend in enumerate(trends.layer_trends)
    ]
    profile = _last_depth_profile(log_rms[stats.depth_layers])
    view.depth_profile = [float(v) for v in profile]
    view.sparkline = depth_sparkline(profile, result.run.name)
    if len(stats.steps):
        quantity = "weight" if result.evidence == Evidence.WEIGHT_HISTOGRAMS else "gradient"
        view.quantity = quantity
        view.heatmap = heatmaps.heatmap(
            stats.tags, stats.steps, log_rms, stats.nonfinite, unit.axis, quantity
        )
        view.over_steps = charts.magnitude_over_steps(
            stats.tags,
            stats.steps,
            log_rms,
            trends.layer_trends,
            _layers_to_draw(stats, diagnosis.findings),
            unit,
            quantity,
        )
        view.profile = charts.depth_profile(stats.tags, stats.depth_layers, stats.steps, log_rms, quantity)
    _add_loss(view, result)
    view.judged = reasons.judged_words(result.judged, diagnosis.verdict, result.evidence)
    view.interval = f"{100 * result.limits.confidence:g} %"
    view.parameter_norms = result.evidence == Evidence.PARAMETER_NORMS
    view.norms_sized = result.norms_sized
    view.weights = result.evidence == Evidence.WEIGHT_HISTOGRAMS
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
        top_model_layers = view.findings[0]["model_layers"]
        if top.reads_loss and not top.tags:  # stalled or unstable: a finding about the loss itself
            view.where = f"the training loss ({top.facts.series})"
        elif norm is not None:
            view.where = f"the global gradient norm ({norm.series})"
        elif top_model_layers and view.model_layers:  # in the model's words: its layers
            named = _first_few(top_model_layers, 4)
            view.where = f"{len(top_model_layers)} of {len(view.model_layers)} layers: {named}"
        else:
            tags = len(stats.layers) + len(view.norm_layers)
            view.where = f"{len(top.tags)} of {tags} tags: {_first_few(top.tags, 3)}"
        view.since = f"step {top.steps[0]} (of {view.last_step})" if top.steps else ""
        view.first_remedy = result.remedies[0][0].action if result.remedies and result.remedies[0] else ""
    return view


def _first_few(names: list[str], few: int) -> str:
    return ", ".join(names[:few]) + (f" and {len(names) - few} more" if len(names) > few else "")


def _add_loss(view: RunView, result: RunResult) -> None:
    """The loss curves, the series the verdict read first."""
    view.loss_state = reasons.loss_words(result.loss_course, result.limits)
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


def _with_unit(value, unit: str, rate: charts.RateUnit) -> str:
    """A value of evidence or a threshold as people read it: shares in %, logs in decades, rates in the
    run's own unit; text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if unit == SHARE:
        return f"{100 * value:.1f} %"
    if unit == RATE:
        return f"{_evidence_value(rate.per_unit(float(value)))} decades/{rate.name}"
    text = _evidence_value(value)
    if unit in (DECADES, PER_LAYER):
        return f"{text} {unit}"
    if unit == STEPS:
        return f"{text} steps"
    if unit == STEP:
        return f"step {text}"
    return text


def _evidence_rows(finding: Finding, rate: charts.RateUnit) -> list[tuple[str, str]]:
    rows = [
        (item.name.replace("_", " ").replace("1k steps", rate.name), _with_unit(item.value, item.unit, rate))
        for item in shown(finding.facts)
    ]
    rows += [
        (
            f"threshold: {limit.name.replace('_', ' ')}",
            _with_unit(limit.value, limit.unit, charts.PER_1K_STEPS),
        )
        for limit in wording.thresholds_of(finding)
    ]
    return rows


# The chart that shows each finding's evidence best, placed next to it on the run page.
_EVIDENCE_CHART = {
    Kind.VANISHING: "profile",
    Kind.EXPLODING: "over_steps",
    Kind.DEAD_UNITS: "heatmap",
    Kind.STALLED: "loss_chart",
    Kind.UNSTABLE: "loss_chart",
}


def _place_evidence(view: RunView) -> None:
    used = set()
    for item in view.findings:
        item["evidence"] = _evidence_rows(item["finding"], view.unit)
        item["words"] = wording.evidence_in_words(item["finding"])
        if view.norm_chart:
            name = "norm_chart"
        elif set(item["finding"].tags) & view.norm_layers:
            name = "norm_layers_chart"
        else:
            name = _EVIDENCE_CHART[item["finding"].kind]
        item["chart"] = getattr(view, name) if name not in used else Markup("")
        used.add(name)
    view.loss_chart_placed = "loss_chart" in used
    view.other_charts = [
        (title, getattr(view, name))
        for name, title in (
            ("heatmap", f"{view.quantity.capitalize()} magnitude by layer and step"),
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
        chosen += [i for i in (stats.tags.index(t) for t in f.tags if t in stats.tags) if i in depth]
    chosen += depth[1:-1]
    unique = list(dict.fromkeys(chosen))[:MAX_LINES_CHART_LAYERS]
    return sorted(unique)


def _worst_layer(result: RunResult) -> str:
    for f in result.diagnosis.findings:
        if f.tags:
            return f.tags[0]
    return ""


def finite(v) -> bool:
    return isinstance(v, (int, float, np.floating)) and math.isfinite(v)


def sci(v) -> str:
    if not finite(v):
        return "—"
    return "0" if v == 0 else f"{v:.3g}"


def _evidence_value(v) -> str:
    if isinstance(v, float):
        return sci(v) if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-2) else f"{v:.4g}"
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
    judged: str = ""  # what the evidence could not judge, where it cannot show every kind

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
        return Verdict(self.dominant).went_wrong and self.dominant_share == 1 and self.runs > 1


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
    """Per hyperparameter value, the verdicts of its runs (runs without a verdict left out); keys with a
    single value and settings of a single run (seeds, timestamps) are left out, and values whose runs
    all went one bad way come first."""
    by_value: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        if not Verdict(row.verdict).judged:  # a run without a verdict says nothing of its settings
            continue
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
        dominant = max(counts, key=lambda v: (counts[v], v != Verdict.HEALTHY))
        out.append(
            HparamSummary(key, value, total, dict(sorted(counts.items())), dominant, counts[dominant] / total)
        )

    def badness(s: HparamSummary):
        return (not Verdict(s.dominant).went_wrong, -s.dominant_share, -s.runs, s.key, s.value)

    return sorted(out, key=badness)
