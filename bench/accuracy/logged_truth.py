"""The truth at the steps each run logs: labels.json gains a "logged_label" for every run of the learning
corpus (truth.logged_label): a training unstable by loss spikes that all fall between the steps a run
logs its loss at is, at those steps, what the truth says without them (healthy where the loss fell).

    python bench/accuracy/logged_truth.py RUNS_DIR    # a folder learning_runs.py wrote

The true loss of every step comes from RUNS_DIR/truth_losses.json, which learning_runs.py writes
(recipe -> the loss at every step). A folder written before it kept them takes them from each
recipe's every-step run where that run's loop logged its step's loss at every step (the PyTorch and
tf.summary loops log exactly the loss the truth records; gradaudit's Keras callback logs its probe's,
so its recipes keep their label); those losses are then written to truth_losses.json. The steps a run
logs come from its own event files, as gradaudit reads them. score.py prints the figure on these
labels after the one on the full truth.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import truth  # noqa: E402  (bench/accuracy/, this folder)

from analyzer.options import DEFAULT_READ_OPTIONS  # noqa: E402
from analyzer.pipeline import read_evidence  # noqa: E402
from analyzer.runs import find_runs  # noqa: E402
from analyzer.trends import training_loss  # noqa: E402

# The writers whose every-step run logs the loss of each step exactly as the truth records it.
STEP_LOSS_WRITERS = ("torch", "tbx", "tfsummary")


def logged_loss(run):
    """The training loss the run logged, as gradaudit reads it (None without one)."""
    data, _ = read_evidence(run, DEFAULT_READ_OPTIONS)
    return training_loss(data.losses)


def logged_loss_steps(run) -> np.ndarray:
    series = logged_loss(run)
    return series.steps if series is not None else np.zeros(0, np.int64)


def main(runs_dir: Path) -> None:
    labels_path = runs_dir / "labels.json"
    labels = json.loads(labels_path.read_text())["runs"]
    losses_path = runs_dir / "truth_losses.json"
    true_losses = json.loads(losses_path.read_text()) if losses_path.exists() else {}
    runs = {run.name.split("/")[0]: run for run in find_runs([str(runs_dir)]).runs}
    for name, label in sorted(labels.items()):  # the loss of every step, from an every-step run
        recipe = label["recipe"]
        if recipe in true_losses or label["every"] != 1 or name not in runs:
            continue
        if label["writer"].split("+")[0].split("_")[0] not in STEP_LOSS_WRITERS:
            continue
        series = logged_loss(runs[name])
        if series is not None and np.array_equal(series.steps, np.arange(len(series.steps))):
            true_losses[recipe] = [float(v) for v in series.values]
    unknown = 0
    for name, label in sorted(labels.items()):
        if label["label"] != "unstable":
            label["logged_label"] = label["label"]
        elif label["recipe"] in true_losses and name in runs:
            steps = logged_loss_steps(runs[name])
            label["logged_label"] = truth.logged_label("unstable", true_losses[label["recipe"]], steps)
        else:
            label.pop("logged_label", None)
            unknown += 1
    losses_path.write_text(json.dumps(dict(sorted(true_losses.items()))) + "\n")
    labels_path.write_text(json.dumps({"runs": dict(sorted(labels.items()))}, indent=1) + "\n")
    changed = [n for n, lab in labels.items() if lab.get("logged_label", lab["label"]) != lab["label"]]
    print(f"{len(labels)} runs: {len(changed)} unstable in truth whose spikes the log does not hold")
    for name in changed:
        print(f"  {name:<64} unstable -> {labels[name]['logged_label']}")
    if unknown:
        print(f"  {unknown} unstable run(s) without a true loss of every step keep no logged label")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
