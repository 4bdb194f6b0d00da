"""The command end to end: JSON shape, HTML files, exit codes, output-folder safety, escaping."""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import REPO, SAMPLE_LOGS

from analyzer.cli import ERROR, FOUND, OK, main

INTENDED = {
    "healthy_relu_adam": "healthy",
    "vanishing_sigmoid_deep": "vanishing",
    "exploding_sgd_high_lr": "exploding",
    "dead_units_negative_bias": "dead_units",
}


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rc = main(["report", str(SAMPLE_LOGS), "-o", str(out), "--json", str(out / "r.json"), "-q"])
    return rc, out, json.loads((out / "r.json").read_text())


def test_sample_report_json_has_the_documented_shape_and_verdicts(sample_report):
    rc, _, payload = sample_report
    assert rc == OK
    assert payload["schema_version"] == 3
    assert {r["run"]: r["verdict"] for r in payload["runs"]} == INTENDED
    for run in payload["runs"]:
        assert {"run", "verdict", "findings", "layers", "errors"} <= set(run)
        assert [layer["depth"] for layer in run["layers"]] == list(range(len(run["layers"])))
        for finding in run["findings"]:
            assert {"kind", "layers", "steps", "evidence", "remedies"} <= set(finding)
            assert finding["remedies"]
            assert finding["layers"] or finding["kind"] in ("stalled", "unstable")  # about the loss


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    collector = _Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    return collector


def test_every_run_page_draws_its_charts_and_links_nothing_remote(sample_report):
    _, out, payload = sample_report
    index = parse(out / "index.html")
    pages = [a["href"] for tag, a in index.tags if tag == "a" and a.get("href", "").startswith("runs/")]
    assert len(pages) == len(payload["runs"])
    for page in pages:
        html = (out / page).read_text(encoding="utf-8")
        doc = parse(out / page)
        charts = [a for tag, a in doc.tags if tag == "svg" and "chart" in a.get("class", "")]
        # heatmap, magnitude over steps, depth profile, and the loss the callback logged beside them
        assert len(charts) == 4 and all(a.get("aria-label") for a in charts)
        [loss] = [a for a in charts if a["aria-label"].startswith("Loss over logged steps")]  # once
        assert "probe/loss" in loss["aria-label"]
        assert html.count("Rests on") == len(run_findings(payload, page))
        assert html.count("<polyline") >= 2  # lines over steps and depth
        [png] = [a["href"] for tag, a in doc.tags if tag == "image"]  # the heatmap's cells
        header = base64.b64decode(png.split(",", 1)[1])[:24]
        width, height = struct.unpack(">II", header[16:24])
        run = next(r for r in payload["runs"] if page.startswith(f"runs/{r['run']}"))
        assert (width, height) == (len(run["steps"]), len(run["layers"]))
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
        # One story about the loss: the page says what the JSON says
        assert f"it {run['loss']['words']}" in html


def run_findings(payload, page):
    return next(r for r in payload["runs"] if page.startswith(f"runs/{r['run']}"))["findings"]


def test_fail_on_gives_exit_code_one_only_when_matched(tmp_path):
    healthy = str(SAMPLE_LOGS / "healthy_relu_adam")
    vanishing = str(SAMPLE_LOGS / "vanishing_sigmoid_deep")
    assert main(["report", healthy, "--no-html", "--fail-on", "any", "-q"]) == OK
    assert main(["report", vanishing, "--no-html", "--fail-on", "exploding", "-q"]) == OK
    assert main(["report", vanishing, "--no-html", "--fail-on", "exploding,vanishing", "-q"]) == FOUND
    assert main(["report", vanishing, "--no-html", "--fail-on", "sideways", "-q"]) == ERROR


def test_nothing_to_analyse_is_exit_two_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "out")]) == ERROR
    err = capsys.readouterr().err
    assert "holds no event files" in err and "Traceback" not in err
    assert main(["report", str(tmp_path / "missing")]) == ERROR
    assert "no such file or directory" in capsys.readouterr().err


def test_real_keras_logs_report_plainly(tmp_path, real_logs):
    rc = main(["report", str(real_logs), "-o", str(tmp_path / "out"), "--json", str(tmp_path / "r.json")])
    assert rc == OK
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    sweep = [r for r in runs if r["run"].startswith("keras_tutorial_sweep/")]
    assert sorted(r["run"] for r in sweep) == [  # train/ and validation/ stay one run
        "keras_tutorial_sweep/Exp_0_adam_200_0.2",
        "keras_tutorial_sweep/Exp_1_rmsprop_200_0.2",
        "keras_tutorial_sweep/Exp_2_sgd_200_0.2",
        "keras_tutorial_sweep/Exp_5_sgd_200_0.5",
    ]
    session = next(r for r in runs if r["run"] == "keras_tutorial_hparams/Experiment 0_adam_200_0.2")
    assert session["hparams"] == {"dropout": "0.2", "optimizer": "adam", "units": "200"}  # hparams plugin
    assert list(session["hparams"]) == ["dropout", "optimizer", "units"]  # in one order, run after run
    # No gradients: judged from their weight histograms, as weights, and said so.
    for run in sweep:
        assert run["evidence"] == "weight histograms" and run["judged"] == [
            "vanishing",
            "exploding",
            "unstable",
            "stalled",
        ]
        assert run["verdict"] == "healthy" and "judged from weights" in run["reason"]
        assert any("optimizer: not logged" in note for note in run["notes"])
        assert [layer["tag"].split("/", 1)[1] for layer in run["layers"]][:2] == [
            "kernel_0/histogram",
            "bias_0/histogram",
        ]
        assert run["architecture"]["model_class"] == "Sequential"  # tf.keras 2's config, read
        layers = run["architecture"]["layers"]
        assert [(layer["class"], layer["activation"]) for layer in layers] == [
            ("Dense", "relu"),
            ("Dense", "softmax"),
        ]
        assert all(len(layer["tags"]) == 2 for layer in layers)  # a kernel and its bias, one layer
    pages = list((tmp_path / "out" / "runs").glob("keras_tutorial_sweep_Exp_*.html"))
    assert len(pages) == 4 and all("judged from weights" in page.read_text() for page in pages)
    # --tags naming weight tags gets the weight rules too, never the gradient rules
    assert (
        main(
            ["report", str(real_logs), "--tags", "kernel_0", "--no-html", "--json", str(tmp_path / "w.json")]
        )
        == OK
    )
    weights = json.loads((tmp_path / "w.json").read_text())["runs"]
    assert (
        sorted(r["evidence"] for r in weights if r["verdict"] != "insufficient_data")
        == ["weight histograms"] * 4
    )


def test_foreign_files_in_the_output_folder_are_never_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("my own notes")
    assert main(["report", str(SAMPLE_LOGS / "healthy_relu_adam"), "-o", str(out), "-q"]) == ERROR
    assert (out / "index.html").read_text() == "my own notes"
    assert [p.name for p in out.iterdir()] == ["index.html"]  # nothing added either
    assert "not written by gradaudit" in capsys.readouterr().err
    (tmp_path / "r.json").write_text("{}")
    assert (
        main(
            [
                "report",
                str(SAMPLE_LOGS / "healthy_relu_adam"),
                "--no-html",
                "--json",
                str(tmp_path / "r.json"),
                "-q",
            ]
        )
        == ERROR
    )
    assert (tmp_path / "r.json").read_text() == "{}"


def test_rerun_replaces_its_own_files_and_keeps_others(tmp_path):
    out = tmp_path / "out"
    assert main(["report", str(SAMPLE_LOGS), "-o", str(out), "-q"]) == OK
    (out / "notes.txt").write_text("mine")
    assert main(["report", str(SAMPLE_LOGS / "healthy_relu_adam"), "-o", str(out), "-q"]) == OK
    assert (out / "notes.txt").read_text() == "mine"
    assert len(list((out / "runs").iterdir())) == 1  # pages of runs no longer analysed are ours to remove


def test_hostile_tag_and_folder_names_render_as_text(make_run, rng, tmp_path):
    evil = "<script>alert(1)</script>"
    folder_name = '"><img src=x onerror=alert(2)> run'
    values = [rng.normal(size=100) * 10**-k for k in range(3)]
    make_run("tbx", {f"grad/{evil}": values, "grad/ok": values}, [0, 1, 2], name=folder_name)
    out = tmp_path / "out"
    assert main(["report", str(tmp_path), "-o", str(out), "-q"]) == OK
    for page in [out / "index.html", *(out / "runs").iterdir()]:
        doc = parse(page)
        assert not any(tag == "img" for tag, _ in doc.tags)
        assert not any(k.startswith("on") for _, attrs in doc.tags for k in attrs)
        scripts = sorted(attrs.get("type", "") for tag, attrs in doc.tags if tag == "script")
        # only the report's own: the index's table script; a run page's read-out and its JSON data
        assert scripts == ([""] if page.name == "index.html" else ["", "application/json"])
        assert "<script>alert" not in page.read_text()
        assert "alert(1)" not in page.read_text() or evil in "".join(doc.text)


def _lock_holder(out, seconds):
    """A real second report process that has taken the output folder's lock and holds it."""
    code = (
        "import sys, time; from analyzer.outdir import ReportFolder; "
        "f = ReportFolder(sys.argv[1]); print('locked', flush=True); "
        "time.sleep(float(sys.argv[2])); f.close()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow  # real second processes
def test_a_second_report_into_a_busy_folder_waits_then_refuses_in_one_line(tmp_path, capsys):
    out = tmp_path / "report"
    holder = _lock_holder(out, 60)
    try:
        assert main(["report", str(SAMPLE_LOGS), "-o", str(out), "-q", "--lock-wait", "0.5"]) == ERROR
    finally:
        holder.kill()
        holder.wait()
    [line] = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert f"pid {holder.pid}" in line and "another gradaudit report" in line and "waited 0.5 s" in line
    assert not (out / "index.html").exists()
    # The holder was killed with its lock in place: a stale lock, taken over by the next report.
    assert (out / ".gradaudit-lock").exists()
    assert main(["report", str(SAMPLE_LOGS), "-o", str(out), "-q"]) == OK
    assert (out / "index.html").exists() and not (out / ".gradaudit-lock").exists()


@pytest.mark.slow  # real second processes
def test_a_report_waits_for_one_that_finishes(tmp_path):
    out = tmp_path / "report"
    holder = _lock_holder(out, 2)
    assert main(["report", str(SAMPLE_LOGS), "-o", str(out), "-q"]) == OK
    assert holder.wait() == 0
    assert (out / "index.html").exists()


def _stderr_lines(capsys):
    return capsys.readouterr().err.splitlines()


def test_runs_are_listed_worst_first_and_end_with_a_link_to_the_report(tmp_path, capsys):
    assert main(["report", str(SAMPLE_LOGS), "-o", str(tmp_path / "r")]) == OK
    lines = _stderr_lines(capsys)
    listed = [line.split()[0] for line in lines if not line.startswith("gradaudit:")]
    # critical findings first (the NaN run, the vanishing stack whose loss stalled), healthy last
    assert listed == ["exploding", "vanishing", "dead_units", "healthy"]
    assert lines[-1] == f"gradaudit: report: {(tmp_path / 'r' / 'index.html').resolve().as_uri()}"


def test_fail_on_lists_the_runs_that_tripped_it_even_when_quiet(capsys):
    assert main(["report", str(SAMPLE_LOGS), "--no-html", "-q", "--fail-on", "vanishing,dead_units"]) == FOUND
    lines = _stderr_lines(capsys)
    assert "gradaudit: --fail-on dead_units,vanishing: 2 run(s) tripped it" in lines
    tripped = [line for line in lines if not line.startswith("gradaudit:")]
    assert [line.split()[1] for line in tripped] == ["vanishing_sigmoid_deep", "dead_units_negative_bias"]


def test_a_gate_that_judged_nothing_fails_unless_told_otherwise(real_logs, capsys):
    scalars_only = real_logs / "keras_tutorial_hparams"  # hparams and scalars, no histograms at all
    if not scalars_only.exists():
        pytest.skip("shared real_logs not present")
    assert main(["report", str(scalars_only), "--no-html", "--fail-on", "any"]) == ERROR
    [line] = [x for x in _stderr_lines(capsys) if "error" in x]
    assert line.startswith("gradaudit: error: --fail-on judged nothing: none of the 2 run(s)")
    assert main(["report", str(scalars_only), "--no-html", "--fail-on", "any", "--pass-without-data"]) == OK
    assert main(["report", str(scalars_only), "--no-html"]) == OK  # no gate, nothing to fail
    # Weight histograms alone are evidence: judged from weights, the gate passes on them.
    assert main(["report", str(real_logs / "keras_tutorial_sweep"), "--no-html", "--fail-on", "any"]) == OK


@pytest.mark.parametrize("no_color", [False, True])
def test_verdicts_are_coloured_on_a_terminal_unless_no_color(no_color, tmp_path):
    """The command in a real pseudo-terminal, as a person runs it."""
    import os
    import pty

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = "1"
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "analyzer.cli", "report", str(SAMPLE_LOGS), "--no-html", "-j", "1"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        output += chunk
    assert process.wait() == OK
    text = output.decode()
    assert "exploding_sgd_high_lr" in text
    assert ("\x1b[31m" in text) is not no_color


def test_a_run_with_read_problems_is_marked_in_its_row(tmp_path):
    import shutil

    from conftest import left_long_ago

    logs = tmp_path / "logs"
    for name in ("healthy_relu_adam", "vanishing_sigmoid_deep"):
        shutil.copytree(SAMPLE_LOGS / name, logs / name)
    [cut] = (logs / "vanishing_sigmoid_deep").iterdir()
    cut.write_bytes(cut.read_bytes()[:-30])
    left_long_ago(cut)  # a killed writer's file
    assert main(["report", str(logs), "-o", str(tmp_path / "r"), "-q"]) == OK
    rows = (tmp_path / "r" / "index.html").read_text().split("<tr>")[1:]
    marked = [row for row in rows if 'class="read-problem"' in row]
    assert len(marked) == 1 and "vanishing_sigmoid_deep" in marked[0] and "1 read problem" in marked[0]


def test_rates_are_told_in_the_runs_own_unit(tmp_path, make_run, rng):
    corpus = REPO / "bench" / "accuracy" / "runs"
    long_run = make_run(
        "tbx", {"grad/a": [rng.normal(size=50) for _ in range(61)]}, list(range(0, 1220, 20)), "long"
    )
    cases = {
        corpus / "cnn_relu_adam__seed__every0": "epoch",  # Keras epoch-level logging, with epoch_loss
        SAMPLE_LOGS / "healthy_relu_adam": "logged step",  # 33 logs over 256 steps
        long_run: "1k steps",
    }
    for run, unit in cases.items():
        out = tmp_path / unit.replace(" ", "_")
        assert main(["report", str(run), "-o", str(out), "-q"]) == OK
        [page] = (out / "runs").iterdir()
        html = page.read_text()
        trends = re.findall(r"[+-][0-9.e+-]+ dec/([a-z0-9 ]+) \[", html)
        assert trends and set(trends) == {unit}, (unit, set(trends))
        axis = "epoch" if unit == "epoch" else "training step"
        assert f'text-anchor="middle">{axis}</text>' in html


@pytest.mark.tf
def test_charts_with_nothing_finite_say_why_in_words(tmp_path, make_run):
    nan = [np.full(50, np.nan)] * 3  # TF2's histogram of NaN input: every edge NaN, every count 0
    run = make_run("tf2", {"grad/a": nan, "grad/b": nan}, [0, 1, 2], "all_nan")
    assert main(["report", str(run), "-o", str(tmp_path / "r"), "-q"]) == OK
    [page] = (tmp_path / "r" / "runs").iterdir()
    html = page.read_text()
    assert "exploding" in html
    for chart in ("Heatmap", "Magnitude over steps", "Depth profile"):
        assert f"{chart}: no finite gradient value to draw" in html, chart


def test_the_index_names_layers_not_whole_tags(sample_report):
    _, out, _ = sample_report
    html = (out / "index.html").read_text()
    cell = re.search(r'<td class="tag hide-narrow" data-value="([^"]+)" title="\1">([^<]+)</td>', html)
    assert cell and cell.group(1) == "gradients/sequential/dense/kernel" and cell.group(2) == "dense"
