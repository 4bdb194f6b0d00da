"""A 200-run synthetic sweep: verdicts against the recipes, 1 vs 2 workers vs a local Dask cluster
(identical JSON), and the cache (a re-run over an unchanged folder), with timings printed.

    python bench/sweep.py [--runs 200] [--tags 8] [--steps 40] [--dir /tmp/gradaudit-sweep]

Each run is written with TensorBoard's own writers (TF2 histograms, 8 tags x 40 steps by default) under a
folder named by its hyperparameters; the recipe decides its gradients: act=sigmoid shrinks 1.2
decades per layer (vanishing), lr=1.0 grows 0.2 decades per step (exploding), init=negbias puts 70 %
exact zeros in the hidden layers (dead units), anything else is healthy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TAGS, STEPS = 8, 40
RECIPES = [  # (hyperparameters, intended verdict)
    ({"act": "relu", "lr": "0.01", "init": "he"}, "healthy"),
    ({"act": "sigmoid", "lr": "0.01", "init": "he"}, "vanishing"),
    ({"act": "relu", "lr": "1.0", "init": "he"}, "exploding"),
    ({"act": "relu", "lr": "0.01", "init": "negbias"}, "dead_units"),
    ({"act": "gelu", "lr": "0.001", "init": "he"}, "healthy"),
]


def gradients(hparams: dict, rng: np.random.Generator, layer: int, step: int, tags: int = TAGS) -> np.ndarray:
    scale = 0.01
    if hparams["act"] == "sigmoid":
        scale *= 10 ** (-1.2 * (tags - 1 - layer))
    if hparams["lr"] == "1.0":
        scale *= 10 ** (min(0.2 * step, 8.0))
    values = rng.normal(scale=scale, size=2000)
    if hparams["init"] == "negbias" and 0 < layer < tags - 1:
        values[:1400] = 0.0
    return values


def write(folder: Path, runs: int, tags: int = TAGS, steps: int = STEPS) -> dict[str, str]:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    intended = {}
    for r in range(runs):
        hparams, verdict = RECIPES[r % len(RECIPES)]
        name = ",".join(f"{k}={v}" for k, v in hparams.items()) + f",seed={r}"
        intended[name] = verdict
        rng = np.random.default_rng(r)
        writer = EventFileWriter(str(folder / name))
        for step in range(steps):
            summary = summary_pb2.Summary()
            for layer in range(tags):
                tag = f"grad/layer{layer}/kernel"
                summary.value.extend(histogram_pb(tag, gradients(hparams, rng, layer, step, tags)).value)
            writer.add_event(event_pb2.Event(step=step * 10, wall_time=time.time(), summary=summary))
        writer.close()
    return intended


def report(folder: Path, out: Path, *extra: str) -> tuple[float, dict]:
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "analyzer.cli",
        "report",
        str(folder),
        "-o",
        str(out),
        "--json",
        str(out / "r.json"),
        "-q",
        *extra,
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=_AS_INSTALLED)
    return time.perf_counter() - start, json.loads((out / "r.json").read_text())


# gradaudit as an installed package runs: pip compiles its modules to bytecode when it installs them.
# An environment that sets PYTHONDONTWRITEBYTECODE (this machine's does) would have every report
# compile gradaudit's sources again, about 50 ms of each run, first or re-run.
_AS_INSTALLED = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tags", type=int, default=TAGS)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "gradaudit-sweep")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    intended = write(args.dir / "logs", args.runs, args.tags, args.steps)
    print(f"sweep: {args.runs} runs x {args.tags} tags x {args.steps} steps in {args.dir / 'logs'}")

    results = {}
    for label, extra in [("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"])]:
        out = args.dir / label.replace(" ", "_")
        seconds, payload = report(args.dir / "logs", out, *extra, "--no-cache")
        results[label] = (seconds, payload)
        print(f"{label:<24}{seconds:8.2f} s")
    try:
        from distributed import LocalCluster

        # The cluster (its scheduler here, its workers in processes) imports gradaudit from this checkout.
        os.environ["PYTHONPATH"] = str(REPO)
        sys.path.insert(0, str(REPO))
        with LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            seconds, payload = report(
                args.dir / "logs", args.dir / "dask", "--scheduler", cluster.scheduler_address
            )
        results["local Dask cluster"] = (seconds, payload)
        print(f"{'local Dask cluster':<24}{seconds:8.2f} s")
    except ImportError:
        print("local Dask cluster: skipped (pip install 'gradaudit[dask]')")

    first, _ = report(args.dir / "logs", args.dir / "cached")
    again, _ = report(args.dir / "logs", args.dir / "cached")
    print(
        f"{'first run, 2 workers':<24}{first:8.2f} s\n{'unchanged re-run':<24}{again:8.2f} s "
        f"({again / first:.0%} of the first; goal < 10 %)"
    )

    payloads = [p for _, p in results.values()]
    print(f"\nJSON identical across {', '.join(results)}: {all(p == payloads[0] for p in payloads)}")
    verdicts = {r["run"]: r["verdict"] for r in payloads[0]["runs"]}
    wrong = [n for n, v in intended.items() if verdicts.get(n) != v]
    print(f"verdicts as intended: {len(intended) - len(wrong)}/{len(intended)} {wrong[:5] or ''}")


if __name__ == "__main__":
    main()
