"""The callback, on real Keras trainings, read back through the analyzer's reader."""

from __future__ import annotations

import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


keras = pytest.importorskip("keras")


from test_binning import assert_buckets_hold  # noqa: E402

from analyzer.binning import bucket_limits  # noqa: E402
from analyzer.callback import LOSS_TAG, GradientHistograms  # noqa: E402
from analyzer.events import read_run  # noqa: E402
from analyzer.runs import find_runs  # noqa: E402

pytestmark = pytest.mark.tf


def _data(n=256, features=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, :1] * 2 + x[:, 1:2] ** 2).astype("float32")
    return x, y


def _read(log_dir):
    [run] = find_runs([str(log_dir)]).runs
    return read_run(run)


def _fit_and_read(model, log_dir, x, y, probe, epochs=1, **callback_args):
    """Train in batches of 64 with the callback, and read its run back."""
    callback = GradientHistograms(log_dir, probe=probe, **callback_args)
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[callback])
    return _read(log_dir)


# The probe runs beside training, and float32 sums then run in a different order than here: up to
# 4e-6 apart measured over 25 trainings. Gradients one SGD step off differ by 3e-4 or more.
RMS_RTOL = 2e-5


# A gradient that is a small difference of large terms (the output bias's: the mean of the residuals)
# is exact only to the float32 rounding of those terms: 5.6e-8 apart on an RMS of 4e-5 in one CI run,
# a relative 1.4e-3; its largest |g| (one entry) 6e-8 apart on 9.4e-5 in another. Such absolute
# differences are taken relative to the model's largest RMS, whose layers still tell a step apart (3e-4
# there).
RMS_ATOL_OF_LARGEST = 1e-6


def _rms(gradient) -> float:
    return float(np.sqrt(np.mean(gradient.astype(np.float64) ** 2)))


def _assert_rms_close(actual, true):
    np.testing.assert_allclose(actual, true, rtol=RMS_RTOL, atol=RMS_ATOL_OF_LARGEST * np.max(true))


def _true_gradients(model, x, y):
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)
    return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_variables)]


def _sequential():
    keras.backend.clear_session()
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )


def test_sequential_every_n_batches_writes_exact_gradients(tmp_path):
    x, y = _data()
    model = _sequential()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    probe = (x[:64], y[:64])
    callback = GradientHistograms(tmp_path / "run", probe=probe, every_n_batches=2)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])  # 16 batches

    data = _read(tmp_path / "run")
    tags = [layer.tag for layer in data.layers]
    assert tags == ["gradients/" + v.path for v in model.trainable_variables]  # model order
    assert list(data.layers[0].steps) == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert data.layers[0].encodings == ("legacy",)
    # The last histogram is of the final weights: compare with gradients computed here (eagerly: they
    # differ from the traced probe's by float32 rounding, up to RMS_RTOL).
    gradients = _true_gradients(model, *probe)
    _assert_rms_close([stats.rms[-1] for stats in data.layers], [_rms(g) for g in gradients])
    slack = RMS_ATOL_OF_LARGEST * max(_rms(g) for g in gradients)  # a small difference of large terms
    for stats, grad in zip(data.layers, gradients):
        assert stats.count[-1] == grad.size
        assert stats.max_abs[-1] >= np.abs(grad).max() * (1 - RMS_RTOL) - slack
        assert stats.max_abs[-1] <= np.abs(grad).max() * 10 ** (1 / 10) * (1 + RMS_RTOL) + slack  # one bucket


def test_default_frequency_is_every_epoch_plus_start(tmp_path):
    x, y = _data()
    model = _sequential()
    model.compile(optimizer="adam", loss="mse")
    probe = (x[:32], y[:32], None)  # no sample weights, said explicitly
    data = _fit_and_read(model, tmp_path / "run", x, y, probe, epochs=3)
    assert list(data.layers[0].steps) == [0, 4, 8, 12]


def test_functional_multi_output_model(tmp_path):
    keras.backend.clear_session()
    x, y = _data()
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    out_a = keras.layers.Dense(1, name="a")(hidden)
    out_b = keras.layers.Dense(1, name="b")(hidden)
    model = keras.Model(inputs, {"a": out_a, "b": out_b})
    model.compile(optimizer="adam", loss={"a": "mse", "b": "mae"})
    targets = {"a": y, "b": -y}
    data = _fit_and_read(model, tmp_path / "run", x, targets, (x[:64], {"a": y[:64], "b": -y[:64]}))
    assert [layer.tag.split("/")[-2] for layer in data.layers] == ["trunk", "trunk", "a", "a", "b", "b"]
    # (an MAE bias gradient is exactly zero when residual signs balance, so only kernels are checked)
    kernels = [layer for layer in data.layers if layer.tag.endswith("kernel")]
    assert all(np.all(k.rms > 0) and not k.nonfinite.any() for k in kernels)


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(12, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


@pytest.mark.parametrize(
    "make_model",
    [
        SubclassedNet,
        lambda: keras.Sequential([keras.layers.Dense(12, activation="relu"), keras.layers.Dense(1)]),
    ],
    ids=["subclassed", "sequential_without_input"],
)
def test_model_without_declared_input(tmp_path, make_model):
    """Variables created only at the first call still get their histogram before training."""
    keras.backend.clear_session()
    x, y = _data()
    model = make_model()
    model.compile(optimizer="adam", loss="mse")
    data = _fit_and_read(model, tmp_path / "run", x, y, (x[:64], y[:64]), epochs=2)
    assert len(data.layers) == 4 and all(list(layer.steps) == [0, 4, 8] for layer in data.layers)


def test_mixed_precision_gradients_are_unscaled(tmp_path):
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = _data()
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(1, dtype="float32"),
            ]
        )
        model.compile(optimizer="adam", loss="mse")  # Keras wraps it in a LossScaleOptimizer
        probe = (x[:64], y[:64])
        data = _fit_and_read(model, tmp_path / "run", x, y, probe)
        true = _true_gradients(model, *probe)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for stats, grad in zip(data.layers, true):
        # unscaled: the loss scale (2**15) would put the logged RMS four decades off
        assert stats.rms[-1] == pytest.approx(_rms(grad), rel=1e-2)


def test_training_mode_probe_leaves_batchnorm_statistics_alone(tmp_path):
    keras.backend.clear_session()
    x, y = _data()
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16), keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    callback = GradientHistograms(tmp_path / "run", probe=(x[:64] * 5 + 3, y[:64]), training=True)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_end()
    assert len(_read(tmp_path / "run").layers) == 6
    for old, variable in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())


class SlowProbes(GradientHistograms):
    """Probes that take longer than the training between them, so training runs ahead of them."""

    def _write_probe(self, *args):
        time.sleep(0.05)
        super()._write_probe(*args)


class WeightsAtProbes(keras.callbacks.Callback):
    """The trainable weights at each step where GradientHistograms(every_n_batches=2) probes."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_train_begin(self, logs=None):
        self.weights[0] = [v.numpy().copy() for v in self.model.trainable_variables]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % 2 == 0:
            self.weights[step] = [v.numpy().copy() for v in self.model.trainable_variables]


def test_each_probe_sees_the_weights_of_its_step_while_training_runs_ahead(tmp_path):
    x, y = _data()
    model = _sequential()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    probe = (x[:64], y[:64])
    recorder = WeightsAtProbes()
    callbacks = [SlowProbes(tmp_path / "run", probe=probe, every_n_batches=2), recorder]
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=callbacks)

    series = _read(tmp_path / "run").layers
    assert list(series[0].steps) == sorted(recorder.weights) == list(range(0, 17, 2))
    rms = np.array([layer.rms for layer in series])  # [variable, step]
    for column, step in enumerate(series[0].steps):
        for variable, value in zip(model.trainable_variables, recorder.weights[step]):
            variable.assign(value)
        true = [_rms(g) for g in _true_gradients(model, *probe)]
        _assert_rms_close(rms[:, column], true)
    assert not np.allclose(rms[:, 0], rms[:, -1], rtol=0.05)  # the weights did move between probes


def test_probes_leave_training_exactly_as_without_them(tmp_path):
    """Training mode, a probe every batch, dropout, BatchNorm and two outputs with loss trackers:
    the same seeded training with and without the callback ends with the same weights and logs."""

    def train(callbacks):
        keras.backend.clear_session()
        keras.utils.set_random_seed(3)
        inputs = keras.Input((8,))
        hidden = keras.layers.Dense(16, activation="relu")(inputs)
        hidden = keras.layers.Dropout(0.3)(keras.layers.BatchNormalization()(hidden))
        model = keras.Model(
            inputs,
            {"a": keras.layers.Dense(1, name="a")(hidden), "b": keras.layers.Dense(1, name="b")(hidden)},
        )
        model.compile(optimizer="adam", loss={"a": "mse", "b": "mae"})
        x, y = _data()
        history = model.fit(
            x, {"a": y, "b": -y}, batch_size=32, epochs=2, verbose=0, callbacks=callbacks, shuffle=False
        )
        return history.history, [v.numpy() for v in model.variables]

    x, y = _data()
    probe = GradientHistograms(
        tmp_path / "run", probe=(x[:64], {"a": y[:64], "b": -y[:64]}), every_n_batches=1, training=True
    )
    history_without, weights_without = train([])
    history_with, weights_with = train([probe])
    assert history_with == history_without
    for without, with_probes in zip(weights_without, weights_with, strict=True):
        np.testing.assert_array_equal(without, with_probes)
    assert len(_read(tmp_path / "run").layers[0].steps) == 17


def test_regularization_losses_are_in_the_probed_gradients(tmp_path):
    x, y = _data()
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)  # the share the penalty adds depends on the initial weights
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.5)),
            keras.layers.Dense(1, activity_regularizer=keras.regularizers.L2(0.5)),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    probe = (x[:64], y[:64])
    series = _fit_and_read(model, tmp_path / "run", x, y, probe).layers
    true = [_rms(g) for g in _true_gradients(model, *probe)]
    _assert_rms_close([layer.rms[-1] for layer in series], true)
    with tf.GradientTape() as tape:
        y_pred = model(probe[0])
        plain = keras.losses.MeanSquaredError()(probe[1], y_pred)
    without_regularization = tape.gradient(plain, model.trainable_variables)[0].numpy()
    assert true[0] > 1.2 * _rms(without_regularization)  # 1.51x with this seed


def test_a_probe_the_model_cannot_take_fails_fit_when_training_begins(tmp_path):
    """Refused with both shapes named when the model's input says so; otherwise by the trace."""
    x, y = _data()
    model = _sequential()
    model.compile(optimizer="sgd", loss="mse")
    wrong_width = (np.zeros((16, 5), "float32"), y[:16])
    with pytest.raises(ValueError, match=r"probe's x has shape \(16, 5\), but the model takes .*\(None, 8\)"):
        _fit_and_read(model, tmp_path / "run", x, y, wrong_width)
    subclassed = SubclassedNet()  # no declared input: the probe's own error stops fit()
    subclassed.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        _fit_and_read(subclassed, tmp_path / "run", x, y, (x[:16], y[:7]), epochs=2)


class BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_an_error_on_the_probe_thread_stops_fit(tmp_path):
    """The first event is written on the probe thread; a log folder that is a file fails it. fit()
    stops at the next batch after, or at the latest when a third probe waits for the first: at the
    end of the second epoch. The file is left as it was."""
    x, y = _data()
    model = _sequential()
    model.compile(optimizer="sgd", loss="mse")
    not_a_folder = tmp_path / "run"
    not_a_folder.write_text("the user's notes")
    counter = BatchCounter()
    callback = GradientHistograms(not_a_folder, probe=(x[:16], y[:16]))
    with pytest.raises(tf.errors.OpError, match="run"):
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[callback, counter])
    assert counter.batches <= 2 * 32
    assert not_a_folder.read_text() == "the user's notes"


def test_nan_gradients_keep_the_finite_values(tmp_path):
    keras.backend.clear_session()
    x, y = _data()
    y_bad = y.copy()
    y_bad[0] = np.nan  # one NaN target: NaN loss, NaN gradients everywhere
    model = _sequential()
    model.compile(optimizer="sgd", loss="mse")
    callback = GradientHistograms(tmp_path / "run", probe=(x[:16], y_bad[:16]))
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_end()
    stats = _read(tmp_path / "run").layers[0]
    assert stats.nonfinite.all()


def test_probe_is_required_and_validated(tmp_path):
    with pytest.raises(ValueError, match="probe"):
        GradientHistograms(tmp_path, probe=None)
    with pytest.raises(ValueError, match="every_n_batches"):
        GradientHistograms(tmp_path, probe=(np.zeros((2, 2)), np.zeros(2)), every_n_batches=0)


def test_buckets_hold_exactly_the_gradient_entries_they_cover(tmp_path):
    """Every logged bucket [previous limit, limit) against the true gradients binned here."""
    keras.backend.clear_session()
    x, y = _data()
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="sgd", loss="mse")
    probe = (x[:64] - 3.0, y[:64])  # most ReLU units off: many exact zeros in the first kernel
    values = _probed_once(model, probe, tmp_path / "run")
    logged = [value.histo for value in values if value.HasField("histo")]
    [loss] = [value.simple_value for value in values if value.tag == LOSS_TAG]
    assert loss == pytest.approx(float(np.mean((model(probe[0]).numpy() - probe[1]) ** 2)), rel=1e-5)
    limits = bucket_limits()
    for histo, grad in zip(logged, _true_gradients(model, *probe), strict=True):
        g = grad.astype(np.float64).ravel()
        assert_buckets_hold(list(histo.bucket_limit), list(histo.bucket), g, limits)
        assert (histo.num, histo.min, histo.max) == (g.size, g.min(), g.max())
        assert histo.sum_squares == pytest.approx(np.sum(g * g), rel=1e-12)
    limits = np.append(limits, np.finfo(np.float64).max)
    assert (
        logged[0].bucket[list(logged[0].bucket_limit).index(limits[np.flatnonzero(limits == 0)[0] + 1])] > 0
    )


def test_sparse_gradients_are_binned_as_their_dense_gradients(tmp_path):
    """An embedding's gradient comes as the rows the probe touched, some of them by several tokens:
    its histogram must be the dense gradient's, the untouched rows' zeros included."""
    keras.backend.clear_session()
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 200, size=(64, 6))
    tokens[:, 0] = 7  # a row every sequence touches
    probe = (tokens, rng.normal(size=(64, 1)).astype("float32"))
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(200, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    values = _probed_once(model, probe, tmp_path / "run")
    logged = [value.histo for value in values if value.HasField("histo")]
    gradients = _true_gradients(model, *probe)
    untouched = 200 - len(np.unique(tokens))
    assert untouched > 0 and np.count_nonzero(~gradients[0].any(axis=1)) == untouched
    for histo, grad in zip(logged, gradients, strict=True):
        g = grad.astype(np.float64).ravel()
        assert_buckets_hold(list(histo.bucket_limit), list(histo.bucket), g, bucket_limits())
        assert (histo.num, histo.min, histo.max) == (g.size, g.min(), g.max())
        assert histo.sum == pytest.approx(g.sum(), rel=1e-5, abs=1e-9)
        assert histo.sum_squares == pytest.approx(np.sum(g * g), rel=1e-5)


def _probed_once(model, probe, folder):
    """The summary values of one probe of the model, before any training."""
    from tensorboard.compat.proto import event_pb2

    from analyzer.records import RecordReader

    callback = GradientHistograms(folder, probe=probe)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_end()
    [path] = folder.iterdir()
    with open(path, "rb") as f:
        events = [event_pb2.Event.FromString(p) for p in RecordReader(f, path.stat().st_size)]
    return [value for e in events if e.HasField("summary") for value in e.summary.value]


def test_embedding_lstm_dataset_validation_and_a_second_fit(tmp_path):
    """Sparse (IndexedSlices) gradients, a recurrent layer, a tf.data probe with sample weights,
    validation inside fit() and a second fit() that goes on counting steps."""
    keras.backend.clear_session()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=(300, 12))
    labels = (tokens.sum(axis=1) % 2).astype("float32")
    weights = rng.uniform(0.5, 1.5, 300).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(50, 8),
            keras.layers.LSTM(8),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    batches = tf.data.Dataset.from_tensor_slices((tokens, labels, weights)).batch(32)  # 10, last of 12
    callback = GradientHistograms(tmp_path / "run", probe=batches.take(1), every_n_batches=5)
    validation = (tokens[:64], labels[:64])
    model.fit(batches, epochs=2, verbose=0, validation_data=validation, callbacks=[callback])
    model.fit(batches, epochs=1, verbose=0, callbacks=[callback])

    data = _read(tmp_path / "run")
    assert [layer.tag.split("/", 2)[2] for layer in data.layers] == [
        "embedding/embeddings",
        "lstm/lstm_cell/kernel",
        "lstm/lstm_cell/recurrent_kernel",
        "lstm/lstm_cell/bias",
        "dense/kernel",
        "dense/bias",
    ]
    assert list(data.layers[0].steps) == [0, 5, 10, 15, 20, 25, 30]
    embedding = data.layers[0]
    assert embedding.count[-1] == 50 * 8  # the sparse gradient made dense
    assert np.all(embedding.rms > 0) and not embedding.nonfinite.any()


@pytest.mark.slow
def test_the_default_probe_sees_a_batchnorm_cnn_as_training_does(tmp_path):
    """Early in training, BatchNorm's moving statistics are not warmed up: a probe in inference mode
    reads a model that is not the one training sees. The default (training mode) does."""
    import probe_mode  # bench/: the measure it prints

    default, seen = probe_mode.probe_and_training_losses(tmp_path / "default", epochs=2)
    inference, _ = probe_mode.probe_and_training_losses(tmp_path / "inference", epochs=2, training=False)
    after_first_epoch = seen[0]
    assert default[1] == pytest.approx(after_first_epoch, rel=0.2)
    assert inference[1] > 2 * after_first_epoch  # moving statistics not warmed up
