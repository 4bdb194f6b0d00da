"""Training time with the GradientHistograms callback against the same training without it.

    python bench/callback_overhead.py                 # the four sample models, 8 epochs, 3 rounds
    python bench/callback_overhead.py --epochs 30 --every-n-batches 8

Each training is a fresh process: the sample model of sample_logs/generate.py, seeded, trained with
``model.fit`` for --epochs on its 2,048 samples (batch 64), once without the callback and once with it
at its default frequency (every epoch, plus once before training) or every --every-n-batches. The
time of ``fit`` is measured, and with it the time the callback's hooks take on the training thread
(the first one traces the gradient function) and the time its probes take on their own thread. A
third training per model runs a callback that traces and never probes: the fixed cost alone.
Pairs run interleaved for --rounds rounds; medians count, and the overhead paired by round is
printed per model and for the four together with the 95 % confidence interval of its median.
Figures are printed, never asserted.

    python bench/callback_overhead.py --suite realistic --rounds 10

The realistic suite trains models of the sizes people train on a CPU: a CNN (three conv blocks with
BatchNorm, 32x32x3 inputs), an LSTM over an embedding of 10,000 words, and a transformer block
(multi-head attention, GELU feed-forward, layer norms) over an embedding of 8,000 words, on synthetic
data with a learnable rule (no download), in epochs of the datasets they stand for (CIFAR-10: 782
batches of 64; IMDB: 391), 45 s or more each without the callback, with a probe of one training batch
(64 samples; --probe-samples to change it). Each runs without the callback, with it at its default
frequency and with it every 50 batches, in fresh processes, interleaved round by round; each overhead
is paired with the training without the callback of the same round.

    python bench/callback_overhead.py --suite windows --batches 2000 --probe-samples 64

On a shared machine the same training takes from 11 to 30 s from one minute to the next, so whole
trainings paired minutes apart give intervals of +-20 % around a cost of a few percent. The windows
suite measures the cost of a probe inside one training of each realistic model: the callback probes
every 20 batches, and each window of 10 batches that starts with a probe is compared with the mean of
the windows before and after it, a second apart. Every fifth probe is fresh, as at the start of a
training: a new trace, then a first call that instantiates it. From the medians of both (the fresh
probe's as the fixed cost), the overhead of the realistic trainings is derived at each frequency,
with an interval from the ends of both intervals; also at the default frequency for trainings of
epochs of 128 batches (the sample data's size), which probe three to six times as often.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def job(name: str, variant: str, epochs: int, every_n_batches: int | None, probe_samples: int = 256) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "sample_logs"))
    sys.path.insert(0, str(REPO / "bench"))
    import keras
    import numpy as np
    import tensorflow as tf
    from generate import RUNS, SEED
    from realistic_models import REALISTIC

    keras.utils.set_random_seed(SEED)
    if name in REALISTIC:
        training = REALISTIC[name]
        model, optimizer, loss, x, y = training.build(np.random.default_rng(SEED))
        # The sample data repeated into epochs of the dataset the model stands for.
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64, drop_remainder=True).repeat()
        fit = {"x": data, "epochs": training.epochs, "steps_per_epoch": training.batches_per_epoch}
    else:
        model, optimizer, loss, x, y = RUNS[name]()
        fit = {"x": x, "y": y, "batch_size": 64, "epochs": epochs}
    model.compile(optimizer=optimizer, loss=loss)
    hooks = {"all": 0.0, "end": 0.0, "first probe": 0.0, "probes": 0.0}
    marks = {}

    class FirstBatch(keras.callbacks.Callback):
        """Called before the callback measured: from training's start to the end of its first batch,
        which holds the callback's trace and Keras's own, less exposed to noise than all of fit."""

        def on_train_begin(self, logs=None):
            marks["begin"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            marks.setdefault("first batch", time.perf_counter() - marks["begin"])

    callbacks = [FirstBatch()]
    with tempfile.TemporaryDirectory() as log_dir:
        if variant != "without":
            from analyzer.callback import GradientHistograms

            class Timed(GradientHistograms):
                """Times the hooks (on the training thread) and the probes (on the probe thread)."""

                def _write_probe(self, *args):
                    start = time.perf_counter()
                    super()._write_probe(*args)
                    spent = time.perf_counter() - start
                    hooks["first probe"] = hooks["first probe"] or spent
                    hooks["probes"] += spent

            def timed(hook, key="all"):
                def timed_hook(self, *args, **kwargs):
                    start = time.perf_counter()
                    hook(self, *args, **kwargs)
                    spent = time.perf_counter() - start
                    hooks["all"] += spent
                    if key != "all":
                        hooks[key] += spent

                return timed_hook

            for hook_name in ("on_train_begin", "on_train_batch_end", "on_epoch_end"):
                setattr(Timed, hook_name, timed(getattr(GradientHistograms, hook_name)))
            Timed.on_train_end = timed(GradientHistograms.on_train_end, "end")
            if variant == "trace only":  # the callback's fixed cost alone: its one trace, no probe
                Timed._submit_probe = lambda self: None
            probe = (x[:probe_samples], y[:probe_samples])
            callbacks.append(Timed(log_dir, probe=probe, every_n_batches=every_n_batches))
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(**fit, verbose=0, callbacks=callbacks)
        fit, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    ops = len(callbacks[-1]._gradient_function.graph.get_operations()) if variant != "without" else 0
    return {"fit": fit, "cpu": cpu, "first batch": marks["first batch"], "ops": ops, **hooks}


def binning_ns_per_entry(entries: int = 25_000_000) -> float:
    """The callback's numpy binning of one large float32 gradient (a 25 M-parameter model's worth)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import numpy as np

    from analyzer.binning import Binning, bucket_limits

    gradient = (np.random.default_rng(0).standard_normal(entries) * 1e-3).astype(np.float32)
    start = time.perf_counter()
    list(Binning(bucket_limits()).histograms([gradient]))
    return (time.perf_counter() - start) / entries * 1e9


VARIANTS = ("without", "trace only", "with")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--every-n-batches", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--suite", choices=("samples", "realistic", "interleaved", "windows"), default="samples"
    )
    parser.add_argument("--batches", type=int, default=2000, help="windows suite: training batches per model")
    parser.add_argument(
        "--probe-samples",
        type=int,
        default=None,
        help="samples in the probe batch (default: 256 for the sample models, as sample_logs/generate.py "
        "writes them; 64, one training batch, for the realistic suite)",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job == "binning":
        print(json.dumps(binning_ns_per_entry()))
        return
    if args.job and args.suite == "windows":
        print(json.dumps(windows_job(args.job, args.batches, args.probe_samples or 64)))
        return
    if args.job and args.suite == "interleaved":
        print(json.dumps(interleaved_job(args.job, args.rounds)))
        return
    if args.job:
        probe_samples = args.probe_samples or (64 if args.job in REALISTIC_NAMES else 256)
        print(json.dumps(job(args.job, args.variant, args.epochs, args.every_n_batches, probe_samples)))
        return
    if args.suite == "interleaved":
        interleaved(args.rounds)
        return
    if args.suite == "windows":
        windows(args.batches, [args.probe_samples] if args.probe_samples else [64, 256])
        return

    if args.suite == "realistic":
        realistic(args.rounds, args.probe_samples or 64)
        return
    sys.path.insert(0, str(REPO / "sample_logs"))
    names = [
        "healthy_relu_adam",
        "vanishing_sigmoid_deep",
        "exploding_sgd_high_lr",
        "dead_units_negative_bias",
    ]
    frequency = f"every {args.every_n_batches} batches" if args.every_n_batches else "every epoch (default)"
    print(f"{args.epochs} epochs of 32 batches, callback {frequency}, median of {args.rounds} rounds")
    measured: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for name in names:
            for variant in VARIANTS:
                command = [sys.executable, __file__, "--job", name, "--epochs", str(args.epochs)]
                command += ["--every-n-batches", str(args.every_n_batches)] if args.every_n_batches else []
                command += ["--variant", variant]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                measured.setdefault((name, variant), []).append(json.loads(out.stdout.splitlines()[-1]))

    print(
        f"{'model':<28}{'fit s':>7}{'with s':>8}{'difference':>12}{'in hooks s':>12}{'of fit':>8}"
        f"{'at end s':>10}{'first probe s':>15}{'others ms':>11}{'trace only':>12}"
    )
    columns = {"without": ("without", "fit"), "with": ("with", "fit"), "trace only": ("trace only", "fit")}
    columns |= {key: ("with", key) for key in ("all", "end", "first probe", "probes")}
    sums = dict.fromkeys(columns, 0.0)
    for name in names:
        row = {
            column: statistics.median(r[key] for r in measured[(name, variant)])
            for column, (variant, key) in columns.items()
        }
        sums = {k: sums[k] + row[k] for k in sums}
        _print_row(name, row, probes=args.epochs)
    _print_row("all four", sums, probes=4 * args.epochs)
    print()
    # Paired by round (a training with the callback against the same training without it, run back
    # to back): less exposed to slow spells of a shared machine than a difference of medians. The
    # interval is the distribution-free 95 % confidence interval of the median.
    print(f"{'paired by round':<28}{'with: median':>14}{'95 % CI':>18}{'trace only':>13}{'95 % CI':>18}")
    for label, group in [(name, [name]) for name in names] + [("all four", names)]:
        cells = []
        for variant in ("with", "trace only"):  # the order of the header
            per_round = [
                sum(measured[(name, variant)][k]["fit"] for name in group)
                / sum(measured[(name, "without")][k]["fit"] for name in group)
                - 1
                for k in range(args.rounds)
            ]
            low, high = median_interval(per_round)
            cells.append(f"{statistics.median(per_round):>13.1%}{f'{low:.1%} to {high:.1%}':>18}")
        print(f"{label:<28}{cells[0]}{cells[1]}")
    print()
    print(
        f"{'start to end of first batch':<28}{'without ms':>12}{'trace only ms':>15}"
        f"{'added ms':>10}{'of fit':>8}{'graph ops':>11}{'ms per op':>11}"
    )
    for name in names:
        without, traced = (
            statistics.median(r["first batch"] for r in measured[(name, v)])
            for v in ("without", "trace only")
        )
        fit = statistics.median(r["fit"] for r in measured[(name, "without")])
        ops = measured[(name, "trace only")][0]["ops"]  # the same graph in every round
        print(
            f"{name:<28}{without * 1000:>12.0f}{traced * 1000:>15.0f}{(traced - without) * 1000:>10.0f}"
            f"{(traced - without) / fit:>8.1%}{ops:>11}{(traced - without) * 1000 / ops:>11.2f}"
        )
    print("goal: overhead <= 5 % of training time at the default frequency")
    out = subprocess.run(
        [sys.executable, __file__, "--job", "binning"], capture_output=True, text=True, check=True
    )
    ns = json.loads(out.stdout.splitlines()[-1])
    print(f"binning with numpy: {ns:.0f} ns per gradient entry (25 M float32)")


REALISTIC_NAMES = ("cnn", "lstm", "transformer")
# (label, every_n_batches): the callback's default frequency, and every 50 batches.
FREQUENCIES = (("every epoch (default)", None), ("every 50 batches", 50))


def realistic(rounds: int, probe_samples: int) -> None:
    """The realistic suite: per model and frequency, the overhead paired by round with its 95 % CI."""
    print(
        f"realistic trainings (bench/realistic_models.py), probe of {probe_samples} samples, "
        f"{rounds} rounds, each a fresh process"
    )
    fits: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    probes: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for name in REALISTIC_NAMES:
            for label, every in (("without", None), *FREQUENCIES):
                command = [
                    sys.executable,
                    __file__,
                    "--job",
                    name,
                    "--variant",
                    "without" if label == "without" else "with",
                    "--probe-samples",
                    str(probe_samples),
                ]
                command += ["--every-n-batches", str(every)] if every else []
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                measured = json.loads(out.stdout.splitlines()[-1])
                fits.setdefault((name, label), []).append(measured["fit"])
                cpus.setdefault((name, label), []).append(measured["cpu"])
                probes.setdefault((name, label), []).append(measured["probes"])
    # Wall time is the goal's measure; the process's CPU time (every thread, the probe's included)
    # is the same cost without the time the machine gave to others, which on a shared VM swings the
    # same training from 11 to 30 s.
    for measure, times in (("wall time of fit", fits), ("CPU time of fit (all threads)", cpus)):
        _print_overheads(measure, times, probes, rounds)
    print("goal: median overhead <= 2 % at the default frequency, <= 5 % every 50 batches")


def _print_overheads(measure: str, times: dict, probes: dict, rounds: int) -> None:
    print(
        f"\n{measure}\n{'model':<14}{'without s':>14}  "
        + "".join(f"{label + ': median (95 % CI)':>42}" for label, _ in FREQUENCIES)
    )
    for label_group, group in [(name, [name]) for name in REALISTIC_NAMES] + [
        ("all three", list(REALISTIC_NAMES))
    ]:
        without = statistics.median(sum(times[(n, "without")][k] for n in group) for k in range(rounds))
        cells = []
        for label, _ in FREQUENCIES:
            per_round = [
                sum(times[(n, label)][k] for n in group) / sum(times[(n, "without")][k] for n in group) - 1
                for k in range(rounds)
            ]
            low, high = median_interval(per_round)
            probe_s = statistics.median(sum(probes[(n, label)][k] for n in group) for k in range(rounds))
            cells.append(
                f"{statistics.median(per_round):>12.1%} ({low:.1%} to {high:.1%}), probes {probe_s:5.1f} s"
            )
        print(f"{label_group:<14}{without:>14.1f}  " + "".join(f"{c:>42}" for c in cells))


# Each timed fit of the interleaved suite: two epochs, so the default frequency probes three times
# (before training and after each epoch), a little more often than a longer training would.
INTERLEAVED_EPOCHS = 2


def _realistic_model(name: str):
    """A realistic model (bench/realistic_models.py), seeded and compiled, and its data: (model, x, y)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    import keras
    import numpy as np
    from realistic_models import REALISTIC

    keras.utils.set_random_seed(7)
    model, optimizer, loss, x, y = REALISTIC[name].build(np.random.default_rng(7))
    model.compile(optimizer=optimizer, loss=loss)
    return model, x, y


def interleaved_job(name: str, rounds: int) -> dict:
    """One process per model: after a warm-up fit, fits of INTERLEAVED_EPOCHS epochs without the
    callback, with it at its default frequency and every 50 batches, in rotating order, `rounds`
    times. Pairs seconds apart, not minutes: this machine's speed drifts by tens of percent from one
    minute to the next, more than the overhead measured. Each fit with the callback traces its
    gradient function again (30-60 ms; a training pays it once): an upper bound."""
    model, x, y = _realistic_model(name)
    from analyzer.callback import GradientHistograms

    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # Keras traces its own step here, once
    times: dict[str, list[float]] = {label: [] for label in ("without", *(f for f, _ in FREQUENCIES))}
    variants = [("without", None), *FREQUENCIES]
    with tempfile.TemporaryDirectory() as log_dir:
        for r in range(rounds):
            for label, every in variants[r % 3 :] + variants[: r % 3]:
                callbacks = []
                if label != "without":
                    callbacks = [
                        GradientHistograms(
                            os.path.join(log_dir, f"{r}-{every}"),
                            probe=(x[:256], y[:256]),
                            every_n_batches=every,
                        )
                    ]
                start = time.perf_counter()
                model.fit(x, y, batch_size=64, epochs=INTERLEAVED_EPOCHS, verbose=0, callbacks=callbacks)
                times[label].append(time.perf_counter() - start)
    return times


def interleaved(rounds: int) -> None:
    """The realistic models, each in one process, the overhead paired fit by fit with its 95 % CI."""
    print(
        f"realistic models (bench/realistic_models.py), fits of {INTERLEAVED_EPOCHS} epochs interleaved "
        f"in one process per model, {rounds} rounds"
    )
    print(
        f"{'model':<14}{'fit without s':>14}  "
        + "".join(f"{label + ': median (95 % CI)':>40}" for label, _ in FREQUENCIES)
    )
    all_times = {}
    for name in REALISTIC_NAMES:
        command = [sys.executable, __file__, "--suite", "interleaved", "--job", name, "--rounds", str(rounds)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        all_times[name] = json.loads(out.stdout.splitlines()[-1])
    for label_group, group in [(n, [n]) for n in REALISTIC_NAMES] + [("all three", list(REALISTIC_NAMES))]:
        without = statistics.median(sum(all_times[n]["without"][k] for n in group) for k in range(rounds))
        cells = []
        for label, _ in FREQUENCIES:
            per_round = [
                sum(all_times[n][label][k] for n in group) / sum(all_times[n]["without"][k] for n in group)
                - 1
                for k in range(rounds)
            ]
            low, high = median_interval(per_round)
            cells.append(f"{statistics.median(per_round):>12.1%} ({low:.1%} to {high:.1%})")
        print(f"{label_group:<14}{without:>14.1f}  " + "".join(f"{c:>40}" for c in cells))
    print("goal: median overhead <= 2 % at the default frequency, <= 5 % every 50 batches")


# Batches per window of the windows suite: the callback probes every 2 x WINDOW batches, so windows
# alternate between one that starts with a probe (its snapshot, its forward and backward pass beside
# training, binning and writing: 2-3 batches' time on its thread) and one without.
WINDOW = 10
# Windows suite: the periods left out at the start (Keras's first steps, the probe before training).
SETTLING_PERIODS = 3
# Windows suite: every FRESH_EVERY-th probe starts as a training does, with a new trace (on the
# training thread) and a first call that instantiates the new function (on the probe thread).
FRESH_EVERY = 5


def windows_job(name: str, batches: int, probe_samples: int) -> dict:
    """One training of `batches` batches of 64 (one epoch of the realistic model's data, repeated),
    with the callback probing every 2 x WINDOW batches, every FRESH_EVERY-th probe with a new trace:
    the wall and CPU time of each window of WINDOW batches, the time the callback's first hook took
    (its trace) and each probe's time on its thread."""
    model, x, y = _realistic_model(name)
    import keras
    import numpy as np
    import tensorflow as tf
    from realistic_models import REALISTIC

    from analyzer.callback import GradientHistograms

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64, drop_remainder=True).repeat()
    marks: list[tuple[float, float]] = []
    trace = {}
    probe_times: list[float] = []

    class Marks(keras.callbacks.Callback):
        """Before the callback in the list: a window's end is marked before the probe it submits
        takes its snapshot, so the snapshot counts in the window the probe runs in."""

        def on_train_batch_end(self, batch, logs=None):
            marks.append((time.perf_counter(), time.process_time()))

    class Traced(GradientHistograms):
        def on_train_begin(self, logs=None):
            start = time.perf_counter()
            super().on_train_begin(logs)
            trace["s"] = time.perf_counter() - start

        def _write_probe(self, *args):
            start = time.perf_counter()
            super()._write_probe(*args)
            probe_times.append(time.perf_counter() - start)

        _submitted = 0

        def _submit_probe(self):
            self._submitted += 1
            if self._submitted > 1 and self._submitted % FRESH_EVERY == 0:  # as when a training starts
                variables = list(self.model.trainable_variables), list(self.model.non_trainable_variables)
                self._gradient_function = self._trace_gradient_function(*variables)
            super()._submit_probe()

    with tempfile.TemporaryDirectory() as log_dir:
        probe = (x[:probe_samples], y[:probe_samples])
        callback = Traced(log_dir, probe=probe, every_n_batches=2 * WINDOW)
        model.fit(data, steps_per_epoch=batches, epochs=1, verbose=0, callbacks=[Marks(), callback])
    ends = np.array(marks[WINDOW - 1 :: WINDOW])  # the end of each window: after batches 10, 20, ...
    wall, cpu = np.diff(ends, axis=0).T
    return {
        "windows": wall.tolist(),
        "cpu windows": cpu.tolist(),
        "trace": trace["s"],
        "probe times": probe_times,
        # The realistic training whose overheads are derived.
        "epochs": REALISTIC[name].epochs,
        "batches per epoch": REALISTIC[name].batches_per_epoch,
    }


def added_per_probe(windows: list[float]) -> tuple[list[float], list[float], list[float]]:
    """From a windows job's window times: what each probe adds (its window against the mean of the
    windows before and after it, which cancels a steady drift of the machine's speed), apart for the
    fresh probes (a new trace and its first call), and the time of a batch without a probe (from the
    window after it).

    windows[j] runs from the end of batch 10 (j + 1) to the end of batch 10 (j + 2). The callback
    probes before training and after every 20th batch, so the windows that start with a probe are
    the odd ones, window j with probe (j + 1) / 2 + 1."""
    added, fresh, batch = [], [], []
    for j in range(2 * SETTLING_PERIODS + 1, len(windows) - 1, 2):
        probe = (j + 1) // 2 + 1
        (fresh if probe % FRESH_EVERY == 0 else added).append(
            windows[j] - (windows[j - 1] + windows[j + 1]) / 2
        )
        batch.append(windows[j + 1] / WINDOW)
    return added, fresh, batch


# The trainings of the first measurements (issue 18): as many epochs of the sample data's 128
# batches as make 20 s or more here. The default frequency probes six times as often in them as in
# an epoch of CIFAR-10 or three times as often as in one of IMDB.
SHORT_EPOCHS = {"cnn": 4, "lstm": 4, "transformer": 3}


def windows(batches: int, probe_sizes: list[int]) -> None:
    """The windows suite: the wall time a probe adds to the training it runs beside, from windows of
    WINDOW batches with and without a probe within one training, seconds apart; the same for a fresh
    probe (a new trace and its first call), the fixed cost; from both, the overhead at every 50
    batches and at the default frequency of the realistic trainings.

    A training's own fixed cost is its trace and its probe before training, which runs while Keras
    traces its own step (a Python task that leaves the second core mostly idle). A fresh probe runs
    beside steady training instead, so its cost bounds that from above. Two other measures were
    tried and left: fits of fresh models with and without the callback, paired within processes
    (-62, 348 and 335 ms, with 95 % intervals 700 to 2,000 ms wide: Keras's own trace varies by
    more), and the trace plus all of the first probe's time on its thread as if training waited
    for it (410-513 ms for the lstm and the transformer, most of it waiting beside Keras's trace)."""
    print(
        f"realistic models, one training of {batches} batches each; the callback probes every "
        f"{2 * WINDOW} batches, every {FRESH_EVERY}th probe with a new trace; each window of {WINDOW} "
        f"batches that starts with a probe is paired with the mean of the windows before and after it"
    )
    print(f"{'':<89}{'trainings of the datasets epochs':>58}{'epochs of 128 batches':>28}")
    print(
        f"{'model':<13}{'probe':>6}{'batch ms':>10}{'per probe ms (95 % CI)':>26}{'CPU ms':>8}"
        f"{'fresh probe ms (95 % CI)':>26}{'training s':>12}{'every 50 batches':>23}{'default':>23}"
        f"{'training s':>12}{'default':>23}"
    )
    summed: dict[int, dict[str, list[float]]] = {}
    for probe_samples in probe_sizes:
        for name in REALISTIC_NAMES:
            command = [sys.executable, __file__, "--suite", "windows", "--job", name]
            command += ["--batches", str(batches), "--probe-samples", str(probe_samples)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            measured = json.loads(out.stdout.splitlines()[-1])
            added, fresh, batch = added_per_probe(measured["windows"])
            cpu_added, _, _ = added_per_probe(measured["cpu windows"])
            per_probe, fixed = (median_and_interval(values) for values in (added, fresh))
            batch_s = statistics.median(batch)
            cells = [
                f"{batch_s * 1000:>10.1f}",
                f"{_ms(per_probe):>26}",
                f"{statistics.median(cpu_added) * 1000:>8.0f}",
                f"{_ms(fixed):>26}",
            ]
            # Derived: the fixed cost (a fresh probe, as the probe before training), then a probe
            # every 50 batches or after each epoch (default); each with the ends of their intervals.
            trainings = [
                ("", measured["epochs"], measured["batches per epoch"], ("50", "default")),
                (" (128)", SHORT_EPOCHS[name], 128, ("default",)),
            ]
            for suffix, epochs, per_epoch, frequencies in trainings:
                trained = epochs * per_epoch
                training = trained * batch_s
                cells.append(f"{training:>12.1f}")
                for key in frequencies:
                    probes = trained // 50 if key == "50" else epochs
                    shares = [(f + probes * a) / training for f, a in zip(fixed, per_probe)]
                    cells.append(f"{f'{shares[0]:.1%} ({shares[1]:.1%} to {shares[2]:.1%})':>23}")
                    summed.setdefault(probe_samples, {}).setdefault(key + suffix, []).append(shares[0])
            print(f"{name:<13}{probe_samples:>6}" + "".join(cells))
    for probe_samples, medians in summed.items():
        print(
            f"probe of {probe_samples}, the three models' medians averaged: "
            f"{statistics.mean(medians['default']):.1%} at the default frequency and "
            f"{statistics.mean(medians['50']):.1%} every 50 batches on the trainings of the datasets' "
            f"epochs; {statistics.mean(medians['default (128)']):.1%} at the default frequency on "
            "epochs of 128 batches"
        )
    print("goal: median overhead <= 2 % at the default frequency, <= 5 % every 50 batches")


def median_and_interval(values: list[float]) -> tuple[float, float, float]:
    return (statistics.median(values), *median_interval(values))


def _ms(estimate: tuple[float, float, float]) -> str:
    median, low, high = (value * 1000 for value in estimate)
    return f"{median:.0f} ({low:.0f} to {high:.0f})"


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """The distribution-free confidence interval of the median: order statistics k and n + 1 - k,
    with k the largest for which a binomial(n, 1/2) tail below k holds at most (1 - confidence) / 2.
    Too few values for one give the full range."""
    ordered, n = sorted(values), len(values)
    tail, k = 0.0, 0
    while k < n // 2 and tail + math.comb(n, k) / 2**n <= (1 - confidence) / 2:
        tail += math.comb(n, k) / 2**n
        k += 1
    return (ordered[k - 1], ordered[n - k]) if k else (ordered[0], ordered[-1])


def _print_row(name: str, row: dict, probes: int) -> None:
    """The cost is measured twice: as the difference of fit times (noisy: one-second trainings) and
    as the time spent inside the callback's hooks on the training thread (the trace of the gradient
    function when training begins, the snapshots, and the wait at the end for the last probes,
    shown apart). The probes themselves run on their own thread. "trace only" is the difference
    of fit times with a callback that traces and never probes: the fixed cost."""
    later_ms = (row["probes"] - row["first probe"]) / max(probes, 1) * 1000
    print(
        f"{name:<28}{row['without']:>7.2f}{row['with']:>8.2f}{row['with'] / row['without'] - 1:>12.1%}"
        f"{row['all']:>12.3f}{row['all'] / row['without']:>8.1%}{row['end']:>10.3f}"
        f"{row['first probe']:>15.3f}{later_ms:>11.1f}{row['trace only'] / row['without'] - 1:>12.1%}"
    )


if __name__ == "__main__":
    main()
