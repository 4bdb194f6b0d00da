"""The Keras callback's probe on the JAX and PyTorch backends: the probe's forward pass runs on a
snapshot of the weights through Keras's StatelessScope (what it would update is collected and
dropped), differentiated by the backend's own autodiff (``jax.value_and_grad`` under ``jax.jit``,
``torch.autograd.grad``). Neither TensorFlow nor a reader of gradaudit's is imported; events are
framed as TFRecords by records.RecordFile."""

from __future__ import annotations

import os

import keras
import numpy as np

from .records import RecordFile


class StatelessProbe:
    """What the callback asks of a backend, for JAX and PyTorch."""

    def __init__(self, backend: str, model):
        self.backend = backend
        self.model = model

    def as_probe(self, probe):
        """(x, y) or (x, y, sample_weight) as the backend's tensors (or nests of them)."""
        if not isinstance(probe, (tuple, list)) or len(probe) not in (2, 3):
            raise ValueError(
                "probe must be (x, y) or (x, y, sample_weight) (a tf.data.Dataset only on TensorFlow)"
            )
        if len(probe) == 3 and probe[2] is None:
            probe = probe[:2]
        return tuple(keras.tree.map_structure(keras.ops.convert_to_tensor, part) for part in probe)

    def handles(self, variables):
        return list(variables)

    def snapshot(self, handles):
        """The weights now, copied: Keras's JAX trainer donates its state's buffers to the next step
        (a reference would be deleted under the probe), and PyTorch updates parameters in place. On
        JAX the trainer's state is first put back into the variables (its way for a callback that
        reads them)."""
        if self.backend == "jax":
            import jax.numpy as jnp

            self.model.jax_state_sync()
            return [jnp.array(v.value, copy=True) for v in handles]
        return [v.value.detach().clone() for v in handles]

    def gradient_function(
        self, model, training, probe, trainable_variables, non_trainable_variables, snapshot
    ):
        """snapshot -> (the probe's loss, numpy entries of each trainable variable's gradient)."""
        variables = trainable_variables + non_trainable_variables
        x, y, *weights = probe
        sample_weight = weights[0] if weights else None
        count = len(trainable_variables)

        def loss_of(trainable, non_trainable):
            mapping = list(zip(variables, [*trainable, *non_trainable]))
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True, initialize_variables=False):
                y_pred = model(x, training=training)
                return model.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
                )

        if self.backend == "jax":
            import jax

            value_and_grad = jax.jit(jax.value_and_grad(loss_of))

            def run(weights_now):
                loss, grads = value_and_grad(list(weights_now[:count]), list(weights_now[count:]))
                return float(loss), [np.asarray(g) for g in grads]

            return run

        import torch

        def run(weights_now):
            trainable = [w.requires_grad_(True) for w in weights_now[:count]]
            with torch.enable_grad():
                loss = loss_of(trainable, weights_now[count:])
            grads = torch.autograd.grad(loss, trainable, allow_unused=True)
            entries = [np.zeros(0, np.float32) if g is None else g.detach().cpu().numpy() for g in grads]
            return float(loss.detach()), entries

        return run

    def check_fits(self, model, x):
        """Refuse a probe a single-input model cannot take, naming both shapes."""
        inputs = getattr(model, "inputs", None)
        if inputs and len(inputs) == 1 and hasattr(x, "shape"):
            expected = tuple(inputs[0].shape[1:])
            got = tuple(x.shape[1:])
            if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
                raise ValueError(
                    f"the probe's x has shape {tuple(x.shape)}, but the model takes inputs of shape "
                    f"{(None, *expected)}"
                )

    def record_writer(self, path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return RecordFile(path)  # write() and flush(), as TensorFlow's
