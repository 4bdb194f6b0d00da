"""Sweeps: parallel workers give the same results, the cache re-reads only what changed, names and
hyperparameters of runs."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import SAMPLE_LOGS, left_long_ago, report_json

from analyzer.cli import OK, main
from analyzer.runs import find_runs, hparams_from_name


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Twelve runs: the four sample runs, three times, under hyperparameter-named folders."""
    root = tmp_path_factory.mktemp("sweep") / "sweep"
    for seed in range(3):
        for sample in SAMPLE_LOGS.iterdir():
            if sample.is_dir():
                act = "sigmoid" if "vanishing" in sample.name else "relu"
                shutil.copytree(sample, root / f"act={act},seed={seed}" / sample.name)
    return root


def run_json(paths, tmp_path, *extra) -> dict:
    rc, document = report_json(tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json", *paths, args=extra)
    assert rc == OK
    return document


def test_one_and_two_workers_give_identical_json(sweep, tmp_path):
    one = run_json([sweep], tmp_path, "--no-html", "--workers", "1")
    two = run_json([sweep], tmp_path, "--no-html", "--workers", "2")
    assert one == two
    assert len(one["runs"]) == 12
    assert [r["run"] for r in one["runs"]] == sorted(r["run"] for r in one["runs"])


def test_index_summarises_verdicts_by_hyperparameter(sweep, tmp_path):
    out = tmp_path / "out"
    assert main(["report", str(sweep), "-o", str(out), "-q"]) == OK
    html = (out / "index.html").read_text()
    assert "act=sigmoid" in html and "3/3 vanishing" in html
    assert html.count('class="stands-out"') >= 1


def test_the_summary_shows_only_settings_shared_by_two_runs_or_more(tmp_path):
    for folder, sample in [
        ("act=relu,seed=0", "healthy_relu_adam"),
        ("act=relu,seed=1", "dead_units_negative_bias"),
        ("act=sigmoid,seed=2", "vanishing_sigmoid_deep"),
    ]:
        shutil.copytree(SAMPLE_LOGS / sample, tmp_path / "sweep" / folder)
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "sweep"), "-o", str(out), "-q"]) == OK
    summary = (out / "index.html").read_text().split('<table class="hparams">')[1].split("</table>")[0]
    assert "act=relu" in summary  # two runs
    assert "act=sigmoid" not in summary and "seed=" not in summary  # one run each


def test_cache_rereads_only_changed_runs(sweep, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(sweep, logs)
    out = tmp_path / "out"
    first = run_json([logs], tmp_path, "-o", str(out))
    assert len(list((out / ".gradaudit-cache").iterdir())) == 12

    # Same size, same modification time, different bytes: a cached run is not read again ...
    [healthy] = (logs / "act=relu,seed=0" / "healthy_relu_adam").glob("events*")
    stat = healthy.stat()
    healthy.write_bytes(b"\0" * stat.st_size)
    os.utime(healthy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # ... while a run whose file changed is.
    [dead] = (logs / "act=relu,seed=1" / "dead_units_negative_bias").glob("events*")
    dead.write_bytes(dead.read_bytes()[:-100])
    left_long_ago(dead)  # a killed writer's file, not a live one
    second = run_json([logs], tmp_path, "-o", str(out))
    by_name = {r["run"]: r for r in second["runs"]}
    assert (
        by_name["act=relu,seed=0/healthy_relu_adam"]
        == {r["run"]: r for r in first["runs"]}["act=relu,seed=0/healthy_relu_adam"]
    )
    assert by_name["act=relu,seed=1/dead_units_negative_bias"]["errors"]  # re-read: now truncated
    third = run_json([logs], tmp_path, "-o", str(out), "--no-cache")
    assert {r["run"]: r for r in third["runs"]}["act=relu,seed=0/healthy_relu_adam"]["errors"]


def test_runs_are_named_by_relative_path_with_splits_grouped(tmp_path):
    for split in ("train", "validation"):
        shutil.copytree(SAMPLE_LOGS / "healthy_relu_adam", tmp_path / "exp" / "lr_0.01-act_relu" / split)
    [run] = find_runs([str(tmp_path / "exp")]).runs
    assert run.name == "lr_0.01-act_relu" and len(run.event_files) == 2
    assert run.hparams == {"lr": "0.01", "act": "relu"}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lr=0.01,act=relu", {"lr": "0.01", "act": "relu"}),
        ("lr_0.01-act_relu", {"lr": "0.01", "act": "relu"}),
        ("sweep/opt-adam_lr-3e-4/seed=3", {"opt": "adam", "lr": "3e-4", "seed": "3"}),
        ("dead_units_negative_bias", {}),
        ("Exp_0_adam_200_0.2", {}),
        ("elu_small_init_16", {}),
        ("imdb-final-model-1690485375", {}),
        ("act=relu,bn", {"act": "relu", "bn": "true"}),
        ("lr_0.1-depth_8", {"lr": "0.1", "depth": "8"}),
        ("lr=0.1/act=relu/seed=0", {"lr": "0.1", "act": "relu", "seed": "0"}),
        ("experiment_lr_0.001", {"lr": "0.001"}),  # a well-known numeric pair, wherever it stands
        ("DQN_1", {}),  # names, not settings
        ("version_0", {}),
        ("PPO_3", {}),
        ("run_2", {}),
        ("checkpoint_500", {}),
        ("epoch_10", {}),
        ("sigmoid_20", {}),
    ],
)
def test_hyperparameters_from_folder_names(name, expected):
    assert hparams_from_name(name) == expected


class _Payload:
    """What a crafted cache entry would do if it were unpickled: leave a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_in_every_cache_entry_runs_nothing_and_changes_nothing(sweep, tmp_path):
    import pickle

    logs = tmp_path / "logs"
    shutil.copytree(sweep, logs)
    out = tmp_path / "out"
    first = run_json([logs], tmp_path, "-o", str(out))
    entries = list((out / ".gradaudit-cache").iterdir())
    assert len(entries) == 12
    marker = tmp_path / "payload-ran"
    for entry in entries:  # the cache's own file names, as an attacker who knows the key would
        entry.write_bytes(pickle.dumps(_Payload(marker)))
    # Crafted entries too: a page outside runs/; a document the JSON output would write as it is,
    # holding NaN (no JSON) or spread over lines.
    document = {"verdict": "healthy", "reason": "", "findings": [], "layers": []}
    head = {"name": "x", "row": None, "page": "../evil.html", "problems": []}
    crafted = [
        json.dumps(head) + "\n" + json.dumps(document),
        json.dumps({**head, "page": None}) + "\n" + json.dumps({**document, "reason": float("nan")}),
        json.dumps({**head, "page": None}) + "\n" + json.dumps(document, indent=1),
    ]
    for entry, text in zip(entries, crafted):
        entry.write_text(text)
    second = run_json([logs], tmp_path, "-o", str(out))
    assert not marker.exists()
    assert second == first  # every run analysed again, to the same result
    assert not (tmp_path / "evil.html").exists()
    for entry in (out / ".gradaudit-cache").iterdir():  # rewritten, as plain JSON: a head, a document
        head_line, document_line = entry.read_text().split("\n")
        assert json.loads(head_line)["name"] and json.loads(document_line)["verdict"]


def test_runs_without_a_verdict_say_nothing_of_their_settings():
    from types import SimpleNamespace

    from analyzer.views import hparam_summaries

    rows = [
        SimpleNamespace(hparams={"dropout": "0.2"}, verdict="insufficient_data"),
        SimpleNamespace(hparams={"dropout": "0.2"}, verdict="insufficient_data"),
        SimpleNamespace(hparams={"dropout": "0.5"}, verdict="healthy"),
        SimpleNamespace(hparams={"dropout": "0.5"}, verdict="vanishing"),
        SimpleNamespace(hparams={"dropout": "0.7"}, verdict="healthy"),
        SimpleNamespace(hparams={"dropout": "0.7"}, verdict="healthy"),
    ]
    summaries = hparam_summaries(rows)
    assert {s.value for s in summaries} == {"0.5", "0.7"}
    assert all("insufficient_data" not in s.verdicts for s in summaries)
    assert not any(s.value == "0.2" for s in summaries)  # its two runs judged nothing
