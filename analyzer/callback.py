"""The Keras 3 callback that writes per-variable gradient histograms of a probe batch to TensorBoard.

It does no analysis: every N batches (or every epoch) it runs one forward and backward pass on a fixed
probe batch inside a ``tf.function``, bins each gradient with numpy, and writes one histogram per
trainable variable, in model order, under ``gradients/<variable.path>``.

The histograms use TensorBoard's legacy ``HistogramProto`` (as PyTorch and TF1 write), not the 30 even
buckets of ``tf.summary.histogram``: it keeps the exact count, sum and sum of squares (so the RMS is
exact), log-spaced buckets (10 per decade, so 1e-9 and 1e-3 stay apart) and a bucket that holds only
exact zeros (so dead units can be told from small gradients). ``tf.summary.histogram`` also turns a
whole histogram into NaN edges and zero counts when a single value is NaN; here the finite values are
kept and the non-finite ones show as missing entries and a NaN sum. TensorBoard shows both encodings.
This is the only module of gradaudit that imports TensorFlow.
"""

from __future__ import annotations

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
            statistics). Default ``False``; when ``True``, non-trainable variables such as BatchNorm's
            moving statistics are restored after each probe so training is not disturbed.
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
        self._writer = None
        self._gradient_function = None
        self._batches_seen = 0

    # --- Keras hooks: the least possible work per batch ----------------------------------------

    def on_train_begin(self, logs=None):
        if self._writer is None:  # on_train_begin runs on every fit(); build once
            self._writer = tf.summary.create_file_writer(self.log_dir)
            self._gradient_function = self._build_gradient_function()
        self._write_probe()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_batches is None:
            return
        self._batches_seen += 1
        if self._batches_seen % self.every_n_batches == 0:
            self._write_probe()

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_batches is None:
            self._write_probe()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    # --- the probe ---------------------------------------------------------------------------

    def _build_gradient_function(self):
        model, training = self.model, self.training

        # Traced once, before the first batch, so kept small: gradients only (histograms are numpy's
        # job: per-variable histogram ops made the graph 4x larger and slower to trace than the
        # gradients) and autograph off (nothing here needs Python control flow converted).
        @tf.function(jit_compile=False, reduce_retracing=True, autograph=False)
        def gradients(x, y, sample_weight):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=training)
                loss = model.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
                )
            variables = model.trainable_variables
            return [_dense(g, v) for g, v in zip(tape.gradient(loss, variables), variables)]

        return gradients

    def _write_probe(self):
        saved = [v.numpy() for v in self.model.non_trainable_variables] if self.training else None
        x, y, sample_weight = self._probe
        gradients = [g.numpy() for g in self._gradient_function(x, y, sample_weight)]
        if saved is not None:
            for variable, value in zip(self.model.non_trainable_variables, saved):
                variable.assign(value)
        summary = summary_pb2.Summary()
        for variable, gradient in zip(self.model.trainable_variables, gradients):
            value = summary.value.add(tag=self.tag_prefix + variable.path)
            parts = _histogram_parts(gradient, self._limits)
            _fill_histogram(value.histo, *parts, self._limits)
        step = int(self.model.optimizer.iterations.numpy()) if self.model.optimizer else self._batches_seen
        with self._writer.as_default():
            tf.summary.experimental.write_raw_pb(
                tf.constant(summary.SerializeToString()), step=tf.constant(step, tf.int64)
            )


def _dense(gradient, variable):
    if gradient is None:  # a variable the loss does not depend on: report all-zero gradients
        return tf.zeros_like(variable)
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
