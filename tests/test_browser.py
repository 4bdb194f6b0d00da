"""The sample report in a real browser (Debian's Chromium, headless, through Playwright), from file://."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_LOGS

from analyzer.cli import OK, main

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's browser probe found: without these, Chromium reaches for Google's hosts at start.
QUIET_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=QUIET_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    assert main(["report", str(SAMPLE_LOGS), "-o", str(out), "-q"]) == OK
    return out


class Watched:
    """A page that records console errors, page errors and every request that is not to disk."""

    def __init__(self, browser, **context):
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.remote: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "request", lambda r: None if r.url.startswith(("file:", "data:")) else self.remote.append(r.url)
        )

    def open(self, path: Path):
        self.page.goto(path.as_uri())
        return self.page

    def close(self):
        assert self.errors == [] and self.remote == []
        self.context.close()


def screenshot_dir(tmp_path: Path) -> Path:
    """Screenshots go to the test's folder; GRADAUDIT_SCREENSHOTS names another (the README's)."""
    target = Path(os.environ.get("GRADAUDIT_SCREENSHOTS", tmp_path))
    target.mkdir(parents=True, exist_ok=True)
    return target


def _luminance(css_rgb: str) -> float:
    """0 (black) to 1 (white), from a computed "rgb(r, g, b)"."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#runs tbody tr:not([hidden])", f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    )


def test_index_sorts_filters_and_draws_offline(browser, sample_report, tmp_path):
    watched = Watched(browser, viewport={"width": 1280, "height": 900})
    page = watched.open(sample_report / "index.html")
    assert page.title() == "gradaudit: 4 runs"
    page.screenshot(path=str(screenshot_dir(tmp_path) / "index.png"), full_page=True)  # as it opens
    worst_first = ["exploding", "vanishing", "dead_units", "healthy"]  # both critical ones first
    assert column(page, 1) == worst_first  # the default order
    page.click("th:has-text('Verdict')")  # sorting by verdict sorts by severity, not alphabetically
    assert column(page, 1) == worst_first
    page.click("th:has-text('Verdict')")
    assert column(page, 1) == worst_first[::-1]
    page.click("button.count[data-verdict='dead_units']")  # a verdict count filters the table
    assert (
        column(page, 1) == ["dead_units"] and page.text_content("#shown") == "1 of 4 runs shown (dead_units)"
    )
    page.click("button.count[data-verdict='dead_units']")  # clicked again: every run
    assert len(column(page, 1)) == 4
    page.focus("th:has-text('Steps')")  # keyboard: focus a header, Enter sorts
    page.keyboard.press("Enter")
    assert page.get_attribute("th:has-text('Steps')", "aria-sort") == "ascending"
    page.fill("#filter", "vanish")
    assert column(page, 0) == ["vanishing_sigmoid_deep"]
    assert page.text_content("#shown") == "1 of 4 runs shown"
    page.fill("#filter", "")
    sparklines = page.eval_on_selector_all("svg.spark polyline", "els => els.map(e => e.getBBox().width)")
    assert len(sparklines) == 4 and all(w > 10 for w in sparklines)
    watched.close()


def test_run_page_answers_first_and_draws_every_chart(browser, sample_report, tmp_path):
    from PIL import Image

    watched = Watched(browser, viewport={"width": 1280, "height": 900})
    [page_path] = (sample_report / "runs").glob("vanishing_sigmoid_deep-*.html")
    page = watched.open(page_path)
    # The first screen says what is wrong, where, since when and what to do.
    first_screen = page.evaluate(
        "document.elementFromPoint(10, 10) && document.body.innerText.slice(0, 1500)"
    )
    assert "VANISHING" in first_screen.upper() and "decades" in first_screen
    # Evidence in words a person reads, the numbers folded away for those who want them.
    words = page.inner_text("section.finding p.words")
    assert words.startswith("The first layer gets about a million times less gradient than the last")
    assert "a thousand times less on half the steps" in words
    assert not page.is_visible("section.finding details.numbers dl")
    page.click("section.finding details.numbers summary")
    assert page.is_visible("section.finding details.numbers dl")
    charts = page.query_selector_all("svg.chart")
    assert len(charts) == 4  # the gradient charts and the loss curve, beside the flat loss's finding
    labels = [chart.get_attribute("aria-label") for chart in charts]
    assert sum(label.startswith("Loss over logged steps") for label in labels) == 1
    assert "Rests on" in page.inner_text("section.finding") and "gradients and loss" in page.inner_text(
        "section.finding"
    )
    for chart in charts:
        box = chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 100
        assert chart.get_attribute("aria-label")
        drawn = chart.evaluate("svg => [...svg.querySelectorAll('polyline, image, circle')].length")
        assert drawn > 0
    heatmap = page.query_selector("svg.heatmap")
    pixels = Image.open(io.BytesIO(heatmap.screenshot())).convert("RGB")
    assert len(pixels.getcolors(maxcolors=1 << 20)) > 50  # a real gradient of colours, not a blank box
    # Pointing at a cell tells its layer, step and RMS: the first layer's first cell, then the last's.
    image = heatmap.query_selector("image").bounding_box()
    page.mouse.move(image["x"] + 2, image["y"] + 2)
    assert page.text_content("p.hover-value") == "gradients/sequential/dense/kernel · step 0 · RMS 1.28e-8"
    page.mouse.move(image["x"] + image["width"] - 2, image["y"] + image["height"] - 2)
    assert page.text_content("p.hover-value").startswith(
        "gradients/sequential/dense_10/bias · step 256 · RMS "
    )
    legend = heatmap.eval_on_selector_all("text.tick", "ts => ts.map(t => t.textContent)")
    assert not [t for t in legend if re.fullmatch(r"1e-?\d+\.\d+", t)]  # 1e-8, never 1e-8.4
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "run.png"), full_page=False)
    watched.close()


def test_dark_theme_and_phone_width(browser, sample_report):
    watched = Watched(browser, viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = watched.open(sample_report / "index.html")
    dark = _luminance(page.evaluate("getComputedStyle(document.body).backgroundColor"))
    light_page = Watched(browser, color_scheme="light")
    light = _luminance(
        light_page.open(sample_report / "index.html").evaluate(
            "getComputedStyle(document.body).backgroundColor"
        )
    )
    light_page.close()
    assert dark < 0.2 < 0.8 < light  # a dark page in the dark scheme, a light one otherwise
    assert page.evaluate("document.documentElement.scrollWidth") <= 392  # no sideways scrolling
    [run_page] = (sample_report / "runs").glob("healthy_relu_adam-*.html")
    page = watched.open(run_page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 392
    watched.close()


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory) -> Path:
    """44 runs: the four samples eleven times, under long hyperparameter-named folders."""
    root = tmp_path_factory.mktemp("sweep")
    for seed in range(11):
        for sample in SAMPLE_LOGS.iterdir():
            if sample.is_dir():
                act = "sigmoid" if "vanishing" in sample.name else "relu"
                folder = (
                    root / "logs" / f"lr=0.00{seed + 1},act={act},optimizer=adam,seed={seed}" / sample.name
                )
                shutil.copytree(sample, folder)
    out = root / "report"
    assert main(["report", str(root / "logs"), "-o", str(out), "-q"]) == OK
    return out


def _cells(page, selector):
    return page.eval_on_selector_all(
        f"#runs tbody tr:not([hidden]) {selector}",
        "cs => cs.map(c => { const b = c.getBoundingClientRect(); return [b.left, b.right, b.height]; })",
    )


def test_a_44_run_sweep_reads_one_line_per_run_with_name_and_verdict_pinned(browser, sweep_report):
    watched = Watched(browser, viewport={"width": 1280, "height": 900})
    page = watched.open(sweep_report / "index.html")
    verdicts = column(page, 1)
    assert len(verdicts) == 44
    assert verdicts == sorted(verdicts, key=["exploding", "vanishing", "dead_units", "healthy"].index)
    heights = [h for *_, h in _cells(page, "td.pin-name")]
    assert max(heights) < 1.5 * min(heights)  # one line each, the long reasons cut
    cut = page.eval_on_selector_all(
        "#runs td.reason", "cs => cs.filter(c => c.scrollWidth > c.clientWidth).map(c => c.title)"
    )
    assert cut and all(len(title) > 60 for title in cut)  # long reasons cut, whole on hover
    # Scrolled sideways to the far end, the name and the verdict stay in view.
    page.eval_on_selector(".tablewrap", "w => { w.scrollLeft = w.scrollWidth; }")
    wrap_left = page.eval_on_selector(".tablewrap", "w => w.getBoundingClientRect().left")
    for cells in (_cells(page, "td.pin-name"), _cells(page, "td.pin-verdict")):
        assert all(left >= wrap_left - 1 and right <= 1280 for left, right, _ in cells)
    # Optional columns can be hidden, and the verdict counts filter.
    page.uncheck("input[data-column='spark']")
    assert page.eval_on_selector_all("#runs td.col-spark", "cs => cs.filter(c => c.offsetParent).length") == 0
    page.click("button.count[data-verdict='vanishing']")
    assert set(column(page, 1)) == {"vanishing"} and len(column(page, 1)) == 11
    watched.close()


def test_a_44_run_sweep_on_a_phone_shows_every_name_and_verdict(browser, sweep_report):
    watched = Watched(browser, viewport={"width": 390, "height": 844})
    page = watched.open(sweep_report / "index.html")
    for cells in (_cells(page, "td.pin-name"), _cells(page, "td.pin-verdict")):
        assert len(cells) == 44
        assert all(left >= 0 and right <= 390 for left, right, _ in cells)
    watched.close()


def test_a_report_on_45_real_runs_opens_worst_first_and_reads_out_its_cells(browser, tmp_path_factory):
    """The accuracy corpus's held-back runs: CNNs, RNNs, embeddings, transformers and MLPs from six
    writers. Its screenshot is the README's picture of a sweep."""
    import json

    corpus = Path(__file__).resolve().parent.parent / "bench" / "accuracy" / "runs"
    labels = json.loads((corpus / "labels.json").read_text())["runs"]
    held_back = [
        str(corpus / name) for name, label in sorted(labels.items()) if label["split"] == "held_back"
    ]
    out = tmp_path_factory.mktemp("corpus") / "report"
    assert main(["report", *held_back, "-o", str(out), "-q"]) == OK
    watched = Watched(browser, viewport={"width": 1280, "height": 800})
    page = watched.open(out / "index.html")
    verdicts = column(page, 1)
    assert len(verdicts) == 45
    triage = page.eval_on_selector_all("#runs tbody td.pin-verdict", "cs => cs.map(c => c.dataset.value)")
    assert triage == sorted(triage)  # critical findings first, then by verdict
    first_healthy = verdicts.index("healthy")
    assert set(verdicts[first_healthy:]) == {"healthy"} and "exploding" in verdicts[:first_healthy]
    page.screenshot(path=str(screenshot_dir(tmp_path_factory.mktemp("shots")) / "sweep.png"))
    page.click("#runs tbody tr:first-child td.pin-name a")
    image = page.query_selector("svg.heatmap image")
    image.scroll_into_view_if_needed()
    heatmap = image.bounding_box()
    page.mouse.move(heatmap["x"] + heatmap["width"] / 2, heatmap["y"] + 2)
    assert " · step " in page.text_content("p.hover-value")
    watched.close()


@pytest.mark.slow
def test_a_1000_run_index_sorts_and_filters(browser, tmp_path_factory):
    """A sweep of a thousand runs (one real tensorboardX run copied under a thousand settings); how
    fast it paints, sorts and filters is measured by bench/index_paint.py, not here."""
    SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter
    root = tmp_path_factory.mktemp("thousand")
    writer = SummaryWriter(str(root / "one"))
    rng = np.random.default_rng(1)
    for step in range(3):
        for layer in range(3):
            writer.add_histogram(f"grad/layer{layer}.weight", rng.normal(size=200) * 10.0**-layer, step)
    writer.close()
    [event_file] = (root / "one").iterdir()
    for i in range(1000):
        run = root / "logs" / f"lr={i % 10},width={i // 10}"
        run.mkdir(parents=True)
        shutil.copy(event_file, run / event_file.name)
    out = root / "report"
    assert main(["report", str(root / "logs"), "-o", str(out), "-q"]) == OK
    watched = Watched(browser, viewport={"width": 1280, "height": 900})
    page = watched.open(out / "index.html")
    assert len(column(page, 0)) == 1000
    page.click("th[data-sort]")
    assert column(page, 0) == sorted(column(page, 0), key=str.lower)  # by name, ascending
    page.fill("#filter", "lr=3,")
    assert len(column(page, 0)) == 100
    watched.close()


WEIGHT_AS_GRADIENT = re.compile(r"(?i)gradient (rms|magnitude)|log10 gradient|\|g\||magnitudes are gradient")


def test_no_text_on_a_weight_based_page_or_the_index_labels_weights_as_gradients(
    browser, tmp_path, real_logs
):
    out = tmp_path / "report"
    assert main(["report", str(real_logs / "keras_tutorial_sweep"), "-o", str(out), "-q"]) == OK
    watched = Watched(browser, viewport={"width": 1280, "height": 900})
    for page_path in [out / "index.html", *sorted((out / "runs").glob("*.html"))]:
        page = watched.open(page_path)
        text = page.inner_text("body")
        labels = page.eval_on_selector_all("[aria-label]", "es => es.map(e => e.getAttribute('aria-label'))")
        svg_text = page.eval_on_selector_all("svg text", "ts => ts.map(t => t.textContent)")
        for said in [text, *labels, *svg_text]:
            assert not WEIGHT_AS_GRADIENT.search(said), (
                page_path.name,
                WEIGHT_AS_GRADIENT.search(said).group(0),
            )
        if page_path.parent.name == "runs":
            assert "weight RMS" in " ".join(labels) and "Max |w|" in text
    watched.close()
