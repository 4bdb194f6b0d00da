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
It works on the three backends of Keras 3, each through its own autodiff: TensorFlow
(analyzer/keras_tf.py, the only module of gradaudit that imports TensorFlow), JAX and PyTorch
(analyzer/keras_stateless.py), with the same output.
"""

from __future__ import annotations

import json
import math
import os
import time

import keras
from tensorboard.compat.proto import event_pb2, summary_pb2

from .binning import BUCKETS_PER_DECADE, Binning, bucket_limits
from .eventlog import (
    KERAS_MODEL_PLUGIN,
    KERAS_MODEL_TAG,
    LAYER_LIST_PLUGIN,
    LAYER_LIST_TAG,
    OrderedThread,
    event_file_name,
    text_event,
)

# The probe batch's loss, written beside its gradients as a scalar (legacy simple_value).
LOSS_TAG = "probe/loss"


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
        training: run the probe forward pass in training mode (dropout on, BatchNorm on the probe
            batch's statistics), as training sees the model. Default ``True``: in inference mode a
            BatchNorm model early in training reads moving statistics that have not warmed up (a
            depthwise CNN's probe loss stayed at 1.34-1.39 while its training batches' loss fell to
            0.14 over three epochs; in training mode the probe's loss was 0.395 after the first
            epoch, against 0.418 for the training batches then; bench/probe_mode.py). Either way the probe
            changes no variable: BatchNorm's moving statistics and dropout's seed stay as training
            left them.
        buckets_per_decade: resolution of the log-spaced buckets, default 10 (±12 % per bucket).
    """

    def __init__(
        self,
        log_dir: str,
        probe,
        every_n_batches: int | None = None,
        tag_prefix: str = "gradients/",
        training: bool = True,
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
        self._backend = _backend_of(keras.backend.backend())
        self._probe = self._backend.as_probe(probe)
        self._binning = Binning(bucket_limits(buckets_per_decade))
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
                keras.tree.map_structure(
                    lambda t: keras.KerasTensor(
                        (None, *t.shape[1:]), keras.backend.standardize_dtype(t.dtype)
                    ),
                    self._probe[0],
                )
            )
        self._backend.model = model
        self._backend.check_fits(model, self._probe[0])
        trainable, non_trainable = list(model.trainable_variables), list(model.non_trainable_variables)
        variables_key = [id(v) for v in trainable + non_trainable]
        if self._gradient_function is None or variables_key != self._variables_key:
            self._variables_key = variables_key
            self._backend_variables = self._backend.handles(trainable + non_trainable)
            self._tags = [self.tag_prefix + v.path for v in trainable]
            self._sizes = [math.prod(v.shape) for v in trainable]
            self._gradient_function = self._backend.gradient_function(
                model, self.training, self._probe, trainable, non_trainable, self._snapshot()
            )
            self._model_event = _model_config_event(model)
        self._prober = OrderedThread("gradaudit-probe")
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
        snapshot = self._snapshot()  # first: on JAX it puts the trainer's state back into the variables
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy()) if optimizer is not None else self._batches_seen
        self._prober.submit(self._write_probe, step, snapshot)

    def _snapshot(self):
        """The trainable then the non-trainable weights as they are now (the backend's cheapest copy)."""
        return self._backend.snapshot(self._backend_variables)

    def _write_probe(self, step, snapshot):
        """Runs on the probe thread: gradients, histograms and the probe's loss, one event."""
        loss, entries = self._gradient_function(snapshot)
        if self._model_event is not None:
            model_event, self._model_event = self._model_event, None
            self._write_event(model_event)
        summary = summary_pb2.Summary()
        # A sparse gradient comes as the rows the probe touched: the others are zeros, counted.
        untouched = [size - e.size for size, e in zip(self._sizes, entries)]
        for tag, histogram in zip(self._tags, self._binning.histograms(entries, untouched)):
            histogram.fill(summary.value.add(tag=tag).histo)
        # The probe's loss: the second symptom the analyzer's verdicts read beside the gradients.
        summary.value.add(tag=LOSS_TAG, simple_value=loss)
        self._write_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def _write_event(self, event):
        """Append one event to this callback's own event file, created at its first event, by the
        backend's record writer. Each event is flushed: TensorBoard shows it at once, and a crash
        loses nothing written."""
        if self._events is None:
            self._events = self._backend.record_writer(os.path.join(self.log_dir, event_file_name()))
            header = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
            self._events.write(header.SerializeToString())
        self._events.write(event.SerializeToString())
        self._events.flush()


def _model_config_event(model):
    """The model's config as Keras's TensorBoard callback writes it; a subclassed model, which has no
    such config, gets its layer list instead."""
    try:
        config = json.loads(model.to_json())
        has_layers = isinstance(config.get("config"), dict) and "layers" in config["config"]
    except Exception:  # a subclassed model whose constructor arguments Keras cannot serialise
        has_layers = False
    if has_layers:
        return text_event(KERAS_MODEL_TAG, KERAS_MODEL_PLUGIN, json.dumps(config))
    return text_event(LAYER_LIST_TAG, LAYER_LIST_PLUGIN, json.dumps(_layer_list(model)))


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


def _backend_of(name: str):
    """The probe's machinery for Keras's backend; TensorFlow is imported only on its own."""
    if name == "tensorflow":
        from .keras_tf import TensorFlowProbe

        return TensorFlowProbe()
    if name in ("jax", "torch"):
        from .keras_stateless import StatelessProbe

        return StatelessProbe(name, None)
    raise ValueError(f"GradientHistograms runs on Keras's tensorflow, jax and torch backends, not {name}")
