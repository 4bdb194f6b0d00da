"""Reading speed and memory: gradaudit against the parse floor and a stock EventAccumulator, in one run.

    python bench/speed.py                     # 20 runs x 30 tags x 300 steps of TF2 histograms (~140 MB)
    python bench/speed.py --scaling           # also a sweep of twice the runs: time and memory
    python bench/speed.py --writer tensorboardx --runs 4   # legacy histograms (~600 buckets, 74 MB a run)
    python bench/speed.py --with-tf           # also EventAccumulator with TensorFlow imported
    python bench/speed.py --single-run 3000,6000   # one run of 200 tags at each length (467 MB at 3,000)

The sweep is written once with TensorBoard's own writers (``histogram_pb``, ``EventFileWriter``: the
records ``tf.summary.histogram`` writes, without TensorFlow), or with ``--writer tensorboardx`` by
tensorboardX, into --dir and reused while its shape is unchanged. Every measurement is a whole fresh
process: wall time from start to exit, and its peak RSS (for gradaudit also the largest worker's).
Jobs run interleaved for --rounds rounds and the median wall time counts, so a slow spell of a shared
machine hits them all. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# --- the sweep --------------------------------------------------------------------------------------


WRITERS = {
    "tf2": "TF2 histograms, one per event, as tf.summary.histogram writes them",
    "tensorboardx": "legacy HistogramProtos from tensorboardX's SummaryWriter.add_histogram",
}


def write_sweep(folder: Path, runs: int, tags: int, steps: int, writer_kind: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for r in range(runs):
        run = folder / f"lr={10 ** -(1 + r % 4):g},seed={r}"
        write = _tf2_writer(run) if writer_kind == "tf2" else _tensorboardx_writer(run)
        decay = rng.uniform(0.0, 0.6)  # decades per layer toward the input
        for step in range(steps):
            for t in range(tags):
                scale = 10 ** (-decay * (tags - 1 - t) / 3 - step / steps)
                write(f"gradients/layer_{t}/kernel", rng.standard_t(4, size=512) * scale, step * 10)
        write(None, None, None)
    (folder / "SHAPE").write_text(json.dumps([runs, tags, steps, WRITERS[writer_kind]]))


def _tf2_writer(run: Path):
    """TensorBoard's own writers (histogram_pb, EventFileWriter): the records of tf.summary.histogram."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(run), max_queue_size=1000)

    def write(tag, values, step):
        if tag is None:
            return writer.close()
        summary = histogram_pb(tag, values)
        writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))

    return write


def _tensorboardx_writer(run: Path):
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(run))

    def write(tag, values, step):
        if tag is None:
            return writer.close()
        writer.add_histogram(tag, values, step)

    return write


def ensure_sweep(folder: Path, runs: int, tags: int, steps: int, writer_kind: str) -> None:
    shape = folder / "SHAPE"
    if shape.exists() and json.loads(shape.read_text()) == [runs, tags, steps, WRITERS[writer_kind]]:
        return
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"writing the sweep ({runs} runs x {tags} tags x {steps} steps) to {folder} ...", file=sys.stderr)
    write_sweep(folder, runs, tags, steps, writer_kind)


def event_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if "tfevents" in p.name)


# --- the jobs, each run in a fresh process -------------------------------------------------------------


def job_floor(folder: Path) -> None:
    """Framing + C CRC32C + Event parse + a numpy view of each histogram: nothing less can read them."""
    import struct

    import crc32c
    import numpy as np
    from tensorboard.compat.proto import event_pb2

    def masked(data: bytes) -> int:
        c = crc32c.crc32c(data)
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    histograms = 0
    for path in event_files(folder):
        with open(path, "rb") as f:
            while header := f.read(12):
                length, length_crc = struct.unpack("<QI", header)
                assert masked(header[:8]) == length_crc
                payload, footer = f.read(length), f.read(4)
                assert masked(payload) == struct.unpack("<I", footer)[0]
                values = event_pb2.Event.FromString(payload).summary.value
                for i in range(len(values)):  # indexed: under upb, iterating costs 0.6 µs more per event
                    value = values[i]
                    if value.HasField("tensor"):
                        np.frombuffer(value.tensor.tensor_content, "<f8").reshape(-1, 3)
                        histograms += 1
                    elif value.HasField("histo"):
                        np.array(value.histo.bucket_limit), np.array(value.histo.bucket)
                        histograms += 1
    print(f"{histograms} histograms", file=sys.stderr)


def job_event_accumulator(folder: Path, with_tf: bool) -> None:
    """Stock EventAccumulator over every run, all events kept, every histogram made an array."""
    if not with_tf:  # TensorBoard's documented way to run without TensorFlow: its stub
        import types

        sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    guidance = {kind: 0 for kind in ea.STORE_EVERYTHING_SIZE_GUIDANCE}
    histograms = 0
    for run in sorted({p.parent for p in event_files(folder)}):
        acc = ea.EventAccumulator(str(run), size_guidance=guidance).Reload()
        for tag in acc.Tags()[ea.TENSORS]:
            for event in acc.Tensors(tag):
                tensor_util.make_ndarray(event.tensor_proto)
                histograms += 1
        for tag in acc.Tags()[ea.HISTOGRAMS]:
            for event in acc.Histograms(tag):
                np.array(event.histogram_value.bucket_limit), np.array(event.histogram_value.bucket)
                histograms += 1
    print(f"{histograms} histograms", file=sys.stderr)


def job_gradaudit(folder: Path, workers: int | None) -> None:
    sys.path.insert(0, str(REPO))
    from analyzer.cli import main

    with tempfile.TemporaryDirectory() as out:
        args = [
            "report",
            str(folder),
            "-o",
            os.path.join(out, "report"),
            "--json",
            os.path.join(out, "r.json"),
            "-q",
        ]
        if workers:
            args += ["--workers", str(workers)]
        code = main(args)
    assert code in (0, 1), code


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_job(args: list[str], sample_memory: bool = False) -> dict:
    """The job as a fresh process: its wall time, its own and its workers' peak RSS as they report
    them, and with `sample_memory` the peak of the whole process tree's memory, sampled every 50 ms
    while it runs (reading it costs CPU: such a round is not timed)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen([sys.executable, __file__, *args], stdout=stdout, stderr=stderr, text=True)
        tree_peak = 0.0
        while process.poll() is None:
            if sample_memory:
                tree_peak = max(tree_peak, _tree_memory_mb(process.pid))
            time.sleep(0.05 if sample_memory else 0.005)
        wall = time.perf_counter() - start
        stdout.seek(0), stderr.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"job {args} failed:\n{stderr.read()}")
        usage = json.loads(stdout.read().strip().splitlines()[-1])
    return {"wall": wall, "tree_mb": tree_peak, **usage}


def _tree_memory_mb(pid: int) -> float:
    """The proportional set size (PSS) of a process and all its descendants: each page counted once
    however many of them share it (forked workers share their parent's libraries), in MB."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--tags", type=int, default=None, help="tags per run (default 30; 200 with --single-run)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--writer", choices=sorted(WRITERS), default="tf2", help="who writes the sweep")
    parser.add_argument("--dir", type=Path, help="where the sweep is kept (default: in the temp folder)")
    parser.add_argument("--rounds", type=int, default=3, help="measure each job this many times (median)")
    parser.add_argument("--with-tf", action="store_true", help="also time EventAccumulator with TensorFlow")
    parser.add_argument("--skip-stock", action="store_true", help="skip the slow stock EventAccumulator")
    parser.add_argument(
        "--scaling", action="store_true", help="also run gradaudit on a sweep with twice the runs"
    )
    parser.add_argument(
        "--single-run",
        metavar="STEPS[,STEPS]",
        help="instead of a sweep: one run of --tags tags (default 200) at each number of steps",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    suffix = "" if args.writer == "tf2" else f"-{args.writer}"
    args.dir = args.dir or Path(tempfile.gettempdir()) / f"gradaudit-speed-sweep{suffix}"

    if args.job:
        {
            "floor": lambda: job_floor(args.dir),
            "ea": lambda: job_event_accumulator(args.dir, with_tf=False),
            "ea_tf": lambda: job_event_accumulator(args.dir, with_tf=True),
            "gradaudit": lambda: job_gradaudit(args.dir, args.workers),
        }[args.job]()
        # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the process we were forked
        # from (this script's parent, which may have TensorFlow loaded from writing the sweep).
        own = _vm_hwm_mb()
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({"rss_mb": own, "worker_rss_mb": workers}))
        return

    if args.single_run:
        return single_runs(args)
    args.tags = args.tags or 30
    sweeps = [args.dir] + ([args.dir.with_name(args.dir.name + "-x2")] if args.scaling else [])
    for k, folder in enumerate(sweeps):
        ensure_sweep(folder, args.runs * (k + 1), args.tags, args.steps, args.writer)
    size_mb = sum(p.stat().st_size for p in event_files(args.dir)) / 1e6
    histograms = args.runs * args.tags * args.steps
    print(
        f"sweep: {args.runs} runs x {args.tags} tags x {args.steps} steps = {histograms:,} histograms, "
        f"{WRITERS[args.writer]}, {size_mb:.0f} MB; {os.cpu_count()} cores; median of {args.rounds} rounds"
    )
    for folder in sweeps:
        for path in event_files(folder):  # every reader gets the files from the page cache
            path.read_bytes()

    floor, stock, one, ours = (
        "floor: framing + C CRC32C + parse + numpy",
        "EventAccumulator, no TensorFlow (stock)",
        "gradaudit report, 1 worker",
        "gradaudit report, default workers",
    )
    jobs = [(floor, ["--job", "floor"], args.rounds)]
    if not args.skip_stock:  # ten times slower than the goal: once is enough
        jobs.append((stock, ["--job", "ea"], 1))
    if args.with_tf:
        jobs.append(("EventAccumulator, TensorFlow imported", ["--job", "ea_tf"], 1))
    jobs += [
        (one, ["--job", "gradaudit", "--workers", "1"], args.rounds),
        (ours, ["--job", "gradaudit"], args.rounds),
    ]
    if args.scaling:
        jobs.append((f"{ours}, twice the runs", ["--job", "gradaudit", "--dir", str(sweeps[1])], args.rounds))

    measured: dict[str, list[dict]] = {label: [] for label, _, _ in jobs}
    for round_ in range(args.rounds):  # interleaved, so a slow spell of the machine hits every job
        for label, job, rounds in jobs:
            if round_ < rounds:
                measured[label].append(
                    run_job(job + (["--dir", str(args.dir)] if "--dir" not in job else []))
                )

    def wall(label: str) -> float:
        return statistics.median(r["wall"] for r in measured[label])

    def peak(label: str, key: str) -> float:
        return max(r[key] for r in measured[label])

    print(f"{'reader':<52}{'wall s':>8}{'min s':>8}{'peak RSS MB':>13}{'each worker MB':>16}")
    for label, _, _ in jobs:
        worker = f"{peak(label, 'worker_rss_mb'):.0f}" if peak(label, "worker_rss_mb") else ""
        least = min(r["wall"] for r in measured[label])
        print(f"{label:<52}{wall(label):>8.2f}{least:>8.2f}{peak(label, 'rss_mb'):>13.0f}{worker:>16}")
    print(
        f"\ngradaudit (read + stats + fits + diagnosis + HTML + JSON) / floor: "
        f"{wall(ours) / wall(floor):.2f}x (goal <= 2)"
    )
    if not args.skip_stock:
        print(f"stock EventAccumulator alone / gradaudit: {wall(stock) / wall(ours):.1f}x (goal >= 8)")
    print(f"1 worker / default workers: {wall(one) / wall(ours):.2f}x")
    cores = os.cpu_count() or 1
    print(
        f"memory, main + {cores} workers (RSS counts shared pages in each, so this is an upper bound): "
        f"{peak(ours, 'rss_mb') + cores * peak(ours, 'worker_rss_mb'):.0f} MB (goal <= 250)"
    )
    if args.scaling:
        doubled = f"{ours}, twice the runs"
        print(
            f"twice the runs: {wall(doubled) / wall(ours):.2f}x the time (linear: 2), peak worker RSS "
            f"{peak(doubled, 'worker_rss_mb'):.0f} MB against {peak(ours, 'worker_rss_mb'):.0f} MB (flat)"
        )


def single_runs(args: argparse.Namespace) -> None:
    """One long run at each length: wall time against the single-process parse floor of the same file,
    and peak memory, which must not grow with the number of steps."""
    tags = args.tags or 200
    lengths = [int(n) for n in args.single_run.split(",")]
    folders = []
    for steps in lengths:
        folder = Path(tempfile.gettempdir()) / f"gradaudit-speed-single-{tags}x{steps}"
        ensure_sweep(folder, 1, tags, steps, args.writer)
        folders.append(folder)
    cores = os.cpu_count() or 1
    print(f"one run of {tags} tags, {WRITERS[args.writer]}; {cores} cores; median of {args.rounds} rounds")
    jobs = []
    for folder, steps in zip(folders, lengths):
        jobs += [
            ((steps, "floor"), ["--job", "floor", "--dir", str(folder)]),
            ((steps, "gradaudit, 1 process"), ["--job", "gradaudit", "--workers", "1", "--dir", str(folder)]),
            ((steps, "gradaudit"), ["--job", "gradaudit", "--dir", str(folder)]),
        ]
    measured: dict[tuple[int, str], list[dict]] = {label: [] for label, _ in jobs}
    memory: dict[tuple[int, str], float] = {}
    for round_ in range(args.rounds + 1):  # the last round samples memory, untimed
        for label, job in jobs:
            for path in event_files(Path(job[-1])):  # from the page cache, as the floor reads it
                path.read_bytes()
            if round_ < args.rounds:
                measured[label].append(run_job(job))
            else:
                memory[label] = run_job(job, sample_memory=True)["tree_mb"]
    # The machine's speed drifts by tens of percent from minute to minute: each job's wall time is
    # divided by the floor's in the same round, and the median of those ratios is the figure.
    print(
        f"{'steps':>7} {'size MB':>8}  {'job':<24}{'wall s':>8}{'x floor':>9}{'range':>13}"
        f"{'peak memory MB':>16}{'RSS main + workers MB':>23}"
    )
    for folder, steps in zip(folders, lengths):
        size = sum(p.stat().st_size for p in event_files(folder)) / 1e6
        floors = [r["wall"] for r in measured[(steps, "floor")]]
        for kind in ("floor", "gradaudit, 1 process", "gradaudit"):
            runs = measured[(steps, kind)]
            wall = statistics.median(r["wall"] for r in runs)
            ratios = [r["wall"] / floor for r, floor in zip(runs, floors)]
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            tree = memory[(steps, kind)]
            rss = max(r["rss_mb"] for r in runs) + cores * max(r["worker_rss_mb"] for r in runs)
            print(f"{steps:>7} {size:>8.0f}  {kind:<24}{wall:>8.2f}{statistics.median(ratios):>9.2f}", end="")
            print(f"{spread:>13}{tree:>16.0f}{rss:>23.0f}")
    print(
        "peak memory: the whole process tree's proportional set size (pages shared by forked workers "
        "counted once), sampled every 50 ms in a round of its own; RSS: each process's own peak, summed "
        "(an upper bound)"
    )
    print("goal: gradaudit <= 1.2x the floor, peak memory <= 250 MB at every length")


if __name__ == "__main__":
    main()
