"""One run from files to diagnosis: read → statistics → trends → diagnosis → remedies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .architecture import Architecture, is_weight_histogram, read_architecture
from .diagnosis import (
    ALL_KINDS,
    DEFAULT_THRESHOLDS,
    GRADIENT_HISTOGRAMS,
    GRADIENT_NORM,
    GRADIENT_NORMS,
    NORM_KINDS,
    PARAMETER_NORM_KINDS,
    WEIGHT_HISTOGRAMS,
    WEIGHT_KINDS,
    Diagnosis,
    Thresholds,
    diagnose,
    diagnose_norm,
    diagnose_weights,
    joined,
)
from .events import (
    DEFAULT_LOSS_PATTERN,
    DEFAULT_NORM_PATTERN,
    DEFAULT_TAG_PATTERN,
    LossSeries,
    RunData,
    parameter_norm_layers,
    parameter_norms,
    parameter_sizes,
    read_run,
)
from .problems import Problem
from .readers import READERS
from .remedies import Remedy, remedies_for
from .runs import Run
from .stats import RunStats, parameter_name, run_stats
from .trends import NormTrend, RunTrends, norm_trend, run_trends


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
    losses: list[LossSeries] = field(default_factory=list)  # training and validation, never spliced
    norm: NormTrend | None = None  # the global gradient norm logged as a scalar, where it was
    judged: tuple[str, ...] = ALL_KINDS  # the finding kinds the run's evidence can show
    # Per-parameter norms judged beside histograms (of the parameters they do not describe)
    norm_layers: RunStats | None = None
    norm_layer_trends: RunTrends | None = None
    norms_sized: bool = False  # per-parameter norms were divided by their sizes: their magnitudes are RMS
    architecture: Architecture | None = None  # the model's layers holding the tags
    # What the verdict rests on: gradient histograms, per-parameter gradient norms (or both, each for
    # its parameters), a gradient norm, or nothing.
    evidence: str = "none"


def analyse_run(
    run: Run,
    tag_pattern: str = DEFAULT_TAG_PATTERN,
    limits: Thresholds = DEFAULT_THRESHOLDS,
    reader: str = READERS[0],
    loss_pattern: str = DEFAULT_LOSS_PATTERN,
    processes: int = 1,
    norm_pattern: str = DEFAULT_NORM_PATTERN,
) -> RunResult:
    """`processes`: how many may read a large file's byte ranges in parallel. Gradient histograms are
    the evidence where a run has them; a gradient norm logged as a scalar where it has only that."""
    data, from_weights = _read_evidence(run, tag_pattern, reader, loss_pattern, processes, norm_pattern)
    hparams = {**run.hparams, **data.hparams}
    optimizer = optimizer_of(hparams)
    norm = norm_trend(data.norms)
    stats = run_stats(data.layers, limits.exact_zero_resolution)
    trends = run_trends(stats, data.losses)
    # The evidence, richest first: gradient histograms; per-parameter norms (two or more, read as
    # layers by the depth and growth rules) of the parameters without histograms; a global norm alone.
    with_histograms = {parameter_name(layer.tag) for layer in data.layers}
    norms = parameter_norms(data.norms)
    beside_histograms = [n for n in norms if parameter_name(n.tag) in with_histograms]
    norms_alone = [n for n in norms if parameter_name(n.tag) not in with_histograms]
    norms_alone = norms_alone if len(norms_alone) >= 2 and not from_weights else []
    sizes = parameter_sizes(data, {parameter_name(n.tag) for n in norms_alone}, reader) if norms_alone else {}
    sized = all(parameter_name(n.tag) in sizes for n in norms_alone)
    if from_weights:
        diagnosis = diagnose_weights(stats, trends.loss, optimizer, limits)
        judged, evidence = WEIGHT_KINDS, WEIGHT_HISTOGRAMS
    else:
        diagnosis, judged = diagnose(stats, trends, limits), ALL_KINDS
        evidence = GRADIENT_HISTOGRAMS if data.layers else "none"
    norm_layers, norm_layer_trends = None, None
    if norms_alone:
        norm_stats = run_stats(parameter_norm_layers(norms_alone, sizes), limits.exact_zero_resolution)
        norm_trends = run_trends(norm_stats, data.losses)
        if sized:
            norm_diagnosis = diagnose(norm_stats, norm_trends, limits, GRADIENT_NORMS)
        else:
            norm_limits = limits.for_norms()
            norm_diagnosis = diagnose(norm_stats, norm_trends, norm_limits, GRADIENT_NORMS, "gradient norm")
        if data.layers:
            diagnosis = joined(diagnosis, norm_diagnosis)
            norm_layers, norm_layer_trends = norm_stats, norm_trends
            evidence = f"{GRADIENT_HISTOGRAMS} and {GRADIENT_NORMS}"
        else:
            stats, trends, diagnosis = norm_stats, norm_trends, norm_diagnosis
            judged, evidence = PARAMETER_NORM_KINDS, GRADIENT_NORMS
    elif not data.layers and norm is not None:
        diagnosis, judged, evidence = diagnose_norm(norm, trends.loss, limits), NORM_KINDS, GRADIENT_NORM
    notes = []
    if data.restarted:
        notes.append(
            "the run restarted: a later event file went back to earlier steps; "
            "for each step the later file's histogram was used"
        )
    for path, age in data.live.items():
        notes.append(
            f"still being written: read up to step {data.last_step}; {path} ends in a partial record "
            f"(changed {age:.0f} s ago), as a writer mid-record leaves it"
        )
    thinned = [layer for layer in data.layers if layer.logged_steps > len(layer.steps)]
    if thinned:
        logged = max(layer.logged_steps for layer in thinned)
        kept = min(len(layer.steps) for layer in thinned)
        notes.append(
            f"a long run: of up to {logged:,} logged steps per tag, the statistics of {kept:,} or more, "
            "evenly spread, were kept (with every change between finite and non-finite gradients)"
        )
    if norms_alone:
        how = (
            "each norm divided by the square root of its parameter's size (from its weight histogram)"
            if sized
            else f"the depth rules ask {limits.norm_size_decades:g} decade more of norms, which carry "
            "their layers' sizes (the run logs no sizes)"
        )
        said = (
            f"per-parameter gradient norms of {len(norms_alone)} parameters without gradient histograms "
            f"judged for vanishing and exploding beside the histograms ({how})"
            if data.layers
            else f"from per-parameter gradient norms, judged for vanishing and exploding (norms show no "
            f"dead units; {how})"
        )
        if data.layers:
            notes.append(said)
        elif diagnosis.verdict == "healthy":
            diagnosis.reason += f"; {said}"
    if beside_histograms:
        notes.append(
            f"gradient norms of {len(beside_histograms)} parameters were logged beside their "
            "histograms; the histograms were used for them"
        )
    if from_weights:
        notes.append(
            "no gradient histograms: the verdict reads the weights, whose changes are symptoms of the "
            "gradients, not measurements of them; optimizer: "
            + (optimizer or "not logged (under Adam or RMSprop, small gradients still move weights)")
        )
    elif data.layers and norm is not None:
        notes.append(f"a gradient norm was logged too ({norm.series}); the verdict rests on the histograms")
    if not data.layers and norm is None:
        diagnosis.reason = _no_gradients_reason(data.other_histogram_tags, tag_pattern)
        judged = ()
    measured = [stats] + ([norm_layers] if norm_layers is not None else [])
    # Sizes from histogram counts; norms have a size only where weight histograms gave it.
    counted = [m for m in measured if sized or (m is stats and evidence != GRADIENT_NORMS)]
    architecture = read_architecture(
        data.model_config,
        [tag for m in measured for tag in m.tags],
        {layer.tag: layer.size for m in counted for layer in m.layers},
    )
    for finding in diagnosis.findings:
        finding.model_layers = [layer.path for layer in architecture.layers_of(finding.layers)]
    return RunResult(
        run=run,
        stats=stats,
        trends=trends,
        diagnosis=diagnosis,
        remedies=[remedies_for(f, architecture) for f in diagnosis.findings],
        encodings=sorted({e for layer in data.layers for e in layer.encodings}),
        other_histogram_tags=data.other_histogram_tags,
        problems=data.problems,
        notes=notes,
        hparams=hparams,
        losses=data.losses,
        norm=norm,
        judged=judged,
        evidence=evidence,
        norm_layers=norm_layers,
        norm_layer_trends=norm_layer_trends,
        norms_sized=bool(norms_alone) and sized,
        architecture=architecture,
    )


def _read_evidence(
    run: Run, tag_pattern: str, reader: str, loss_pattern: str, processes: int, norm_pattern: str
) -> tuple[RunData, bool]:
    """The run's files, and whether its histograms are weights. A run with no gradient evidence but
    weight histograms (Keras's TensorBoard(histogram_freq=1)) is read again for those. Weights, chosen
    here or by --tags, are judged by the weight rules; beside gradients (--tags matching both), the
    gradients are the evidence and the weights are listed as other tags."""
    data = read_run(run, tag_pattern, reader, loss_pattern, processes, norm_pattern)
    weight_tags = [tag for tag in data.other_histogram_tags if is_weight_histogram(tag)]
    if not data.layers and not data.norms and weight_tags:
        data = read_run(run, _exactly(weight_tags), reader, loss_pattern, processes, norm_pattern)
    weights = [layer for layer in data.layers if is_weight_histogram(layer.tag)]
    from_weights = bool(weights) and len(weights) == len(data.layers)
    if weights and not from_weights:
        data.layers = [layer for layer in data.layers if not is_weight_histogram(layer.tag)]
        data.other_histogram_tags += [layer.tag for layer in weights]
    return data, from_weights


@dataclass
class LayerSummary:
    """What the report's layer table and the JSON both say of one layer: figures at its first and
    last step with a finite RMS (NaN, and no quantiles, where it has none)."""

    tag: str
    depth: int
    verdict: str
    steps: int
    rms_first: float
    rms_last: float
    rms_exact: bool
    mean_abs_last: float
    abs_quantiles_last: np.ndarray | None
    max_abs: float
    zero_share_last: float
    nonfinite_steps: int


def layer_summary(result: RunResult, i: int) -> LayerSummary:
    layer = result.stats.layers[i]
    finite = np.flatnonzero(np.isfinite(layer.rms))
    first, last = (int(finite[0]), int(finite[-1])) if finite.size else (None, None)

    def at(values: np.ndarray, step: int | None) -> float:
        return float(values[step]) if step is not None else np.nan

    return LayerSummary(
        tag=layer.tag,
        depth=i,
        verdict=result.diagnosis.layer_verdicts[i] if result.diagnosis.layer_verdicts else "",
        steps=layer.logged_steps,
        rms_first=at(layer.rms, first),
        rms_last=at(layer.rms, last),
        rms_exact=bool(layer.rms_exact.all()),
        mean_abs_last=at(layer.mean_abs, last),
        abs_quantiles_last=layer.abs_quantiles_last if last is not None else None,
        max_abs=float(np.nanmax(layer.max_abs)) if np.isfinite(layer.max_abs).any() else np.nan,
        zero_share_last=at(layer.zero_share, last),
        nonfinite_steps=layer.logged_nonfinite,
    )


@dataclass
class ModelLayerSummary:
    """What the report's model table and the JSON say of one layer of the model."""

    name: str
    path: str
    class_name: str
    activation: str
    parameters: int | None
    tags: list[str]
    verdict: str  # the kind of the worst verdict-setting finding holding one of its tags, or healthy


def model_layer_summaries(result: RunResult) -> list[ModelLayerSummary]:
    if result.architecture is None:
        return []
    counting = [f for f in result.diagnosis.findings if not f.gated]
    judged = result.diagnosis.verdict != "insufficient_data"
    out = []
    for layer in result.architecture.layers:
        hit = next((f.kind for f in counting if set(f.layers) & set(layer.tags)), None)
        verdict = hit or ("healthy" if judged else "insufficient_data")
        out.append(
            ModelLayerSummary(
                layer.name,
                layer.path,
                layer.class_name,
                layer.activation,
                layer.parameters,
                layer.tags,
                verdict,
            )
        )
    return out


# Hyperparameter names under which runs log their optimizer (the hparams plugin, or folder names).
_OPTIMIZER_KEY = re.compile(r"(?i)^(opt|optim|optimizer|optimiser)$")


def optimizer_of(hparams: dict[str, str]) -> str | None:
    return next((value for key, value in hparams.items() if _OPTIMIZER_KEY.match(key)), None)


def _exactly(tags: list[str]) -> str:
    return "^(?:" + "|".join(re.escape(tag) for tag in tags) + ")$"


def _no_gradients_reason(other_tags: list[str], tag_pattern: str) -> str:
    if not other_tags:
        return "no histograms and no gradient-norm scalars in this run's event files"
    shown = ", ".join(other_tags[:5]) + (f" and {len(other_tags) - 5} more" if len(other_tags) > 5 else "")
    return (
        f"no gradient histograms (no tag matches {tag_pattern!r}); histogram tags found: {shown}; "
        "pass --tags REGEX to analyse them"
    )
