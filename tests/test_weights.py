"""Runs that logged weight histograms and no gradients, as Keras's own TensorBoard(histogram_freq=1)
writes them: judged from their weights, as weights, and said so."""

from __future__ import annotations

import json

import pytest
from conftest import report_json, runs_by_name

from analyzer.cli import main

keras = pytest.importorskip("keras")
import generate  # noqa: E402  (the sample runs' recipes, sample_logs/ on pytest's pythonpath)

pytestmark = pytest.mark.tf


def _fit_with_keras_tensorboard(recipe, log_dir, epochs: int, gradients: bool = False) -> None:
    keras.utils.set_random_seed(generate.SEED)
    model, optimizer, loss, x, y = recipe()
    model.compile(optimizer=optimizer, loss=loss)
    callbacks = [keras.callbacks.TensorBoard(str(log_dir), histogram_freq=1)]
    if gradients:
        from analyzer.callback import GradientHistograms

        callbacks.append(GradientHistograms(log_dir / "train", probe=(x[:256], y[:256])))  # beside Keras
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=callbacks)


@pytest.fixture(scope="module")
def weight_runs(tmp_path_factory) -> dict[str, dict]:
    logs = tmp_path_factory.mktemp("weights") / "logs"
    _fit_with_keras_tensorboard(generate.healthy, logs / "healthy", epochs=6)
    _fit_with_keras_tensorboard(generate.vanishing, logs / "vanishing", epochs=6)
    _fit_with_keras_tensorboard(generate.exploding, logs / "exploding", epochs=6)
    _fit_with_keras_tensorboard(generate.vanishing, logs / "both", epochs=3, gradients=True)
    return runs_by_name(report_json(logs.parent / "report.json", logs, args=["-o", logs.parent / "html"])[1])


def test_weights_alone_are_judged_as_weights(weight_runs):
    for name in ("healthy", "vanishing", "exploding"):
        run = weight_runs[name]
        judged = run["judged"]
        assert run["evidence"] == "weight histograms" and judged[:2] == ["vanishing", "exploding"], name
        assert set(judged[2:]) <= {"unstable", "stalled"}, name  # where the loss has enough points
        assert all(layer["tag"].endswith("/histogram") for layer in run["layers"])
    assert weight_runs["healthy"]["verdict"] == "healthy"
    assert weight_runs["exploding"]["verdict"] == "exploding"
    vanishing = weight_runs["vanishing"]
    assert vanishing["verdict"] == "vanishing"
    [finding] = [f for f in vanishing["findings"] if f["kind"] == "vanishing"]
    assert finding["evidence_source"].startswith("weights") and "input-side weights" in finding["summary"]
    assert "the optimizer is not logged" in finding["summary"]
    # The model config Keras logged names the still layers and their activation.
    assert "sigmoid" in finding["remedies"][0] and finding["model_layers"]


def test_a_run_with_gradients_keeps_the_gradient_verdict(weight_runs):
    run = weight_runs["both"]
    assert run["evidence"] == "gradient histograms"
    assert all(layer["tag"].startswith("gradients/") for layer in run["layers"])


def test_tags_naming_weights_get_the_weight_rules(weight_runs, tmp_path):
    out = tmp_path / "w.json"
    main(
        ["report", weight_runs["healthy"]["path"], "--tags", "kernel", "--no-html", "--json", str(out), "-q"]
    )
    [run] = json.loads(out.read_text())["runs"]
    assert run["evidence"] == "weight histograms" and run["verdict"] == "healthy"
    # A selection that holds gradients too leaves the verdict to the gradients.
    main(["report", weight_runs["both"]["path"], "--tags", "kernel", "--no-html", "--json", str(out), "-q"])
    [run] = json.loads(out.read_text())["runs"]
    assert run["evidence"] == "gradient histograms"
    assert all(layer["tag"].startswith("gradients/") for layer in run["layers"])


def test_tags_chosen_with_tags_and_not_named_gradients_are_read_as_weights(tmp_path, rng):
    """--tags on weight histograms named as some loops name them (Weights/<layer>): judged as weights,
    never as gradients, and the page says so."""
    from conftest import write_tbx_histograms

    series = {f"Weights/fc{i}": [rng.normal(size=400) * (1 + 0.01 * k) for k in range(6)] for i in range(3)}
    write_tbx_histograms(tmp_path / "logs" / "run", series, list(range(6)))
    rc, document = report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])
    [run] = document["runs"]
    assert (
        run["verdict"] == "insufficient_data"
        and "a chosen tag without 'grad' in it is read as weights" in run["reason"]
    )
    _, document = report_json(tmp_path / "w.json", tmp_path / "logs", args=["--no-html", "--tags", "Weights"])
    [run] = document["runs"]
    assert run["evidence"] == "weight histograms" and len(run["layers"]) == 3
    assert any(
        note.startswith("no gradient histograms: the verdict reads the weights") for note in run["notes"]
    )
