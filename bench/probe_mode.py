"""The Keras callback's probe in training and in inference mode on a BatchNorm CNN early in training:
its loss at each probe against the loss of the training batches then.

    python bench/probe_mode.py [--epochs 3]

A MobileNet-like CNN (depthwise and pointwise convolutions, each followed by BatchNorm) trained by
Adam on 1,984 synthetic 32x32x3 images whose class depends on their colour, the callback probing 64
held-out images at each epoch's end (and before training). Each probe's loss is printed beside the
median loss of that epoch's last 10 training batches (Keras logs their running mean, from which each
batch's loss follows). tests/test_callback.py runs the same measure and checks it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 32, 32, 3)).astype("float32")
    x += rng.normal(size=(2048, 1, 1, 3)).astype("float32")  # a per-image colour the class depends on
    y = np.argmax(x.mean(axis=(1, 2)) @ rng.normal(size=(3, 4)), axis=1)
    return x, y


def depthwise_batchnorm_cnn():
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers

    def block(h, filters, strides):
        h = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(h)
        h = layers.ReLU()(layers.BatchNormalization()(h))
        h = layers.Conv2D(filters, 1, use_bias=False)(h)
        return layers.ReLU()(layers.BatchNormalization()(h))

    inputs = keras.Input((32, 32, 3))
    h = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    h = layers.ReLU()(layers.BatchNormalization()(h))
    for filters, strides in [(32, 1), (64, 2), (64, 1), (128, 2)]:
        h = block(h, filters, strides)
    model = keras.Model(inputs, layers.Dense(4)(layers.GlobalAveragePooling2D()(h)))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def probe_and_training_losses(log_dir, epochs: int, **callback_args) -> tuple[list[float], list[float]]:
    """The probe's loss before training and at each epoch's end, and each epoch's last 10 training
    batches' median loss."""
    import keras

    from analyzer.callback import GradientHistograms
    from analyzer.events import read_run
    from analyzer.runs import find_runs

    class LastBatches(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.means = []

        def on_train_batch_end(self, batch, logs=None):
            self.means.append(float(logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            k = np.arange(1, len(self.means) + 1)
            means = np.array(self.means)
            per_batch = k * means - np.concatenate([[0.0], k[:-1] * means[:-1]])
            self.last = [*getattr(self, "last", []), float(np.median(per_batch[-10:]))]

    x, y = data()
    model, seen = depthwise_batchnorm_cnn(), LastBatches()
    callback = GradientHistograms(str(log_dir), probe=(x[-64:], y[-64:]), **callback_args)
    model.fit(x[:-64], y[:-64], batch_size=64, epochs=epochs, verbose=0, callbacks=[callback, seen])
    [run] = find_runs([str(log_dir)]).runs
    [loss] = [series for series in read_run(run).losses if series.name.endswith("probe/loss")]
    return loss.values.tolist(), seen.last


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    epochs = parser.parse_args().epochs
    print(f"{'probe mode':<26}{'probe loss, before training then after each epoch':<52}training batches")
    for label, args in (("training (the default)", {}), ("inference", {"training": False})):
        with tempfile.TemporaryDirectory() as log_dir:
            probe, batches = probe_and_training_losses(log_dir, epochs, **args)
        print(
            f"{label:<26}{', '.join(f'{v:.3f}' for v in probe):<52}{', '.join(f'{v:.3f}' for v in batches)}"
        )


if __name__ == "__main__":
    main()
