"""Broken and hostile input, each case a real file: nothing crashes, nothing is lost or injected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SAMPLE_LOGS, report_json

from analyzer.cli import ERROR, OK, main
from analyzer.events import read_run
from analyzer.options import ReadOptions
from analyzer.runs import find_runs


def write_events(folder: Path, events) -> Path:
    """Events crafted as protos, written by TensorBoard's own EventFileWriter (real framing, CRCs)."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for event in events:
        writer.add_event(event)
    writer.close()
    return next(folder.glob("events.out.tfevents.*"))


def legacy_event(tag, step, limits, counts, *, lo=None, hi=None, num=None, total=0.0, squares=0.0):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    histo = summary_pb2.HistogramProto(
        min=limits[0] if lo is None else lo,
        max=limits[-1] if hi is None else hi,
        num=float(sum(counts)) if num is None else num,
        sum=total,
        sum_squares=squares,
        bucket_limit=limits,
        bucket=counts,
    )
    return event_pb2.Event(
        step=step, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)])
    )


def tf2_event(tag, step, array, first=True):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.util import tensor_util

    value = summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.asarray(array, np.float64))
    )
    if first:
        value.metadata.plugin_data.plugin_name = "histograms"
    return event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value]))


def report(tmp_path, *paths, extra=()):
    return report_json(tmp_path / "r.json", *paths, args=("-o", tmp_path / "out", "-j", "1", *extra))


def good_run(folder: Path) -> Path:
    shutil.copytree(SAMPLE_LOGS / "healthy_relu_adam", folder)
    return folder


# --- damaged files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("zero", b"", "empty file (0 bytes)"),
        ("garbage", b"this is not an event file at all" * 10, "CRC"),
        ("huge_header", (1 << 40).to_bytes(8, "little") + b"\0" * 40, "CRC"),
    ],
)
def test_damaged_file_beside_a_good_one_is_named_and_costs_nothing(tmp_path, capsys, name, content, message):
    run = good_run(tmp_path / "logs" / "run")
    bad = run / f"events.out.tfevents.9999999999.{name}"
    bad.write_bytes(content)
    rc, payload = report(tmp_path, tmp_path / "logs")
    assert rc == OK
    [doc] = payload["runs"]
    assert doc["verdict"] == "healthy" and len(doc["layers"]) == 8
    assert len(doc["errors"]) == 1 and str(bad) in doc["errors"][0] and message in doc["errors"][0]
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert str(bad) in (tmp_path / "out" / "runs").iterdir().__next__().read_text()


def test_a_valid_record_that_is_not_an_event_is_reported(tmp_path):
    from analyzer.records import masked_crc32c

    run = good_run(tmp_path / "logs" / "run")
    payload = b"\xff\xff\xff\xff"  # framed and checksummed correctly, but no Event
    header = len(payload).to_bytes(8, "little")
    record = (
        header
        + masked_crc32c(header).to_bytes(4, "little")
        + payload
        + masked_crc32c(payload).to_bytes(4, "little")
    )
    (run / "events.out.tfevents.9999999999.bad").write_bytes(record)
    for reader in ("streaming", "tensorboard"):
        data = read_run(find_runs([str(run)]).runs[0], ReadOptions(reader=reader))
        assert len(data.layers) == 8
        assert len(data.problems) == 1 and "unreadable record" in data.problems[0].message


def test_folder_of_only_garbage_is_exit_two_with_the_report_still_written(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events.out.tfevents.1.x").write_bytes(b"\x00" * 100)
    rc, payload = report(tmp_path, tmp_path / "logs")
    assert rc == ERROR
    assert payload["runs"][0]["errors"] and (tmp_path / "out" / "index.html").exists()


# --- folders --------------------------------------------------------------------------------------------


def test_symlink_loop_and_linked_runs(tmp_path):
    good_run(tmp_path / "elsewhere" / "linked")
    logs = tmp_path / "logs"
    good_run(logs / "a")
    os.symlink(logs, logs / "a" / "loop")  # a loop back to the top
    os.symlink(tmp_path / "elsewhere" / "linked", logs / "linked")
    rc, payload = report(tmp_path, logs)
    assert rc == OK
    assert sorted(r["run"] for r in payload["runs"]) == ["a", "linked"]


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv to drop root's rights")
def test_unreadable_directory_is_a_problem_not_a_crash():
    # Root reads every folder: the command runs as 'nobody' for the permission to matter.
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = subprocess.run([*as_nobody, "-c", "import analyzer.cli"], cwd="/", capture_output=True, env=env)
    if probe.returncode != 0:
        pytest.skip("this checkout or its Python is not readable by 'nobody'")
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        logs = Path(top) / "logs"
        good_run(logs / "ok")
        (logs / "locked").mkdir()
        (logs / "locked" / "events.out.tfevents.1.x").write_bytes(b"")
        os.chmod(logs / "locked", 0o000)
        cmd = [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-m",
            "analyzer.cli",
            "report",
            str(logs),
            "--no-html",
            "--json",
            "-",
            "-q",
        ]
        out = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        os.chmod(logs / "locked", 0o755)
    assert out.returncode == OK, out.stderr
    assert "locked: cannot read directory (Permission denied)" in out.stderr
    assert "Traceback" not in out.stderr
    assert [r["run"] for r in json.loads(out.stdout)["runs"]] == ["ok"]


def test_output_inside_the_analysed_folder_is_not_read_back(tmp_path):
    logs = tmp_path / "logs"
    good_run(logs / "run")
    out = logs / "report"
    for _ in range(2):
        assert main(["report", str(logs), "-o", str(out), "--json", str(out / "r.json"), "-q"]) == OK
    assert [r["run"] for r in json.loads((out / "r.json").read_text())["runs"]] == ["run"]


# --- odd histograms ---------------------------------------------------------------------------------------


def test_odd_legacy_histograms_give_flagged_or_finite_statistics(tmp_path):
    events = [
        legacy_event("grad/nan_edges", 0, [float("nan"), 1.0], [1.0, 2.0]),
        legacy_event("grad/nan_edges", 1, [0.5, 1.0], [1.0, 2.0]),
        legacy_event("grad/all_zero_counts", 0, [1.0, 2.0], [0.0, 0.0]),
        legacy_event("grad/all_zero_counts", 1, [1.0, 2.0], [0.0, 0.0]),
        legacy_event("grad/single_bucket", 0, [3.0], [7.0], lo=1.0, hi=3.0, squares=7 * 13 / 3),
        legacy_event("grad/single_bucket", 1, [3.0], [7.0], lo=1.0, hi=3.0, squares=7 * 13 / 3),
        legacy_event("grad/zero_width", 0, [0.0, 0.0, 2.0], [5.0, 0.0, 1.0], lo=0.0, hi=2.0),
        legacy_event("grad/zero_width", 1, [0.0, 0.0, 2.0], [5.0, 0.0, 1.0], lo=0.0, hi=2.0),
        legacy_event("grad/huge", 0, [1e29, 1e30], [1.0, 1.0], lo=5e28, hi=1e30),
        legacy_event("grad/huge", 1, [1e29, 1e30], [1.0, 1.0], lo=5e28, hi=1e30),
        legacy_event("grad/inf_count", 0, [1.0, 2.0], [float("inf"), 1.0]),
        legacy_event("grad/inf_count", 1, [1.0, 2.0], [1.0, 1.0]),
    ]
    write_events(tmp_path / "logs" / "odd", events)
    rc, payload = report(tmp_path, tmp_path / "logs")
    assert rc == OK
    [doc] = payload["runs"]
    layers = {layer["tag"]: layer for layer in doc["layers"]}
    assert layers["grad/all_zero_counts"]["rms_last"] is None  # empty, said as null, not 0 or NaN
    assert layers["grad/single_bucket"]["rms_last"] == pytest.approx(np.sqrt(13 / 3))
    # buckets are [left, right): the [0, 2) bucket may hold zeros too, so all 6 entries may be zero
    assert layers["grad/zero_width"]["zero_share_last"] == pytest.approx(1.0)
    assert layers["grad/huge"]["max_abs"] == pytest.approx(1e30)
    assert (
        layers["grad/nan_edges"]["nonfinite_steps"] == 1 and layers["grad/inf_count"]["nonfinite_steps"] == 1
    )
    assert doc["verdict"] == "exploding"  # non-finite values logged


def test_tag_that_changes_encoding_mid_run_and_a_tensor_that_is_not_a_histogram(tmp_path):
    events = [tf2_event("grad/w", 0, [[-1, 1, 10]]), tf2_event("grad/w", 1, [[-1, 1, 10]], first=False)]
    events += [legacy_event("grad/w", s, [0.5, 1.0], [5.0, 5.0], lo=0.1) for s in (2, 3)]
    events += [tf2_event("grad/w", 4, [1.0, 2.0], first=False)]  # the wrong shape
    bad = write_events(tmp_path / "logs" / "mixed", events)
    rc, payload = report(tmp_path, tmp_path / "logs")
    [doc] = payload["runs"]
    assert doc["steps"] == [0, 1, 2, 3] and sorted(doc["encodings"]) == ["legacy", "tf2"]
    assert doc["errors"] == [f"{bad}: tag 'grad/w' step 4: not a [k, 3] histogram; skipped"]


def test_duplicate_steps_in_one_file_keep_the_last(tmp_path):
    events = [
        legacy_event("grad/w", 5, [1.0], [1.0], lo=1.0, hi=1.0, squares=1.0, total=1.0),
        legacy_event("grad/w", 5, [2.0], [1.0], lo=2.0, hi=2.0, squares=4.0, total=2.0),
        legacy_event("grad/w", 6, [2.0], [1.0], lo=2.0, hi=2.0, squares=4.0, total=2.0),
    ]
    write_events(tmp_path / "logs" / "dup", events)
    for reader in ("streaming", "tensorboard"):
        data = read_run(find_runs([str(tmp_path / "logs")]).runs[0], ReadOptions(reader=reader))
        layer = data.layers[0]  # the second step-5 event: sum of squares 4 over one entry
        assert list(layer.steps) == [5, 6] and list(layer.rms) == [2.0, 2.0] and layer.rms_exact.all()


@pytest.mark.slow
def test_a_run_with_5000_tags(tmp_path):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    events = []
    for step in range(3):
        values = [
            summary_pb2.Summary.Value(
                tag=f"grad/layer{i}",
                histo=summary_pb2.HistogramProto(
                    min=-1.0,
                    max=1.0,
                    num=2.0,
                    sum=0.0,
                    sum_squares=2.0 * 10 ** (-7 * (4999 - i) / 4999),
                    bucket_limit=[0.0, 1.0],
                    bucket=[1.0, 1.0],
                ),
            )
            for i in range(5000)
        ]
        events.append(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=values)))
    write_events(tmp_path / "logs" / "wide", events)
    rc, payload = report(tmp_path, tmp_path / "logs")
    assert rc == OK and len(payload["runs"][0]["layers"]) == 5000
    assert payload["runs"][0]["verdict"] == "vanishing"  # 3.5 decades from first to last, by construction


# --- names from logs are data, never markup ---------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize(
    "name", ["sp ace", "ünï©ødé ✓", "quo'te\"s", "<script>alert(1)</script>", "..%2F..%2Fx"]
)
def test_names_render_as_text(tmp_path, rng, make_run, name):
    values = [rng.normal(size=50) * 10**-k for k in range(3)]
    make_run("tbx", {f"grad/{name}": values, "grad/b": values}, [0, 1, 2], name=f"logs/{name}")
    rc, payload = report(tmp_path, tmp_path / "logs")
    assert rc == OK and payload["runs"][0]["run"] == name
    pages = [tmp_path / "out" / "index.html", *(tmp_path / "out" / "runs").iterdir()]
    assert all(p.resolve().is_relative_to((tmp_path / "out").resolve()) for p in pages)
    for page in pages:
        parsed = _Tags()
        parsed.feed(page.read_text(encoding="utf-8"))
        assert name in "".join(parsed.text)
        scripts = sorted(attrs.get("type", "") for tag, attrs in parsed.elements if tag == "script")
        # gradaudit's own scripts only: the index's, and a run page's read-out with its JSON data
        assert scripts == ([""] if page.name == "index.html" else ["", "application/json"])
        assert "<script>alert" not in page.read_text(encoding="utf-8")  # never raw, even in the data
        assert not any(key.startswith("on") for _, attrs in parsed.elements for key in attrs)


def test_dot_dot_tag_cannot_escape_the_output_folder(tmp_path, rng, make_run):
    values = [rng.normal(size=50) for _ in range(3)]
    make_run("tbx", {"grad/../../../evil": values}, [0, 1, 2], name="logs/../logs/run")
    rc, _ = report(tmp_path, tmp_path / "logs")
    assert rc == OK
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(p).startswith(("out", "logs", "r.json")) for p in written)
