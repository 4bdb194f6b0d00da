"""The labelled benchmark corpus (bench/accuracy/runs) as fixtures: a regression in verdicts fails CI.

The runs were written by real Keras, PyTorch, tensorboardX and tf.summary writers; the labels come
from the true gradients (bench/accuracy/truth.py). See bench/accuracy/score.py for the full report.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from analyzer.batch import BatchOptions, process_runs
from analyzer.runs import find_runs

CORPUS = REPO / "bench" / "accuracy" / "runs"


@pytest.fixture(scope="module")
def scored():
    labels = json.loads((CORPUS / "labels.json").read_text())["runs"]
    outputs = {
        o.name.split("/")[0]: o for o in process_runs(find_runs([str(CORPUS)]).runs, BatchOptions(html=False))
    }
    return labels, outputs


def test_corpus_spans_writers_and_classes(scored):
    labels, _ = scored
    assert len(labels) >= 40
    for label in ("healthy", "vanishing", "exploding", "dead_units"):
        writers = {v["writer"] for v in labels.values() if v["label"] == label}
        assert len(writers) >= 3, (label, writers)  # no writer predicts a label


def test_every_verdict_matches_the_true_label_and_layers(scored):
    labels, outputs = scored
    misses = {
        name: (truth["label"], outputs[name].verdict)
        for name, truth in labels.items()
        if outputs[name].verdict != truth["label"]
    }
    assert misses == {}
    for name, truth in labels.items():
        if truth["label"] == "healthy":
            continue
        finding = next(f for f in outputs[name].document["findings"] if f["kind"] == truth["label"])
        named, true = set(finding["layers"]), set(truth["layers"])
        assert len(named & true) / len(named | true) >= 0.8, name
