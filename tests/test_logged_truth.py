"""The truth at the steps a run logs (bench/accuracy/truth.logged_label), on hand-built losses: a training
unstable by its spikes is unstable at the steps a log holds only where at least three of its spike
episodes hold a logged spike step; a later half that swings, and every other label, stand."""

from __future__ import annotations

import numpy as np
import pytest
import truth  # bench/accuracy/ is on pytest's pythonpath

STEPS = 480
SPIKES_AT = (100, 200, 300, 400)


def spiky(fall_to: float, spikes=SPIKES_AT, height: float = 4.0) -> np.ndarray:
    """A loss from 1.0 down to `fall_to` along a line, small noise, one-step spikes `height` x."""
    rng = np.random.default_rng(0)
    loss = np.linspace(1.0, fall_to, STEPS) * (1 + 0.02 * rng.standard_normal(STEPS))
    for step in spikes:
        loss[step] *= height
    return loss


def every(n: int, phase: int = 0) -> np.ndarray:
    return np.arange(phase, STEPS, n)


def label_of(loss: np.ndarray) -> str:
    steady = [{"w": (1.0, 0.0, False, 10)}] * STEPS  # gradients that show no pathology
    return truth.learning_label(["w"], steady, loss)[0]


def test_the_hand_built_losses_are_what_the_truth_says():
    assert label_of(spiky(0.7)) == "unstable"  # 4 spikes, fell 30 %
    assert truth.spike_episodes(spiky(0.7)) == list(SPIKES_AT)
    assert label_of(spiky(0.7, spikes=())) == "healthy"
    assert label_of(spiky(0.95, spikes=())) == "stalled"


@pytest.mark.parametrize(
    "logged, fall_to, expected",
    [
        (every(1), 0.7, "unstable"),  # every spike logged
        (every(100), 0.7, "unstable"),  # steps 0, 100, ... hold all four
        (np.array([0, 100, 200, 300, 479]), 0.7, "unstable"),  # three of four: SPIKES
        (np.array([0, 100, 200, 479]), 0.7, "healthy"),  # two: the loss fell 30 %
        (every(48), 0.7, "healthy"),  # 96, 192, 288, 384: none
        (every(48), 0.95, "stalled"),  # none, and the loss fell 5 %
        (every(50), 0.7, "unstable"),
        (every(50, phase=25), 0.7, "healthy"),  # a phase between them
        (every(8), 0.7, "healthy"),  # 200 and 400 only
    ],
)
def test_an_unstable_training_by_spikes_is_unstable_where_three_spikes_are_logged(logged, fall_to, expected):
    assert truth.logged_label("unstable", spiky(fall_to), logged) == expected


def test_a_spike_episode_counts_once_however_many_of_its_steps_are_logged():
    loss = spiky(0.7, spikes=(100, 101, 102, 300))  # one three-step episode and one spike
    assert truth.spike_episodes(loss) == [100, 300]
    assert truth.logged_label("unstable", loss, [100, 101, 102, 300]) == "healthy"


def test_a_later_half_that_swings_stays_unstable_however_sparse_the_log():
    loss = np.ones(STEPS)
    loss[STEPS // 2 :] = np.where(np.arange(STEPS // 2) // 24 % 2, 3.5, 1.0)  # 24-step plateaus, 3.5x
    swing, flat = truth._later_swing(loss)
    assert swing >= truth.SWING_DECADES and flat
    assert truth.logged_label("unstable", loss, every(48)) == "unstable"


@pytest.mark.parametrize("label", ["healthy", "stalled", "exploding", "vanishing", "dead_units"])
def test_every_other_label_stands(label):
    assert truth.logged_label(label, spiky(0.7), every(48)) == label


def test_the_committed_corpus_logged_labels_follow_from_its_true_losses_and_logged_steps():
    import json

    import logged_truth
    from conftest import REPO

    from analyzer.runs import find_runs

    corpus = REPO / "bench" / "accuracy" / "learning_runs"
    labels = json.loads((corpus / "labels.json").read_text())["runs"]
    losses = json.loads((corpus / "truth_losses.json").read_text())
    runs = {run.name.split("/")[0]: run for run in find_runs([str(corpus)]).runs}
    unstable = {name: lab for name, lab in labels.items() if lab["label"] == "unstable"}
    assert len(unstable) >= 10 and all("logged_label" in lab for lab in labels.values())
    hidden = 0
    for name, lab in unstable.items():
        steps = logged_truth.logged_loss_steps(runs[name])
        assert truth.logged_label("unstable", losses[lab["recipe"]], steps) == lab["logged_label"], name
        hidden += lab["logged_label"] != "unstable"
    assert hidden >= 5  # spikes between the points of a log every 8 or 48 steps
