"""The Keras callback on each of Keras 3's backends (TensorFlow, JAX, PyTorch), each through its own
autodiff: the same model, weights, data and probe give the same histograms and verdicts, and on JAX
and PyTorch nothing imports TensorFlow (it is made unimportable in those processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO, legacy_histograms, report_json, runs_by_name

pytestmark = [pytest.mark.tf, pytest.mark.torch, pytest.mark.slow]

# Trains, in a process of its own on one backend, a sigmoid stack deep enough to vanish and a ReLU
# MLP that learns, from the same numpy weights, data and probe; prints what the process imported.
TRAIN = textwrap.dedent(
    """
    import json, os, sys
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
    import numpy as np
    import keras
    from analyzer.callback import GradientHistograms

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 16)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(16, 4)), axis=1)
    recipes = [  # name, depth, activation, learning rate, hidden biases, weights' std
        ("vanishing", 8, "sigmoid", 0.1, None, 0.3),
        ("healthy", 2, "relu", 0.1, None, 0.3),
        ("dead_units", 2, "relu", 0.05, -3.0, 0.3),
        ("exploding", 3, "linear", 1.0, None, 0.3),
    ]
    for name, depth, activation, lr, bias, std in recipes:
        model = keras.Sequential(
            [keras.Input((16,))]
            + [keras.layers.Dense(32, activation=activation) for _ in range(depth)]
            + [keras.layers.Dense(4)]
        )
        weights = np.random.default_rng(1)
        values = [weights.normal(0, std, w.shape).astype("float32") for w in model.get_weights()]
        if bias is not None:  # every hidden layer's bias: units born dead
            last = len(values) - 1
            values = [np.full_like(v, bias) if v.ndim == 1 and i < last else v for i, v in enumerate(values)]
        model.set_weights(values)
        model.compile(keras.optimizers.SGD(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callback = GradientHistograms(os.path.join(out, name), probe=(x[:64], y[:64]), every_n_batches=8)
        model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0, callbacks=[callback])
    imported = sys.modules.get("tensorflow") is not None
    ours = sorted(m for m in sys.modules if m.startswith("analyzer."))
    print(json.dumps({"tensorflow_imported": imported, "analyzer": ours}))
    """
)


def _histograms(run_dir) -> dict:
    """Each tag's HistogramProto by step."""
    return {tag: dict(steps) for tag, steps in legacy_histograms(run_dir).items()}


def test_the_callback_gives_the_same_output_on_tensorflow_jax_and_pytorch(tmp_path):
    pytest.importorskip("jax")
    imported = {}
    for backend in ("tensorflow", "jax", "torch"):
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, "-c", TRAIN, str(tmp_path / backend)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        said = json.loads(done.stdout.strip().splitlines()[-1])
        imported[backend] = said["tensorflow_imported"]
        if backend != "tensorflow":  # what writing needs, no reader, no report, no TensorFlow
            assert set(said["analyzer"]) <= {
                "analyzer.callback",
                "analyzer.binning",
                "analyzer.eventlog",
                "analyzer.keras_stateless",
                "analyzer.records",  # the TFRecord framing, written as read
            }
    assert imported == {"tensorflow": True, "jax": False, "torch": False}

    verdicts = {}
    for backend in ("tensorflow", "jax", "torch"):
        runs = runs_by_name(
            report_json(tmp_path / f"{backend}.json", tmp_path / backend, args=["--no-html"])[1]
        )
        verdicts[backend] = {name: run["verdict"] for name, run in runs.items()}
    assert verdicts["tensorflow"] == {
        name: name for name in ("vanishing", "healthy", "dead_units", "exploding")
    }
    assert verdicts["jax"] == verdicts["torch"] == verdicts["tensorflow"]

    for name in ("vanishing", "healthy", "dead_units", "exploding"):
        reference = _histograms(tmp_path / "tensorflow" / name)
        for backend in ("jax", "torch"):
            other = _histograms(tmp_path / backend / name)
            assert list(other) == list(reference)  # the same tags, in model order
            for tag, steps in reference.items():
                assert sorted(other[tag]) == sorted(steps)  # the same logged steps
                first, theirs = steps[0], other[tag][0]  # before training: the same weights and probe
                assert theirs.num == first.num
                assert theirs.sum_squares == pytest.approx(first.sum_squares, rel=1e-4, abs=1e-30)
                # float32 sums in another order move an entry across a bucket edge at most rarely
                assert np.abs(_difference(_dense(theirs), _dense(first))).sum() <= 0.01 * first.num


def _dense(histo) -> dict:
    return {limit: count for limit, count in zip(histo.bucket_limit, histo.bucket) if count}


def _difference(a: dict, b: dict) -> list:
    return [a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)]
