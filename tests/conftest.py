"""Fixtures that write real event files with real writers (TensorFlow/Keras, tensorboardX), shared
paths, and the CLI run and read back as JSON. A writer that is not installed skips its test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = REPO / "sample_logs"
REAL_LOGS = Path(os.environ.get("GRADAUDIT_REAL_LOGS", REPO.parent / "shared" / "real_logs"))


def left_long_ago(path: Path, seconds: float = 3600) -> None:
    """Date a file's last change back, as a killed writer's file stays: a partial record at the end
    of a file that changed minutes ago is a live writer's, and only a note."""
    import time

    then = time.time() - seconds
    os.utime(path, (then, then))


def write_tf2_histograms(log_dir: Path, series: dict[str, list[np.ndarray]], steps: list[int]) -> None:
    """TF2 tensor histograms (30 even buckets), as tf.summary.histogram writes them."""
    tf = pytest.importorskip("tensorflow")

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for k, step in enumerate(steps):
            for tag, values in series.items():
                tf.summary.histogram(tag, values[k], step=step)
    writer.flush()
    writer.close()


def write_tbx_histograms(log_dir: Path, series: dict[str, list[np.ndarray]], steps: list[int]) -> None:
    """Legacy HistogramProto with exact moments and TF1 exponential buckets, as tensorboardX writes."""
    SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter

    writer = SummaryWriter(str(log_dir))
    for k, step in enumerate(steps):
        for tag, values in series.items():
            writer.add_histogram(tag, values[k], global_step=step)
    writer.close()


def raw_histograms(folder: Path, tag: str):
    """One tag's histograms from the only event file of `folder`, as collected before the reader
    reduces them to statistics (a plain file: no restarts, one encoding)."""
    from tensorboard.compat.proto import event_pb2

    from analyzer.blocks import LegacyHistograms, TensorHistograms
    from analyzer.records import RecordReader

    [path] = [p for p in folder.rglob("*") if "tfevents" in p.name]
    tensors, legacy = TensorHistograms(), LegacyHistograms()
    with open(path, "rb") as stream:
        for payload in RecordReader(stream, path.stat().st_size):
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                if value.tag == tag and value.HasField("tensor"):
                    tensors.add(event.step, value.tensor)
                elif value.tag == tag and value.HasField("histo"):
                    legacy.add(event.step, value.histo)
    return tensors.block(tag, str(path), []) or legacy.block()


def report_json(json_path: Path, *paths, args=()) -> tuple[int, dict | None]:
    """`gradaudit report PATHS --json FILE -q ARGS` run in this process: its exit code, and the JSON
    document it wrote (None where it wrote none). ARGS say where HTML goes (-o, or --no-html)."""
    from analyzer.cli import main

    rc = main(["report", *map(str, paths), "--json", str(json_path), "-q", *map(str, args)])
    return rc, json.loads(json_path.read_text()) if json_path.exists() else None


def runs_by_name(document: dict) -> dict[str, dict]:
    return {run["run"]: run for run in document["runs"]}


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def make_run(tmp_path):
    """Write a run with one of the real writers and return its folder."""

    def make(writer: str, series: dict[str, list[np.ndarray]], steps: list[int], name: str = "run") -> Path:
        folder = tmp_path / name
        {"tf2": write_tf2_histograms, "tbx": write_tbx_histograms}[writer](folder, series, steps)
        return folder

    return make


def shrinking_series(
    rng: np.random.Generator, layers: int, steps: int, decades_per_layer: float, size: int = 2000
) -> dict[str, list[np.ndarray]]:
    """Gaussian gradients whose scale falls by a fixed number of decades per layer toward the input."""
    return {
        f"grad/layer{i}": [
            rng.normal(scale=10 ** (-decades_per_layer * (layers - 1 - i)), size=size) for _ in range(steps)
        ]
        for i in range(layers)
    }


@pytest.fixture
def real_logs() -> Path:
    """Other tools' event files, in shared/ beside the checkout. CI always has them: never skip there."""
    if not REAL_LOGS.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{REAL_LOGS} is missing (set GRADAUDIT_REAL_LOGS)")
        pytest.skip(f"{REAL_LOGS} not present")
    return REAL_LOGS


def legacy_histograms(log_dir: Path) -> dict[str, list]:
    """Each tag's (step, HistogramProto) in the order written, read by TensorBoard's loader of legacy
    events from the run's event files."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    found: dict[str, list] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.HasField("histo"):
                    found.setdefault(value.tag, []).append((event.step, value.histo))
    return found
