"""The Gradients dashboard inside a real TensorBoard server (a subprocess on a free port), loaded from
gradaudit's `tensorboard_plugins` entry point, and seen in a real browser (Debian's Chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SAMPLE_LOGS, write_tbx_histograms
from test_browser import Watched, browser, screenshot_dir  # noqa: F401  (browser: a fixture)

from analyzer.cli import OK, main

pytestmark = pytest.mark.slow  # TensorBoard servers

SAMPLE_VERDICTS = {
    "dead_units_negative_bias": "dead_units",
    "exploding_sgd_high_lr": "exploding",
    "healthy_relu_adam": "healthy",
    "vanishing_sigmoid_deep": "vanishing",
}


class TensorBoard:
    """`tensorboard --logdir LOGDIR --port 0`, with gradaudit's cache in `cache`; stopped on close."""

    def __init__(self, logdir: Path, cache: Path, log: Path, logdir_spec: str = ""):
        script = Path(sys.executable).with_name("tensorboard")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "tensorboard.main"]
        env = {**os.environ, "GRADAUDIT_CACHE_DIR": str(cache)}
        self.log = log
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                [
                    *command,
                    *(["--logdir_spec", logdir_spec] if logdir_spec else ["--logdir", str(logdir)]),
                    "--port",
                    "0",
                    "--host",
                    "127.0.0.1",
                    "--reload_interval",
                    "2",
                ],
                stdout=stderr,
                stderr=stderr,
                env=env,
            )
        deadline = time.monotonic() + 120
        while not (found := re.search(r"at (http://127\.0\.0\.1:\d+)/", log.read_text())):
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        self.url = found.group(1)

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def wait_until_analysed(self, runs: int) -> list[dict]:
        deadline = time.monotonic() + 180
        while True:
            status, body = self.get("/data/plugin/gradaudit/runs")
            if status == 200 and body["done"] and len(body["runs"]) == runs:
                return body["runs"]
            assert time.monotonic() < deadline, (body, self.log.read_text())
            time.sleep(0.5)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tensorboard")
    before = sorted(p.relative_to(SAMPLE_LOGS) for p in SAMPLE_LOGS.rglob("*"))
    server = TensorBoard(SAMPLE_LOGS, folder / "cache", folder / "tensorboard.log")
    try:
        yield server
    finally:
        server.close()
    # The analysis wrote into the cache folder only, never into the logdir.
    assert sorted(p.relative_to(SAMPLE_LOGS) for p in SAMPLE_LOGS.rglob("*")) == before
    assert (folder / "cache").is_dir()


def test_the_plugin_lists_the_sample_runs_with_their_verdicts(sample_server):
    runs = sample_server.wait_until_analysed(len(SAMPLE_VERDICTS))
    assert {r["run"]: r["verdict"] for r in runs} == SAMPLE_VERDICTS
    assert all(r["done"] and r["reason"] and r["tensorboard_runs"] == [r["run"]] for r in runs)
    status, listing = sample_server.get("/data/plugins_listing")
    assert status == 200 and listing["gradaudit"]["enabled"] is True
    assert listing["gradaudit"]["tab_name"] == "Gradients"
    status, document = sample_server.get("/data/plugin/gradaudit/run?run=vanishing_sigmoid_deep")
    assert status == 200 and document["verdict"] == "vanishing" and document["findings"]


@pytest.mark.parametrize(
    "path",
    [
        "/data/plugin/gradaudit/run?run=../../../../etc/passwd",
        "/data/plugin/gradaudit/run?run=%2Fetc%2Fpasswd",
        "/data/plugin/gradaudit/run?run=",
        "/data/plugin/gradaudit/report/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/data/plugin/gradaudit/report/runs/..%2F.gradaudit-cache",
    ],
)
def test_unknown_or_malicious_names_get_a_400(sample_server, path):
    sample_server.wait_until_analysed(len(SAMPLE_VERDICTS))
    status, body = sample_server.get(path)
    assert status == 400 and isinstance(body["error"], str)


def test_the_tab_shows_the_report_inside_tensorboard(browser, sample_server, tmp_path):  # noqa: F811
    sample_server.wait_until_analysed(len(SAMPLE_VERDICTS))
    watched = Watched(browser, viewport={"width": 1280, "height": 800})
    page = watched.page
    page.goto(sample_server.url + "/")
    page.get_by_text("Gradients", exact=True).first.click()  # the tab in TensorBoard's bar
    frame = page.frame_locator("iframe")
    frame.locator("h1").filter(has_text="Gradient report: 4 runs").wait_for()
    assert frame.locator("#runs tbody tr").count() == 4
    page.screenshot(path=str(screenshot_dir(tmp_path) / "tensorboard.png"))
    frame.locator("a", has_text="vanishing_sigmoid_deep").click()
    verdict = frame.locator(".badge.b-vanishing").first
    verdict.wait_for()
    assert verdict.is_visible()
    assert frame.locator("svg").count() >= 3  # the run page's charts, drawn inside TensorBoard
    # Only TensorBoard's own server was asked for anything, and nothing was blocked or failed:
    # Watched collects every request that is not to disk; here they must all be to the server.
    watched.remote = [url for url in watched.remote if not url.startswith(sample_server.url + "/")]
    watched.close()


def test_a_logdir_without_gradient_evidence_leaves_the_plugin_off(tmp_path):
    SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter

    writer = SummaryWriter(str(tmp_path / "logs" / "scalars_only"))
    for step in range(20):
        writer.add_scalar("accuracy", step / 20, step)
    writer.close()
    server = TensorBoard(tmp_path / "logs", tmp_path / "cache", tmp_path / "tensorboard.log")
    try:
        [run] = server.wait_until_analysed(1)
        assert run["verdict"] == "insufficient_data"
        status, listing = server.get("/data/plugins_listing")
        assert status == 200 and listing["gradaudit"]["enabled"] is False
        assert listing["scalars"]["enabled"] is True  # TensorBoard's own dashboards still work
        status, tags = server.get("/data/plugin/scalars/tags")
        assert status == 200 and "accuracy" in tags["scalars_only"]
    finally:
        server.close()


def test_runs_that_grow_or_appear_are_analysed_again(tmp_path, rng):
    # Two logdirs through --logdir_spec, as TensorBoard names them: "a/<run>" and "b/<run>".
    def histograms(steps: list[int]) -> dict[str, list]:
        return {f"grad/dense_{i}/kernel": [rng.normal(0, 0.1, 256) for _ in steps] for i in range(3)}

    # The first run is Keras-shaped: train/ and validation/ folders, one run for gradaudit.
    first, second = tmp_path / "a", tmp_path / "b"
    write_tbx_histograms(first / "run" / "train", histograms([0, 1, 2]), [0, 1, 2])
    write_tbx_histograms(first / "run" / "validation", {}, [])
    server = TensorBoard(tmp_path, tmp_path / "cache", tmp_path / "tensorboard.log", f"a:{first},b:{second}")
    try:
        [run] = server.wait_until_analysed(1)
        assert run["tensorboard_runs"] == ["a/run/train", "a/run/validation"]
        _, document = server.get("/data/plugin/gradaudit/run?run=run")
        assert document["layers"][0]["steps"] == 3
        # A new run in the other logdir, and the first run logging more steps in a new file.
        write_tbx_histograms(second / "late", histograms([0, 1]), [0, 1])
        write_tbx_histograms(first / "run" / "train", histograms([3, 4, 5, 6]), [3, 4, 5, 6])
        deadline = time.monotonic() + 120
        while True:
            runs = {r["run"]: r for r in server.wait_until_analysed(2)}
            _, document = server.get("/data/plugin/gradaudit/run?run=run")
            if document["layers"][0]["steps"] == 7:
                break
            assert time.monotonic() < deadline, document["layers"][0]
            time.sleep(0.5)
        assert runs["late"]["tensorboard_runs"] == ["b/late"] and runs["late"]["done"]
    finally:
        server.close()


def test_weight_histograms_alone_enable_the_plugin(tmp_path, real_logs):
    # Keras's own TensorBoard(histogram_freq=1) logs: no gradients, judged from their weights.
    server = TensorBoard(real_logs / "keras_tutorial_sweep", tmp_path / "cache", tmp_path / "tensorboard.log")
    try:
        runs = server.wait_until_analysed(4)
        assert {run["verdict"] for run in runs} == {"healthy"}
        assert all(
            run["tensorboard_runs"] == [f"{run['run']}/train", f"{run['run']}/validation"] for run in runs
        )
        status, listing = server.get("/data/plugins_listing")
        assert status == 200 and listing["gradaudit"]["enabled"] is True
        status, document = server.get(f"/data/plugin/gradaudit/run?run={runs[0]['run']}")
        assert status == 200 and document["evidence"] == "weight histograms"
    finally:
        server.close()


SETTINGS = ("lr", "bs", "dropout", "depth", "width", "wd", "momentum", "seed", "act", "opt")


def _wide_sweep(root: Path) -> Path:
    """Eight sample runs under 80-character folder names that hold ten settings each."""
    logs = root / "logs"
    for i, sample in enumerate(sorted(p for p in SAMPLE_LOGS.iterdir() if p.is_dir()) * 2):
        values = ("1e-3", "32", ".1", "8", "8", "0", ".9", str(i), "elu", "sgd")
        name = ",".join(f"{k}={v}" for k, v in zip(SETTINGS, values))
        assert len(name) == 80
        shutil.copytree(sample, logs / f"{i}" / name)
    return logs


def _header_edges(frame_or_page) -> list[tuple[str, float, str]]:
    return frame_or_page.locator("#runs thead th").evaluate_all(
        "ths => ths.map(t => [t.textContent.trim(), t.getBoundingClientRect().right,"
        " getComputedStyle(t).display])"
    )


def test_a_wide_sweep_fits_1280_px_here_and_in_tensorboard(browser, tmp_path):  # noqa: F811
    """80-character run names and ten settings columns: every header cell shown and inside the window,
    in the static report and in TensorBoard's Gradients tab."""
    logs = _wide_sweep(tmp_path)
    out = tmp_path / "report"
    assert main(["report", str(logs), "-o", str(out), "-q"]) == OK
    watched = Watched(browser, viewport={"width": 1280, "height": 900})
    page = watched.open(out / "index.html")
    edges = _header_edges(page)
    assert {name for name, _, _ in edges} >= set(SETTINGS)
    assert all(display != "none" and right <= 1280 for _, right, display in edges), edges
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    server = TensorBoard(logs, tmp_path / "cache", tmp_path / "tensorboard.log")
    try:
        server.wait_until_analysed(8)
        page.goto(server.url + "/")
        page.get_by_text("Gradients", exact=True).first.click()
        frame = page.frame_locator("iframe")
        frame.locator("#runs tbody tr").first.wait_for()
        width, scrolled = frame.locator("html").evaluate("h => [h.clientWidth, h.scrollWidth]")
        edges = _header_edges(frame)  # in the frame's own coordinates
        assert all(display != "none" and right <= width for _, right, display in edges), (width, edges)
        assert scrolled <= width
    finally:
        server.close()
    watched.remote = [url for url in watched.remote if not url.startswith(server.url + "/")]
    watched.close()
