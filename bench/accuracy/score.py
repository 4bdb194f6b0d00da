"""Score gradaudit's verdicts against the labelled corpus written by make_runs.py.

    python bench/accuracy/score.py [RUNS_DIR]      # default bench/accuracy/runs

Prints each run's label and verdict, the confusion matrix, precision and recall per class, the
run-level accuracy, the healthy runs flagged, and for each detected finding the Jaccard overlap of
the layers it named with the layers the true gradients name. Exits 1 when a target is missed
(accuracy >= 95 %, no healthy run flagged, every Jaccard >= 0.8).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from analyzer.batch import BatchOptions, process_runs  # noqa: E402
from analyzer.runs import find_runs  # noqa: E402

CLASSES = ["healthy", "vanishing", "exploding", "dead_units"]


def score(runs_dir: Path) -> dict:
    labels = json.loads((runs_dir / "labels.json").read_text())["runs"]
    runs = find_runs([str(runs_dir)]).runs
    verdicts, layers = {}, {}
    for output in process_runs(runs, BatchOptions(html=False)):
        top = output.name.split("/")[0]  # runs under a Keras train/ subfolder
        verdicts[top] = output.verdict
        layers[top] = {f["kind"]: set(f["layers"]) for f in reversed(output.document["findings"])}
    rows = []
    for name, truth in sorted(labels.items()):
        got = verdicts.get(name, "missing")
        overlap = None
        if got == truth["label"] != "healthy":
            named, true = layers[name].get(got, set()), set(truth["layers"])
            overlap = len(named & true) / len(named | true) if named | true else 1.0
        rows.append((name, truth["label"], got, overlap))
    return {"rows": rows}


def report(rows) -> bool:
    print(f"{'run':<62}{'label':>11}{'verdict':>19}{'layers J':>10}")
    for name, label, got, overlap in rows:
        mark = "" if label == got else "   <-- miss"
        j = "" if overlap is None else f"{overlap:.2f}"
        print(f"{name:<62}{label:>11}{got:>19}{j:>10}{mark}")
    predicted = CLASSES + sorted({g for _, _, g, _ in rows} - set(CLASSES))
    print("\nconfusion matrix (rows: true label, columns: verdict)")
    print(" " * 12 + "".join(f"{p:>18}" for p in predicted))
    for label in CLASSES:
        counts = [sum(1 for _, lab, g, _ in rows if lab == label and g == p) for p in predicted]
        print(f"{label:<12}" + "".join(f"{c:>18}" for c in counts))
    print("\nper class      precision   recall   runs")
    for c in CLASSES:
        tp = sum(1 for _, lab, g, _ in rows if lab == c and g == c)
        predicted_c = sum(1 for _, _, g, _ in rows if g == c)
        actual = sum(1 for _, lab, _, _ in rows if lab == c)
        precision = tp / predicted_c if predicted_c else float("nan")
        recall = tp / actual if actual else float("nan")
        print(f"{c:<12}{precision:>12.2f}{recall:>9.2f}{actual:>7}")
    accuracy = sum(1 for _, lab, g, _ in rows if lab == g) / len(rows)
    false_alarms = [n for n, lab, g, _ in rows if lab == "healthy" and g != "healthy"]
    overlaps = [o for *_, o in rows if o is not None]
    print(f"\nrun-level accuracy: {accuracy:.1%} of {len(rows)} runs (target >= 95 %)")
    print(f"healthy runs flagged: {len(false_alarms)} (target 0) {false_alarms or ''}")
    if overlaps:
        print(
            f"affected layers, Jaccard with the true ones: min {min(overlaps):.2f}, "
            f"mean {sum(overlaps) / len(overlaps):.2f} over {len(overlaps)} detected findings (target >= 0.8)"
        )
    return accuracy >= 0.95 and not false_alarms and all(o >= 0.8 for o in overlaps)


def main() -> None:
    runs_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    ok = report(score(runs_dir)["rows"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
