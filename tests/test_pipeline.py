"""Verdicts of the whole pipeline on runs written by real writers, including the traps that must stay
healthy. The rules themselves are tested on hand-built statistics in test_rules.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLE_LOGS, report_json, runs_by_name, shrinking_series

from analyzer import facts, reasons, wording
from analyzer.findings import Finding
from analyzer.pipeline import analyse_run
from analyzer.remedies import remedies_for
from analyzer.runs import find_runs
from analyzer.thresholds import Thresholds
from analyzer.vocabulary import Kind, Severity


def verdict_of(folder, **kwargs):
    [run] = find_runs([str(folder)]).runs
    return analyse_run(run, **kwargs)


@pytest.mark.parametrize(
    "name, verdict",
    [
        ("healthy_relu_adam", "healthy"),
        ("vanishing_sigmoid_deep", "vanishing"),
        ("exploding_sgd_high_lr", "exploding"),
        ("dead_units_negative_bias", "dead_units"),
    ],
)
def test_sample_runs_get_their_intended_verdict(name, verdict):
    result = verdict_of(SAMPLE_LOGS / name)
    assert result.diagnosis.verdict == verdict
    if verdict != "healthy":
        finding = result.diagnosis.findings[0]
        assert (
            finding.tags and finding.steps and facts.shown(finding.facts) and wording.thresholds_of(finding)
        )
        assert result.remedies[0]


def test_vanishing_names_the_input_side_layers(make_run, rng):
    series = shrinking_series(rng, layers=6, steps=5, decades_per_layer=1.2)
    result = verdict_of(make_run("tbx", series, [0, 10, 20, 30, 40]))
    [finding] = result.diagnosis.findings
    assert finding.kind == "vanishing"
    assert finding.tags == ["grad/layer0", "grad/layer1", "grad/layer2"]  # >= 3 decades below the last
    assert finding.facts.decades_per_layer == pytest.approx(1.2, abs=0.05)


@pytest.mark.tf
def test_gradients_shrinking_over_time_while_converging_are_healthy(make_run, rng):
    steps = list(range(0, 2000, 100))
    series = {
        f"grad/l{i}": [rng.normal(scale=10 ** (-3 * k / len(steps)), size=500) for k in range(len(steps))]
        for i in range(4)
    }
    result = verdict_of(make_run("tf2", series, steps))
    assert result.diagnosis.verdict == "healthy"
    assert result.trends.global_trend.decades_per_1k_steps == pytest.approx(-1.5, abs=0.1)


def test_large_but_stable_gradients_are_healthy(make_run, rng):
    series = {f"grad/l{i}": [rng.normal(scale=1e4, size=500) for _ in range(10)] for i in range(3)}
    assert verdict_of(make_run("tbx", series, list(range(10)))).diagnosis.verdict == "healthy"


def test_sustained_growth_is_exploding_but_a_single_spike_is_not(make_run, rng):
    steps = list(range(12))
    growing = {"grad/w": [rng.normal(scale=10 ** (0.5 * k), size=300) for k in steps]}
    result = verdict_of(make_run("tbx", growing, steps, "growing"))
    assert result.diagnosis.verdict == "exploding"
    assert result.diagnosis.findings[0].facts.rise_decades_per_1k_steps == pytest.approx(500, rel=0.05)
    spike = {"grad/w": [rng.normal(scale=1e3 if k == 6 else 1.0, size=300) for k in steps]}
    assert verdict_of(make_run("tbx", spike, steps, "spike")).diagnosis.verdict == "healthy"


@pytest.mark.tf
def test_nan_from_a_tf2_writer_is_exploding(make_run, rng):
    values = [rng.normal(size=100) for _ in range(4)]
    values[3][5] = np.nan
    result = verdict_of(make_run("tf2", {"grad/w": values, "grad/v": values}, [0, 1, 2, 3]))
    finding = result.diagnosis.findings[0]
    assert (finding.kind, finding.severity, finding.steps) == ("exploding", "critical", [3])


@pytest.mark.tf
def test_dead_units_from_exact_zeros_or_from_the_zero_spike_of_coarse_buckets(make_run, rng):
    def layer(zero_share, heavy=False):
        v = rng.standard_t(2, size=1000) if heavy else rng.normal(size=1000)
        v[: int(zero_share * 1000)] = 0.0
        return v

    steps = list(range(6))
    dead = {
        "grad/in": [layer(0.0) for _ in steps],
        "grad/hidden": [layer(0.8) for _ in steps],
        "grad/out": [layer(0.0) for _ in steps],
    }
    for writer in ("tbx", "tf2"):  # exact zero bucket / 30 even buckets
        result = verdict_of(make_run(writer, dead, steps, f"dead_{writer}"))
        assert result.diagnosis.verdict == "dead_units", writer
        assert result.diagnosis.findings[0].tags == ["grad/hidden"]
        assert result.diagnosis.findings[0].facts.worst_zero_share == pytest.approx(0.8, abs=0.06)
    # heavy tails pile mass into the zero bucket of even buckets, but with no step at zero
    heavy = {f"grad/l{i}": [layer(0.3, heavy=True) for _ in steps] for i in range(3)}
    assert verdict_of(make_run("tf2", heavy, steps, "heavy")).diagnosis.verdict == "healthy"


def test_one_step_is_insufficient_data(make_run, rng):
    result = verdict_of(make_run("tbx", {"grad/w": [rng.normal(size=10)]}, [0]))
    assert result.diagnosis.verdict == "insufficient_data"
    assert "1 logged step" in reasons.reason(result.diagnosis)


def test_thresholds_can_be_overridden(make_run, rng):
    series = shrinking_series(rng, layers=4, steps=4, decades_per_layer=0.5)  # 1.5 decades in all
    folder = make_run("tbx", series, [0, 1, 2, 3])
    assert verdict_of(folder).diagnosis.verdict == "healthy"
    strict = Thresholds(vanishing_depth_decades=1.0)
    assert verdict_of(folder, limits=strict).diagnosis.verdict == "vanishing"


NAN, INF = float("nan"), float("inf")
EVIDENCE_WITHOUT_NUMBERS = {
    Kind.VANISHING: facts.DepthDecay(NAN, NAN, 0.5, INF, NAN, NAN, NAN),
    Kind.EXPLODING: facts.NonFiniteGradients(0, 1, 0, 2, NAN, -INF, tags=1),
    Kind.DEAD_UNITS: facts.ZeroGradients(NAN, NAN, False),
}


@pytest.mark.parametrize("kind", list(EVIDENCE_WITHOUT_NUMBERS))
def test_remedies_never_print_a_number_the_evidence_lacks(kind):
    finding = Finding(kind, Severity.HIGH, ["t"], [0], EVIDENCE_WITHOUT_NUMBERS[kind])
    for remedy in remedies_for(finding):
        text = f"{remedy.action} {remedy.why}".lower()
        assert "nan" not in text.replace("finite", "") and "inf" not in text.replace("infinit", "")
        assert remedy.action.strip() and remedy.why.strip()


def test_a_loss_logged_every_few_steps_says_its_spikes_fall_between_its_points(tmp_path, rng):
    SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter
    for every in (1, 16):
        writer = SummaryWriter(str(tmp_path / "logs" / f"every{every}"))
        for step in range(0, 160, every):
            for layer in range(2):
                writer.add_histogram(f"grad/l{layer}", rng.normal(size=100), global_step=step)
            writer.add_scalar("train/loss", 2.0 * 0.99**step, global_step=step)
        writer.close()
    runs = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1])
    assert runs["every1"]["verdict"] == runs["every16"]["verdict"] == "healthy"
    assert not [n for n in runs["every1"]["notes"] if "is logged every" in n]
    [note] = [n for n in runs["every16"]["notes"] if "is logged every" in n]
    assert note.startswith("the training loss (train/loss) is logged every 16 steps")


def test_a_finding_about_the_loss_is_placed_on_the_loss_not_on_zero_tags(tmp_path, rng):
    from analyzer.views import run_view

    SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter
    writer = SummaryWriter(str(tmp_path / "flat"))
    for step in range(40):
        for layer in range(2):
            writer.add_histogram(f"grad/l{layer}", rng.normal(size=100), global_step=step)
        writer.add_scalar("train/loss", 1.0 + 0.01 * rng.normal(), global_step=step)
    writer.close()
    [run] = find_runs([str(tmp_path / "flat")]).runs
    view = run_view(analyse_run(run))
    assert view.verdict == "stalled"
    assert view.where == "the training loss (train/loss)"
