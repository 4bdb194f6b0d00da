"""The model behind a run: real Keras trainings logged with gradaudit's callback, whose model config
(or, for a subclassed model, layer list) names the layers, their classes and activations, and shapes
the remedies."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import report_json, runs_by_name

from analyzer.architecture import FROM_CONFIG, FROM_PARAMETER_NAMES, read_architecture
from analyzer.cli import main
from analyzer.events import read_run
from analyzer.runs import find_runs

keras = pytest.importorskip("keras")
import generate  # noqa: E402  (the sample runs' recipes; sample_logs/ is on pytest's pythonpath)

from analyzer.callback import GradientHistograms  # noqa: E402

pytestmark = pytest.mark.tf


def _fit(model, optimizer, loss, x, y, log_dir, epochs: int) -> None:
    model.compile(optimizer=optimizer, loss=loss)
    callback = GradientHistograms(log_dir, probe=(x[:256], y[:256]))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[callback])


def _report(tmp_path) -> dict[str, dict]:
    return runs_by_name(report_json(tmp_path / "report.json", tmp_path / "logs", args=["--no-html"])[1])


def _architecture_of(log_dir):
    [run] = find_runs([str(log_dir)]).runs
    data = read_run(run)
    tags = [layer.tag for layer in data.layers]
    return read_architecture(data.model_config, tags, {}), tags


def test_a_sigmoid_stacks_vanishing_finding_names_its_sigmoid_layers(tmp_path):
    keras.utils.set_random_seed(generate.SEED)
    _fit(*generate.vanishing(), tmp_path / "logs" / "sigmoid", epochs=6)
    run = _report(tmp_path)["sigmoid"]
    assert run["architecture"]["source"] == FROM_CONFIG and run["architecture"]["model_class"] == "Sequential"
    layers = run["architecture"]["layers"]
    assert [layer["activation"] for layer in layers] == ["sigmoid"] * 10 + ["softmax"]
    assert all(layer["class"] == "Dense" and layer["parameters"] > 0 for layer in layers)
    names = [layer["path"] for layer in layers]  # Keras numbers them on from earlier models
    [vanishing] = [f for f in run["findings"] if f["kind"] == "vanishing"]
    assert run["verdict"] == "vanishing" and vanishing["model_layers"][0] == names[0]
    first = vanishing["remedies"][0]
    assert first.startswith(f"Replace sigmoid in {names[0]} … {names[9]} (10 layers) with ReLU or GELU")
    # The run page: the finding names the model's layers, and a compact model table lists them.
    out = tmp_path / "html"
    main(["report", str(tmp_path / "logs"), "-o", str(out), "-q"])
    [page] = (out / "runs").glob("sigmoid-*.html")
    html = page.read_text()
    assert f'Model layers: <span class="tag">{names[0]}, ' in html
    assert "<h2>Model</h2>" in html and "Sequential: layers from the model config the run logged" in html
    assert html.count("<td>sigmoid</td>") == 10 and html.count("<td>Dense</td>") == 11


def test_a_gelu_nets_findings_never_propose_gelu(tmp_path):
    keras.utils.set_random_seed(generate.SEED)
    x, y = generate.make_classification()
    # Deep, with weights a hundred times too small: its gradients vanish, not from its activation.
    model = generate.mlp(
        [32] * 8,
        "gelu",
        generate.CLASSES,
        "softmax",
        kernel_initializer=keras.initializers.RandomNormal(0, 0.01),
    )
    _fit(
        model,
        keras.optimizers.SGD(0.05),
        "sparse_categorical_crossentropy",
        x,
        y,
        tmp_path / "logs" / "gelu",
        4,
    )
    run = _report(tmp_path)["gelu"]
    assert {layer["activation"] for layer in run["architecture"]["layers"]} == {"gelu", "softmax"}
    assert run["findings"], "a net this badly initialised must show something"
    actions = [action for f in run["findings"] for action in f["remedies"]]
    assert not any("GELU" in action or "gelu" in action for action in actions), actions
    vanishing = [f for f in run["findings"] if f["kind"] == "vanishing"]
    if vanishing:  # the likely cause, said as such
        assert vanishing[0]["remedies"][0].startswith("Check the initialisation scale")


def test_a_nested_functional_model_maps_every_tag_to_its_layer(tmp_path):
    keras.utils.set_random_seed(generate.SEED)
    x, y = generate.make_classification()
    block = keras.Sequential(
        [
            keras.layers.Dense(16, name="inner"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.Activation("tanh"),
        ],
        name="block",
    )
    inputs = keras.Input((generate.FEATURES,))
    h = keras.layers.Dense(32, name="stem")(inputs)
    h = keras.layers.ReLU(name="stem_relu")(h)  # an activation given as its own layer
    h = block(h)
    skip = keras.layers.Dense(16, activation="gelu", name="side")(h)
    h = keras.layers.Add(name="residual")([h, skip])
    outputs = keras.layers.Dense(generate.CLASSES, activation="softmax", name="head")(h)
    model = keras.Model(inputs, outputs)
    _fit(
        model,
        keras.optimizers.Adam(1e-3),
        "sparse_categorical_crossentropy",
        x,
        y,
        tmp_path / "logs" / "nested",
        2,
    )
    architecture, tags = _architecture_of(tmp_path / "logs" / "nested")
    assert architecture.source == FROM_CONFIG and architecture.unmapped == []
    assert architecture.has_residual and architecture.has_normalization
    by_path = {layer.path: layer for layer in architecture.layers}
    assert set(by_path) == {"stem", "block/inner", "block/norm", "side", "head"}
    assert sorted(tag for layer in architecture.layers for tag in layer.tags) == sorted(tags)
    assert by_path["stem"].activation == "relu"  # from the ReLU layer after it
    assert by_path["block/inner"].activation == "tanh"  # through BatchNormalization
    assert by_path["side"].activation == "gelu" and by_path["head"].activation == "softmax"
    assert [tag.split("/")[-1] for tag in by_path["stem"].tags] == ["kernel", "bias"]


def test_a_subclassed_model_logs_its_layer_list(tmp_path):
    keras.utils.set_random_seed(generate.SEED)
    x, y = generate.make_classification()

    class Classifier(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(32, activation="elu")
            self.out = keras.layers.Dense(generate.CLASSES, activation="softmax")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    _fit(
        Classifier(),
        keras.optimizers.Adam(1e-3),
        "sparse_categorical_crossentropy",
        x,
        y,
        tmp_path / "logs" / "sub",
        1,
    )
    architecture, tags = _architecture_of(tmp_path / "logs" / "sub")
    assert architecture.source == FROM_CONFIG and architecture.unmapped == []
    assert [(layer.class_name, layer.activation) for layer in architecture.layers] == [
        ("Dense", "elu"),
        ("Dense", "softmax"),
    ]


def test_pytorch_parameter_names_give_the_layers_and_say_so():
    tags = ["grad/encoder.layers.1.linear1.weight", "grad/encoder.layers.1.linear1.bias", "grad/0.weight"]
    architecture = read_architecture(None, tags, {"grad/0.weight": 12})
    assert architecture.source == FROM_PARAMETER_NAMES
    assert [(layer.name, layer.tags, layer.parameters) for layer in architecture.layers] == [
        ("encoder.layers.1.linear1", tags[:2], None),
        ("0", tags[2:], 12),
    ]
    assert np.all([layer.activation == "" for layer in architecture.layers])


class SeedStyleGradients(keras.callbacks.TensorBoard):
    """The seed's own logging: a TensorBoard subclass computing gradients with GradientTape at each
    epoch's end, each written as the variable path with "/" turned into "_", plus "_grads", beside the
    model config Keras's callback writes under the tag "keras"."""

    def __init__(self, log_dir, x, y):
        super().__init__(log_dir, histogram_freq=0, write_graph=True)
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        super().on_epoch_end(epoch, logs)
        with tf.GradientTape() as tape:
            loss = self.model.compute_loss(x=self.x, y=self.y, y_pred=self.model(self.x, training=True))
        gradients = tape.gradient(loss, self.model.trainable_variables)
        with self._train_writer.as_default():
            for variable, gradient in zip(self.model.trainable_variables, gradients):
                tf.summary.histogram(variable.path.replace("/", "_") + "_grads", gradient, step=epoch)


def test_the_seeds_flattened_tags_map_to_their_config_layers_and_name_the_sigmoid_ones(tmp_path):
    keras.utils.set_random_seed(generate.SEED)
    keras.backend.clear_session()
    model, optimizer, loss, x, y = generate.vanishing()
    model.compile(optimizer=optimizer, loss=loss)
    log_dir = tmp_path / "logs" / "seed"
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=8,
        verbose=0,
        callbacks=[SeedStyleGradients(str(log_dir), x[:256], y[:256])],
    )
    [run] = _report(tmp_path).values()
    tags = [layer["tag"] for layer in run["layers"]]
    assert all(tag.endswith("_grads") and "/" not in tag for tag in tags), tags
    model_layers = run["architecture"]["layers"]
    assert run["architecture"]["source"] == "the model config the run logged"
    assert sum(len(layer["tags"]) for layer in model_layers if layer["class"] == "Dense") == len(tags)
    sigmoid = [layer["name"] for layer in model_layers if layer["activation"] == "sigmoid"]
    assert len(sigmoid) == 10
    assert run["verdict"] == "vanishing"
    first_remedy = run["findings"][0]["remedies"][0]
    assert first_remedy.startswith("Replace sigmoid in") and sigmoid[0] in first_remedy
