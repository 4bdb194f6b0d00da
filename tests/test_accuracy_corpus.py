"""The labelled benchmark corpus (bench/accuracy/runs) as fixtures: a regression in verdicts fails CI.

The runs were written by real Keras (gradaudit's callback, tf.summary, the seed's TensorBoard
subclass), PyTorch, tensorboardX and NaN-dropping writers; the labels come from the true gradients
and the true training outcome (bench/accuracy/truth.py). Both halves of the split by recipe must meet
the targets; bench/accuracy/score.py prints the full report.
"""

from __future__ import annotations

import json

import pytest
import score  # bench/accuracy/ is on pytest's pythonpath
from conftest import REPO

CORPUS = REPO / "bench" / "accuracy" / "runs"


@pytest.fixture(scope="module")
def labels():
    return json.loads((CORPUS / "labels.json").read_text())["runs"]


@pytest.fixture(scope="module")
def rows():
    return score.score(CORPUS)


def test_corpus_spans_writers_architectures_and_classes(labels):
    assert len(labels) >= 100
    for split in score.SPLITS:
        for label in score.CLASSES:
            writers = {v["writer"] for v in labels.values() if v["label"] == label and v["split"] == split}
            assert writers, (split, label)
    for label in score.CLASSES:
        writers = {v["writer"] for v in labels.values() if v["label"] == label}
        assert len(writers) >= 3, (label, writers)  # no writer predicts a label
    recipes = {v["recipe"] for v in labels.values()}
    for architecture in ("cnn", "lstm", "gru", "embed", "transformer"):
        assert any(architecture in r for r in recipes), architecture
    # the split is by recipe: no recipe has runs on both sides
    assert not {v["recipe"] for v in labels.values() if v["split"] == "dev"} & {
        v["recipe"] for v in labels.values() if v["split"] == "held_back"
    }


# Misses measured when the rules were last frozen, each with why; any other miss fails. They are
# figures to improve on, not targets met: bench/accuracy/score.py prints them, the README states them.
KNOWN_MISSES = {
    # a PyTorch run whose log holds two steps before the writer refused NaN: nothing to judge
    "explode_deep_relu__torch__every4": "healthy",
    # dead units in TF2's 30 even buckets that no heavy-tailed fit can separate from small values;
    # its loss does not move (1.387 → 1.386), so the verdict says stalled, not healthy
    "cnn_dead_bias_momentum__seed__every0": "stalled",
    "cnn_dead_bias_deep__seed__every0": "healthy",  # held back, the same cause
}


@pytest.mark.parametrize("split", score.SPLITS)
def test_no_verdict_regresses(rows, split):
    misses = {name: got for name, s, label, got, _ in rows if s == split and label != got}
    assert misses.items() <= KNOWN_MISSES.items()


def test_the_dev_half_meets_the_targets(rows):
    figures = score.split_score(rows, "dev")
    assert figures.accuracy >= 0.95
    assert figures.false_alarms == []
    assert all(o >= 0.8 for o in figures.overlaps), figures.overlaps


NORM_CORPUS = REPO / "bench" / "accuracy" / "norm_runs"
# The norms-only corpus's miss when it was first scored: a GRU diverging under SGD whose total norm
# (the only evidence of a Hugging-Face-style log) stays finite and noisy (33 to 450, three spikes,
# no sustained two-decade rise; trend interval -2.8 to +3.1 decades per 1k steps) while its loss
# sits at 1e4 from the first logged step, so the loss shows no rise either: it is called stalled (its
# loss does not fall), no longer healthy.
# A slow learner: its true loss fell 13 % (0.72 → 0.63), its logged loss zigzags between batches and
# fell 9 % between the medians of its first and last tenths (7 % along its trend), inside the stall
# band of 10 %: called stalled, a dev run's false alarm of the stall rule as the issue defines it.
KNOWN_NORM_MISSES = {
    "gru_explode_sgd__norms_total__every2": "stalled",
    "embed_bag_sgd__norms__every8": "stalled",
}
KNOWN_NORM_FALSE_ALARMS = {"embed_bag_sgd__norms__every8"}


def test_norms_only_corpus_meets_the_targets_with_only_its_known_miss():
    """Gradient norms logged as scalars (Lightning's per-parameter tags, Hugging Face's total), no
    histograms: each run judged only for what its evidence can show (score.expected_verdict)."""
    rows = score.score(NORM_CORPUS)
    assert len(rows) >= 20 and {truth for _, _, truth, _, _ in rows} >= {"healthy", "vanishing", "exploding"}
    misses = {name: got for name, _, truth, got, _ in rows if got != truth}
    assert misses == KNOWN_NORM_MISSES
    for split in score.SPLITS:
        figures = score.split_score(rows, split)
        assert set(figures.false_alarms) <= KNOWN_NORM_FALSE_ALARMS, split
        assert all(o >= 0.8 for o in figures.overlaps), split


def test_weight_only_benchmark_meets_the_targets():
    """The runs that logged Keras's own weight histograms beside the true gradients, judged from their
    weights alone (vanishing and exploding; dead units are not visible in weights)."""
    rows = score.score(CORPUS, weights=True)
    assert len(rows) >= 30 and {truth for _, _, truth, _, _ in rows} >= {"healthy", "vanishing", "exploding"}
    for split in score.SPLITS:
        figures = score.split_score(rows, split)
        assert figures.accuracy >= 0.9 and not figures.false_alarms, split


LEARNING_CORPUS = REPO / "bench" / "accuracy" / "learning_runs"
# The learning corpus (bench/accuracy/learning_runs.py) as committed: every run logged every 48 steps,
# and the smaller ones every 8 and every step (the others, up to 120 MB each with PyTorch's default
# buckets, are regenerated by the script). Its first held-back recipes were scored once before any rule
# was changed for them (81.0 % of 42 runs, README), its second set once after (18 of 18); these are the
# misses left, each with why; the third set (unstable runs), scored once, 15 of 18; the fourth, scored
# once, 23 of 24; the fifth (its loss logged every step), scored once, 21 of 24.
KNOWN_LEARNING_MISSES = {
    # diverged at step 3 (the loss NaN): a log every 8 or 48 steps holds step 0 alone
    "amp_cnn_diverging__torch__every8": "insufficient_data",
    "amp_cnn_diverging__torch__every48": "insufficient_data",
    # six loss spikes between logged steps: ten points every 48 steps show a loss that fell from its
    # untrained start (1.39 → 1.07), not the spikes
    "lstm_adam_fast_tiny_batches__torch__every48": "healthy",
    # dev: the truth's spikes on a loss near 0.2 (AMP, momentum); ten points show it flat
    "amp_bn_cnn__torch__every48": "stalled",
    # dev: true first-layer gradients 1e-3 of the last (tanh saturated by Adam at 0.05); batches of
    # 8 leave most ReLU-free tanh gradients at exact 0 in the logged histograms
    "tanh_mlp_adam_tiny_batches__torch__every48": "dead_units",
    # the third held-back set's misses left, both logged every 48 steps (ten points of a noisy loss):
    # 17 spikes between them; a loss that truly fell 37 % whose ten points swing. (Its GRU whose norm
    # truly rose 100x, at one logged point, is exploding since a rise lasting to the last point along
    # a rising line counts.) bench/accuracy/sparse_logging.py measures what ten points can show.
    "bn_cnn_adam_fast_tiny_batches__torch__every48": "healthy",
    "keras_lstm_adam_fast_tiny_batches__tfsummary__every48": "unstable",
    # the fourth held-back set's one miss, scored once (23 of 24): a float16 CNN whose loss fell from
    # 1.43 to about 0.2 within its first 48 steps; ten points of minibatch noise around that level
    # swing 7.4x in the later half (0.016 to 0.42). A floor on the swing's top (half the first loss,
    # as spikes have) cleared it but turned 4 phase-thinned unstable runs healthy (sparse_logging.py)
    "amp_cnn_scaled__tbx__every48": "unstable",
    # the fifth set's one miss, scored once (21 of 24; its 9 unstable runs right every 1, 8 and 48 steps
    # with the loss logged every step): a CNN under momentum SGD at 0.2 whose loss spiked to 206x within
    # its first 40 steps, after which every ReLU of its 4 tags gave exactly zero. The truth orders
    # exploding first; the rules name the dead units, with the spikes and the stall beside them
    "cnn_momentum_fast_tiny_batches__torch+loss__every8": "dead_units",
    "cnn_momentum_fast_tiny_batches__torch+loss__every48": "dead_units",
    # the sixth set's misses, scored once (22 of 24): a Keras GRU under SGD at 2.0 on batches of 4 whose
    # loss fell from 1.53 to 0.28, then rose to about 10 and swings there (chance: 1.39). Every 8 steps its
    # logged norm stays below 100x its early level and its loss below 100x its first value: the spikes
    # read unstable, not a divergence. (Every 48 it read dead units, estimated in its GRU bias, ahead of
    # the loss's divergence; a diverged loss is critical since.)
    "keras_gru_sgd_fast_tiny_batches__tfsummary__every8": "unstable",
    # the seventh set (20 of 24), its BatchNorm CNN under momentum SGD at 0.1 on batches of 16 logged every
    # 48 steps: nine 3-4x loss spikes of one step each fall between its ten points, which read flat
    "bn_cnn_momentum_fast_batches_of_16__torch__every48": "stalled",
    # the ninth set (21 of 24), its Keras LSTM under SGD at 1.0 on batches of 8, unstable in truth by three
    # spikes: every 8 and 48 steps they fall between logged points (every step, four loss spikes of 3-4x
    # came with norms of 1.8-2.2x, one of them at the 2x asked)
    "keras_lstm_sgd_fast_batches_of_8__tfsummary__every8": "healthy",
    "keras_lstm_sgd_fast_batches_of_8__tfsummary__every48": "healthy",
    # the eleventh set (21 of 24 on the full truth, 23 of 24 on the truth at the logged steps): a Keras
    # BatchNorm CNN under Adam at 1e-2 on batches of 16, whose 11 spikes every 8 and 48 steps fall between
    # logged points (logged_label: healthy there), and a GRU over embeddings under AdamW with a cosine
    # schedule whose loss truly fell 15 % and whose ten points sit at 0.95x the chance level (1.31 of ln 4)
    "keras_bn_cnn_adam_fast_batches_of_16__tfsummary__every8": "healthy",
    "keras_bn_cnn_adam_fast_batches_of_16__tfsummary__every48": "healthy",
    "embed_gru_adamw_cosine__torch__every48": "stalled",
    # the twelfth set (18 of 24; 19 on the truth at the logged steps): a GRU under RMSprop at 1e-2 on
    # batches of 8 (healthy in truth: two spike episodes, a fall of 54 %) whose four loss spikes between
    # the histograms' points stand on the loss alone, its line falling 45 %; a Keras CNN on labels
    # shuffled apart from its inputs whose ten points fell 13 % (5 % in truth); a residual CNN under
    # momentum SGD whose 13 spikes fall between the points every 48 steps (logged_label: healthy)
    "gru_rmsprop_fast_batches_of_8__tbx+loss__every48": "unstable",
    "keras_cnn_labels_shuffled_apart__tfsummary__every48": "healthy",
    "residual_cnn_momentum_fast_batches_of_16__tbx__every48": "healthy",
}
KNOWN_LEARNING_FALSE_ALARMS = {
    "keras_lstm_adam_fast_tiny_batches__tfsummary__every48",
    "amp_cnn_scaled__tbx__every48",
    "embed_gru_adamw_cosine__torch__every48",
    "gru_rmsprop_fast_batches_of_8__tbx+loss__every48",
}


def test_learning_corpus_keeps_its_verdicts():
    """Stalled, unstable and healthy trainings and mixed precision, each logged every 1, 8 and 48 steps
    by the same training; labels from the loss and true gradients at every step (truth.learning_label)."""
    rows = score.score(LEARNING_CORPUS)
    labels = {label for _, _, label, _, _ in rows}
    assert {"healthy", "stalled", "unstable", "exploding"} <= labels
    misses = {name: got for name, _, label, got, _ in rows if got != label}
    assert misses == KNOWN_LEARNING_MISSES
    for split in score.SPLITS:
        assert set(score.split_score(rows, split).false_alarms) <= KNOWN_LEARNING_FALSE_ALARMS, split
