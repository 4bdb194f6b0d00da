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
