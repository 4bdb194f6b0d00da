"""What gradaudit's PyTorch logger (analyzer/torch_logger.py) costs a training, by the windows method of
bench/callback_overhead.py.

    python bench/torch_overhead.py [--steps 800] [--threads 2]

One training of each model on the CPU, in a fresh process, with watch() logging every 2 x WINDOW
optimizer steps: a CNN (three conv blocks with BatchNorm, 32x32x3 inputs, batches of 64, ~0.6 M
parameters) and a transformer (an embedding of 8,000 words, two encoder layers of width 128, sequences
of 128, batches of 32, ~1.4 M parameters), on synthetic data (no download). Each window of WINDOW steps
that starts with a logged step is compared with the mean of the windows before and after it, seconds
apart: that is the wall time one logged step adds, with the distribution-free 95 % interval of its
median. The overhead at a frequency is that time over the time of the steps between two logged
steps: at the default (every 100 steps) and every 50 steps. Figures are printed, never asserted;
the logger's own thread competes with training for the two cores here. First it prints what binning
a million float32 entries costs by the two reductions: the device path's bucketize and scatter_add
(run here on the CPU) and the CPU path's copy binned by Binning's table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from callback_overhead import median_and_interval  # noqa: E402

WINDOW = 10
SETTLING_PERIODS = 3
MODELS = ("cnn", "transformer")


def _model_and_batch(name: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "cnn":

        def block(a, b):
            return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]

        model = nn.Sequential(
            *block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(),
            nn.Linear(256, 10),
        )  # fmt: skip

        def batch():
            return torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

        return model, batch

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(8000, 128)
            layer = nn.TransformerEncoderLayer(128, 4, 256, dropout=0.1, batch_first=True, activation="gelu")
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(128, 2)

        def forward(self, x):
            return self.head(self.encoder(self.embed(x)).mean(1))

    def batch():
        return torch.randint(0, 8000, (32, 128)), torch.randint(0, 2, (32,))

    return Transformer(), batch


def job(name: str, steps: int, threads: int) -> dict:
    """One training: the wall time of each window of WINDOW steps, watch() logging every 2 x WINDOW."""
    import torch

    from analyzer.torch_logger import watch

    torch.set_num_threads(threads)
    model, batch = _model_and_batch(name)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    batches = [batch() for _ in range(8)]
    marks = []
    with tempfile.TemporaryDirectory() as log_dir:
        logger = watch(model, log_dir, every_n_steps=2 * WINDOW, optimizer=optimizer)
        for step in range(steps):
            x, y = batches[step % len(batches)]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()  # logged before it on every 20th step, from step 0
            marks.append(time.perf_counter())
        started = time.perf_counter()
        logger.close()
        closing = time.perf_counter() - started
    ends = marks[WINDOW - 1 :: WINDOW]  # after steps 10, 20, ...
    windows = [b - a for a, b in zip(ends, ends[1:])]
    return {
        "windows": windows,
        "training s": marks[-1] - marks[0],
        "parameters": sum(p.numel() for p in model.parameters()),
        "close s": closing,
    }


def added_per_log(windows: list[float]) -> tuple[list[float], list[float]]:
    """windows[j] runs from the end of step 10 (j + 1) to the end of step 10 (j + 2); the logged steps
    are 0, 20, 40, ...: step 20 k lies in window 2 k - 1, the odd windows. Each is paired with the
    mean of the windows around it; the even windows give a step's time."""
    added, step = [], []
    for j in range(2 * SETTLING_PERIODS + 1, len(windows) - 1, 2):
        added.append(windows[j] - (windows[j - 1] + windows[j + 1]) / 2)
        step.append(windows[j + 1] / WINDOW)
    return added, step


def reduction_ms_per_million(repeats: int = 10) -> tuple[float, float]:
    """Milliseconds to reduce a million float32 entries: the device path (torch) and the CPU path
    (a copy, binned by Binning's table), medians of `repeats`."""
    import torch

    from analyzer.torch_logger import GradientLogger

    holder = torch.nn.Linear(1000, 1000, bias=False)
    holder.weight.grad = torch.randn(1000, 1000)
    with tempfile.TemporaryDirectory() as log_dir:
        logger = GradientLogger(holder, log_dir)
        times = {}
        for name, reduce in (
            ("device", lambda g: logger._row(g)),
            ("cpu", lambda g: next(logger._binning.histograms([g.numpy().copy()]))),
        ):
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                reduce(holder.weight.grad)
                samples.append(time.perf_counter() - started)
            times[name] = statistics.median(samples) * 1000
        logger.close()
    return times["device"], times["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--job")
    args = parser.parse_args()
    if args.job:
        print(json.dumps(job(args.job, args.steps, args.threads)))
        return
    device_ms, cpu_ms = reduction_ms_per_million()
    print(
        f"a million float32 entries: {device_ms:.1f} ms by bucketize and scatter_add (the device path, "
        f"here on the CPU), {cpu_ms:.1f} ms copied and binned by Binning's table (the CPU path)\n"
    )
    print(
        f"watch() logging every {2 * WINDOW} steps; each window of {WINDOW} steps that starts with a logged "
        "step against the mean of the windows before and after it (medians, 95 % intervals)"
    )
    print(f"{'model':<13}{'params':>10}{'training s':>12}{'step ms':>9}{'per log ms (95 % CI)':>24}"
          f"{'every 100 (default)':>24}{'every 50':>22}")  # fmt: skip
    for name in MODELS:
        command = [sys.executable, __file__, "--job", name, "--steps", str(args.steps)]
        command += ["--threads", str(args.threads)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        measured = json.loads(out.stdout.splitlines()[-1])
        added, step = added_per_log(measured["windows"])
        per_log, low, high = median_and_interval(added)
        step_s = statistics.median(step)
        cells = []
        for every in (100, 50):
            share = [100 * v / (every * step_s) for v in (per_log, low, high)]
            cells.append(f"{share[0]:.2f} % ({share[1]:.2f} to {share[2]:.2f})")
        per_log_ms = f"{per_log * 1000:.1f} ({low * 1000:.1f} to {high * 1000:.1f})"
        print(
            f"{name:<13}{measured['parameters']:>10,}{measured['training s']:>12.1f}{step_s * 1000:>9.1f}"
            f"{per_log_ms:>24}{cells[0]:>24}{cells[1]:>22}"
        )


if __name__ == "__main__":
    main()
