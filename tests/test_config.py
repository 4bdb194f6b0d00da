"""A project's gate settings: thresholds from pyproject.toml and the command line, fail-on from
pyproject.toml, and a baseline of accepted findings, with bad settings refused in one line."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE_LOGS, report_json, runs_by_name

from analyzer.cli import ERROR, FOUND, OK, main

VANISHING = SAMPLE_LOGS / "vanishing_sigmoid_deep"  # 6.1 decades first to last, its loss flat


def _pyproject(tmp_path, text: str):
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def test_thresholds_from_pyproject_and_the_command_line_change_the_verdict(tmp_path):
    config = _pyproject(tmp_path, "[tool.gradaudit.thresholds]\nvanishing_depth_decades = 7\n")
    args = ["--no-html", "--config", config]
    [run] = runs_by_name(report_json(tmp_path / "a.json", VANISHING, args=args)[1]).values()
    assert run["verdict"] == "stalled"  # no longer vanishing at 7 decades; its flat loss remains
    overridden = [*args, "--threshold", "vanishing_depth_decades=3"]
    [run] = runs_by_name(report_json(tmp_path / "b.json", VANISHING, args=overridden)[1]).values()
    assert run["verdict"] == "vanishing"
    assert run["findings"][0]["threshold"]["depth_log10_ratio"] == "<= -3.0"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threshold", "vanishing=3"], "no threshold named 'vanishing'"),
        (["--threshold", "min_steps=two"], "threshold min_steps takes an integer, not 'two'"),
        (["--threshold", "min_steps"], "is not NAME=VALUE"),
    ],
)
def test_a_bad_threshold_is_one_line_and_exit_two(tmp_path, capsys, args, message):
    assert main(["report", str(VANISHING), "--no-html", *args]) == ERROR
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("gradaudit: error:") and message in line


def test_a_pyproject_that_is_not_toml_is_one_line(tmp_path, capsys):
    config = _pyproject(tmp_path, "[tool.gradaudit\n")
    assert main(["report", str(VANISHING), "--no-html", "--config", str(config)]) == ERROR
    [line] = capsys.readouterr().err.strip().splitlines()
    assert str(config) in line and "not readable as TOML" in line


def test_fail_on_from_pyproject(tmp_path):
    config = _pyproject(tmp_path, '[tool.gradaudit]\nfail-on = ["exploding"]\n')
    assert (
        main(["report", str(SAMPLE_LOGS / "healthy_relu_adam"), "--no-html", "--config", str(config)]) == OK
    )
    assert main(["report", str(SAMPLE_LOGS), "--no-html", "--config", str(config), "-q"]) == FOUND


def test_a_baseline_lets_a_gate_fail_only_on_new_findings(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert main(["report", str(SAMPLE_LOGS), "--no-html", "-q", "--write-baseline", str(baseline)]) == OK
    accepted = json.loads(baseline.read_text())["accepted"]
    assert {"run": "exploding_sgd_high_lr", "kind": "exploding"} in accepted
    gate = ["report", str(SAMPLE_LOGS), "--no-html", "-q", "--fail-on", "any", "--baseline", str(baseline)]
    assert main(gate) == OK  # every finding accepted
    trimmed = [entry for entry in accepted if entry["run"] != "exploding_sgd_high_lr"]
    baseline.write_text(json.dumps({"baseline_version": 1, "accepted": trimmed}))
    capsys.readouterr()
    assert main(gate) == FOUND  # the exploding run's finding is new now
    tripped = [line for line in capsys.readouterr().err.splitlines() if "exploding_sgd_high_lr" in line]
    assert tripped and not any("dead_units_negative_bias" in line for line in tripped)


def test_a_baseline_that_is_not_one_is_refused_in_one_line(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"accepted": [{"run": 1, "kind": []}]}')
    gate = ["report", str(SAMPLE_LOGS), "--no-html", "-q", "--fail-on", "any", "--baseline", str(baseline)]
    assert main(gate) == ERROR
    assert "not a gradaudit baseline" in capsys.readouterr().err
