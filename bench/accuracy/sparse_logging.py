"""What a log every N steps can show: each run of the learning corpus logged at every step, thinned to
every Nth step at each of the N phases (steps p, p+N, p+2N, ...), and judged as gradaudit judges a run.

    python bench/accuracy/sparse_logging.py [RUNS_DIR] [--every=8,48]   # default: learning_runs/
    python bench/accuracy/sparse_logging.py [RUNS_DIR] --loss-every-step   # thin the gradients only
    python bench/accuracy/sparse_logging.py RUNS_DIR --first-three-sets    # the README's 32 runs

RUNS_DIR is a folder learning_runs.py wrote (the committed copy holds one every-step run only);
--first-three-sets leaves out the later held-back sets (the fourth on), as the README's figures do.

The corpus logs each training every 1, 8 and 48 steps from one phase (step 0). A verdict that differs
at every 48 may be the rules' fault, or the ten points' : the spikes of a loss on tiny batches last
one to three steps, and a log every 48 steps holds them by chance. Thinning the every-step log at all
48 phases measures that chance: the share of phases whose verdict is the run's true label. Where few
phases get it right whatever the rules, the ten points do not hold the answer. With --loss-every-step
only the gradients are thinned, as a loop that logs its loss every step and histograms every N
steps writes them. Labels come from
labels.json (the loss and true gradients of every step, truth.learning_label), never from gradaudit.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import learning_runs  # noqa: E402  (bench/accuracy/, this folder)

from analyzer.events import RunData  # noqa: E402
from analyzer.options import DEFAULT_READ_OPTIONS  # noqa: E402
from analyzer.pipeline import analyse_evidence, read_evidence  # noqa: E402
from analyzer.runs import find_runs  # noqa: E402
from analyzer.thresholds import DEFAULT_THRESHOLDS  # noqa: E402


def thinned(data: RunData, every: int, phase: int, loss_every_step: bool = False) -> RunData:
    """The run's evidence at steps phase, phase + every, ... only: histograms, losses, norms, rates and
    scales alike, or (loss_every_step) the histograms and norms only."""

    def kept(steps: np.ndarray) -> np.ndarray:
        return np.flatnonzero((steps >= phase) & ((steps - phase) % every == 0))

    def series(items):
        return [replace(s, steps=s.steps[kept(s.steps)], values=s.values[kept(s.steps)]) for s in items]

    layers = [layer.rows(kept(layer.steps)) for layer in data.layers]
    for layer in layers:
        layer.logged_steps, layer.logged_nonfinite = len(layer.steps), int(np.count_nonzero(layer.nonfinite))
    return replace(
        data,
        layers=layers,
        losses=data.losses if loss_every_step else series(data.losses),
        norms=series(data.norms),
        rates=data.rates if loss_every_step else series(data.rates),
        scales=series(data.scales),
    )


def main(
    runs_dir: Path, intervals: list[int], loss_every_step: bool = False, first_sets: bool = False
) -> None:
    labels = json.loads((runs_dir / "labels.json").read_text())["runs"]
    later = set(learning_runs.LATER_HELD_BACK) if first_sets else set()
    every_step = {
        name: truth for name, truth in labels.items() if truth["every"] == 1 and truth["recipe"] not in later
    }
    runs = {run.name.split("/")[0]: run for run in find_runs([str(runs_dir)]).runs}
    options = replace(DEFAULT_READ_OPTIONS, zero_spike_fit_share=DEFAULT_THRESHOLDS.zero_spike_fit_share)
    header = f"{'recipe':<40} {'label':>10} {'every 1':>11}" + "".join(
        f" {'every ' + str(n) + ': right':>17}  verdicts" for n in intervals
    )
    print(header)
    right_by_label: dict[tuple[str, int], list[float]] = {}
    healthy_by_label: dict[tuple[str, int], list[float]] = {}
    for name, truth in sorted(every_step.items()):
        if name not in runs:
            continue
        data, from_weights = read_evidence(runs[name], options)
        full = analyse_evidence(data, from_weights, options).diagnosis.verdict
        row = f"{truth['recipe']:<40} {truth['label']:>10} {full:>11}"
        for n in intervals:
            verdicts = Counter(
                str(
                    analyse_evidence(
                        thinned(data, n, p, loss_every_step), from_weights, options
                    ).diagnosis.verdict
                )
                for p in range(n)
            )
            share = verdicts[truth["label"]] / n
            right_by_label.setdefault((truth["label"], n), []).append(share)
            healthy_by_label.setdefault((truth["label"], n), []).append(verdicts["healthy"] / n)
            counts = ", ".join(f"{v} {c}" for v, c in verdicts.most_common())
            row += f" {100 * share:>16.0f} %  {counts}"
        print(row, flush=True)
    print("\nper true label: the mean share of phases whose verdict is the label (and that read healthy)")
    for (label, n), shares in sorted(right_by_label.items()):
        healthy = np.mean(healthy_by_label[(label, n)])
        print(
            f"  {label:<10} every {n:>2}: {100 * np.mean(shares):5.1f} % right, "
            f"{100 * healthy:5.1f} % healthy, over {len(shares)} run(s)"
        )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    every = next((a[8:] for a in sys.argv[1:] if a.startswith("--every=")), "8,48")
    intervals = [int(n) for n in every.split(",")]
    main(
        Path(args[0]) if args else HERE / "learning_runs",
        intervals,
        loss_every_step="--loss-every-step" in sys.argv,
        first_sets="--first-three-sets" in sys.argv,
    )
