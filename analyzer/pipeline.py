"""One run from files to diagnosis: read → statistics → trends → the rules of each kind of evidence
it holds → remedies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from . import facts as F
from .architecture import Architecture, read_architecture
from .events import (
    LossSeries,
    NormSeries,
    RunData,
    parameter_norm_layers,
    parameter_norms,
    parameter_sizes,
    read_run,
)
from .findings import Diagnosis, Finding, joined, not_judged
from .learning import (
    GradientCourse,
    LossCourse,
    chance_loss,
    gradient_course,
    logged_every,
    loss_course,
    norm_course,
    rate_course,
)
from .options import DEFAULT_READ_OPTIONS, DEFAULT_TAG_PATTERN, ReadOptions
from .problems import Problem
from .remedies import Remedy, remedies_for
from .rules.gradients import diagnose
from .rules.learning import judge_learning
from .rules.norms import diagnose_norm
from .rules.weights import diagnose_weights
from .runs import Run
from .runstats import RunStats, run_stats
from .scaling import unscaled
from .tags import is_weight_histogram, names_a_gradient, parameter_name
from .thresholds import DEFAULT_THRESHOLDS, Thresholds
from .trends import NormTrend, RunTrends, norm_trend, run_trends, training_loss
from .vocabulary import (
    ALL_KINDS,
    LEARNING_KINDS,
    NORM_KINDS,
    PARAMETER_NORM_KINDS,
    WEIGHT_KINDS,
    Evidence,
    Kind,
    Measure,
    Source,
    Verdict,
)


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
    notes: list = field(default_factory=list)  # facts (analyzer.facts) the wording turns into notes
    hparams: dict[str, str] = field(default_factory=dict)  # from folder names, then as logged
    losses: list[LossSeries] = field(default_factory=list)  # training and validation, never spliced
    norm: NormTrend | None = None  # the global gradient norm logged as a scalar, where it was
    judged: tuple[Kind, ...] = ALL_KINDS  # the finding kinds the run's evidence can show
    # Per-parameter norms judged beside histograms (of the parameters they do not describe)
    norm_layers: RunStats | None = None
    norm_layer_trends: RunTrends | None = None
    norms_sized: bool = False  # per-parameter norms were divided by their sizes: their magnitudes are RMS
    architecture: Architecture | None = None  # the model's layers holding the tags
    evidence: Evidence = Evidence.NONE  # what the verdict rests on
    limits: Thresholds = DEFAULT_THRESHOLDS  # the thresholds the run was judged by
    loss_course: LossCourse | None = None  # what the training loss did, where the run logged one

    def model_layers_of(self, finding: Finding) -> list[str]:
        """The paths of the model's layers holding a finding's tags."""
        if self.architecture is None:
            return []
        return [layer.path for layer in self.architecture.layers_of(finding.tags)]


@dataclass
class _Judged:
    """What one kind of evidence made of a run."""

    diagnosis: Diagnosis
    judged: tuple[Kind, ...]
    evidence: Evidence
    stats: RunStats
    trends: RunTrends
    norm_layers: RunStats | None = None
    norm_layer_trends: RunTrends | None = None
    loss_course: LossCourse | None = None


def analyse_run(
    run: Run, options: ReadOptions = DEFAULT_READ_OPTIONS, limits: Thresholds = DEFAULT_THRESHOLDS
) -> RunResult:
    """Gradient histograms are the evidence where a run has them; per-parameter norms of the
    parameters without histograms beside them, or alone; a global norm where it has only that;
    weight histograms where it has no gradient evidence at all."""
    options = replace(options, zero_spike_fit_share=limits.zero_spike_fit_share)
    data, from_weights = read_evidence(run, options)
    return analyse_evidence(data, from_weights, options, limits)


def analyse_evidence(
    data: RunData, from_weights: bool, options: ReadOptions, limits: Thresholds = DEFAULT_THRESHOLDS
) -> RunResult:
    """analyse_run on what a run's files held (`from_weights`: its histograms are weights); also for
    the same evidence thinned, as a run logged less often would hold it (bench/accuracy/sparse_logging.py)."""
    run = data.run
    hparams = {**run.hparams, **data.hparams}
    optimizer = optimizer_of(hparams)
    norm = norm_trend(data.norms, limits)
    scaling = None
    if not from_weights:
        scale = next((s for s in data.scales if not s.in_validation_folder), None)
        course = loss_course(training_loss(data.losses), limits)
        data.layers, scaling = unscaled(data.layers, scale, course, limits)
    stats = run_stats(data.layers, limits)
    trends = run_trends(stats, data.losses, limits)
    with_histograms = {parameter_name(layer.tag) for layer in data.layers}
    norms = parameter_norms(data.norms)
    beside_histograms = [n for n in norms if parameter_name(n.tag) in with_histograms]
    norms_alone = [n for n in norms if parameter_name(n.tag) not in with_histograms]
    norms_alone = norms_alone if len(norms_alone) >= 2 and not from_weights else []
    sizes = (
        parameter_sizes(data, {parameter_name(n.tag) for n in norms_alone}, options) if norms_alone else {}
    )
    sized = all(parameter_name(n.tag) in sizes for n in norms_alone)

    if from_weights:
        diagnosis = diagnose_weights(stats, trends.loss, optimizer, limits)
        judged = _Judged(diagnosis, WEIGHT_KINDS, Evidence.WEIGHT_HISTOGRAMS, stats, trends)
    elif data.layers:
        diagnosis = diagnose(stats, trends, limits)
        judged = _Judged(diagnosis, ALL_KINDS, Evidence.GRADIENT_HISTOGRAMS, stats, trends)
    elif not norms_alone and norm is not None:
        diagnosis = diagnose_norm(norm, trends.loss, limits)
        judged = _Judged(diagnosis, NORM_KINDS, Evidence.GRADIENT_NORM, stats, trends)
    elif not norms_alone:
        basis = F.NoGradients(data.other_histogram_tags, options.tag_pattern)
        judged = _Judged(not_judged(basis, 0), (), Evidence.NONE, stats, trends)
    else:
        judged = _Judged(diagnose(stats, trends, limits), ALL_KINDS, Evidence.NONE, stats, trends)
    if norms_alone:
        judged = _with_parameter_norms(judged, norms_alone, sizes, sized, data, limits)
    architecture = _architecture(data, judged, sized)  # learning reads it too: a classifier's width
    judged = _with_learning(judged, data, norm, architecture, limits)

    notes = _notes(
        data, norm, beside_histograms, norms_alone, sized, from_weights, optimizer, judged.loss_course, limits
    )
    if scaling is not None:
        notes.append(
            F.LossScaled(scaling.how, len(scaling.scale_changes), scaling.skipped_steps, scaling.scale_known)
        )
    true_norms = scaling is None or scaling.scale_known  # no remedy quotes a norm still scaled
    diagnosis = judged.diagnosis
    return RunResult(
        run=run,
        stats=judged.stats,
        trends=judged.trends,
        diagnosis=diagnosis,
        remedies=[remedies_for(f, architecture, true_norms) for f in diagnosis.findings],
        encodings=sorted({e for layer in data.layers for e in layer.encodings}),
        other_histogram_tags=data.other_histogram_tags,
        problems=data.problems,
        notes=notes,
        hparams=hparams,
        losses=data.losses,
        norm=norm,
        judged=judged.judged,
        evidence=judged.evidence,
        norm_layers=judged.norm_layers,
        norm_layer_trends=judged.norm_layer_trends,
        norms_sized=bool(norms_alone) and sized,
        architecture=architecture,
        limits=limits,
        loss_course=judged.loss_course,
    )


def _with_learning(
    judged: _Judged, data: RunData, norm: NormTrend | None, architecture: Architecture, limits: Thresholds
) -> _Judged:
    """The verdict asks whether the training learned, where the run logs a training loss: stalled and
    unstable beside (never above) what the gradients show, and judged even without gradients."""
    course = loss_course(training_loss(data.losses), limits)
    if course is None or course.points < limits.stall_min_points:
        return replace(judged, loss_course=course)
    if judged.evidence == Evidence.WEIGHT_HISTOGRAMS:
        gradients = gradient_course(judged.stats, judged.trends.global_norm, "weights", limits)
    elif judged.evidence == Evidence.GRADIENT_NORM and norm is not None:
        gradients = norm_course(norm.steps, norm.values, limits)
    elif judged.stats.layers:
        source = "gradient norms" if judged.evidence == Evidence.PARAMETER_NORMS else "gradients"
        gradients = gradient_course(judged.stats, judged.trends.global_norm, source, limits)
    else:
        gradients = GradientCourse("")
    chance = chance_loss(architecture, course, limits)
    diagnosis = judge_learning(judged.diagnosis, course, gradients, rate_course(data.rates), limits, chance)
    return replace(judged, diagnosis=diagnosis, judged=judged.judged + LEARNING_KINDS, loss_course=course)


def _with_parameter_norms(
    judged: _Judged,
    norms: list[NormSeries],
    sizes: dict[str, int],
    sized: bool,
    data: RunData,
    limits: Thresholds,
) -> _Judged:
    """Per-parameter norms (two or more) read as layers by the depth and growth rules: beside the
    histograms, of the parameters these do not describe, or as the run's only evidence. Norms not
    divided by their sizes carry them: the depth rules ask more of them."""
    stats = run_stats(parameter_norm_layers(norms, sizes), limits)
    trends = run_trends(stats, data.losses, limits)
    if sized:
        diagnosis = diagnose(stats, trends, limits, Source.PARAMETER_NORMS)
    else:
        diagnosis = diagnose(stats, trends, limits.for_norms(), Source.PARAMETER_NORMS, Measure.NORM)
    if data.layers:
        both = joined(judged.diagnosis, diagnosis)
        return _Judged(
            both, judged.judged, Evidence.HISTOGRAMS_AND_NORMS, judged.stats, judged.trends, stats, trends
        )
    return _Judged(diagnosis, PARAMETER_NORM_KINDS, Evidence.PARAMETER_NORMS, stats, trends)


def _notes(
    data: RunData,
    norm: NormTrend | None,
    beside_histograms: list[NormSeries],
    norms_alone: list[NormSeries],
    sized: bool,
    from_weights: bool,
    optimizer: str | None,
    course: LossCourse | None,
    limits: Thresholds,
) -> list:
    notes: list = []
    if data.restarted:
        notes.append(F.Restarted())
    for path, age in data.live.items():
        notes.append(F.StillWritten(path, age, data.last_step))
    thinned = [layer for layer in data.layers if layer.logged_steps > len(layer.steps)]
    if thinned:
        logged = max(layer.logged_steps for layer in thinned)
        notes.append(F.Thinned(logged, min(len(layer.steps) for layer in thinned)))
    if norms_alone:
        notes.append(F.NormsJudged(len(norms_alone), sized, limits.norm_size_decades, bool(data.layers)))
    if beside_histograms:
        notes.append(F.NormsBesideHistograms(len(beside_histograms)))
    if from_weights:
        notes.append(F.FromWeights(optimizer))
    elif data.layers and norm is not None:
        notes.append(F.GlobalNormBeside(norm.series))
    if course is not None and course.points >= limits.stall_min_points:
        every = int(logged_every(course.steps))
        if every > 1:  # spikes of one to three steps fall between its points (sparse_logging.py)
            notes.append(F.LossSparse(course.series, every))
    return notes


def _architecture(data: RunData, judged: _Judged, sized: bool) -> Architecture:
    """The model's layers holding the run's tags, with their sizes from histogram counts (norms have
    a size only where weight histograms gave it)."""
    measured = [judged.stats] + ([judged.norm_layers] if judged.norm_layers is not None else [])
    counted = [
        m for m in measured if sized or (m is judged.stats and judged.evidence != Evidence.PARAMETER_NORMS)
    ]
    return read_architecture(
        data.model_config,
        [tag for m in measured for tag in m.tags],
        {layer.tag: layer.size for m in counted for layer in m.layers},
    )


def read_evidence(run: Run, options: ReadOptions) -> tuple[RunData, bool]:
    """The run's files, and whether its histograms are weights. A run with no gradient evidence but
    weight histograms (Keras's TensorBoard(histogram_freq=1)) is read again for those. Weights, chosen
    here or by --tags, are judged by the weight rules; beside gradients (--tags matching both), the
    gradients are the evidence and the weights are listed as other tags."""
    data = read_run(run, options)
    weight_tags = [tag for tag in data.other_histogram_tags if is_weight_histogram(tag)]
    if not data.layers and not data.norms and weight_tags:
        data = read_run(run, replace(options, tag_pattern=_exactly(weight_tags)))
    # A histogram the user chose with --tags is a weight unless its tag says gradient: --tags picks
    # what to read, and only a tag can say what it holds.
    chosen = options.tag_pattern != DEFAULT_TAG_PATTERN
    weights = [
        layer
        for layer in data.layers
        if is_weight_histogram(layer.tag) or (chosen and not names_a_gradient(layer.tag))
    ]
    from_weights = bool(weights) and len(weights) == len(data.layers)
    if weights and not from_weights:
        weight_ids = {id(layer) for layer in weights}
        data.layers = [layer for layer in data.layers if id(layer) not in weight_ids]
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
    verdict: Verdict  # the kind of the worst verdict-setting finding holding one of its tags, or healthy


def model_layer_summaries(result: RunResult) -> list[ModelLayerSummary]:
    if result.architecture is None:
        return []
    counting = result.diagnosis.counting
    judged = result.diagnosis.verdict.judged
    out = []
    for layer in result.architecture.layers:
        hit = next((f.kind for f in counting if set(f.tags) & set(layer.tags)), None)
        verdict = Verdict(hit) if hit else (Verdict.HEALTHY if judged else Verdict.INSUFFICIENT_DATA)
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
