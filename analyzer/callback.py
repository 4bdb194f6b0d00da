"""The Keras 3 callback that writes per-variable gradient histograms of a probe batch to TensorBoard.

It does no analysis: every N batches (or every epoch) it snapshots the weights, and a thread beside
training runs one forward and backward pass of a fixed probe batch on that snapshot as a graph
function, bins each gradient with numpy, and writes one histogram per trainable variable, in
model order, under ``gradients/<variable.path>``. The training thread traces that function once,
when training begins, and after that only takes snapshots.

The histograms use TensorBoard's legacy ``HistogramProto`` (as PyTorch and TF1 write), not the 30 even
buckets of ``tf.summary.histogram``: it keeps the exact count, sum and sum of squares (so the RMS is
exact), log-spaced buckets (10 per decade, so 1e-9 and 1e-3 stay apart) and a bucket that holds only
exact zeros (so dead units can be told from small gradients). ``tf.summary.histogram`` also turns a
whole histogram into NaN edges and zero counts when a single value is NaN; here the finite values are
kept and the non-finite ones show as missing entries and a NaN sum. TensorBoard shows both encodings.
This is the only module of gradaudit that imports TensorFlow.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2

BUCKETS_PER_DECADE = 10
# The probe batch's loss, written beside its gradients as a scalar (legacy simple_value).
LOSS_TAG = "probe/loss"
# float32 spans 1.4e-45 (smallest subnormal) to 3.4e38: these limits cover every finite value.
_SMALLEST_DECADE, _LARGEST_DECADE = -45, 39


def bucket_limits(buckets_per_decade: int = BUCKETS_PER_DECADE) -> np.ndarray:
    """Right edges of the buckets [limit[i-1], limit[i]), as TF1 and PyTorch bin; the bucket that starts
    at 0 ends at 1e-45, below the smallest float32 (1.4e-45), so it holds exact zeros only."""
    exponents = np.arange(_SMALLEST_DECADE * buckets_per_decade, _LARGEST_DECADE * buckets_per_decade + 1)
    positive = 10.0 ** (exponents / buckets_per_decade)
    return np.concatenate([-positive[::-1], [0.0], positive])


class GradientHistograms(keras.callbacks.Callback):
    """Write gradient histograms of a fixed probe batch to TensorBoard event files.

    Args:
        log_dir: folder for the event files (one run). Created if missing.
        probe: the probe batch, ``(x, y)`` or ``(x, y, sample_weight)`` (arrays, tensors or dicts of
            them for multi-input/-output models), or a ``tf.data.Dataset`` whose first batch is used.
            Keras 3 callbacks never see the training batches, so the probe must be given. One
            training batch of validation samples (64) is enough: a probe's forward and backward pass
            costs about what a training step on as many samples costs (256 samples cost 2.0-2.8
            times 64 beside training in bench/callback_overhead.py, a probe also having fixed work).
        every_n_batches: log every N training batches (and once before training); ``None`` (the
            default) logs at the end of every epoch.
        tag_prefix: prefix of every tag, default ``"gradients/"``; the analyzer's default tag
            pattern matches it.
        training: run the probe forward pass in training mode (dropout on, BatchNorm on batch
            statistics). Default ``False``. Either way the probe changes no variable: BatchNorm's
            moving statistics and dropout's seed stay as training left them.
        buckets_per_decade: resolution of the log-spaced buckets, default 10 (±12 % per bucket).
    """

    def __init__(
        self,
        log_dir: str,
        probe,
        every_n_batches: int | None = None,
        tag_prefix: str = "gradients/",
        training: bool = False,
        buckets_per_decade: int = BUCKETS_PER_DECADE,
    ):
        super().__init__()
        if probe is None:
            raise ValueError(
                "GradientHistograms needs probe=(x, y): Keras callbacks never see training batches"
            )
        if every_n_batches is not None and every_n_batches < 1:
            raise ValueError(f"every_n_batches must be a positive integer or None, got {every_n_batches}")
        self.log_dir = str(log_dir)
        self.every_n_batches = every_n_batches
        self.tag_prefix = tag_prefix
        self.training = training
        self._probe = _as_probe(probe)
        self._binning = _Binning(bucket_limits(buckets_per_decade))
        self._events = None  # this callback's event file: created and written on the probe thread
        self._gradient_function = None
        self._variables_key = None
        self._prober = None
        self._batches_seen = 0
        self._model_event = None  # the model's config, written once per model with the next probe

    # --- Keras hooks: the training thread traces once, then only takes snapshots ---------------

    def on_train_begin(self, logs=None):
        model = self.model
        if not model.built:
            # A model without a declared input (subclassed, or Sequential without keras.Input)
            # creates its variables at its first call, which Keras makes when it traces the train
            # step: after the snapshot before training. A call on symbolic inputs creates them now.
            model(
                tf.nest.map_structure(
                    lambda t: keras.KerasTensor((None, *t.shape[1:]), t.dtype.name), self._probe[0]
                )
            )
        _check_probe_fits(model, self._probe[0])
        trainable, non_trainable = list(model.trainable_variables), list(model.non_trainable_variables)
        variables_key = [id(v) for v in trainable + non_trainable]
        if self._gradient_function is None or variables_key != self._variables_key:
            self._variables_key = variables_key
            # The backend's tf.Variables: reading them directly is the cheapest snapshot.
            self._backend_variables = [v.value for v in trainable + non_trainable]
            self._tags = [self.tag_prefix + v.path for v in trainable]
            self._sizes = [math.prod(v.shape) for v in trainable]
            self._gradient_function = self._trace_gradient_function(trainable, non_trainable)
            self._model_event = _model_config_event(model)
        self._prober = _ProbeThread(self._write_probe)
        self._submit_probe()

    def on_train_batch_end(self, batch, logs=None):
        self._prober.poll()  # a failing probe stops fit() here
        if self.every_n_batches is None:
            return
        self._batches_seen += 1
        if self._batches_seen % self.every_n_batches == 0:
            self._submit_probe()

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_batches is None:
            self._submit_probe()

    def on_train_end(self, logs=None):
        prober, self._prober = self._prober, None
        prober.close()  # every probe written; an error of a probe is raised here at the latest

    # --- the probe ---------------------------------------------------------------------------

    def _submit_probe(self):
        """Hand the probe of the weights as they are now to the probe thread."""
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy()) if optimizer is not None else self._batches_seen
        self._prober.submit(step, self._snapshot())

    def _snapshot(self):
        """The trainable then the non-trainable weights. A read of a variable shares its buffer, and
        TensorFlow copies that buffer before updating the variable while a read still holds it, so
        the snapshot costs a copy only of what training then changes."""
        return [variable.value() for variable in self._backend_variables]

    def _trace_gradient_function(self, trainable_variables, non_trainable_variables):
        """The probe's forward and backward pass, traced here on the training thread.

        Tracing calls the model's layers in Python, so it happens before Keras traces its own steps
        and never on the probe thread: two threads calling the same layers can lose each other's
        add_loss() terms, and a thread tracing beside Keras's Python loop contends with it for the
        GIL and slows training by far more than the trace costs alone. The probe thread only runs
        the traced function, whose instantiation and execution release the GIL.

        The function takes the probe's tensors then the snapshot, flat. It computes gradients only:
        histograms are numpy's job (per-variable histogram ops made the graph 4x larger and slower
        to trace than the gradients). The weights come in as arguments through a StatelessScope:
        the probe sees its snapshot while training goes on, and what a forward pass would update
        (BatchNorm moving statistics, dropout seeds, Keras's per-output loss trackers) is collected
        by the scope and dropped.
        """
        model, training, probe = self.model, self.training, self._probe
        variables = trainable_variables + non_trainable_variables
        probe_size = len(tf.nest.flatten(probe))

        def gradients(*arguments):
            x, y, *weights = tf.nest.pack_sequence_as(probe, arguments[:probe_size])
            sample_weight = weights[0] if weights else None
            snapshot = list(arguments[probe_size:])
            trainable = snapshot[: len(trainable_variables)]
            with keras.StatelessScope(
                state_mapping=list(zip(variables, snapshot)), collect_losses=True, initialize_variables=False
            ):
                with tf.GradientTape() as tape:
                    tape.watch(trainable)
                    y_pred = model(x, training=training)
                    loss = model.compute_loss(
                        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
                    )
            gradients = [_entries(g, v) for g, v in zip(tape.gradient(loss, trainable), trainable)]
            return [tf.cast(loss, tf.float64), *gradients]

        # wrap_function, not tf.function: the same graph for one fixed signature, without
        # tf.function's automatic control dependencies, output identities and signature machinery:
        # 39 ms instead of 47 for the 11-layer sample model. Nothing in the graph needs ordering: under
        # the StatelessScope the forward pass reads its snapshot and updates no variable.
        signature = [tf.TensorSpec.from_tensor(t) for t in tf.nest.flatten(probe) + self._snapshot()]
        gradient_function = tf.compat.v1.wrap_function(gradients, signature)
        # Variables first made during the trace (the per-output loss trackers of a model Keras has
        # not traced yet) wait for the outermost stateless scope to close in eager mode: they must
        # not be made inside the wrapped graph.
        with keras.StatelessScope():
            pass
        return gradient_function

    def _write_probe(self, step, snapshot):
        """Runs on the probe thread: gradients, histograms and the probe's loss, one event."""
        loss, *gradients = self._gradient_function(*tf.nest.flatten(self._probe), *snapshot)
        if self._model_event is not None:
            model_event, self._model_event = self._model_event, None
            self._write_event(model_event)
        summary = summary_pb2.Summary()
        # A sparse gradient comes as the rows the probe touched: the others are zeros, counted.
        entries = [g.numpy() for g in gradients]
        untouched = [size - e.size for size, e in zip(self._sizes, entries)]
        for tag, histogram in zip(self._tags, self._binning.histograms(entries, untouched)):
            histogram.fill(summary.value.add(tag=tag).histo)
        # The probe's loss: the second symptom the analyzer's verdicts read beside the gradients.
        summary.value.add(tag=LOSS_TAG, simple_value=float(loss.numpy()))
        self._write_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def _write_event(self, event):
        """Append one event to this callback's own event file, created at its first event. A record
        writer frames and checksums in C++; tf.summary's writer costs eager ops per event and more
        than the probe itself on small models. Each event is flushed: TensorBoard shows it at once,
        and a crash loses nothing written."""
        if self._events is None:
            tf.io.gfile.makedirs(self.log_dir)
            self._events = tf.io.TFRecordWriter(os.path.join(self.log_dir, _event_file_name()))
            header = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
            self._events.write(header.SerializeToString())
        self._events.write(event.SerializeToString())
        self._events.flush()


# The model's config as Keras's TensorBoard callback writes it (tag "keras", the graph plugin's
# metadata, a string tensor of model.to_json()), so that TensorBoard's graph view and gradaudit's
# analyzer read it; a subclassed model, which has no such config, gets its layer list instead.
_KERAS_MODEL_PLUGIN, _LAYER_LIST_PLUGIN = "graph_keras_model", "gradaudit_model"


def _model_config_event(model) -> event_pb2.Event:
    try:
        config = json.loads(model.to_json())
        has_layers = isinstance(config.get("config"), dict) and "layers" in config["config"]
    except Exception:  # a subclassed model whose constructor arguments Keras cannot serialise
        has_layers = False
    if has_layers:
        tag, plugin, text = "keras", _KERAS_MODEL_PLUGIN, json.dumps(config)
    else:
        tag, plugin, text = "gradaudit/model_layers", _LAYER_LIST_PLUGIN, json.dumps(_layer_list(model))
    summary = summary_pb2.Summary()
    value = summary.value.add(tag=tag)
    value.metadata.plugin_data.plugin_name = plugin
    value.metadata.plugin_data.content = b"1"
    value.tensor.dtype = types_pb2.DT_STRING
    value.tensor.string_val.append(text.encode("utf-8"))
    return event_pb2.Event(wall_time=time.time(), step=0, summary=summary)


def _layer_list(model) -> dict:
    """A subclassed model's layers (names, classes, activations) in the shape of a Keras config,
    marked as listed in attribute order: the order they are called in is not known."""
    try:
        layers = list(model._flatten_layers(include_self=False, recursive=True))
    except Exception:
        layers = list(getattr(model, "layers", []))
    listed = []
    for layer in layers:
        config = {"name": layer.name}
        activation = getattr(layer, "activation", None)
        if activation is not None:
            config["activation"] = getattr(activation, "__name__", str(activation))
        listed.append({"class_name": type(layer).__name__, "config": config})
    return {
        "class_name": type(model).__name__,
        "config": {"name": model.name, "layers": listed, "layer_order": "attributes"},
    }


class _ProbeThread:
    """One thread that runs probes in the order they were submitted.

    At most two probes wait, each holding a snapshot of the weights: when probes take longer than the
    training between them, training slows down rather than holding snapshots without bound. The
    error of a probe is raised in the training thread at the next poll(), submit() or close().
    """

    _MAX_PENDING = 2

    def __init__(self, write_probe):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradaudit-probe")
        self._write_probe = write_probe
        self._pending: deque[Future] = deque()

    def submit(self, *args):
        self.poll()
        while len(self._pending) >= self._MAX_PENDING:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._write_probe, *args))

    def poll(self):
        """Collect the probes that have run, raising the error of one that failed."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def close(self):
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _event_file_name() -> str:
    """A new file's name, as TensorFlow's writers name theirs: time, host, process and a counter, so
    no two writers share a file and a run's files sort in the order they were written."""
    return f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_FILES)}.v2"


_FILES = itertools.count()


def _check_probe_fits(model, x):
    """Refuse a probe a single-input model cannot take, with a message that names both shapes; the
    trace's own error would speak of the dimensions of a matrix product deep inside the model."""
    inputs = getattr(model, "inputs", None)  # Functional and Sequential models know their input
    if inputs and len(inputs) == 1 and tf.is_tensor(x):
        expected = tf.TensorShape(inputs[0].shape[1:])
        if not expected.is_compatible_with(x.shape[1:]):
            raise ValueError(
                f"the probe's x has shape {tuple(x.shape)}, but the model takes inputs of shape "
                f"{(None, *expected.as_list())}"
            )


def _entries(gradient, weight):
    """A gradient's entries, dense, or for a sparse (IndexedSlices) gradient, as an embedding's is,
    the sums of the rows the probe touched: the rows it did not touch are zeros, and the histogram
    counts them without making them (a 50,000-word embedding of width 768 is 38 M entries, a probe
    of 64 sequences touches a few thousand rows of it). A weight the loss does not depend on has
    no entries here: all of its gradient is zeros."""
    if gradient is None:
        return tf.zeros([0], weight.dtype)
    if isinstance(gradient, tf.IndexedSlices):
        rows, position = tf.unique(gradient.indices)  # a row met twice has the sum of its slices
        return tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
    return gradient


@dataclass(frozen=True)
class _Histogram:
    """One gradient's histogram as a HistogramProto holds it: the non-empty buckets, each a right
    edge and a count (a run of empty buckets is one empty bucket), and exact moments of the finite
    entries; the sums are NaN when an entry is not finite."""

    bucket_limit: np.ndarray
    bucket: np.ndarray
    minimum: float
    maximum: float
    num: int
    total: float
    total_squares: float

    def fill(self, histo) -> None:
        histo.min, histo.max = self.minimum, self.maximum
        histo.num, histo.sum, histo.sum_squares = float(self.num), self.total, self.total_squares
        histo.bucket_limit.extend(self.bucket_limit.tolist())
        histo.bucket.extend(self.bucket.tolist())


# A probe's gradients are binned a chunk of entries at a time, into arrays made once and reused:
# numpy's cost per call is what the many small variables of a model (biases, norms) cost, so those
# are binned together, up to a chunk's entries; a larger gradient is binned chunk by chunk. A
# chunk's arrays stay in the cache, and arrays as large as a whole gradient, made and freed at each
# probe, cost a page fault per 4 KB on every probe (on this VM, 15 ms of each 20 ms to bin 1 M entries).
_CHUNK_ENTRIES = 1 << 16


class _Binning:
    """Bins gradients into the log-spaced buckets of bucket_limits(): each entry goes to the bucket i
    with limits[i - 1] <= entry < limits[i], as numpy.searchsorted(limits, entry, side="right") gives.

    A binary search over the ~1,700 limits costs about 35 ns an entry, as much as the probe's forward
    and backward pass on a dense layer. Float32 entries (and float16 and bfloat16, which float32 holds
    exactly) are bucketed by table instead, in a few ns: a float's bits, with the magnitude bits of
    negative floats flipped, are an integer that orders floats as their values do, so each cell of
    2^15 consecutive such integers is an interval of floats. A cell of normal floats spans at most
    0.4 % of its values' magnitude and a bucket 26 %, so it holds at most one bucket edge: an entry's
    bucket is its cell's first bucket, plus one from the first float at or past that edge. The few
    cells of subnormals around zero hold several edges: their entries are searched. The cell that
    ends at +0.0 holds -0.0 and negative subnormals: it gives the zero bucket, and the rare
    subnormals among its entries are searched when the zero bucket holds more than the zeros.
    Float64 entries, which may lie between two float32s, are searched too.

    Its arrays are reused from call to call: one instance serves one thread (the probe thread).
    """

    _CELL_BITS = 15
    _CELLS = 1 << (32 - _CELL_BITS)
    _SEARCHED = -1  # the first bucket of a cell whose entries are searched

    def __init__(self, limits: np.ndarray, chunk_entries: int = _CHUNK_ENTRIES):
        self.limits = limits
        # Bucket len(limits) ends at the largest float64: float64 gradients may exceed float32's range.
        self._right_edges = np.append(limits, np.finfo(np.float64).max)
        self._zero = int(np.searchsorted(limits, 0.0, side="right"))
        # Cell c holds the ordered integers from (c - 1) * 2^15 + 1 to c * 2^15 (+0.0, 0, ends cell
        # 0), of which only the finite floats count: the infinities share cells with the largest.
        last = (np.arange(self._CELLS, dtype=np.int64) - self._CELLS // 2) << self._CELL_BITS
        first = last - (1 << self._CELL_BITS) + 1
        largest = int(np.array(np.finfo(np.float32).max).view(np.int32))  # a positive float's bits
        low, high = (
            _ordered_float32(np.clip(o, -largest, largest).astype(np.int32))
            .view(np.float32)
            .astype(np.float64)
            for o in (first, last)
        )
        first_bucket = np.searchsorted(limits, low, side="right")
        last_bucket = np.searchsorted(limits, high, side="right")
        one_edge = last_bucket - first_bucket == 1
        edge = limits[last_bucket[one_edge] - 1]
        at_edge = edge.astype(np.float32)  # the first float32 at or past the edge
        at_edge = np.where(at_edge < edge, np.nextafter(at_edge, np.float32(np.inf)), at_edge)
        self._first_bucket = first_bucket.astype(np.int32)
        self._first_bucket[last_bucket - first_bucket > 1] = self._SEARCHED
        self._first_bucket[self._CELLS // 2] = self._zero  # the cell of -0.0 and +0.0
        self._next_from = np.full(self._CELLS, np.iinfo(np.int32).max, dtype=np.int32)
        self._next_from[one_edge] = _ordered_float32(at_edge.view(np.int32))
        self._chunk = chunk_entries
        self._arrays: dict[str, np.ndarray] = {}

    def histograms(self, gradients: list[np.ndarray], zeros: list[int] | None = None):
        """The _Histogram of each gradient, in order, with as many more zeros in each as `zeros`
        says (the entries of a sparse gradient that are not given)."""
        zeros = zeros or [0] * len(gradients)
        for start, stop in self._groups([g.size for g in gradients]):
            group = gradients[start:stop]
            large = group[0].size > self._chunk  # alone in its group
            tally = self._tally_large(group[0]) if large else self._tally_group(group)
            yield from self._histograms_of(tally.plus_zeros(zeros[start:stop], self._zero))

    def _groups(self, sizes: list[int]):
        """(start, stop) of consecutive gradients of up to a chunk's entries in all; a gradient
        larger than a chunk alone."""
        start, entries = 0, 0
        for i, size in enumerate(sizes):
            if i > start and (entries + size > self._chunk or size > self._chunk):
                yield start, i
                start, entries = i, 0
            entries += size
        if sizes:
            yield start, len(sizes)

    def bucket_index(self, values: np.ndarray) -> np.ndarray:
        """The bucket of each value (float32 by table, any other dtype by search). Up to a chunk of
        values, the result is one of this instance's arrays, valid until its next call."""
        if values.dtype != np.float32:
            return np.searchsorted(self.limits, values, side="right")
        n = values.size
        ordered, cell, next_from, bucket = (self._array(name, np.int32, n) for name in ("o", "c", "n", "b"))
        at_or_past = self._array("p", np.bool_, n)
        bits = values.view(np.int32)
        np.right_shift(bits, 31, out=ordered)
        np.bitwise_and(ordered, 0x7FFFFFFF, out=ordered)
        np.bitwise_xor(ordered, bits, out=ordered)
        # The NaNs past the largest ordered integer wrap around to the first cell, of NaNs too.
        np.add(ordered, (1 << self._CELL_BITS) - 1, out=cell)
        np.right_shift(cell, self._CELL_BITS, out=cell)
        np.add(cell, self._CELLS // 2, out=cell)
        np.take(self._first_bucket, cell, out=bucket, mode="clip")  # "clip": unbuffered; all in range
        np.take(self._next_from, cell, out=next_from, mode="clip")
        np.greater_equal(ordered, next_from, out=at_or_past)
        np.add(bucket, at_or_past, out=bucket)
        searched = np.flatnonzero(bucket == self._SEARCHED)
        if searched.size:
            bucket[searched] = np.searchsorted(self.limits, values[searched], side="right")
        zero_bucket = bucket == self._zero
        bucketed_zero = np.count_nonzero(zero_bucket)
        if bucketed_zero and bucketed_zero != np.count_nonzero(values == 0):  # negative subnormals
            searched = np.flatnonzero(zero_bucket & (values != 0))
            bucket[searched] = np.searchsorted(self.limits, values[searched], side="right")
        return bucket

    def _array(self, name: str, dtype, n: int) -> np.ndarray:
        """n entries of this instance's array `name`: made once, at a chunk's size."""
        if n > self._chunk:
            return np.empty(n, dtype)
        if name not in self._arrays:
            self._arrays[name] = np.empty(self._chunk, dtype)
        return self._arrays[name][:n]

    def _tally_group(self, gradients: list[np.ndarray]) -> _Tally:
        """The tally of a few gradients of a chunk's entries in all, binned in one pass."""
        sizes = np.array([g.size for g in gradients])
        # Float16 and bfloat16 gradients are bucketed as the float32s that hold them exactly.
        narrow = all(np.can_cast(g.dtype, np.float32, casting="safe") for g in gradients)
        dtype = np.float32 if narrow else np.float64
        flat = self._array("f32" if narrow else "f64", dtype, int(sizes.sum()))
        np.concatenate([np.ravel(g) for g in gradients], out=flat, casting="same_kind")
        return self._tally(flat, sizes)

    def _tally_large(self, gradient: np.ndarray) -> _Tally:
        """The tally of one gradient larger than a chunk, added up chunk by chunk."""
        flat = np.ravel(gradient)
        if not np.can_cast(flat.dtype, np.float32, casting="safe"):
            flat = flat.astype(np.float64, copy=False)
        elif flat.dtype != np.float32:
            flat = flat.astype(np.float32)
        pieces = (flat[start : start + self._chunk] for start in range(0, flat.size, self._chunk))
        return _Tally.added([self._tally(piece, np.array([piece.size])) for piece in pieces])

    def _tally(self, flat: np.ndarray, sizes: np.ndarray) -> _Tally:
        """The bucket counts and moments of consecutive gradients of the given sizes, flat."""
        rows, per_gradient = len(sizes), len(self.limits) + 1
        finite = np.isfinite(flat, out=self._array("finite", np.bool_, flat.size))
        all_finite = bool(finite.all())
        bucket = self.bucket_index(flat)
        if rows > 1:  # one row of buckets per gradient
            bucket = bucket + np.repeat(np.arange(rows) * per_gradient, sizes)
        counts = np.bincount(bucket if all_finite else bucket[finite], minlength=rows * per_gradient)

        values = flat
        if flat.dtype != np.float64:  # moments in float64
            values = self._array("f64", np.float64, flat.size)
            np.copyto(values, flat)
        # Moments by segment; empty gradients have no segment and keep zeros, and no finite entry
        # gives a minimum of +inf and a maximum of -inf.
        has_entries = sizes > 0
        starts = (np.cumsum(sizes) - sizes)[has_entries]
        minimum, maximum = np.full(rows, np.inf), np.full(rows, -np.inf)
        if starts.size:
            minimum[has_entries] = np.minimum.reduceat(
                values if all_finite else np.where(finite, values, np.inf), starts
            )
            maximum[has_entries] = np.maximum.reduceat(
                values if all_finite else np.where(finite, values, -np.inf), starts
            )
        if not all_finite:
            values = np.where(finite, values, 0.0)  # flat may be the gradient itself: not in place
        total, total_squares = np.zeros(rows), np.zeros(rows)
        with np.errstate(over="ignore"):  # a sum of squares past float64's range is inf, silently
            if rows == 1 and values.size:  # one gradient: no temporary array of squares
                total[0], total_squares[0] = values.sum(), np.dot(values, values)
            elif starts.size:
                total[has_entries] = np.add.reduceat(values, starts)
                total_squares[has_entries] = np.add.reduceat(values * values, starts)
        if not all_finite:
            not_counted = counts.reshape(rows, per_gradient).sum(axis=1) < sizes
            total[not_counted] = total_squares[not_counted] = np.nan
        return _Tally(counts.reshape(rows, per_gradient), sizes, total, total_squares, minimum, maximum)

    def _histograms_of(self, tally: _Tally):
        """Each row of a tally as a _Histogram of its non-empty buckets, each run of empty buckets
        before one written as one empty bucket ending where it starts: a reader takes each bucket's
        left edge from the previous limit, so edges stay exact and 40 decades cost at most twice the
        non-empty buckets."""
        rows, per_gradient = tally.counts.shape
        counts = tally.counts.ravel()
        occupied = np.flatnonzero(counts)
        row, column = np.divmod(occupied, per_gradient)
        after_gap = np.zeros(len(occupied), dtype=bool)
        after_gap[1:] = (np.diff(occupied) > 1) & (row[1:] == row[:-1])
        position = np.arange(len(occupied)) + np.cumsum(after_gap)
        bucket_limit = np.empty(len(occupied) + int(after_gap.sum()))
        bucket_count = np.zeros_like(bucket_limit)
        bucket_limit[position], bucket_count[position] = self._right_edges[column], counts[occupied]
        bucket_limit[position[after_gap] - 1] = self._right_edges[column[after_gap] - 1]
        bounds = np.append(position, len(bucket_limit))[np.searchsorted(row, np.arange(rows + 1))]
        no_finite = ~np.isfinite(tally.minimum)  # min and max as for an empty gradient
        for i, size in enumerate(tally.sizes.tolist()):
            yield _Histogram(
                bucket_limit=bucket_limit[bounds[i] : bounds[i + 1]],
                bucket=bucket_count[bounds[i] : bounds[i + 1]],
                minimum=0.0 if no_finite[i] else float(tally.minimum[i]),
                maximum=0.0 if no_finite[i] else float(tally.maximum[i]),
                num=size,
                total=float(tally.total[i]),
                total_squares=float(tally.total_squares[i]),
            )


@dataclass(frozen=True)
class _Tally:
    """Bucket counts (one row per gradient) and moments of the finite entries of a few gradients."""

    counts: np.ndarray
    sizes: np.ndarray
    total: np.ndarray
    total_squares: np.ndarray
    minimum: np.ndarray  # +inf where no entry is finite
    maximum: np.ndarray  # -inf where no entry is finite

    def plus_zeros(self, zeros: list[int], zero_bucket: int) -> _Tally:
        """This tally with as many more zero entries in each row as `zeros` says."""
        zeros = np.asarray(zeros)
        if not zeros.any():
            return self
        counts = self.counts.copy()
        counts[:, zero_bucket] += zeros
        some = zeros > 0
        return _Tally(
            counts=counts,
            sizes=self.sizes + zeros,
            total=self.total,
            total_squares=self.total_squares,
            minimum=np.where(some, np.minimum(self.minimum, 0.0), self.minimum),
            maximum=np.where(some, np.maximum(self.maximum, 0.0), self.maximum),
        )

    @staticmethod
    def added(tallies: list[_Tally]) -> _Tally:
        """The tally of the entries of all of them: of one gradient's consecutive chunks."""
        return _Tally(
            counts=sum(t.counts for t in tallies),
            sizes=sum(t.sizes for t in tallies),
            total=sum(t.total for t in tallies),
            total_squares=sum(t.total_squares for t in tallies),
            minimum=np.minimum.reduce([t.minimum for t in tallies]),
            maximum=np.maximum.reduce([t.maximum for t in tallies]),
        )


def _ordered_float32(bits: np.ndarray) -> np.ndarray:
    """Float32 bits as int32 in the order of the floats' values (negative floats' magnitude bits
    flipped, -0.0 just below 0.0); its own inverse."""
    ordered = bits >> 31
    ordered &= 0x7FFFFFFF
    ordered ^= bits
    return ordered


def _as_probe(probe):
    """(x, y) or (x, y, sample_weight) as tensors (or nests of them)."""
    if isinstance(probe, tf.data.Dataset):
        probe = next(iter(probe))
    if not isinstance(probe, (tuple, list)) or len(probe) not in (2, 3):
        raise ValueError("probe must be (x, y), (x, y, sample_weight) or a tf.data.Dataset of those")
    if len(probe) == 3 and probe[2] is None:  # no sample weights, said explicitly
        probe = probe[:2]
    return tuple(tf.nest.map_structure(tf.convert_to_tensor, part) for part in probe)
