"""The two figures the weight rules read, per run of the weight-only benchmark, by true label.

    python bench/accuracy/weight_movement.py [--split dev|held_back]   # default dev

For each run that logged Keras's weight histograms beside the true gradients (score.WEIGHT_WRITERS),
read from its weight tags alone: how many decades less the input-side weight layer moved than the
layer that moved most (rules.weights.weight_movement), and the most any weight layer's RMS grew from its
first to its last finite logged step. Then, per label, the range of each: the figures the weight
thresholds (thresholds.Thresholds.weight_still_decades, weight_growth_decades) were set between.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

import score  # noqa: E402

from analyzer.events import read_run  # noqa: E402
from analyzer.options import ReadOptions  # noqa: E402
from analyzer.rules.weights import weight_movement  # noqa: E402
from analyzer.runs import find_runs  # noqa: E402
from analyzer.runstats import run_stats  # noqa: E402
from analyzer.trends import log10_positive  # noqa: E402


def figures(folder: Path) -> tuple[float, float, bool]:
    """(decades the input-side layer moved below the most-moving one, largest growth in decades,
    whether any weight turned NaN/Inf)."""
    [run] = find_runs([str(folder)]).runs
    stats = run_stats(read_run(run, ReadOptions(tag_pattern=score.WEIGHT_TAGS)).layers)
    depth = stats.depth_layers
    movement = weight_movement(stats)[depth]
    with np.errstate(divide="ignore", invalid="ignore"):
        below = float(np.log10(movement[0] / movement.max())) if len(depth) >= 2 else np.nan
    log_rms = log10_positive(stats.rms)[depth]
    growths = [
        row[np.isfinite(row)][-1] - row[np.isfinite(row)][0] for row in log_rms if np.isfinite(row).sum() >= 2
    ]
    return below, max(growths, default=np.nan), bool(stats.nonfinite.any())


def main() -> None:
    split = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--split=")), "dev")
    labels = json.loads((HERE / "runs" / "labels.json").read_text())["runs"]
    by_label: dict[str, list[tuple[float, float]]] = {}
    print(f"{'run':<50}{'label':>11}{'moved below':>13}{'grew':>8}  non-finite")
    for name, truth in sorted(labels.items()):
        if truth["writer"] not in score.WEIGHT_WRITERS or truth["split"] != split:
            continue
        below, growth, nonfinite = figures(HERE / "runs" / name)
        print(f"{name:<50}{truth['label']:>11}{below:>13.2f}{growth:>8.2f}  {nonfinite}")
        if not nonfinite:
            by_label.setdefault(truth["label"], []).append((below, growth))
    print("\nper label, runs whose weights stayed finite: input-side layer's movement below the most-moving")
    print("layer's (decades; -inf: it did not move), and the largest growth (decades)")
    for label, rows in sorted(by_label.items()):
        belows, growths = [b for b, _ in rows], [g for _, g in rows]
        print(
            f"{label:<11} {len(rows):>3} runs  moved below: {np.nanmin(belows):.2f} to "
            f"{np.nanmax(belows):.2f}   grew: {np.nanmin(growths):.2f} to {np.nanmax(growths):.2f}"
        )


if __name__ == "__main__":
    main()
