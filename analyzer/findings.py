"""Findings and diagnoses as plain data, and how findings rank into a run's verdict."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .thresholds import DEFAULT_THRESHOLDS, Thresholds
from .vocabulary import KIND_ORDER, Kind, LossState, Measure, Severity, Source, Verdict


@dataclass
class Finding:
    """One thing a rule found: its kind and severity, where (tags, steps), the facts it measured and
    the thresholds in force when it did."""

    kind: Kind
    severity: Severity
    tags: list[str]  # the affected tags (histograms or norms), depth order
    steps: list[int]  # steps at which the rule held
    facts: object  # the rule's evidence: a dataclass of analyzer.facts
    limits: Thresholds = DEFAULT_THRESHOLDS
    source: Source = Source.GRADIENTS
    measure: Measure = Measure.RMS  # what the layers' magnitude is (norms not divided by their sizes: NORM)
    reads_loss: bool = False  # the rule itself read the training loss
    # False for what no falling loss excuses: NaN/Inf or missing gradients, a diverging loss, dead
    # units measured from exact zeros.
    gateable: bool = True
    gate: LossState | None = None  # the loss state the loss gate applied to this finding, where it did
    explained_by_dead_units: bool = False  # a depth ratio that measured dead units explain

    @property
    def gated(self) -> bool:
        """Kept at low severity because the training loss falls: sets no verdict."""
        return self.gate is LossState.FALLS

    @property
    def evidence_source(self) -> str:
        """What the finding rests on, in the JSON's words."""
        with_loss = self.reads_loss or self.gate is not None
        return f"{self.source} and loss" if with_loss else str(self.source)


@dataclass
class Diagnosis:
    verdict: Verdict
    findings: list[Finding]  # verdict-setting ones first, then those the loss gate kept at "low"
    layer_verdicts: list[Verdict]  # per layer, same order as RunStats.layers
    loss_state: LossState = LossState.UNKNOWN
    basis: object = None  # where no finding sets the verdict: the facts behind it (analyzer.facts)

    @property
    def counting(self) -> list[Finding]:
        """The findings that set verdicts."""
        return [f for f in self.findings if not f.gated]


def ranked(findings: list[Finding], tags: list[str]) -> tuple[list[Verdict], list[Finding]]:
    """Sorts `findings` worst first, those the loss gate kept low last; returns each tag's verdict
    and the findings that set verdicts."""
    # Pathologies of the gradients outrank what the loss alone says, whatever their severities.
    findings.sort(
        key=lambda f: (f.gated, not f.kind.from_gradients, -f.severity.rank, KIND_ORDER.index(f.kind))
    )
    layer_verdicts = []
    for tag in tags:
        hits = [f.kind for f in findings if tag in f.tags and not f.gated]
        layer_verdicts.append(Verdict(hits[0]) if hits else Verdict.HEALTHY)
    return layer_verdicts, [f for f in findings if not f.gated]


def verdict_of(findings: list[Finding], tags: list[str], loss_state: LossState, basis) -> Diagnosis:
    """The diagnosis the findings make: the worst one's kind, else healthy on `basis`."""
    layer_verdicts, counting = ranked(findings, tags)
    verdict = Verdict(counting[0].kind) if counting else Verdict.HEALTHY
    return Diagnosis(verdict, findings, layer_verdicts, loss_state, None if counting else basis)


def not_judged(basis, layers: int) -> Diagnosis:
    """No verdict: too little evidence, for the reason `basis` gives."""
    return Diagnosis(Verdict.INSUFFICIENT_DATA, [], [Verdict.INSUFFICIENT_DATA] * layers, basis=basis)


def joined(primary: Diagnosis, beside: Diagnosis) -> Diagnosis:
    """`primary` with the findings of a second body of evidence of the same run (per-parameter norms
    of the parameters it has no histograms of): the worst finding of either sets the verdict;
    the layer verdicts stay `primary`'s."""
    findings = primary.findings + beside.findings
    _, counting = ranked(findings, [])
    if counting:
        return replace(primary, verdict=Verdict(counting[0].kind), findings=findings, basis=None)
    judged = beside if primary.verdict is Verdict.INSUFFICIENT_DATA else primary
    return replace(primary, verdict=judged.verdict, basis=judged.basis, findings=findings)


def worst_severity(findings: list[Finding]) -> Severity | None:
    """Of the verdict-setting findings (ranked worst first)."""
    return next((f.severity for f in findings if not f.gated), None)
