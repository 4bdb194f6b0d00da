"""The reader: both encodings from real writers, restarts, damaged files, other tools' logs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SAMPLE_LOGS, left_long_ago, raw_histograms

from analyzer.events import read_run
from analyzer.options import ReadOptions
from analyzer.runs import find_runs
from analyzer.stats import abs_quantiles


def _only_run(folder):
    discovery = find_runs([str(folder)])
    assert len(discovery.runs) == 1, discovery
    return discovery.runs[0]


@pytest.mark.tf
def test_tf2_histograms_are_read_with_bucket_bounds_around_the_truth(make_run, rng):
    values = [rng.normal(scale=s, size=5000) for s in (1.0, 0.1, 0.01)]
    folder = make_run("tf2", {"grad/dense": values, "loss_hist": values}, [0, 10, 20])
    data = read_run(_only_run(folder))
    assert [layer.tag for layer in data.layers] == ["grad/dense"]
    assert data.other_histogram_tags == ["loss_hist"]
    stats = data.layers[0]
    assert stats.encodings == ("tf2",)
    assert list(stats.steps) == [0, 10, 20]
    assert raw_histograms(folder, "grad/dense").counts.shape[1] == 30  # TF2's 30 even buckets
    true_rms = np.array([np.sqrt(np.mean(v**2)) for v in values])
    assert np.all(stats.rms_low <= true_rms * (1 + 1e-6)) and np.all(true_rms <= stats.rms_high * (1 + 1e-6))
    np.testing.assert_allclose(stats.rms, true_rms, rtol=0.02)
    np.testing.assert_allclose(stats.count, 5000)
    assert not stats.rms_exact.any()


def test_legacy_histograms_from_tensorboardx_carry_exact_moments(make_run, rng):
    values = [rng.standard_t(3, size=4000) * s for s in (1.0, 1e-3, 1e-6)]
    folder = make_run("tbx", {"layer1/grad": values}, [5, 6, 7])
    stats = read_run(_only_run(folder)).layers[0]
    assert stats.encodings == ("legacy",)
    assert stats.rms_exact.all()
    np.testing.assert_allclose(stats.rms, [np.sqrt(np.mean(v**2)) for v in values], rtol=1e-9)
    # |g| quantiles: within one TF1 exponential bucket (10 %)
    steps = np.arange(len(values))
    np.testing.assert_allclose(
        abs_quantiles(raw_histograms(folder, "layer1/grad"), steps)[:, 0],
        [np.median(np.abs(v)) for v in values],
        rtol=0.1,
    )
    assert stats.quantiles_step == 7
    np.testing.assert_allclose(stats.abs_quantiles_last[0], np.median(np.abs(values[-1])), rtol=0.1)
    np.testing.assert_allclose(stats.max_abs, [np.abs(v).max() for v in values], rtol=0.1)


@pytest.mark.tf
def test_same_gradients_through_both_writers_agree(make_run):
    # Its own generator: the session's shared one hands out values that depend on which tests ran.
    rng = np.random.default_rng(59)
    values = [rng.normal(scale=0.05, size=8000) for _ in range(3)]
    tf2_folder, tbx_folder = (
        make_run("tf2", {"grad/g": values}, [0, 1, 2], "a"),
        make_run("tbx", {"grad/g": values}, [0, 1, 2], "b"),
    )
    tf2, tbx = read_run(_only_run(tf2_folder)).layers[0], read_run(_only_run(tbx_folder)).layers[0]
    tf2_series, tbx_series = raw_histograms(tf2_folder, "grad/g"), raw_histograms(tbx_folder, "grad/g")
    np.testing.assert_allclose(tf2.rms, tbx.rms, rtol=0.02)
    np.testing.assert_allclose(tf2.mean_abs, tbx.mean_abs, rtol=0.05)
    # Quantiles from TF2's 30 even buckets are exact to within one bucket's width (the legacy
    # writer's log buckets are far finer).
    width = (tf2_series.right - tf2_series.left)[:, 0]
    steps = np.arange(3)
    gap = np.abs(abs_quantiles(tf2_series, steps) - abs_quantiles(tbx_series, steps))
    assert (gap <= width[:, None]).all()
    assert (np.abs(tf2.abs_quantiles_last - tbx.abs_quantiles_last) <= width[-1]).all()


def test_restart_keeps_the_later_files_steps(make_run, rng, tmp_path):
    first = make_run("tbx", {"grad/w": [np.full(10, 1.0)] * 4}, [0, 10, 20, 30], "first")
    second = make_run("tbx", {"grad/w": [np.full(10, 2.0)] * 3}, [20, 30, 40], "second")
    run_dir = tmp_path / "restarted"
    run_dir.mkdir()
    for i, folder in enumerate((first, second)):
        [f] = folder.iterdir()
        shutil.copy(f, run_dir / f"events.out.tfevents.{1000 + i}.host")
    data = read_run(_only_run(run_dir))
    assert data.restarted
    stats = data.layers[0]
    assert list(stats.steps) == [0, 10, 20, 30, 40]
    np.testing.assert_allclose(stats.rms, [1, 1, 2, 2, 2])


def test_truncated_last_record_is_reported_and_the_rest_kept(make_run, rng, tmp_path):
    folder = make_run("tbx", {"grad/w": [rng.normal(size=100) for _ in range(5)]}, [0, 1, 2, 3, 4])
    [f] = folder.iterdir()
    f.write_bytes(f.read_bytes()[:-7])
    left_long_ago(f)
    data = read_run(_only_run(folder))
    assert list(data.layers[0].steps) == [0, 1, 2, 3]
    assert len(data.problems) == 1 and "truncated" in data.problems[0].message
    assert data.problems[0].path == str(f)


def test_real_keras_sweep_without_gradients_says_so_and_reads_weights_on_request(real_logs):
    sweep = real_logs / "keras_tutorial_sweep"
    if not sweep.exists():
        pytest.skip("shared real_logs not present")
    runs = find_runs([str(sweep)]).runs
    assert len(runs) == 4 and all(len(r.event_files) == 2 for r in runs)  # train/ + validation/
    for run in runs:
        data = read_run(run)
        assert data.layers == [] and data.problems == []
        assert any(t.endswith("kernel_0/histogram") for t in data.other_histogram_tags)
        weights = read_run(run, ReadOptions(tag_pattern=r"kernel_0/histogram"))
        assert len(weights.layers) == 2 and all(len(layer.steps) >= 10 for layer in weights.layers)


@pytest.mark.tf
def test_analyzer_never_imports_tensorflow():
    """TensorFlow is installed here (the tests use it), so this proves the analyzer avoids it."""
    pytest.importorskip("tensorflow")
    code = (
        "import sys, json\n"
        "from analyzer.cli import main\n"
        f"rc = main(['report', {str(SAMPLE_LOGS)!r}, '--no-html', '--json', '-', '-q'])\n"
        "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"tf": False, "keras": False}


def _assert_same_run_data(a, b):
    assert [layer.tag for layer in a.layers] == [layer.tag for layer in b.layers]
    assert a.other_histogram_tags == b.other_histogram_tags
    assert a.restarted == b.restarted
    assert len(a.problems) == len(b.problems)
    for x, y in zip(a.layers, b.layers):
        for name, value in vars(x).items():
            other = getattr(y, name)
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, other, equal_nan=True), (x.tag, name)
            else:
                assert value == other, (x.tag, name)


def _damaged_copies(make_run, rng, tmp_path):
    values = [rng.normal(size=200) for _ in range(6)]
    clean = make_run("tbx", {"grad/a": values, "grad/b": values}, list(range(6)), "clean")
    [f] = clean.iterdir()
    data = f.read_bytes()
    damaged = {"truncated": data[:-5], "bad_crc": data[: len(data) // 2] + b"X" + data[len(data) // 2 + 1 :]}
    folders = [clean]
    for name, content in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / f.name).write_bytes(content)
        left_long_ago(tmp_path / name / f.name)
        folders.append(tmp_path / name)
    return folders


@pytest.mark.tf
def test_streaming_reader_matches_event_accumulator_on_every_corpus(make_run, rng, tmp_path, real_logs):
    tf2 = make_run("tf2", {"grad/x": [rng.normal(size=300) for _ in range(4)]}, [0, 5, 3, 9], "tf2")
    folders = [SAMPLE_LOGS, real_logs, tf2, *_damaged_copies(make_run, rng, tmp_path)]
    runs = [run for folder in folders for run in find_runs([str(folder)]).runs]
    assert len(runs) >= 13
    for run in runs:
        for pattern in (r"(?i)grad", r"."):
            _assert_same_run_data(
                read_run(run, ReadOptions(pattern, reader="streaming")),
                read_run(run, ReadOptions(pattern, reader="tensorboard")),
            )


def test_damage_in_the_middle_is_reported_by_both_readers(make_run, rng, tmp_path):
    _, truncated, bad_crc = _damaged_copies(make_run, rng, tmp_path)
    for reader in ("streaming", "tensorboard"):
        data = read_run(_only_run(bad_crc), ReadOptions(reader=reader))
        assert len(data.problems) == 1 and "CRC" in data.problems[0].message
        assert 0 < len(data.layers[0].steps) < 6
        assert "truncated" in read_run(_only_run(truncated), ReadOptions(reader=reader)).problems[0].message


def _two_file_run(run_dir):
    """A tensorboardX run in two event files (a job that restarted): (older, newest)."""
    SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter

    for part, steps in enumerate((range(0, 5), range(5, 10))):
        writer = SummaryWriter(str(run_dir), filename_suffix=f".part{part}")
        for step in steps:
            writer.add_histogram("grad/w", np.random.default_rng(step).normal(size=500), step)
        writer.close()
    return sorted(run_dir.iterdir())


def test_a_run_still_being_written_is_noted_quietly_and_a_cut_older_file_is_an_error(tmp_path):
    from analyzer import reasons
    from analyzer.pipeline import analyse_run

    # The newest file cut mid-record, as a live writer leaves it between flushes.
    older, newest = _two_file_run(tmp_path / "live")
    newest.write_bytes(newest.read_bytes()[:-40])
    data = read_run(_only_run(tmp_path / "live"))
    assert data.problems == []
    assert list(data.live) == [str(newest)] and data.last_step == 8
    [note] = reasons.run_notes(analyse_run(_only_run(tmp_path / "live")).notes)
    assert note.startswith("still being written: read up to step 8;") and str(newest) in note
    # The same cut, left for an hour: a killed writer, and an error.
    left_long_ago(newest)
    killed = read_run(_only_run(tmp_path / "live"))
    assert killed.live == {} and [p.path for p in killed.problems] == [str(newest)]
    assert "truncated" in killed.problems[0].message
    # A cut in the older file is never a live writer's, however recent.
    older, newest = _two_file_run(tmp_path / "cut_older")
    older.write_bytes(older.read_bytes()[:-40])
    cut_older = read_run(_only_run(tmp_path / "cut_older"))
    assert cut_older.live == {} and [p.path for p in cut_older.problems] == [str(older)]
