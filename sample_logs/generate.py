"""Write the bundled sample runs: small real Keras trainings logged with gradaudit's callback.

    python sample_logs/generate.py [OUTDIR]        # default: the folder of this script

Each run is meant to get one verdict: healthy, vanishing, exploding or dead_units. Data are made here
(numpy, seeded), so nothing is downloaded; a run takes a few seconds on a CPU.
"""

from __future__ import annotations

import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from analyzer.callback import GradientHistograms  # noqa: E402

SEED = 7
FEATURES, CLASSES, SAMPLES = 20, 4, 2048


def make_classification(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Labels from a random two-layer teacher, so a network has something real to learn."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    hidden = np.tanh(x @ rng.normal(size=(FEATURES, 32)))
    y = (hidden @ rng.normal(size=(32, CLASSES))).argmax(axis=1)
    return x, y


def mlp(units: list[int], activation: str, outputs: int, out_activation: str | None, **dense) -> keras.Model:
    layers = [keras.Input((FEATURES,))]
    layers += [keras.layers.Dense(u, activation=activation, **dense) for u in units]
    layers.append(keras.layers.Dense(outputs, activation=out_activation))
    return keras.Sequential(layers)


def healthy() -> tuple[keras.Model, str, str, np.ndarray, np.ndarray]:
    x, y = make_classification()
    model = mlp([64, 64, 64], "relu", CLASSES, "softmax", kernel_initializer="he_normal")
    return model, keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", x, y


def vanishing():
    x, y = make_classification()
    model = mlp([32] * 10, "sigmoid", CLASSES, "softmax")
    return model, keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy", x, y


def exploding():
    x, _ = make_classification()
    rng = np.random.default_rng(SEED + 1)
    target = (x @ rng.normal(size=(FEATURES, 1)) * 10).astype("float32")
    model = mlp([64, 64, 64], "relu", 1, None, kernel_initializer="he_normal")
    # Regression on large targets with a step size just past stability: grows, then NaN.
    return model, keras.optimizers.SGD(0.003), "mse", x, target


def dead_units():
    x, y = make_classification()
    # Biases drawn around -2 start most ReLU units in the region where they get no gradient.
    model = mlp(
        [64, 64, 64],
        "relu",
        CLASSES,
        "softmax",
        kernel_initializer="he_normal",
        bias_initializer=keras.initializers.RandomNormal(mean=-2.0, stddev=1.0),
    )
    return model, keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", x, y


RUNS = {
    "healthy_relu_adam": healthy,
    "vanishing_sigmoid_deep": vanishing,
    "exploding_sgd_high_lr": exploding,
    "dead_units_negative_bias": dead_units,
}


def write_run(name: str, out_dir: str, epochs: int = 8) -> None:
    keras.backend.clear_session()  # layer names restart at dense, dense_1, ... for every run
    keras.utils.set_random_seed(SEED)
    model, optimizer, loss, x, y = RUNS[name]()
    model.compile(optimizer=optimizer, loss=loss)
    log_dir = os.path.join(out_dir, name)
    shutil.rmtree(log_dir, ignore_errors=True)
    callback = GradientHistograms(log_dir, probe=(x[:256], y[:256]), every_n_batches=8)
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[callback])


def main(argv: list[str]) -> None:
    out_dir = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name in RUNS:
        write_run(name, out_dir)
        print(f"wrote {os.path.join(out_dir, name)}")


if __name__ == "__main__":
    main(sys.argv)
