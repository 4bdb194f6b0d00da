"""How fast the index of a sweep paints, sorts and filters in Chromium: a thousand runs (one real
tensorboardX run copied under a thousand settings), measured in the page with performance.now().

    python bench/index_paint.py [--runs 1000] [--rounds 3]

Prints the first paint, a sort by name and a filter to a tenth of the runs, in ms, each round and
their median. Needs Debian's chromium, playwright and tensorboardX (the test extra).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from analyzer.cli import OK, main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUIET_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


def sweep(root: Path, runs: int) -> Path:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(root / "one"))
    rng = np.random.default_rng(1)
    for step in range(3):
        for layer in range(3):
            writer.add_histogram(f"grad/layer{layer}.weight", rng.normal(size=200) * 10.0**-layer, step)
    writer.close()
    [event_file] = (root / "one").iterdir()
    for i in range(runs):
        run = root / "logs" / f"lr={i % 10},width={i // 10}"
        run.mkdir(parents=True)
        shutil.copy(event_file, run / event_file.name)
    out = root / "report"
    assert main(["report", str(root / "logs"), "-o", str(out), "-q"]) == OK
    return out / "index.html"


def measure(page, index: Path) -> tuple[float, float, float]:
    page.goto(index.as_uri())
    paint = page.evaluate(
        "performance.getEntriesByType('paint').map(e => e.startTime).concat([performance.now()])[0]"
    )
    sort_ms = page.evaluate(
        "() => { const t = performance.now(); document.querySelector('th[data-sort]').click();"
        " return performance.now() - t; }"
    )
    filter_ms = page.evaluate(
        "() => { const t = performance.now(); const f = document.getElementById('filter');"
        " f.value = 'lr=3,'; f.dispatchEvent(new Event('input')); return performance.now() - t; }"
    )
    return paint, sort_ms, filter_ms


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
        index = sweep(Path(scratch), args.runs)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=QUIET_FLAGS)
        figures = []
        for round_ in range(args.rounds):
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            figures.append(measure(page, index))
            print(
                f"round {round_ + 1}: paint {figures[-1][0]:.0f} ms, sort {figures[-1][1]:.0f} ms, "
                f"filter {figures[-1][2]:.0f} ms"
            )
        browser.close()
    paint, sort_ms, filter_ms = (statistics.median(column) for column in zip(*figures))
    print(
        f"{args.runs} runs, median of {args.rounds}: paint {paint:.0f} ms, sort {sort_ms:.0f} ms, "
        f"filter {filter_ms:.0f} ms"
    )


if __name__ == "__main__":
    run()
