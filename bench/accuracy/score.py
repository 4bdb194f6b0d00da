"""Score gradaudit's verdicts against the labelled corpus written by make_runs.py, by split.

    python bench/accuracy/score.py [RUNS_DIR] [--split held_back|dev|both]   # default: both

    python bench/accuracy/score.py bench/accuracy/norm_runs          # the norms-only corpus

    python bench/accuracy/score.py --weights                          # the weight-only benchmark

    python bench/accuracy/score.py DIR --threshold=NAME=VALUE         # a variant (analyzer/thresholds.py)

The corpus is split by recipe (make_runs.split_of): the rules were tuned on the "dev" recipes only;
the "held_back" ones are scored once, and their figure is the one to quote, so it prints first.
For each split: each run's label and verdict, the confusion matrix, precision and recall per class,
the run-level accuracy, the healthy runs flagged, and for each detected finding the Jaccard overlap
of the layers it named with the layers the true gradients name (a kernel and its bias are one
layer). Exits 1 when a target is missed on the held-back half (accuracy >= 95 %, no healthy run
flagged, every Jaccard >= 0.8), or on the dev half when only it is scored. In the norms-only
corpus a run's expected verdict is its label where its evidence can show that kind, else healthy: a
global norm shows exploding only; per-parameter norms show vanishing and exploding, not dead units.

With --weights, the runs that logged Keras's own weight histograms beside the true gradients (the
``seed`` writer: a TensorBoard(histogram_freq=1) subclass) are analysed from their weight histograms
alone, so their labels stay true; weights show vanishing and exploding, not dead units.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent

from analyzer.batch import BatchOptions, process_runs  # noqa: E402
from analyzer.config import thresholds_from  # noqa: E402
from analyzer.runs import find_runs  # noqa: E402
from analyzer.tags import layer_path as layer_of  # noqa: E402 (a kernel and its bias are one layer)
from analyzer.thresholds import DEFAULT_THRESHOLDS, Thresholds  # noqa: E402

CLASSES = ["healthy", "vanishing", "exploding", "dead_units"]
LEARNING_CLASSES = ["stalled", "unstable"]  # the learning corpus's (learning_runs.py)
SPLITS = ("held_back", "dev")


# The weight-only benchmark: runs whose writer logged weight histograms, and those tags alone.
WEIGHT_WRITERS = {"seed"}
WEIGHT_TAGS = r"^(?!.*grad).*/histogram$"


def score(runs_dir: Path, weights: bool = False, limits: Thresholds = DEFAULT_THRESHOLDS) -> list[tuple]:
    labels = json.loads((runs_dir / "labels.json").read_text())["runs"]
    if weights:
        labels = {
            name: dict(truth, writer="weights")
            for name, truth in labels.items()
            if truth["writer"] in WEIGHT_WRITERS
        }
    runs = [run for run in find_runs([str(runs_dir)]).runs if run.name.split("/")[0] in labels]
    options = BatchOptions(html=False, limits=limits)
    if weights:
        options = replace(options, tag_pattern=WEIGHT_TAGS)
    verdicts, layers = {}, {}
    for output in process_runs(runs, options):
        top = output.name.split("/")[0]  # runs under a Keras train/ subfolder
        verdicts[top] = output.verdict
        layers[top] = {
            f["kind"]: {layer_of(t) for t in f["layers"]}
            for f in reversed(output.document["findings"])
            if not f["gated"]
        }
    rows = []
    for name, truth in sorted(labels.items()):
        got = verdicts.get(name, "missing")
        expected = expected_verdict(truth)
        overlap = None
        # A total names no layer; stalled and unstable are about the loss, not layers.
        if (
            got == expected
            and expected not in ("healthy", "stalled", "unstable")
            and truth.get("writer") != "norms_total"
            and truth.get("layers")  # the learning corpus labels runs, not layers
        ):
            named, true = layers[name].get(got, set()), {layer_of(t) for t in truth["layers"]}
            overlap = len(named & true) / len(named | true) if named | true else 1.0
        rows.append((name, truth["split"], expected, got, overlap))
    return rows


# What each norms-only writer's evidence can show (make_runs.NORM_WRITERS): a run whose true label is
# a kind its evidence cannot show is right when it is called healthy.
JUDGED_BY_WRITER = {
    "norms": {"vanishing", "exploding", *LEARNING_CLASSES},
    "norms_total": {"exploding", *LEARNING_CLASSES},
    "weights": {"vanishing", "exploding", *LEARNING_CLASSES},
    "tfsummary_weights": {"vanishing", "exploding", *LEARNING_CLASSES},
}


# A true loss that fell less than this share did not learn: where the evidence cannot show the run's
# true kind, the honest verdict is stalled (Thresholds.stall_band).
STALL_BAND = 0.1


def expected_verdict(truth: dict) -> str:
    """The label where the run's evidence can show it; else stalled where the true loss did not fall,
    healthy where it did."""
    judged = JUDGED_BY_WRITER.get(truth.get("writer"), {*CLASSES, *LEARNING_CLASSES})
    if truth["label"] in judged:
        return truth["label"]
    figures = truth.get("truth", truth)  # the learning corpus keeps them apart
    first, last = figures.get("loss_first"), figures.get("loss_last")
    if truth["label"] != "healthy" and first and last is not None and last >= (1 - STALL_BAND) * first:
        return "stalled"
    return "healthy"


@dataclass
class SplitScore:
    """The targets' figures for one split."""

    runs: int
    accuracy: float
    false_alarms: list[str]  # healthy runs given another verdict
    overlaps: list[float]  # layer Jaccard of each correctly detected finding
    failures_called_healthy: list[str]  # runs labelled anything but healthy, given healthy

    @property
    def meets_targets(self) -> bool:
        return self.accuracy >= 0.95 and not self.false_alarms and all(o >= 0.8 for o in self.overlaps)


def split_score(rows, split: str) -> SplitScore:
    rows = [(n, lab, g, o) for n, s, lab, g, o in rows if s == split]
    accuracy = sum(1 for _, lab, g, _ in rows if lab == g) / len(rows) if rows else float("nan")
    false_alarms = [n for n, lab, g, _ in rows if lab == "healthy" and g != "healthy"]
    missed = [n for n, lab, g, _ in rows if lab != "healthy" and g == "healthy"]
    return SplitScore(len(rows), accuracy, false_alarms, [o for *_, o in rows if o is not None], missed)


def report(rows, split: str) -> bool:
    figures = split_score(rows, split)
    rows = [(n, lab, g, o) for n, s, lab, g, o in rows if s == split]
    print(f"\n=== {split} recipes: {len(rows)} runs ===")
    if not rows:
        return True
    print(f"{'run':<58}{'label':>11}{'verdict':>19}{'layers J':>10}")
    for name, label, got, overlap in rows:
        mark = "" if label == got else "   <-- miss"
        j = "" if overlap is None else f"{overlap:.2f}"
        print(f"{name:<58}{label:>11}{got:>19}{j:>10}{mark}")
    classes = CLASSES + [c for c in LEARNING_CLASSES if any(lab == c for _, lab, _, _ in rows)]
    predicted = classes + sorted({g for _, _, g, _ in rows} - set(classes))
    print("\nconfusion matrix (rows: true label, columns: verdict)")
    print(" " * 12 + "".join(f"{p:>18}" for p in predicted))
    for label in classes:
        counts = [sum(1 for _, lab, g, _ in rows if lab == label and g == p) for p in predicted]
        print(f"{label:<12}" + "".join(f"{c:>18}" for c in counts))
    print("\nper class      precision   recall   runs")
    for c in classes:
        tp = sum(1 for _, lab, g, _ in rows if lab == c and g == c)
        predicted_c = sum(1 for _, _, g, _ in rows if g == c)
        actual = sum(1 for _, lab, _, _ in rows if lab == c)
        precision = tp / predicted_c if predicted_c else float("nan")
        recall = tp / actual if actual else float("nan")
        print(f"{c:<12}{precision:>12.2f}{recall:>9.2f}{actual:>7}")
    print(f"\n{split}: run-level accuracy {figures.accuracy:.1%} of {figures.runs} runs (target >= 95 %)")
    print(
        f"{split}: healthy runs flagged: {len(figures.false_alarms)} (target 0) {figures.false_alarms or ''}"
    )
    print(
        f"{split}: failed runs called healthy: {len(figures.failures_called_healthy)} (target 0) "
        f"{figures.failures_called_healthy or ''}"
    )
    if figures.overlaps:
        o = figures.overlaps
        print(
            f"{split}: affected layers, Jaccard with the true ones: min {min(o):.2f}, "
            f"mean {sum(o) / len(o):.2f} over {len(o)} detected findings (target >= 0.8)"
        )
    return figures.meets_targets


def report_logged(rows, labels: dict, split: str) -> None:
    """The same split scored on the truth at the steps each run logs (logged_truth.py): a run whose
    true spikes all fall between its logged steps is right with either label, the full one or the one
    its log holds, and is a failed run called healthy only where its log holds a failure."""
    rows = [(n, lab, g) for n, s, lab, g, _ in rows if s == split and "logged_label" in labels[n]]
    if not rows:
        return
    seen = {n: {lab, labels[n]["logged_label"]} for n, lab, _ in rows}
    right = sum(1 for n, _, g in rows if g in seen[n])
    flagged = [n for n, lab, g in rows if lab == "healthy" and g != "healthy"]
    missed = [n for n, lab, g in rows if "healthy" not in seen[n] and g == "healthy"]
    hidden = [n for n, lab, _ in rows if labels[n]["logged_label"] != lab]
    print(
        f"{split}, on the truth at the steps each run logs ({len(hidden)} run(s) whose true spikes fall "
        f"between them): accuracy {right / len(rows):.1%} of {len(rows)} runs, healthy runs flagged "
        f"{len(flagged)}, failed runs called healthy {len(missed)} {missed or ''}"
    )


def interval_disagreements(rows, labels: dict) -> dict[str, dict[int, str]] | None:
    """The learning corpus logs each training every 1, 8 and 48 steps: the recipes whose verdicts
    differ between the intervals, with them; None for a corpus without intervals."""
    if not any("every" in truth for truth in labels.values()):
        return None
    verdicts: dict[str, dict[int, str]] = {}
    for name, _, _, got, _ in rows:
        verdicts.setdefault(labels[name]["recipe"], {})[labels[name]["every"]] = got
    return {recipe: v for recipe, v in sorted(verdicts.items()) if len(set(v.values())) > 1}


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    chosen = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--split=")), "both")
    splits = SPLITS if chosen == "both" else (chosen,)
    runs_dir = Path(args[0]) if args else HERE / "runs"
    overrides = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--threshold=")]
    limits = thresholds_from({}, overrides, "--threshold")
    rows = score(runs_dir, weights="--weights" in sys.argv, limits=limits)
    labels = json.loads((runs_dir / "labels.json").read_text())["runs"]
    ok = {}
    for split in splits:
        ok[split] = report(rows, split)
        report_logged(rows, labels, split)
    differing = interval_disagreements(rows, labels)
    if differing is not None:
        print(f"\nrecipes whose verdict differs between logging intervals: {len(differing)}")
        for recipe, verdicts in differing.items():
            line = f"  {recipe}: " + ", ".join(f"every {e}: {v}" for e, v in sorted(verdicts.items()))
            held = {
                truth["every"]: truth["logged_label"]
                for truth in labels.values()
                if truth["recipe"] == recipe and "logged_label" in truth
            }
            if len(set(held.values())) > 1:  # the logs do not hold the same truth
                held_words = ", ".join(f"{v} every {e}" for e, v in sorted(held.items()))
                line += f" (the logs hold {held_words})"
            print(line)
    sys.exit(0 if ok[splits[0]] else 1)


if __name__ == "__main__":
    main()
