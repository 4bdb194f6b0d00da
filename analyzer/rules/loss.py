"""The training loss as a second symptom: what it did (the gate's reading), the gate itself, and
whether it diverged."""

from __future__ import annotations

from ..findings import Finding
from ..thresholds import Thresholds
from ..trends import LossTrend, TimeTrend
from ..vocabulary import LossState, Severity


def loss_state_of(loss: LossTrend | None, limits: Thresholds) -> LossState:
    """FALLS, STALLED or UNKNOWN (no training loss, or too few points to fit)."""
    if loss is None or loss.later_half is None:
        return LossState.UNKNOWN
    change = loss.log10_change
    if change <= -limits.loss_converged_decades:
        return LossState.FALLS
    if loss.later_half.ci_high < 0 and change <= -limits.loss_fall_decades:
        return LossState.FALLS
    return LossState.STALLED


def apply_gate(findings: list[Finding], loss_state: LossState) -> None:
    """A gateable finding while the loss falls is kept at low severity and sets no verdict; while it
    does not fall, its severity rises one step. Without a loss nothing changes."""
    for finding in findings:
        if not finding.gateable or loss_state is LossState.UNKNOWN:
            continue
        finding.gate = loss_state
        if loss_state is LossState.FALLS:
            finding.severity = Severity.LOW
        else:
            finding.severity = finding.severity.raised()


def loss_diverged(loss: LossTrend | None, norm_trend: TimeTrend | None, limits: Thresholds) -> bool:
    """The loss ended far above its start, or above it while the gradient norm rose."""
    change = loss.log10_change if loss else float("nan")
    norm_rose = norm_trend is not None and norm_trend.ci_low > 0
    return change >= limits.exploding_loss_decades or (
        change >= limits.exploding_loss_with_norm_decades and norm_rose
    )
