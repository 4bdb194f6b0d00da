"""The Keras 3 callback that writes per-variable gradient histograms of a probe batch to TensorBoard.

It does no analysis: every N batches (or every epoch) it snapshots the weights, and a thread beside
training runs one forward and backward pass of a fixed probe batch on that snapshot inside a
``tf.function``, bins each gradient with numpy, and writes one histogram per trainable variable, in
model order, under ``gradients/<variable.path>``. The training thread only takes the snapshot.

The histograms use TensorBoard's legacy ``HistogramProto`` (as PyTorch and TF1 write), not the 30 even
buckets of ``tf.summary.histogram``: it keeps the exact count, sum and sum of squares (so the RMS is
exact), log-spaced buckets (10 per decade, so 1e-9 and 1e-3 stay apart) and a bucket that holds only
exact zeros (so dead units can be told from small gradients). ``tf.summary.histogram`` also turns a
whole histogram into NaN edges and zero counts when a single value is NaN; here the finite values are
kept and the non-finite ones show as missing entries and a NaN sum. TensorBoard shows both encodings.
This is the only module of gradaudit that imports TensorFlow.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2

BUCKETS_PER_DECADE = 10
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
            Keras 3 callbacks never see the training batches, so the probe must be given; 64–256
            samples from the validation set are typical.
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
        self._limits = bucket_limits(buckets_per_decade)
        self._writer = None  # created and used on the probe thread
        self._gradient_function = None
        self._variables_key = None
        self._prober = None
        self._epochs_begun = 0
        self._batches_seen = 0

    # --- Keras hooks: the training thread takes snapshots and waits for nothing else -----------

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
        self._trainable = list(model.trainable_variables)
        self._non_trainable = list(model.non_trainable_variables)
        variables_key = [id(v) for v in self._trainable + self._non_trainable]
        if self._gradient_function is None or variables_key != self._variables_key:
            self._gradient_function = self._build_gradient_function()  # traced at its first call
            self._variables_key = variables_key
        self._tags = [self.tag_prefix + v.path for v in self._trainable]
        self._prober = _ProbeThread(self._write_probe)
        self._epochs_begun = 0
        if self._gradient_function.experimental_get_tracing_count():  # no trace of ours to wait for
            self._prober.start()
        self._submit_probe()

    def on_epoch_begin(self, epoch, logs=None):
        # Tracing a function calls the model's layers, and two threads calling them at once can
        # lose each other's add_loss() terms. Keras traces its train step at the first batch, again
        # at the first smaller last batch, and its test step at the first validation: all in the
        # first epoch. So the probe thread makes its one trace from the second epoch on; until then
        # probes are held (see _ProbeThread).
        self._epochs_begun += 1
        if self._epochs_begun == 2:
            self._prober.start()

    def on_train_batch_end(self, batch, logs=None):
        self._prober.poll()  # a failing probe (say, of the wrong shape) stops fit() here
        if self.every_n_batches is None:
            return
        self._batches_seen += 1
        if self._batches_seen % self.every_n_batches == 0:
            self._submit_probe()

    def on_test_begin(self, logs=None):
        if self._prober is not None:  # validation inside fit() may trace the test step: see above
            self._prober.wait_for_first()

    def on_predict_begin(self, logs=None):
        self.on_test_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._prober.wait_for_first()  # other callbacks may call the model here: see above
        if self.every_n_batches is None:
            self._submit_probe()

    def on_train_end(self, logs=None):
        prober, self._prober = self._prober, None
        prober.close()  # every probe written; an error of a probe is raised here at the latest
        if self._writer is not None:
            self._writer.flush()

    # --- the probe ---------------------------------------------------------------------------

    def _submit_probe(self):
        """Snapshot the weights and hand the probe to the probe thread. A read of a variable shares
        its buffer, and TensorFlow copies that buffer before updating the variable while a read
        still holds it, so the snapshot costs a copy only of what training then changes."""
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy()) if optimizer is not None else self._batches_seen
        trainable = [tf.identity(v.value) for v in self._trainable]
        non_trainable = [tf.identity(v.value) for v in self._non_trainable]
        self._prober.submit(step, trainable, non_trainable)

    def _build_gradient_function(self):
        model, training = self.model, self.training
        trainable_variables, non_trainable_variables = self._trainable, self._non_trainable

        # Traced once, so kept small: gradients only (histograms are numpy's job: per-variable
        # histogram ops made the graph 4x larger and slower to trace than the gradients) and
        # autograph off (nothing here needs Python control flow converted). The weights come in as
        # arguments through a StatelessScope: the probe sees its snapshot while training goes on,
        # and what a forward pass would update (BatchNorm moving statistics, dropout seeds, Keras's
        # per-output loss trackers) is collected by the scope and dropped.
        @tf.function(jit_compile=False, reduce_retracing=True, autograph=False)
        def gradients(x, y, sample_weight, trainable, non_trainable):
            mapping = list(zip(trainable_variables, trainable))
            mapping += list(zip(non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
                with tf.GradientTape() as tape:
                    tape.watch(trainable)
                    y_pred = model(x, training=training)
                    loss = model.compute_loss(
                        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
                    )
            return [_dense(g, v) for g, v in zip(tape.gradient(loss, trainable), trainable)]

        return gradients

    def _write_probe(self, step, trainable, non_trainable):
        """Runs on the probe thread: gradients, histograms, one event."""
        x, y, sample_weight = self._probe
        gradients = self._gradient_function(x, y, sample_weight, trainable, non_trainable)
        summary = summary_pb2.Summary()
        for tag, gradient in zip(self._tags, gradients):
            value = summary.value.add(tag=tag)
            _fill_histogram(value.histo, *_histogram_parts(gradient.numpy(), self._limits), self._limits)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.experimental.write_raw_pb(
                tf.constant(summary.SerializeToString()), step=tf.constant(step, tf.int64)
            )


class _ProbeThread:
    """One thread that runs probes in the order they were submitted, from start() on.

    At most two probes wait, each holding a snapshot of the weights: when probes take longer than the
    training between them, training slows down rather than holding snapshots without bound. Before
    start() the probes are held; a third one starts the thread and waits for those held to run. The
    error of a probe is raised in the training thread at the next poll(), submit(),
    wait_for_first() or close().
    """

    _MAX_PENDING = 2

    def __init__(self, write_probe):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradaudit-probe")
        self._write_probe = write_probe
        self._held: list[tuple] | None = []  # None once started
        self._pending: deque[Future] = deque()
        self._one_ran = False

    def start(self):
        if self._held is not None:
            held, self._held = self._held, None
            for args in held:
                self.submit(*args)

    def submit(self, *args):
        if self._held is not None:
            if len(self._held) < self._MAX_PENDING:
                self._held.append(args)
                return
            self.start()
            self.wait_for_first()  # with training waiting, no trace of Keras's can run meanwhile
        self.poll()
        while len(self._pending) >= self._MAX_PENDING:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._write_probe, *args))

    def poll(self):
        """Collect the probes that have run, raising the error of one that failed."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def wait_for_first(self):
        """Block until the probes submitted so far have run, if none has yet: the first one traces the
        gradient function."""
        if self._held is None and not self._one_ran:
            while self._pending:
                self._pending.popleft().result()
            self._one_ran = True

    def close(self):
        try:
            self.start()
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _check_probe_fits(model, x):
    """Refuse, when training begins, a probe a single-input model cannot take: the probe itself runs
    later, on its own thread, and its error would only show then."""
    inputs = getattr(model, "inputs", None)  # Functional and Sequential models know their input
    if inputs and len(inputs) == 1 and tf.is_tensor(x):
        expected = tf.TensorShape(inputs[0].shape[1:])
        if not expected.is_compatible_with(x.shape[1:]):
            raise ValueError(
                f"the probe's x has shape {tuple(x.shape)}, but the model takes inputs of shape "
                f"{(None, *expected.as_list())}"
            )


def _dense(gradient, weight):
    if gradient is None:  # a weight the loss does not depend on: report all-zero gradients
        return tf.zeros_like(weight)
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


def _histogram_parts(gradient: np.ndarray, limits: np.ndarray) -> tuple:
    """Counts per bucket (len(limits) + 1) and exact moments of one gradient's finite entries."""
    g = np.asarray(gradient, dtype=np.float64).ravel()
    finite = np.isfinite(g)
    values = g if finite.all() else g[finite]
    counts = np.bincount(np.searchsorted(limits, values, side="right"), minlength=len(limits) + 1)
    bad = np.nan if values.size < g.size else 0.0  # NaN moments mark non-finite entries
    minimum, maximum = (values.min(), values.max()) if values.size else (0.0, 0.0)
    total, squares = values.sum() + bad, np.dot(values, values) + bad
    return counts.astype(np.float64), minimum, maximum, total, squares, g.size


def _fill_histogram(histo, counts, minimum, maximum, total, total_squares, num, limits):
    """A HistogramProto of the non-empty buckets.

    A reader takes each bucket's left edge from the previous limit, so a run of empty buckets is
    written as one empty bucket ending where the next non-empty one starts: edges stay exact and a
    histogram spanning 40 decades costs at most twice its non-empty buckets.
    """
    histo.min, histo.max = float(minimum), float(maximum)
    histo.num, histo.sum, histo.sum_squares = float(num), float(total), float(total_squares)
    occupied = np.flatnonzero(counts)
    right_edges = np.append(limits, np.finfo(np.float64).max)
    bucket_limit, bucket = [], []
    for previous, index in zip(
        np.concatenate([[occupied[0] - 1], occupied[:-1]]) if len(occupied) else [], occupied
    ):
        if index - previous > 1:
            bucket_limit.append(right_edges[index - 1])
            bucket.append(0.0)
        bucket_limit.append(right_edges[index])
        bucket.append(counts[index])
    histo.bucket_limit.extend(bucket_limit)
    histo.bucket.extend(bucket)


def _as_probe(probe):
    if isinstance(probe, tf.data.Dataset):
        probe = next(iter(probe))
    if not isinstance(probe, (tuple, list)) or len(probe) not in (2, 3):
        raise ValueError("probe must be (x, y), (x, y, sample_weight) or a tf.data.Dataset of those")
    x, y = probe[0], probe[1]
    sample_weight = probe[2] if len(probe) == 3 else None
    convert = lambda t: tf.nest.map_structure(tf.convert_to_tensor, t)  # noqa: E731
    return convert(x), convert(y), None if sample_weight is None else convert(sample_weight)
