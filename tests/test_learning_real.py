"""Real trainings that fail, or succeed, in ways the gradient verdicts have no name for: the verdict asks
whether they learned. Synthetic data of the shapes described (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import report_json, runs_by_name

pytestmark = [pytest.mark.tf, pytest.mark.slow]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _classes(n: int, features: int, classes: int, seed: int = 0):
    """Inputs in [0, 1) and the class a fixed linear map gives them: learnable."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, features)).astype("float32")
    y = np.argmax((x - 0.5) @ rng.normal(size=(features, classes)), axis=1)
    return x, y


def _summed_loss_sigmoid_mlp(log_dir, steps: int = 1500, every: int = 100) -> None:
    """A 784-128-256-10 sigmoid MLP with a softmax and a clipped log loss summed over batches of 256,
    SGD at 0.1, plain tf.summary.histogram of every weight and bias, the loss and accuracy scalars."""
    x, y = _classes(10_000, 784, 10)
    rng = np.random.default_rng(1)
    tf.random.set_seed(0)
    init = keras.initializers.RandomNormal(0, 0.1)
    shapes = {"h1": (784, 128), "h2": (128, 256), "logits": (256, 10)}
    weights = {name: tf.Variable(init(shape)) for name, shape in shapes.items()}
    biases = {name: tf.Variable(tf.zeros(shape[1])) for name, shape in shapes.items()}
    variables = [v for name in shapes for v in (weights[name], biases[name])]
    optimizer = keras.optimizers.SGD(0.1)

    @tf.function
    def train(xb, yb):
        with tf.GradientTape() as tape:
            h = tf.sigmoid(xb @ weights["h1"] + biases["h1"])
            h = tf.sigmoid(h @ weights["h2"] + biases["h2"])
            p = tf.nn.softmax(h @ weights["logits"] + biases["logits"])
            loss = -tf.reduce_sum(tf.one_hot(yb, 10) * tf.math.log(tf.clip_by_value(p, 1e-10, 1.0)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(p, 1), tf.cast(yb, tf.int64)), tf.float32))

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for step in range(steps):
            batch = rng.integers(0, len(x), 256)
            loss, accuracy = train(x[batch], y[batch])
            if step % every == 0:
                for name in shapes:
                    tf.summary.histogram(f"{name}/weights", weights[name], step=step)
                    tf.summary.histogram(f"{name}/bias", biases[name], step=step)
                tf.summary.scalar("loss", loss, step=step)
                tf.summary.scalar("accuracy", accuracy, step=step)
    writer.close()


def _keras_with_callback(log_dir, labels: str, epochs: int, lr: float = 1e-3) -> None:
    """A ReLU MLP trained by Keras with gradaudit's callback: on its own labels, or shuffled ones."""
    from analyzer.callback import GradientHistograms

    x, y = _classes(4096, 32, 4)
    if labels == "shuffled":
        y = np.random.default_rng(2).permutation(y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = GradientHistograms(str(log_dir), probe=(x[:64], y[:64]), every_n_batches=8)
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[callback])


def test_a_summed_loss_that_saturates_a_softmax_is_stalled_not_healthy(tmp_path):
    _summed_loss_sigmoid_mlp(tmp_path / "logs" / "summed")
    [run] = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1]).values()
    assert run["verdict"] == "stalled" and run["evidence"] == "weight histograms"
    # h1/weights, as raw tf.summary and TF1 name them, are weights: every tag is read, none left aside
    assert [layer["tag"] for layer in run["layers"]] == [
        f"{name}/{kind}" for name in ("h1", "h2", "logits") for kind in ("weights", "bias")
    ]
    assert run["other_histogram_tags"] == []
    [finding] = run["findings"]
    assert finding["evidence"]["cause"].endswith("no weight moved")
    assert run["loss"]["state"] in ("flat", "rose")  # it never fell: about 5,000 throughout
    rc, _ = report_json(tmp_path / "gate.json", tmp_path / "logs", args=["--no-html", "--fail-on", "any"])
    assert rc == 1  # a CI gate fails on it


def test_shuffled_labels_are_stalled_and_the_same_run_on_its_own_labels_is_healthy(tmp_path):
    _keras_with_callback(tmp_path / "logs" / "shuffled", "shuffled", epochs=3)
    _keras_with_callback(tmp_path / "logs" / "learning", "own", epochs=3, lr=1e-2)
    runs = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1])
    shuffled, learning = runs["shuffled"], runs["learning"]
    assert shuffled["verdict"] == "stalled", shuffled["reason"]
    assert "gradients look normal" in shuffled["findings"][0]["summary"]
    assert learning["verdict"] == "healthy", learning["reason"]
    assert learning["loss"]["state"] == "fell"


def test_a_frozen_model_logged_by_keras_own_callback_is_stalled(tmp_path):
    """Every layer frozen (trainable=False), its weights and epoch loss logged by Keras's TensorBoard."""
    x, y = _classes(2048, 32, 4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
    )
    model.trainable = False
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    log_dir = tmp_path / "logs" / "frozen"
    callback = keras.callbacks.TensorBoard(str(log_dir), histogram_freq=1)
    model.fit(x, y, batch_size=64, epochs=6, verbose=0, callbacks=[callback])
    runs = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1])
    [run] = [r for name, r in runs.items() if name.startswith("frozen")]
    assert run["verdict"] == "stalled", run["reason"]
    assert run["findings"][0]["evidence"]["cause"] == "no weight moved"


def test_a_run_converging_to_near_zero_loss_whose_gradients_fall_by_decades_is_healthy(tmp_path):
    from analyzer.callback import GradientHistograms

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 16)).astype("float32")
    y = x @ rng.normal(size=(16, 1)).astype("float32")  # exactly learnable: the loss goes to ~0
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    log_dir = tmp_path / "logs" / "converging"
    callback = GradientHistograms(str(log_dir), probe=(x[:64], y[:64]), every_n_batches=8)
    model.fit(x, y, batch_size=64, epochs=30, verbose=0, callbacks=[callback])
    [run] = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1]).values()
    assert run["verdict"] == "healthy", run["reason"]
    assert run["loss"]["state"] == "fell"
    drop = [layer["rms_first"] / layer["rms_last"] for layer in run["layers"] if "kernel" in layer["tag"]]
    assert min(drop) >= 100, drop  # the gradients fell two decades or more in every layer


@pytest.mark.parametrize("every", [1, 8, 48])
def test_the_stalled_verdict_holds_however_often_the_run_is_logged(tmp_path, every):
    _summed_loss_sigmoid_mlp(tmp_path / "logs" / "summed", steps=600, every=every)
    [run] = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1]).values()
    assert run["verdict"] == "stalled", run["reason"]
