"""Rules that turn statistics and trends into findings with evidence; every threshold lives here.

The rules are scale-free: they compare layers with each other (depth ratio), a run with its own start
(growth), or count what cannot be healthy (non-finite values, exact zeros). Absolute magnitudes are
never judged, since they depend on the loss scale, batch size and parameterisation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from .stats import RunStats, is_weight_tag, resolves_exact_zeros
from .trends import LossTrend, NormTrend, RunTrends, log10_positive, theil_sen

VERDICT_ORDER = ("exploding", "vanishing", "dead_units")  # priority when severities tie
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
SEVERITIES = tuple(SEVERITY_RANK)
# Worst first, as a person triages runs: by the most severe verdict-setting finding, then by verdict.
_TRIAGE_ORDER = ("exploding", "vanishing", "dead_units", "insufficient_data", "healthy")


def triage_rank(verdict: str, severity: str | None) -> tuple[int, int]:
    """Sort key of a run, smallest first: critical findings first, then exploding, vanishing, dead
    units, runs that could not be judged, healthy ones."""
    order = _TRIAGE_ORDER.index(verdict) if verdict in _TRIAGE_ORDER else len(_TRIAGE_ORDER)
    return (-SEVERITY_RANK.get(severity or "", 0), order)


# What a finding rests on.
GRADIENTS, GRADIENTS_AND_LOSS = "gradients", "gradients and loss"
GRADIENT_NORM = "gradient norm"  # a run's evidence is a norm scalar: GRADIENT_NORM + " and loss" with it
GRADIENT_NORMS = "per-parameter gradient norms"
GRADIENT_HISTOGRAMS = "gradient histograms"
# Weight histograms where a run has no gradients (Keras's TensorBoard(histogram_freq=1)): symptoms
# of the gradients, not measurements of them.
WEIGHTS, WEIGHT_HISTOGRAMS = "weights", "weight histograms"
WEIGHT_KINDS = ("vanishing", "exploding")  # weights show no dead units: a dead unit's weights stay put
# Optimizers that divide each update by a running gradient scale: small gradients still move weights.
ADAPTIVE_OPTIMIZER = re.compile(r"(?i)adam|rmsprop|adagrad|adadelta|adafactor|adamax|nadam|lion|lamb|ftrl")
# What each kind of evidence can show: a global norm cannot show vanishing gradients in early layers
# (the output side dominates it) or dead units.
ALL_KINDS = ("vanishing", "exploding", "dead_units")
NORM_KINDS = ("exploding",)
PARAMETER_NORM_KINDS = ("vanishing", "exploding")  # no zeros to count: no dead units
# What the training loss did, as the gate reads it.
LOSS_FALLS, LOSS_STALLED, LOSS_UNKNOWN = "falls", "stalled or rising", "not logged"


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind every rule, with their reasons (also in the README)."""

    # Vanishing: the input-side layer's RMS is this many decades below the output-side layer's.
    # Initialisations that preserve gradient scale (Glorot/He) keep this within ~1 decade; 3 decades
    # (AutoTrainer's 1e-3) means the first layers learn a thousand times slower than the last.
    vanishing_depth_decades: float = 3.0
    # ...on at least this share of logged steps, so that one noisy step decides nothing.
    vanishing_step_share: float = 0.5
    # Exploding over time: the global gradient norm rises this many decades above its early level
    # (the median of the first 10 % of logged steps, at least 3) ...
    exploding_growth_decades: float = 2.0
    # ... and stays there on at least this many logged steps (sustained, not a one-step spike); the
    # Theil–Sen slope of the rise, with its 95 % interval, is reported as evidence.
    exploding_min_steps: int = 3
    # Exploding by the loss: the training loss at its end (the median of its last quarter of points)
    # stands this many decades above its first value; diverging runs often stop logging gradients
    # (PyTorch's add_histogram refuses NaN) before their gradients look like anything.
    exploding_loss_decades: float = 2.0
    # ... or this many (it doubled) while the global gradient norm rose (Theil–Sen 95 % interval above
    # zero): a divergence whose log ends a few steps in, when the writer refused the first NaN.
    exploding_loss_with_norm_decades: float = 0.3
    # Exploding across depth: the input-side layer's RMS is this many decades above the output side's.
    exploding_depth_decades: float = 3.0
    # Exploding cut short: a rise of this many decades that lasts to the run's last finite step
    # counts on fewer than `exploding_min_steps` steps (the writer stopped or dropped what followed).
    exploding_cut_short_decades: float = 4.0
    # Dead units: at least this share of a layer's gradient entries are exactly zero ...
    dead_zero_share: float = 0.5
    # ... on at least this share of the second half of the logged steps (dead units do not recover) ...
    dead_step_share: float = 0.5
    # Exact zeros are counted where the bucket holding zero is narrower than this fraction of the
    # layer's largest |g|. Coarser histograms (TF2's 30 even buckets) cannot isolate them: there the
    # share is estimated as the zero bucket's excess over a heavy-tailed fit to its neighbours, and
    # claimed only where the zero bucket holds this many times what the fit predicts.
    exact_zero_resolution: float = 1e-6
    coarse_zero_spike_ratio: float = 5.0
    # An estimate lumps the smallest values with the zeros: from coarse buckets a layer is claimed
    # dead at this larger share.
    coarse_dead_zero_share: float = 0.75
    # The loss gate. The training loss "falls" when the Theil–Sen slope of log10(loss) over the later
    # half of its points has a 95 % interval below zero and the loss fell at least this many decades
    # over the run (0.3 decades: it halved), or when it fell `loss_converged_decades` over the run (it
    # trained, then levelled off). A depth-ratio or growth finding while the loss falls is kept at
    # severity "low", marked as gated, and sets no verdict; a loss that does not fall raises its
    # severity one step. Non-finite or missing gradients and exact-zero dead units are never gated;
    # dead units estimated from coarse buckets are.
    loss_fall_decades: float = 0.3
    loss_converged_decades: float = 1.0
    # Below this many logged steps no verdict is given.
    min_steps: int = 2
    # Per-parameter gradient norms logged as scalars, without the layer sizes: a norm is the RMS times
    # the square root of the parameter count, so a depth ratio of norms carries half the log10 ratio
    # of the two layers' sizes. The depth rules ask this many decades more of norms (sizes 100x apart
    # account for one decade).
    norm_size_decades: float = 1.0
    # Weights only. A layer's movement is the summed |change of log10 RMS| of its weights between
    # consecutive logged steps. Vanishing: the input-side weight layer moves this many decades less
    # than the layer that moves most (under plain SGD an update is the step size times the gradient;
    # on the labelled dev runs, healthy nets stay within 1 decade and vanishing ones are 3.5 or more
    # apart: bench/accuracy/weight_movement.py) ...
    weight_still_decades: float = 2.0
    # ... where that layer moved at least this much: a run where no weight moves shows nothing here.
    weight_moving_decades: float = 1e-4
    # Exploding: a weight layer's RMS at its last finite step stands this many decades above its first
    # (healthy nets on the labelled runs: 0.4 at most), or a weight turns NaN/Inf.
    weight_growth_decades: float = 1.0

    def for_norms(self) -> Thresholds:
        """The thresholds for per-parameter norms: depth rules raised by norm_size_decades."""
        return replace(
            self,
            vanishing_depth_decades=self.vanishing_depth_decades + self.norm_size_decades,
            exploding_depth_decades=self.exploding_depth_decades + self.norm_size_decades,
        )


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Finding:
    kind: str  # "vanishing" | "exploding" | "dead_units"
    severity: str  # "medium" | "high" | "critical"
    layers: list[str]  # affected tags, depth order
    steps: list[int]  # steps at which the rule held
    summary: str  # one line, for people
    evidence: dict[str, float | int | str] = field(default_factory=dict)
    threshold: dict[str, float | int | str] = field(default_factory=dict)
    evidence_source: str = GRADIENTS  # GRADIENTS or GRADIENTS_AND_LOSS
    gated: bool = False  # kept at "low" because the training loss falls; sets no verdict
    gateable: bool = True  # False for what no falling loss excuses: NaN/Inf or missing gradients, a
    #                        diverging loss, dead units measured from exact zeros
    model_layers: list[str] = field(default_factory=list)  # the model's layers holding `layers`


@dataclass
class Diagnosis:
    verdict: str  # a finding kind, "healthy" or "insufficient_data"
    reason: str
    findings: list[Finding]  # verdict-setting ones first, then those the loss gate kept at "low"
    layer_verdicts: list[str]  # per layer, same order as RunStats.layers
    loss_state: str = LOSS_UNKNOWN  # LOSS_FALLS, LOSS_STALLED or LOSS_UNKNOWN


def diagnose(
    stats: RunStats,
    trends: RunTrends,
    limits: Thresholds = DEFAULT_THRESHOLDS,
    evidence_source: str = GRADIENTS,
    magnitude: str = "gradient RMS",
) -> Diagnosis:
    """`evidence_source`: what the layer statistics came from (GRADIENTS: histograms;
    GRADIENT_NORMS: per-parameter norms logged as scalars); `magnitude`: what their RMS is, in the
    findings' words ("gradient norm" where norms could not be divided by their layers' sizes)."""
    if not stats.layers:
        return Diagnosis("insufficient_data", "no gradient histograms", [], [])
    if len(stats.steps) < limits.min_steps:
        return Diagnosis(
            "insufficient_data",
            f"only {len(stats.steps)} logged step; trends need at least {limits.min_steps}",
            [],
            ["insufficient_data"] * len(stats.layers),
        )
    if not (np.isfinite(stats.rms).any() or stats.nonfinite.any()):
        return Diagnosis(
            "insufficient_data",
            "the gradient histograms hold no entries at any step",
            [],
            ["insufficient_data"] * len(stats.layers),
        )
    findings = [f for rule in (_exploding, _vanishing, _dead_units) for f in rule(stats, trends, limits)]
    loss_state = loss_state_of(trends.loss, limits)
    for finding in findings:
        finding.evidence_source = finding.evidence_source.replace(GRADIENTS, evidence_source, 1)
        finding.summary = finding.summary.replace("gradient RMS", magnitude)
        _apply_loss_gate(finding, loss_state)
    _defer_to_measured_dead_units(findings)
    layer_verdicts, counting = _ranked(findings, stats.tags)
    if not counting:
        return Diagnosis(
            "healthy", _healthy_reason(stats, trends, findings), findings, layer_verdicts, loss_state
        )
    return Diagnosis(counting[0].kind, counting[0].summary, findings, layer_verdicts, loss_state)


def diagnose_norm(
    norm: NormTrend, loss: LossTrend | None, limits: Thresholds = DEFAULT_THRESHOLDS
) -> Diagnosis:
    """A run whose only gradient evidence is a global norm logged as a scalar: judged for exploding
    only. Non-finite values are never excused by the loss: Hugging Face's Trainer leaves NaN/Inf
    out of the loss it logs (logging_nan_inf_filter) while the norm shows them."""
    finite = np.isfinite(norm.values)
    if len(norm.values) < limits.min_steps:
        return Diagnosis(
            "insufficient_data",
            f"only {len(norm.values)} logged value of {norm.series}; trends need at least {limits.min_steps}",
            [],
            [],
        )
    findings = []
    if not finite.all():
        bad = np.flatnonzero(~finite)
        before = norm.values[: bad[0]][finite[: bad[0]]]
        findings.append(
            Finding(
                "exploding",
                "critical",
                [norm.series],
                [int(s) for s in norm.steps[bad]],
                f"gradient norm ({norm.series}) NaN/Inf from step {int(norm.steps[bad[0]])}, "
                f"at {len(bad)} of {len(norm.values)} logged steps",
                evidence={
                    "first_nonfinite_step": int(norm.steps[bad[0]]),
                    "nonfinite_steps": int(len(bad)),
                    "logged_steps": int(len(norm.values)),
                    "last_finite_global_norm": float(before[-1]) if before.size else float("nan"),
                },
                threshold={"nonfinite_values": "any"},
                evidence_source=GRADIENT_NORM,
                gateable=False,
            )
        )
    rise = _norm_rise(norm.steps, np.where(finite, norm.values, np.nan), lambda: [norm.series], limits)
    if rise is not None:
        rise.evidence_source = GRADIENT_NORM
        if norm.spikes:
            rise.evidence["spikes"] = norm.spikes
        findings.append(rise)
    loss_state = loss_state_of(loss, limits)
    for finding in findings:
        _apply_loss_gate(finding, loss_state)
    findings.sort(key=lambda f: (f.gated, -SEVERITY_RANK[f.severity]))
    counting = [f for f in findings if not f.gated]
    if counting:
        return Diagnosis(counting[0].kind, counting[0].summary, findings, [], loss_state)
    parts = [f"gradient norm ({norm.series}) finite over {len(norm.values)} logged steps"]
    if norm.trend is not None:
        parts.append(
            f"its trend {norm.trend.decades_per_1k_steps:+.2g} decades per 1k steps "
            f"(95 % CI {norm.trend.ci_low:+.2g} to {norm.trend.ci_high:+.2g})"
        )
    if norm.spikes:
        parts.append(f"{norm.spikes} spike(s) above 10x the median of the 10 steps before")
    if findings:
        parts.append("exploding signs kept at low severity: the training loss falls")
    parts.append("judged for exploding only: a global norm cannot show vanishing gradients or dead units")
    return Diagnosis("healthy", "; ".join(parts), findings, [], loss_state)


def _ranked(findings: list[Finding], tags: list[str]) -> tuple[list[str], list[Finding]]:
    """Sorts `findings` worst first, those the loss gate kept low last; returns each tag's verdict
    and the findings that set verdicts."""
    findings.sort(key=lambda f: (f.gated, -SEVERITY_RANK[f.severity], VERDICT_ORDER.index(f.kind)))
    layer_verdicts = []
    for tag in tags:
        hits = [f.kind for f in findings if tag in f.layers and not f.gated]
        layer_verdicts.append(hits[0] if hits else "healthy")
    return layer_verdicts, [f for f in findings if not f.gated]


def joined(primary: Diagnosis, beside: Diagnosis) -> Diagnosis:
    """`primary` with the findings of a second body of evidence of the same run (per-parameter norms
    of the parameters it has no histograms of): the worst finding of either sets the verdict;
    the layer verdicts stay `primary`'s."""
    findings = primary.findings + beside.findings
    _, counting = _ranked(findings, [])
    if counting:
        return replace(primary, verdict=counting[0].kind, reason=counting[0].summary, findings=findings)
    judged = beside if primary.verdict == "insufficient_data" else primary
    return replace(primary, verdict=judged.verdict, reason=judged.reason, findings=findings)


def diagnose_weights(
    stats: RunStats, loss: LossTrend | None, optimizer: str | None, limits: Thresholds = DEFAULT_THRESHOLDS
) -> Diagnosis:
    """A run whose only evidence is weight histograms, judged for the weight-side symptoms of
    vanishing (input-side layers that stay put while others move) and exploding gradients (weights
    that grow by decades or turn NaN/Inf). `optimizer`: as the run logged it, or None."""
    if len(stats.steps) < limits.min_steps:
        return Diagnosis(
            "insufficient_data",
            f"only {len(stats.steps)} logged step of weights; their change needs at least {limits.min_steps}",
            [],
            ["insufficient_data"] * len(stats.layers),
        )
    findings = _weights_exploding(stats, limits) + _weights_still(stats, optimizer, limits)
    loss_state = loss_state_of(loss, limits)
    for finding in findings:
        finding.evidence_source = WEIGHTS
        _apply_loss_gate(finding, loss_state)
    layer_verdicts, counting = _ranked(findings, stats.tags)
    if counting:
        return Diagnosis(counting[0].kind, counting[0].summary, findings, layer_verdicts, loss_state)
    parts = [f"{len(stats.layers)} weight tags over {len(stats.steps)} logged steps, all finite"]
    movement = weight_movement(stats)[stats.depth_layers]
    if movement.size and np.nanmax(movement) < limits.weight_moving_decades:
        parts.append("no weight moved between logged steps (a frozen model, or gradients of zero)")
    elif movement.size >= 2:
        parts.append("every weight layer moved")
    if findings:
        parts.append(
            " and ".join(sorted({f.kind for f in findings}))
            + " signs kept at low severity: the training loss falls"
        )
    parts.append("judged from weights: symptoms of vanishing or exploding gradients, not measurements")
    return Diagnosis("healthy", "; ".join(parts), findings, layer_verdicts, loss_state)


def weight_movement(stats: RunStats) -> np.ndarray:
    """Per layer: the summed |change of log10 RMS| between consecutive logged steps with a finite,
    positive RMS (decades); NaN with fewer than two."""
    out = np.full(len(stats.layers), np.nan)
    for i, row in enumerate(log10_positive(stats.rms)):
        finite = row[np.isfinite(row)]
        if finite.size >= 2:
            out[i] = float(np.abs(np.diff(finite)).sum())
    return out


def _weights_exploding(stats: RunStats, limits: Thresholds) -> list[Finding]:
    bad = stats.nonfinite.any(axis=0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        layers = [stats.tags[i] for i in np.flatnonzero(stats.nonfinite.any(axis=1))]
        return [
            Finding(
                "exploding",
                "critical",
                layers,
                [int(s) for s in stats.steps[bad]],
                f"weights turned NaN/Inf from step {int(stats.steps[first])} in {len(layers)} of "
                f"{len(stats.layers)} tags: the gradients exploded",
                evidence={
                    "first_nonfinite_step": int(stats.steps[first]),
                    "nonfinite_steps": int(bad.sum()),
                    "logged_steps": len(stats.steps),
                },
                threshold={"nonfinite_values": "any"},
                gateable=False,
            )
        ]
    log_rms = log10_positive(stats.rms)
    grown = []
    for i in stats.depth_layers:
        finite = np.flatnonzero(np.isfinite(log_rms[i]))
        if finite.size >= 2:
            growth = log_rms[i, finite[-1]] - log_rms[i, finite[0]]
            if growth >= limits.weight_growth_decades:
                grown.append((i, growth))
    if not grown:
        return []
    worst = max(growth for _, growth in grown)
    return [
        Finding(
            "exploding",
            "high",
            [stats.tags[i] for i, _ in grown],
            [int(stats.steps[-1])],
            f"weights of {len(grown)} layer(s) grew {worst:.1f} decades over the run: the updates, and "
            "the gradients behind them, grew",
            evidence={"weight_growth_decades": round(float(worst), 3), "layers_grown": len(grown)},
            threshold={"weight_growth_decades": f">= {limits.weight_growth_decades}"},
        )
    ]


def _weights_still(stats: RunStats, optimizer: str | None, limits: Thresholds) -> list[Finding]:
    depth = stats.depth_layers
    movement = weight_movement(stats)
    if len(depth) < 2 or not np.isfinite(movement[depth]).all():
        return []
    most = float(movement[depth].max())
    if most < limits.weight_moving_decades:
        return []
    with np.errstate(divide="ignore"):
        below = np.log10(movement[depth] / most)
    if below[0] > -limits.weight_still_decades:
        return []
    still = [stats.tags[i] for i, b in zip(depth, below) if b <= -limits.weight_still_decades]
    adaptive = bool(optimizer and ADAPTIVE_OPTIMIZER.search(optimizer))
    if optimizer is None:
        how = "; the optimizer is not logged (under Adam or RMSprop small gradients still move weights)"
    elif adaptive:
        how = f"; under {optimizer}, which normalises each update, this means gradients near its epsilon"
    else:
        how = ""
    return [
        Finding(
            "vanishing",
            "medium" if adaptive else "high",
            still,
            [int(stats.steps[-1])],
            (
                f"the input-side weights moved {10 ** -float(below[0]):.2g}x less than the most-moving layer"
                if np.isfinite(below[0])
                else "the input-side weights did not move at all while other layers' did"
            )
            + f" over the run: their gradients vanished{how}",
            evidence={
                "first_layer_movement_decades": round(float(movement[depth[0]]), 6),
                "most_movement_decades": round(most, 6),
                "movement_log10_ratio": round(float(below[0]), 3) if np.isfinite(below[0]) else "-inf",
                "optimizer": optimizer or "not logged",
            },
            threshold={"movement_log10_ratio": f"<= -{limits.weight_still_decades}"},
        )
    ]


def loss_state_of(loss: LossTrend | None, limits: Thresholds = DEFAULT_THRESHOLDS) -> str:
    """LOSS_FALLS, LOSS_STALLED or LOSS_UNKNOWN (no training loss, or too few points to fit)."""
    if loss is None or loss.later_half is None:
        return LOSS_UNKNOWN
    change = loss.log10_change
    if change <= -limits.loss_converged_decades:
        return LOSS_FALLS
    if loss.later_half.ci_high < 0 and change <= -limits.loss_fall_decades:
        return LOSS_FALLS
    return LOSS_STALLED


def _apply_loss_gate(finding: Finding, loss_state: str) -> None:
    if not finding.gateable or loss_state == LOSS_UNKNOWN:
        return
    if not finding.evidence_source.endswith(" and loss"):
        finding.evidence_source += " and loss"
    if loss_state == LOSS_FALLS:
        finding.gated = True
        finding.severity = "low"
        finding.summary += "; the training loss still falls, so this sets no verdict"
    else:
        finding.severity = SEVERITIES[min(SEVERITY_RANK[finding.severity], len(SEVERITIES) - 1)]
        finding.summary += "; the training loss has stopped falling"


def _defer_to_measured_dead_units(findings: list[Finding]) -> None:
    """Dead units measured from exact zeros pass no gradient back: a depth ratio beside them is their
    consequence, so the vanishing finding ranks below the dead-units one."""
    measured = [
        f
        for f in findings
        if f.kind == "dead_units" and not f.gated and not f.evidence["zero_share_estimated"]
    ]
    if not measured:
        return
    below = max(SEVERITY_RANK[measured[0].severity] - 1, 1)
    for f in findings:
        if f.kind == "vanishing" and not f.gated and SEVERITY_RANK[f.severity] > below:
            f.severity = SEVERITIES[below - 1]
            f.summary += "; units measured dead (exact zeros) pass no gradient and explain this ratio"


def _healthy_reason(stats: RunStats, trends: RunTrends, gated: list[Finding]) -> str:
    ratio = np.nanmedian(trends.depth_log10_ratio) if np.isfinite(trends.depth_log10_ratio).any() else np.nan
    parts = [f"{len(stats.layers)} gradient tags over {len(stats.steps)} steps, all finite"]
    if np.isfinite(ratio):
        parts.append(f"first/last layer RMS within {abs(ratio):.1f} decades")
    if gated:
        kinds = sorted({f.kind for f in gated})
        parts.append(f"{' and '.join(kinds)} signs kept at low severity: the training loss falls")
    return "; ".join(parts)


def _exploding(stats: RunStats, trends: RunTrends, limits: Thresholds) -> list[Finding]:
    found: list[Finding] = []
    # A variable's size does not change: entries missing from its histogram were left out by a
    # writer that drops NaN/Inf, and count as non-finite.
    bad = stats.nonfinite | stats.missing
    bad_steps = np.flatnonzero(bad.any(axis=0))
    if len(bad_steps):
        # PyTorch's writer raises at the first non-finite tensor: the tags after it in that step
        # have no histogram there at all, and the run's log ends. Tags that stop being logged from
        # the first bad step on, or whose RMS had risen by the growth threshold, were caught too.
        logged = np.isfinite(stats.count) | stats.nonfinite
        stopped = (~logged & (np.arange(len(stats.steps)) >= bad_steps[0])).any(axis=1)
        caught = bad.any(axis=1) | stopped
        caught[[stats.tags.index(t) for t in _layers_growing(stats, limits)]] = True
        bad_layers = [stats.tags[i] for i in np.flatnonzero(caught)]
        first = int(stats.steps[bad_steps[0]])
        dropped = not stats.nonfinite.any()
        what = "gradient entries missing (left out as NaN/Inf)" if dropped else "NaN/Inf gradients"
        found.append(
            Finding(
                "exploding",
                "critical",
                bad_layers,
                [int(s) for s in stats.steps[bad_steps]],
                f"{what} from step {first} in {len(bad_layers)} of {len(stats.tags)} tags",
                evidence={
                    "first_nonfinite_step": first,
                    "nonfinite_steps": int(len(bad_steps)),
                    "steps_with_missing_entries": int(stats.missing.any(axis=0).sum()),
                    "logged_steps": int(len(stats.steps)),
                    "early_global_norm": float(10 ** _early_log_norm(trends)),
                    "last_finite_global_norm": _last_finite(trends.global_norm[: bad_steps[0]]),
                },
                threshold={"nonfinite_values": "any", "missing_entries": "any"},
                gateable=False,
            )
        )
    rise = _sustained_rise(stats, trends, limits)
    if rise is not None:
        found.append(rise)
    elif trends.loss is not None and _loss_diverged(trends, limits):
        found.append(_loss_rise(stats, trends, limits))
    depth_share = _share(trends.depth_log10_ratio >= limits.exploding_depth_decades, trends)
    if depth_share >= limits.vanishing_step_share:
        median = float(np.nanmedian(trends.depth_log10_ratio))
        found.append(
            Finding(
                "exploding",
                "high",
                _layers_vs_output(stats, lambda d: d >= limits.exploding_depth_decades),
                _steps_where(stats, trends.depth_log10_ratio >= limits.exploding_depth_decades),
                f"input-side gradients {10**median:.3g}x larger than output-side (+{median:.1f} decades)",
                evidence={"median_depth_log10_ratio": round(median, 3), "step_share": round(depth_share, 3)},
                threshold={
                    "depth_log10_ratio": f">= {limits.exploding_depth_decades}",
                    "step_share": limits.vanishing_step_share,
                },
            )
        )
    return found


def _vanishing(stats: RunStats, trends: RunTrends, limits: Thresholds) -> list[Finding]:
    below = trends.depth_log10_ratio <= -limits.vanishing_depth_decades
    share = _share(below, trends)
    if share < limits.vanishing_step_share:
        return []
    median = float(np.nanmedian(trends.depth_log10_ratio))
    worst_fit = _median_depth_fit(trends)
    evidence: dict[str, float | int | str] = {
        "median_depth_log10_ratio": round(median, 3),
        "first_last_rms_ratio": float(10**median),
        "step_share": round(share, 3),
    }
    if worst_fit is not None:
        evidence.update(
            decades_per_layer=round(worst_fit.decades_per_layer, 4),
            decades_per_layer_ci_low=round(worst_fit.ci_low, 4),
            decades_per_layer_ci_high=round(worst_fit.ci_high, 4),
            depth_fit_r2=round(worst_fit.r2, 3),
        )
    return [
        Finding(
            "vanishing",
            "critical" if median <= -2 * limits.vanishing_depth_decades else "high",
            _layers_vs_output(stats, lambda d: d <= -limits.vanishing_depth_decades),
            _steps_where(stats, below),
            f"first-layer gradient RMS is {10**median:.2g}x the last layer's ({median:.1f} decades) "
            f"on {share:.0%} of steps",
            evidence=evidence,
            threshold={
                "depth_log10_ratio": f"<= -{limits.vanishing_depth_decades}",
                "step_share": limits.vanishing_step_share,
            },
        )
    ]


def _dead_units(stats: RunStats, trends: RunTrends, limits: Thresholds) -> list[Finding]:
    late = np.arange(len(stats.steps)) >= len(stats.steps) // 2
    first_weight = next((i for i, t in enumerate(stats.tags) if is_weight_tag(t)), None)
    dead_layers, shares, steps, estimated = [], [], set(), False
    for i, layer in enumerate(stats.layers):
        if i == first_weight or stats.sparse[i]:
            continue  # zeros here may be constant input features or untouched rows, not dead units
        # Exact zeros where the histogram resolves them; else the zero bucket's excess over a
        # heavy-tailed fit to its neighbours, where it stands far above that fit.
        exact = resolves_exact_zeros(layer, limits.exact_zero_resolution)
        spike = layer.zero_spike_ratio >= limits.coarse_zero_spike_ratio
        share = np.where(exact, layer.zero_share, np.where(spike, layer.zero_excess_share, 0.0))
        needed = np.where(exact, limits.dead_zero_share, limits.coarse_dead_zero_share)
        zero = (share >= needed) & ~layer.nonfinite
        at = np.searchsorted(stats.steps, layer.steps)
        in_late = late[at]
        if in_late.sum() == 0 or zero[in_late].mean() < limits.dead_step_share:
            continue
        dead_layers.append(layer.tag)
        shares.append(float(np.nanmedian(share[in_late])))
        steps.update(int(s) for s in layer.steps[zero])
        estimated |= not exact[in_late].all()
    if not dead_layers:
        return []
    if estimated:
        dead_layers += _coarse_layers_beside(stats, dead_layers, first_weight, late, limits)
        dead_layers.sort(key=stats.tags.index)
    worst = max(shares)
    how = "an estimated" if estimated else ""
    zeros = "zero (from coarse buckets)" if estimated else "exactly zero"
    return [
        Finding(
            "dead_units",
            "high" if worst >= 0.9 else "medium",
            dead_layers,
            sorted(steps),
            f"{how + ' ' if how else ''}{worst:.0%} of gradient entries {zeros} in {len(dead_layers)} "
            "tag(s), not recovering",
            evidence={
                "worst_zero_share": round(worst, 4),
                "median_zero_share": round(float(np.median(shares)), 4),
                "zero_share_estimated": estimated,
            },
            threshold={
                "zero_share": limits.dead_zero_share,
                "late_step_share": limits.dead_step_share,
                "zero_bucket_width_vs_max_abs": limits.exact_zero_resolution,
                "coarse_zero_spike_ratio": limits.coarse_zero_spike_ratio,
                "coarse_zero_share": limits.coarse_dead_zero_share,
            },
            # Exact zeros are a measured fact; an estimate from coarse buckets is a weak sign that the
            # loss gate weighs like a depth ratio.
            gateable=estimated,
        )
    ]


def _coarse_layers_beside(
    stats: RunStats, claimed: list[str], first_weight: int | None, late: np.ndarray, limits: Thresholds
) -> list[str]:
    """Once coarse buckets show dead units in some layer, the layers whose zero bucket holds as much
    but whose neighbours are empty (no fit possible: nearly every entry in one bucket) are named too."""
    out = []
    for i, layer in enumerate(stats.layers):
        if layer.tag in claimed or i == first_weight or stats.sparse[i]:
            continue
        in_late = late[np.searchsorted(stats.steps, layer.steps)]
        unfitted = (layer.zero_spike_ratio == 0) & (layer.zero_share >= limits.coarse_dead_zero_share)
        if in_late.any() and unfitted[in_late].mean() >= limits.dead_step_share:
            out.append(layer.tag)
    return out


# --- helpers -------------------------------------------------------------------------------------


def _share(mask: np.ndarray, trends: RunTrends) -> float:
    known = np.isfinite(trends.depth_log10_ratio)
    return float(mask[known].mean()) if known.any() else 0.0


def _steps_where(stats: RunStats, mask: np.ndarray) -> list[int]:
    return [int(s) for s in stats.steps[np.flatnonzero(mask)]]


def _layers_vs_output(stats: RunStats, crosses) -> list[str]:
    """Tags whose median log10 RMS, relative to the output-side depth layer, crosses the threshold."""
    log_rms = log10_positive(stats.rms)
    last = stats.depth_layers[-1]
    with np.errstate(invalid="ignore"):
        relative = log_rms - log_rms[last]
    out = []
    for i, tag in enumerate(stats.tags):
        row = relative[i][np.isfinite(relative[i])]
        if len(row) and not stats.sparse[i] and crosses(float(np.median(row))):
            out.append(tag)
    return out


def _early_log_norm(trends: RunTrends) -> float:
    return _early_log10(trends.global_norm)


def _early_log10(norm: np.ndarray) -> float:
    """log10 of a norm's early level: the median of its first tenth of finite points (3 at least)."""
    log_norm = log10_positive(norm)
    finite = log_norm[np.isfinite(log_norm)]
    head = max(3, len(finite) // 10)
    return float(np.median(finite[:head])) if len(finite) else np.nan


def _sustained_rise(stats: RunStats, trends: RunTrends, limits: Thresholds) -> Finding | None:
    growing = _layers_growing(stats, limits) if stats.layers else []
    return _norm_rise(stats.steps, trends.global_norm, lambda: growing or list(stats.tags), limits)


def _norm_rise(steps: np.ndarray, norm: np.ndarray, layers, limits: Thresholds) -> Finding | None:
    """The global norm rose by the growth threshold over its early level on enough logged steps, or
    to the last finite one (a rise cut short by NaN is no spike). `layers()`: the layers to name."""
    log_norm = log10_positive(norm)
    early = _early_log10(norm)
    if not np.isfinite(early):
        return None
    above = np.flatnonzero(log_norm >= early + limits.exploding_growth_decades)
    finite = np.flatnonzero(np.isfinite(log_norm))
    # A rise that lasts until the gradients stop being finite or logged is not a spike.
    cut_short = (
        len(above) > 0
        and above[-1] == finite[-1]
        and log_norm[above[-1]] >= early + limits.exploding_cut_short_decades
    )
    if len(above) < limits.exploding_min_steps and not cut_short:
        return None
    peak = int(np.nanargmax(log_norm))
    decades = float(log_norm[peak] - early)
    evidence: dict[str, float | int | str] = {
        "growth_decades": round(decades, 3),
        "early_global_norm": float(10**early),
        "peak_global_norm": float(norm[peak]),
        "steps_above_threshold": int(len(above)),
    }
    rise = theil_sen(steps[: peak + 1], log_norm[: peak + 1])
    if rise is not None:
        evidence.update(
            rise_decades_per_1k_steps=round(rise.decades_per_1k_steps, 4),
            rise_ci_low=round(rise.ci_low, 4),
            rise_ci_high=round(rise.ci_high, 4),
        )
    return Finding(
        "exploding",
        "high",
        layers(),
        [int(s) for s in steps[above]],
        f"global gradient norm rose {10**decades:.3g}x (+{decades:.1f} decades) above its early level "
        f"by step {int(steps[peak])}, on {len(above)} logged steps",
        evidence=evidence,
        threshold={
            "growth_decades": limits.exploding_growth_decades,
            "min_steps_above": limits.exploding_min_steps,
        },
    )


def _loss_diverged(trends: RunTrends, limits: Thresholds) -> bool:
    change = trends.loss.log10_change if trends.loss else float("nan")
    norm_rose = trends.global_trend is not None and trends.global_trend.ci_low > 0
    return change >= limits.exploding_loss_decades or (
        change >= limits.exploding_loss_with_norm_decades and norm_rose
    )


def _loss_rise(stats: RunStats, trends: RunTrends, limits: Thresholds) -> Finding:
    loss = trends.loss
    decades = loss.log10_change
    # A divergence caught at its onset: the layers whose RMS rose over the run (their Theil–Sen
    # 95 % interval above zero), however far.
    rising = [
        t for t, trend in zip(stats.tags, trends.layer_trends) if trend is not None and trend.ci_low > 0
    ]
    return Finding(
        "exploding",
        "high",
        rising or list(stats.tags),
        [int(s) for s in stats.steps],
        f"the training loss ({loss.series}) rose {10**decades:.3g}x (+{decades:.1f} decades) from its "
        "first value: training diverged",
        evidence={
            "loss_first": loss.first,
            "loss_last": loss.last,
            "loss_log10_change": round(decades, 3),
            "loss_nonfinite_points": loss.nonfinite_points,
        },
        threshold={
            "loss_growth_decades": limits.exploding_loss_decades,
            "loss_growth_decades_with_rising_gradient_norm": limits.exploding_loss_with_norm_decades,
        },
        evidence_source=GRADIENTS_AND_LOSS,
        gateable=False,
    )


def _layers_growing(stats: RunStats, limits: Thresholds) -> list[str]:
    """Tags whose own RMS rose by the growth threshold over their early level."""
    log_rms = log10_positive(stats.rms)
    head = max(3, len(stats.steps) // 10)
    out = []
    for i, tag in enumerate(stats.tags):
        row = log_rms[i]
        early = row[:head][np.isfinite(row[:head])]
        if early.size and np.nanmax(row) >= np.median(early) + limits.exploding_growth_decades:
            out.append(tag)
    return out


def _median_depth_fit(trends: RunTrends):
    fits = [f for f in trends.depth_fits if f is not None]
    if not fits:
        return None
    return sorted(fits, key=lambda f: f.decades_per_layer)[len(fits) // 2]


def _last_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else float("nan")
