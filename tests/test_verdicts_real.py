"""The four ways verdicts went wrong on the models people train, each on a real training written by a
real writer (the accuracy corpus's own builders and writers, bench/accuracy/make_runs.py)."""

from __future__ import annotations

import pytest

from analyzer.batch import BatchOptions, process_run
from analyzer.runs import find_runs

pytestmark = [pytest.mark.tf, pytest.mark.torch, pytest.mark.slow]

pytest.importorskip("tensorflow")
make_runs = pytest.importorskip("make_runs")


def _train_and_report(tmp_path, recipe, writer, every, epochs, seed=0, **options):
    """Train `recipe`, log it with `writer`, and analyse the run as `gradaudit report` does."""
    log_dir = tmp_path / "run"
    make_runs.train(recipe, writer, log_dir, every, epochs, seed, "")
    [run] = find_runs([str(log_dir)]).runs
    return process_run(run, BatchOptions(html=False, **options)).document


def _findings(document, kind):
    return [f for f in document["findings"] if f["kind"] == kind]


def test_an_embedding_over_a_real_vocabulary_is_shown_apart_not_judged(tmp_path):
    # A PyTorch transformer block over a 20,000-word vocabulary: only the rows a batch looks up get
    # a gradient, so most of the embedding's entries are exactly zero at every step.
    recipe = ("healthy", "tok", [48], "gelu", {"arch": "transformer", "opt": ("adam", 1e-3)})
    document = _train_and_report(tmp_path, recipe, "torch", 16, 4)
    assert document["sparse_layers"] == ["grad/embedding.weight"]
    embedding = next(layer for layer in document["layers"] if layer["tag"] == "grad/embedding.weight")
    assert embedding["zero_share_last"] > 0.9
    assert not [f for f in document["findings"] if "grad/embedding.weight" in f["layers"]]
    assert document["verdict"] == "healthy", document["reason"]


def test_coarse_tf2_buckets_claim_dead_units_only_far_above_a_heavy_tailed_fit(tmp_path):
    # A healthy ReLU CNN logged the seed's way (tf.summary.histogram: 30 even buckets): its
    # gradients are sharply peaked, so most of their mass falls in the bucket that holds zero.
    cnn = ("healthy", "img", [8, 8, 16], "relu", {"arch": "cnn", "opt": ("adam", 2e-3)})
    healthy = _train_and_report(tmp_path / "cnn", cnn, "seed", 0, 8)
    assert not _findings(healthy, "dead_units"), healthy["findings"]
    assert healthy["verdict"] == "healthy", healthy["reason"]
    # A ReLU net with most units dead from a negative bias, logged in the same buckets.
    dead = ("dead_units", "cls", [64] * 3, "relu", {"opt": ("adam", 1e-3), "bias_mean": -2.0})
    document = _train_and_report(tmp_path / "dead", dead, "keras_tf2", 8, 8)
    [finding] = _findings(document, "dead_units")
    assert document["verdict"] == "dead_units"
    assert "estimated" in finding["summary"] and "exactly" not in finding["summary"]
    assert finding["evidence"]["zero_share_estimated"] is True


def _tf2_histograms(log_dir, dead_share: float, seed: int = 0) -> None:
    """Three 64x64 gradients of N(0, 1e-3) logged by tf.summary.histogram (TF2's 30 even buckets) over
    20 steps, the middle one with `dead_share` of exact zeros; on steps 11, 13, ..., 19 eight of its
    entries are outliers up to 0.5, as at the loss spikes of a seed-style run."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for step in range(20):
            for i in range(3):
                g = rng.normal(size=(64, 64)) * 1e-3
                if i == 1:
                    g[rng.random(g.shape) < dead_share] = 0.0
                    if step > 10 and step % 2:
                        g.flat[:8] = [0.5, -0.3, 0.1, 0.05, -0.04, 0.03, 0.02, -0.02]
                tf.summary.histogram(f"grad/dense_{i}/kernel", g, step=step)
    writer.close()


def test_a_step_whose_range_a_few_outliers_widened_shows_no_dead_units_in_tf2_buckets(tmp_path):
    # Eight outliers stretch the 30 even buckets 100-fold: the ordinary entries all fall in the
    # bucket holding zero, with the outliers' tail beside it; before, "an estimated 50 % zero".
    _tf2_histograms(tmp_path / "outliers", dead_share=0.0)
    [run] = find_runs([str(tmp_path / "outliers")]).runs
    document = process_run(run, BatchOptions(html=False)).document
    assert document["verdict"] == "healthy", document["findings"]
    # The same outliers beside 90 % exact zeros: the steps they left alone still show the dead units.
    _tf2_histograms(tmp_path / "dead", dead_share=0.9)
    [run] = find_runs([str(tmp_path / "dead")]).runs
    document = process_run(run, BatchOptions(html=False)).document
    [finding] = _findings(document, "dead_units")
    assert finding["layers"] == ["grad/dense_1/kernel"] and document["verdict"] == "dead_units"


def test_a_writer_that_drops_nan_leaves_missing_entries_that_count_as_exploding(tmp_path):
    # A linear MLP whose momentum SGD diverges; its writer leaves NaN/Inf out of every histogram and
    # (as Hugging Face does by default) logs no non-finite loss.
    recipe = ("exploding", "reg10", [64] * 4, "linear", {"opt": ("sgdm", 0.003)})
    document = _train_and_report(tmp_path, recipe, "dropnan", 1, 4)
    assert document["verdict"] == "exploding", document["reason"]
    first = document["findings"][0]
    assert first["severity"] == "critical" and "missing" in first["summary"]
    assert first["evidence"]["steps_with_missing_entries"] > 0


def test_a_depth_ratio_while_the_loss_falls_is_kept_low_and_sets_no_verdict(tmp_path):
    # Attention written out with plain Dense projections: the query and key projections get little
    # gradient while attention is near uniform, yet the model trains (its loss falls 0.75 → 3e-4).
    recipe = ("healthy", "tok", [32], "gelu", {"arch": "handmade_attention", "opt": ("adam", 2e-3)})
    gated = _train_and_report(tmp_path, recipe, "keras", 8, 8)
    [finding] = _findings(gated, "vanishing")
    assert finding["gated"] and finding["severity"] == "low"
    assert finding["evidence_source"] == "gradients and loss"
    assert gated["loss"]["gate"] == "still falling" and gated["loss"]["training_series"] == "probe/loss"
    assert gated["verdict"] == "healthy", gated["reason"]
    # The same run read without its loss keeps the gradient rule: the gate is what changed the verdict.
    [run] = find_runs([str(tmp_path / "run")]).runs
    ungated = process_run(run, BatchOptions(html=False, loss_pattern="^$")).document
    assert ungated["verdict"] == "vanishing"
    assert _findings(ungated, "vanishing")[0]["evidence_source"] == "gradients"
