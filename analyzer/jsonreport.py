"""Results for machines: the versioned JSON document (NaN and infinities become null)."""

from __future__ import annotations

import json
import math

import numpy as np

from . import __version__, reasons, wording
from .facts import shown
from .findings import Finding
from .learning import loss_shape
from .pipeline import RunResult, layer_summary, model_layer_summaries
from .problems import Problem

# 2: findings may include ones the loss gate kept at low severity ("gated": true), which set no
# verdict; runs carry "loss" and "sparse_layers"; findings carry "evidence_source". Added since,
# meaning nothing else changed: runs carry "evidence", "judged", "gradient_norm" and "architecture";
# findings carry "model_layers".
# 3: verdicts and finding kinds "stalled" and "unstable"; runs' "loss" says what the loss did in
# "state" (fell, flat, rose, went NaN/Inf, too few points, not logged) and "words", what the loss gate
# read in "gate", and its "course"; "judged" lists stalled and unstable where a loss could show them.
SCHEMA_VERSION = 3
GENERATOR = "gradaudit"


def document(run_documents: list[dict], problems: list[Problem]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": GENERATOR,
        "version": __version__,
        "runs": run_documents,
        "errors": [str(p) for p in problems],
    }


def document_text(doc: dict, run_lines: list[str] | None = None) -> str:
    """The document as JSON text with one run (or error) per line: readable and diffable, and written
    by json's C encoder, which indent= would replace by its pure-Python one (10x slower on sweeps).
    `run_lines`: the runs already encoded, one line each (RunOutput.document_line)."""

    def encode(value) -> str:
        return json.dumps(value, allow_nan=False)

    members = []
    for key, value in doc.items():
        if isinstance(value, list) and value:
            lines = run_lines if key == "runs" and run_lines else [encode(item) for item in value]
            items = ",\n  ".join(lines)
            members.append(f" {encode(key)}: [\n  {items}\n ]")
        else:
            members.append(f" {encode(key)}: {encode(value)}")
    return "{\n" + ",\n".join(members) + "\n}\n"


def _architecture_document(result: RunResult) -> dict | None:
    if result.architecture is None:
        return None
    return {
        "source": result.architecture.source,
        "model_class": result.architecture.model_class,
        "has_normalization": result.architecture.has_normalization,
        "has_residual": result.architecture.has_residual,
        "layers": [
            {
                "name": layer.name,
                "path": layer.path,
                "class": layer.class_name,
                "activation": layer.activation,
                "parameters": layer.parameters,
                "tags": layer.tags,
                "verdict": layer.verdict,
            }
            for layer in model_layer_summaries(result)
        ],
    }


def run_document(result: RunResult) -> dict:
    stats, trends = result.stats, result.trends
    return _clean(
        {
            "run": result.run.name,
            "path": result.run.directory,
            "verdict": result.diagnosis.verdict,
            "reason": reasons.run_reason(result.diagnosis, result.notes),
            "steps": [int(s) for s in stats.steps],
            "encodings": result.encodings,
            "hparams": result.hparams,
            "evidence": result.evidence,
            "judged": list(result.judged),
            "global_norm_trend": _trend_document(trends.global_trend),
            "gradient_norm": _norm_document(result),
            "loss": _loss_document(result),
            "sparse_layers": [t for t, sparse in zip(stats.tags, stats.sparse) if sparse],
            "findings": [
                _finding_document(result, f, remedies)
                for f, remedies in zip(result.diagnosis.findings, result.remedies)
            ],
            "layers": [_layer_document(result, i) for i in range(len(stats.layers))],
            "architecture": _architecture_document(result),
            "other_histogram_tags": result.other_histogram_tags,
            "notes": reasons.run_notes(result.notes),
            "errors": [str(p) for p in result.problems],
        }
    )


def _finding_document(result: RunResult, f: Finding, remedies: list) -> dict:
    return {
        "kind": f.kind,
        "severity": f.severity,
        "summary": wording.summary(f),
        "layers": f.tags,
        "steps": f.steps,
        "evidence": {item.name: item.value for item in shown(f.facts)},
        "threshold": {limit.name: limit.value for limit in wording.thresholds_of(f)},
        "evidence_source": f.evidence_source,
        "model_layers": result.model_layers_of(f),
        "gated": f.gated,
        "remedies": [r.action for r in remedies],
    }


def _layer_document(result: RunResult, i: int) -> dict:
    layer = layer_summary(result, i)
    quantiles = layer.abs_quantiles_last
    return {
        "tag": layer.tag,
        "depth": layer.depth,
        "verdict": layer.verdict,
        "steps": layer.steps,
        "rms_first": layer.rms_first,
        "rms_last": layer.rms_last,
        "rms_exact": layer.rms_exact,
        "mean_abs_last": layer.mean_abs_last,
        "abs_quantiles_last": (
            dict(zip(("q50", "q90", "q99"), quantiles.tolist())) if quantiles is not None else None
        ),
        "max_abs": layer.max_abs,
        "zero_share_last": layer.zero_share_last,
        "nonfinite_steps": layer.nonfinite_steps,
        "trend": _trend_document(result.trends.layer_trends[i]),
    }


def _loss_document(result: RunResult) -> dict:
    """The loss series the run logged, which one the gate read, and what it did."""
    loss, course, limits = result.trends.loss, result.loss_course, result.limits
    return {
        "state": loss_shape(course, limits),
        "words": reasons.loss_words(course, limits),
        "gate": result.diagnosis.loss_state,
        "series": [s.name for s in result.losses],
        "training_series": loss.series if loss else None,
        "first": loss.first if loss else None,
        "last": loss.last if loss else None,
        "log10_change": loss.log10_change if loss else None,
        "later_half_trend": _trend_document(loss.later_half) if loss else None,
        "course": _course_document(course),
    }


def _course_document(course) -> dict | None:
    """The training loss's course: the medians of its first and last points, its change between them
    and along its Theil–Sen line (shares; whether that line's interval lies below zero), its spikes
    and the swing of its later half."""
    if course is None:
        return None
    return {
        "series": course.series,
        "points": course.points,
        "nonfinite_points": course.nonfinite_points,
        "first_nonfinite_step": course.first_nonfinite_step,
        "start": course.start,
        "end": course.end,
        "change_share": course.change,
        "trend_change_share": course.trend_change,
        "trend_falls": course.trend_falls,
        "spike_steps": [spike.step for spike in course.spikes],
        "later_swing_decades": course.swing_decades,
    }


def _norm_document(result: RunResult) -> dict | None:
    """The gradient norm the run logged as a scalar, where it was the evidence or beside it."""
    norm = result.norm
    if norm is None:
        return None
    finite = np.isfinite(norm.values)
    return {
        "series": norm.series,
        "points": int(len(norm.values)),
        "nonfinite_points": int((~finite).sum()),
        "first": float(norm.values[finite][0]) if finite.any() else None,
        "last": float(norm.values[finite][-1]) if finite.any() else None,
        "trend": _trend_document(norm.trend),
        "spikes": norm.spikes,
    }


def _trend_document(trend) -> dict | None:
    """A Theil–Sen fit over steps: slope in decades per 1,000 steps, its interval (at
    Thresholds.confidence), r², points."""
    if trend is None:
        return None
    return {
        "decades_per_1k_steps": trend.decades_per_1k_steps,
        "ci95": [trend.ci_low, trend.ci_high],
        "r2": trend.r2,
        "points": trend.points,
    }


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
    if isinstance(value, np.bool_):
        return bool(value)
    return value
