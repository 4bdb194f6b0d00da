"""Long runs: histograms reduced to statistics as they are read, and long tags thinned evenly."""

from __future__ import annotations

import re

import numpy as np
from test_hostile import legacy_event, tf2_event, write_events

from analyzer import readers, reasons, store
from analyzer.events import read_run
from analyzer.options import ReadOptions
from analyzer.pipeline import analyse_run
from analyzer.records import first_record_at_or_after
from analyzer.reduction import KEPT_STEPS
from analyzer.runs import find_runs


def _only_run(folder):
    [run] = find_runs([str(folder)]).runs
    return run


def _assert_same_layers(a, b):
    assert [layer.tag for layer in a] == [layer.tag for layer in b]
    for x, y in zip(a, b):
        for name, value in vars(x).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                # Summed in blocks padded to another bucket count: equal to the last bits.
                np.testing.assert_allclose(value, getattr(y, name), rtol=1e-13, err_msg=f"{x.tag} {name}")
            elif isinstance(value, np.ndarray):
                assert np.array_equal(value, getattr(y, name)), (x.tag, name)
            else:
                assert value == getattr(y, name), (x.tag, name)


def _mixed_events(rng):
    """Every kind of record the reader keeps apart: TF2 histograms and scalars whose metadata comes
    only with their first value, legacy histograms and simple values, a restart that orphans legacy
    data (SessionLog.START), a step logged twice, and a tensor of the wrong shape."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.util import tensor_util

    limits = list(np.logspace(-6, 1, 40))
    events = [event_pb2.Event(file_version="brain.Event:2")]
    for step in list(range(0, 60)) + list(range(40, 90)):
        if step == 40 and len(events) > 300:  # the second pass: a restart from step 40
            events.append(
                event_pb2.Event(step=40, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
            )
        for layer in range(3):
            counts = list(rng.integers(0, 50, size=40).astype(float))
            events.append(legacy_event(f"grad/legacy{layer}", step, limits, counts, squares=float(step + 1)))
        events.append(tf2_event("grad/tf2", step, rng.normal(size=(30, 3)) ** 2, first=step == 0))
        loss = summary_pb2.Summary.Value(
            tag="epoch_loss", tensor=tensor_util.make_tensor_proto(np.float32(1 / (step + 1)))
        )
        if step == 0:
            loss.metadata.plugin_data.plugin_name = "scalars"
        simple = summary_pb2.Summary.Value(tag="train_loss", simple_value=2.0 / (step + 1))
        events.append(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[loss, simple])))
    events.append(tf2_event("grad/tf2", 90, [1.0, 2.0]))  # not a [k, 3] histogram
    return events


def test_reducing_a_few_histograms_at_a_time_changes_nothing(tmp_path, monkeypatch):
    """A file with a restart (legacy histograms purged, TF2 tensors kept), a step logged twice and a
    tensor of the wrong shape, read with a buffer of a few histograms: the same statistics as read at
    once, and as TensorBoard's EventAccumulator reads it."""
    write_events(tmp_path / "logs" / "run", _mixed_events(np.random.default_rng(3)))
    run = _only_run(tmp_path / "logs")
    at_once = read_run(run)
    monkeypatch.setattr(store, "BUFFERED_BUCKETS", 100)
    in_pieces = read_run(run)
    _assert_same_layers(at_once.layers, in_pieces.layers)
    _assert_same_layers(at_once.layers, read_run(run, ReadOptions(reader="tensorboard")).layers)
    assert [p.message for p in at_once.problems] == [p.message for p in in_pieces.problems]
    assert len(at_once.problems) == 1 and "not a [k, 3] histogram" in at_once.problems[0].message
    legacy = at_once.layers[1]
    assert list(legacy.steps) == list(range(90)) and legacy.logged_steps == 90
    assert legacy.rms_exact.all()


def _assert_same_file(a, b):
    _assert_same_layers(list(a.layers.values()), list(b.layers.values()))
    assert [p.message for p in a.problems] == [p.message for p in b.problems]
    assert a.hparams == b.hparams and a.other_histogram_tags == b.other_histogram_tags
    assert list(a.scalars) == list(b.scalars)
    for tag, block in a.scalars.items():
        assert np.array_equal(block.steps, b.scalars[tag].steps) and np.array_equal(
            block.values, b.scalars[tag].values
        )


def test_a_large_file_read_in_byte_ranges_by_several_processes_reads_as_one(tmp_path, monkeypatch):
    """Ranges of a few records each, read by a pool of processes: the same as the file read whole,
    by either reader, also where the file is damaged in the middle or cut at its end."""
    path = write_events(tmp_path / "logs" / "run", _mixed_events(np.random.default_rng(5)))
    data = path.read_bytes()
    ranges = -(-len(data) // 5000)
    range_start = len(data) * (ranges * 2 // 3) // ranges
    with open(path, "rb") as stream:
        first = first_record_at_or_after(stream, range_start, len(data))  # that range's first record
        third = first_record_at_or_after(stream, first + 2000, len(data))  # one further into it
    damaged = []  # a byte of a record's payload changed
    for at in (first + 20, third + 20):
        damaged.append(tmp_path / f"damaged{at}" / path.name)
        damaged[-1].parent.mkdir()
        damaged[-1].write_bytes(data[:at] + b"X" + data[at + 1 :])
    cut = tmp_path / "cut" / path.name
    cut.parent.mkdir()
    cut.write_bytes(data[:-30])
    monkeypatch.setattr(readers, "PART_BYTES", 5000)  # some 60 ranges
    gradients = re.compile("grad").search  # what read_run passes: picklable
    joined = []  # how many ranges each file was read in
    join = readers.join_parts

    def counted_join(path, parts):
        parts = list(parts)
        joined.append(len(parts))
        return join(path, parts)

    monkeypatch.setattr(readers, "join_parts", counted_join)
    for file in (path, *damaged, cut):
        whole = readers.read_file(str(file), selected=gradients)
        in_ranges = readers.read_file(str(file), selected=gradients, processes=2)
        _assert_same_file(whole, in_ranges)
        ranges = -(-file.stat().st_size // 5000)
        # Where the damage is in a range's first record, that range begins past it: the ranges
        # do not meet, and the file is read again, whole.
        assert joined[-3:] == [1, ranges, 1] if file == damaged[0] else joined[-2:] == [1, ranges]
        if file == path:
            _assert_same_file(
                whole, readers.read_file(str(file), ReadOptions(reader="tensorboard"), gradients)
            )
            assert list(whole.layers["grad/legacy0"].steps) == list(range(90))
            assert list(whole.scalars) == ["epoch_loss", "train_loss"]
            assert len(whole.scalars["train_loss"].steps) == 90  # the orphaned steps 40-59 purged
        else:
            [problem] = whole.problems  # reading stopped there, before the odd tensor
            assert ("truncated" if file == cut else "CRC") in problem.message


def test_a_long_run_is_thinned_evenly_and_keeps_where_gradients_turned_non_finite(tmp_path):
    steps = 2 * KEPT_STEPS + 1000
    start = steps * 3 // 4 + 1  # odd: thinning alone would drop it
    blow_up = range(start, start + 11)  # NaN sums: non-finite gradients logged at 11 steps
    events = []
    for step in range(steps):
        scale = 10 ** (-step / steps)
        total = float("nan") if step in blow_up else 0.0
        for layer in range(2):
            events.append(
                legacy_event(
                    f"grad/layer{layer}",
                    step,
                    [-scale, 0.0, scale],
                    [5.0, 0.0, 5.0],
                    total=total,
                    squares=scale**2 * 10,
                )
            )
    write_events(tmp_path / "logs" / "long", events)
    run = _only_run(tmp_path / "logs")
    data = read_run(run)
    for layer in data.layers:
        assert KEPT_STEPS <= len(layer.steps) <= 2 * KEPT_STEPS
        assert layer.logged_steps == steps and layer.logged_nonfinite == len(blow_up)
        kept = set(layer.steps.tolist())
        edges = {start - 1, start, blow_up[-1], blow_up[-1] + 1}
        assert {0, steps - 1} | edges <= kept  # the blow-up's edges, and the last step
        assert layer.nonfinite[np.isin(layer.steps, list(blow_up))].all()
        assert layer.quantiles_step == steps - 1 and np.isfinite(layer.abs_quantiles_last).all()
    np.testing.assert_array_equal(data.layers[0].steps, data.layers[1].steps)  # aligned across depth
    result = analyse_run(run)
    assert any(
        note.startswith(f"a long run: of up to {steps:,} logged steps per tag")
        for note in reasons.run_notes(result.notes)
    )
    assert result.diagnosis.verdict == "exploding"  # the non-finite steps survive thinning


def test_a_long_run_is_reduced_only_at_the_steps_thinning_keeps_spread_over_the_whole_run(
    tmp_path, monkeypatch
):
    """TF2 histograms of three tags logged every 10 steps, 3,000 times, one gradient turning NaN for a
    while, read a few steps at a time: the streaming reader reduces only the steps on the grid that
    thinning ends at (and the protected ones), evenly over the whole run, tags alike; at those steps
    its statistics are EventAccumulator's, and the counts of logged and non-finite steps are exact."""
    logged, interval = 3000, 10
    blow_up = set(range(1501, 1512))
    rng = np.random.default_rng(11)
    events = []
    for index in range(logged):
        for layer in range(3):
            edges = np.linspace(-1.0, 1.0, 31) * 10 ** (-layer - index / logged)
            counts = rng.integers(1, 50, size=30).astype(float)
            histogram = np.column_stack([edges[:-1], edges[1:], counts])
            if layer == 1 and index in blow_up:
                histogram[:, :2] = np.nan  # TF2's histogram of NaN input
            events.append(tf2_event(f"grad/layer{layer}", index * interval, histogram, first=index == 0))
    write_events(tmp_path / "logs" / "long", events)
    monkeypatch.setattr(store, "BUFFERED_BUCKETS", 30 * 3 * 40)  # about 40 steps a buffer
    run = _only_run(tmp_path / "logs")
    streamed = read_run(run)
    reference = {layer.tag: layer for layer in read_run(run, ReadOptions(reader="tensorboard")).layers}
    for layer in streamed.layers:
        assert KEPT_STEPS <= len(layer.steps) <= 2 * KEPT_STEPS
        assert layer.logged_steps == logged
        assert layer.logged_nonfinite == (len(blow_up) if layer.tag == "grad/layer1" else 0)
        first_half = np.count_nonzero(layer.steps < logged * interval // 2)
        assert abs(first_half - (len(layer.steps) - first_half)) <= 0.1 * len(layer.steps)  # even
        other = reference[layer.tag]
        common, here, there = np.intersect1d(layer.steps, other.steps, return_indices=True)
        assert len(common) >= 100  # halving alone keeps the late steps densely, the early ones sparsely
        for name in ("rms", "mean_abs", "max_abs", "zero_share", "nonfinite"):
            np.testing.assert_array_equal(getattr(layer, name)[here], getattr(other, name)[there])
    nan_layer = streamed.layers[1]
    kept = set(nan_layer.steps.tolist())
    assert {1500 * interval, 1501 * interval, 1511 * interval, 1512 * interval} <= kept
    assert nan_layer.nonfinite[np.isin(nan_layer.steps, [s * interval for s in blow_up])].all()
    shared = set.intersection(*(set(layer.steps.tolist()) for layer in streamed.layers))
    assert all(len(shared) >= 0.95 * len(layer.steps) for layer in streamed.layers)  # aligned across depth
