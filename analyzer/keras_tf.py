"""The Keras callback's probe on the TensorFlow backend: the probe's forward and backward pass traced
once as a graph function over a snapshot of the weights (reads that share the variables' buffers),
sparse gradients summed by row, and a record writer that frames in C++. The only module of
gradaudit that imports TensorFlow."""

from __future__ import annotations

import os

import keras
import tensorflow as tf


class TensorFlowProbe:
    """What the callback asks of a backend, for TensorFlow."""

    def as_probe(self, probe):
        """(x, y) or (x, y, sample_weight) as tensors (or nests of them); a tf.data.Dataset's first."""
        if isinstance(probe, tf.data.Dataset):
            probe = next(iter(probe))
        if not isinstance(probe, (tuple, list)) or len(probe) not in (2, 3):
            raise ValueError("probe must be (x, y), (x, y, sample_weight) or a tf.data.Dataset of those")
        if len(probe) == 3 and probe[2] is None:  # no sample weights, said explicitly
            probe = probe[:2]
        return tuple(tf.nest.map_structure(tf.convert_to_tensor, part) for part in probe)

    def handles(self, variables):
        """The backend's tf.Variables: reading them directly is the cheapest snapshot."""
        return [v.value for v in variables]

    def snapshot(self, handles):
        """A read of a variable shares its buffer, and TensorFlow copies that buffer before updating
        the variable while a read still holds it: the snapshot costs a copy only of what training
        then changes."""
        return [variable.value() for variable in handles]

    def gradient_function(
        self, model, training, probe, trainable_variables, non_trainable_variables, snapshot
    ):
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
        by the scope and dropped. Returns snapshot -> (loss, numpy entries of each gradient).
        """
        variables = trainable_variables + non_trainable_variables
        flat_probe = tf.nest.flatten(probe)

        def gradients(*arguments):
            x, y, *weights = tf.nest.pack_sequence_as(probe, arguments[: len(flat_probe)])
            sample_weight = weights[0] if weights else None
            weights_now = list(arguments[len(flat_probe) :])
            trainable = weights_now[: len(trainable_variables)]
            with keras.StatelessScope(
                state_mapping=list(zip(variables, weights_now)),
                collect_losses=True,
                initialize_variables=False,
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
        signature = [tf.TensorSpec.from_tensor(t) for t in flat_probe + snapshot]
        traced = tf.compat.v1.wrap_function(gradients, signature)
        # Variables first made during the trace (the per-output loss trackers of a model Keras has
        # not traced yet) wait for the outermost stateless scope to close in eager mode: they must
        # not be made inside the wrapped graph.
        with keras.StatelessScope():
            pass

        def run(weights_now):
            loss, *grads = traced(*flat_probe, *weights_now)
            return float(loss.numpy()), [g.numpy() for g in grads]

        return run

    def check_fits(self, model, x):
        """Refuse a probe a single-input model cannot take, with a message that names both shapes;
        the trace's own error would speak of the dimensions of a matrix product deep inside."""
        inputs = getattr(model, "inputs", None)  # Functional and Sequential models know their input
        if inputs and len(inputs) == 1 and tf.is_tensor(x):
            expected = tf.TensorShape(inputs[0].shape[1:])
            if not expected.is_compatible_with(x.shape[1:]):
                raise ValueError(
                    f"the probe's x has shape {tuple(x.shape)}, but the model takes inputs of shape "
                    f"{(None, *expected.as_list())}"
                )

    def record_writer(self, path: str):
        """A record writer frames and checksums in C++; tf.summary's writer costs eager ops per event
        and more than the probe itself on small models."""
        tf.io.gfile.makedirs(os.path.dirname(path))
        return tf.io.TFRecordWriter(path)


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
