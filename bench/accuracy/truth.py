"""Labels from the TRUE gradients of a run and its TRUE training outcome (never from its histograms),
by rules written down here.

Per logged step the generator records, for every tag, the true gradient's RMS, its share of exact
zeros and whether any entry was NaN/Inf, and the training loss at that moment (the probe batch's for
Keras writers, the step's batch for PyTorch loops). For a vanishing recipe it also trains a fixed
version of the same model (ReLU with He initialisation) and records its loss. The loss "falls" when
its median over the last quarter of logged steps is at most 0.9 x its first value.

- exploding: a non-finite gradient or loss at any step; or the global L2 norm rising at least 100x
  above its early level (median of the first 3 logged steps) on at least 3 logged steps while the
  loss does not fall. Affected: the tags with non-finite values, else the tags whose RMS rose 100x
  above their own early level.
- vanishing: the first weight tag's RMS is below 1e-3 x the last weight tag's on at least half of the
  logged steps, and training stalls or crawls: the loss does not fall, or it falls less than half as
  much (relative to its first value) as the fixed version's. Affected: every tag whose median RMS is
  below 1e-3 x the last weight tag's.
- dead_units: some tag other than the first weight tag and the sparse ones has at least half of its
  entries exactly zero on at least half of the second half of the logged steps. Affected: those tags.
- healthy: none of these, and the loss falls.
- otherwise (no rule holds and the loss does not fall): "stalled", which no recipe intends (dropped).
When several hold, the label is the first in the order above.

Weight tags are tags whose name does not mention bias/beta/gamma/norm and that are not sparse by
construction (embedding tables, named by the generator from the model it built).
"""

from __future__ import annotations

import re

import numpy as np

NOT_A_WEIGHT = ("bias", "beta", "gamma", "moving_", "running_", "norm")
LOSS_FALLS_TO = 0.9  # last / first
CRAWL_SHARE = 0.5  # of the fixed version's relative fall


def is_weight(tag: str) -> bool:
    name = re.sub(r"(?i)^grad_([0-9.]+|inf)_norm/", "", tag)  # a per-parameter norm's tag says "norm"
    return not any(m in name.lower() for m in NOT_A_WEIGHT)


def step_stats(gradients: dict[str, np.ndarray]) -> dict[str, tuple[float, float, bool, int]]:
    """tag → (rms over finite entries, share of exact zeros, any non-finite, entries)."""
    out = {}
    for tag, g in gradients.items():
        g = np.asarray(g, dtype=np.float64).ravel()
        finite = np.isfinite(g)
        rms = float(np.sqrt(np.mean(g[finite] ** 2))) if finite.any() else float("nan")
        out[tag] = (rms, float(np.mean(g == 0)), bool((~finite).any()), int(g.size))
    return out


def last_loss(losses: list[float] | None) -> float:
    if not losses:
        return float("nan")
    return float(np.median(losses[-max(1, len(losses) // 4) :]))


def relative_fall(losses: list[float] | None) -> float:
    """1 - last/first: 0.9 means the loss fell to a tenth. NaN without a finite loss."""
    if not losses or not np.isfinite(losses[0]) or losses[0] <= 0:
        return float("nan")
    return 1.0 - last_loss(losses) / losses[0]


def label(
    tags: list[str],
    history: list[dict[str, tuple[float, float, bool, int]]],
    losses: list[float] | None = None,
    fixed_losses: list[float] | None = None,
    sparse: list[str] | None = None,
) -> tuple[str, list[str]]:
    """(label, affected tags) from the per-step true statistics of a run, tags in depth order."""
    sparse = set(sparse or [])
    rms = np.array([[h[t][0] if t in h else np.nan for t in tags] for h in history])  # [S, L]
    zeros = np.array([[h[t][1] if t in h else np.nan for t in tags] for h in history])
    bad = np.array([[h[t][2] if t in h else False for t in tags] for h in history])
    size = np.array([[h[t][3] if t in h else 0 for t in tags] for h in history])
    losses = list(losses or [])
    fall = relative_fall(losses)
    falls = bool(fall >= 1 - LOSS_FALLS_TO)

    if bad.any() or not np.isfinite(losses).all():
        affected = [t for i, t in enumerate(tags) if bad[:, i].any()]
        return "exploding", affected or list(tags)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt(np.nansum(rms**2 * size, axis=1))
        log_norm = np.log10(norm)
        early = np.median(log_norm[:3])
        if (log_norm >= early + 2).sum() >= 3 and not falls:
            log_rms = np.log10(rms)
            grown = [
                t for i, t in enumerate(tags) if np.nanmax(log_rms[:, i]) >= np.nanmedian(log_rms[:3, i]) + 2
            ]
            return "exploding", grown or list(tags)

        weights = [i for i, t in enumerate(tags) if is_weight(t) and t not in sparse]
        if len(weights) >= 2:
            first, last = weights[0], weights[-1]
            ratio = np.log10(rms[:, first]) - np.log10(rms[:, last])
            known = np.isfinite(ratio)
            fixed_fall = relative_fall(fixed_losses)
            crawls = not falls or (np.isfinite(fixed_fall) and fall < CRAWL_SHARE * fixed_fall)
            if known.any() and (ratio[known] <= -3).mean() >= 0.5 and crawls:
                relative = np.nanmedian(np.log10(rms) - np.log10(rms[:, [last]]), axis=0)
                return "vanishing", [t for i, t in enumerate(tags) if relative[i] <= -3 and t not in sparse]

        late = np.arange(len(history)) >= len(history) // 2
        first_weight = next((i for i, t in enumerate(tags) if is_weight(t)), None)
        dead = [
            t
            for i, t in enumerate(tags)
            if i != first_weight and t not in sparse and (zeros[late, i] >= 0.5).mean() >= 0.5
        ]
    if dead:
        return "dead_units", dead
    return ("healthy", []) if falls else ("stalled", [])


# --- the learning corpus (learning_runs.py): every step's loss and true gradients ----------------------
#
# - exploding: a non-finite loss at any step, or label() on the steps the scaler did not skip says
#   exploding; vanishing and dead_units likewise come from label().
# - unstable: the loss fell by less than half (median of its last 10 % of steps over the median of its
#   first 10 %), and either it spiked at least 3 separate times (a step at least 3x the median of the 20
#   steps before it and at least half the loss's first level, the median of its first 10 steps, so
#   that the noise of a loss near 0 is no spike; spikes closer than 5 steps are one), or the later
#   half of its 8-step means swings (90th over 10th percentile at least 10^0.5) with no downward
#   trend (the last quarter's median at least 0.9x the third quarter's).
# - stalled: the median of the last 10 % of steps is at least 0.9x the median of the first 10 %.
# - healthy: none of these.
SPIKE_RATIO, SPIKE_WINDOW, SPIKE_GAP, SPIKES = 3.0, 20, 5, 3
SWING_DECADES, UNSTABLE_FALLS_TO = 0.5, 0.5


def spike_steps(losses: np.ndarray) -> list[int]:
    """Every step whose loss is a spike: at least SPIKE_RATIO x the median of the SPIKE_WINDOW steps
    before it, and at least half the loss's first level."""
    floor = 0.5 * np.median(losses[:10])
    return [
        t
        for t in range(SPIKE_WINDOW, len(losses))
        if losses[t] >= max(floor, SPIKE_RATIO * np.median(losses[t - SPIKE_WINDOW : t]))
    ]


def spike_groups(losses: np.ndarray) -> list[list[int]]:
    """The spike steps in episodes: steps closer than SPIKE_GAP are one episode."""
    groups: list[list[int]] = []
    for t in spike_steps(losses):
        if groups and t - groups[-1][-1] < SPIKE_GAP:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


def spike_episodes(losses: np.ndarray) -> list[int]:
    return [group[0] for group in spike_groups(losses)]


def learning_label(tags: list[str], history: list, losses: list[float]) -> tuple[str, dict]:
    """(label, the figures it rests on) from every step's loss and true gradient statistics (None on a
    step the loss scaler skipped)."""
    losses = np.asarray(losses, dtype=np.float64)
    if not np.isfinite(losses).all():
        return "exploding", {"nonfinite_loss_at": int(np.flatnonzero(~np.isfinite(losses))[0])}
    steps = [h for h in history if h is not None]
    kept = [float(v) for h, v in zip(history, losses) if h is not None]
    gradient_label, _ = label(tags, steps, kept)
    start, end = _loss_ends(losses)
    detail = {
        "loss_first": round(start, 4),
        "loss_last": round(end, 4),
        "skipped_steps": len(history) - len(steps),
    }
    if gradient_label in ("exploding", "vanishing", "dead_units"):
        return gradient_label, detail
    spikes = spike_episodes(losses)
    swing, flat_later = _later_swing(losses)
    detail.update(spikes=len(spikes), later_swing_decades=round(swing, 3))
    if end > UNSTABLE_FALLS_TO * start and (len(spikes) >= SPIKES or (swing >= SWING_DECADES and flat_later)):
        return "unstable", detail
    if end >= LOSS_FALLS_TO * start:
        return "stalled", detail
    return "healthy", detail


def _loss_ends(losses: np.ndarray) -> tuple[float, float]:
    """The medians of the first and the last 10 % of steps."""
    edge = max(1, len(losses) // 10)
    return float(np.median(losses[:edge])), float(np.median(losses[-edge:]))


def _later_swing(losses: np.ndarray) -> tuple[float, bool]:
    """(decades between the 90th and 10th percentiles of the later half's 8-step means, whether the
    last quarter's median stays at least 0.9x the third quarter's)."""
    half = losses[len(losses) // 2 :]
    means = half[: len(half) // 8 * 8].reshape(-1, 8).mean(1)
    swing = float(np.log10(np.percentile(means, 90) / max(np.percentile(means, 10), 1e-12)))
    quarter = len(losses) // 4
    return swing, bool(np.median(losses[-quarter:]) >= 0.9 * np.median(losses[-2 * quarter : -quarter]))


# --- the truth at the steps a log holds ------------------------------------------------------------------
#
# A run logged every N steps holds the loss of one step in N. Where the truth calls a training unstable
# by its loss spikes alone (no swing of its later half), and fewer than SPIKES of its spike episodes
# hold a logged step that is itself a spike, no reading of that log can show the spikes: the truth at
# the logged steps is what the truth says without them, stalled where the loss did not fall, healthy
# where it did. Every other label stands: a diverged loss stays non-finite, gradient pathologies and
# a later half that swings span many steps. Measured on the true loss of every step, never on what a
# writer logged.


def logged_label(label: str, losses, logged_steps) -> str:
    """The learning label as seen at `logged_steps` (the steps at which the run logs its loss)."""
    if label != "unstable":
        return label
    losses = np.asarray(losses, dtype=np.float64)
    swing, flat_later = _later_swing(losses)
    if swing >= SWING_DECADES and flat_later:
        return label
    logged = {int(s) for s in logged_steps}
    if sum(1 for group in spike_groups(losses) if logged.intersection(group)) >= SPIKES:
        return label
    start, end = _loss_ends(losses)
    return "stalled" if end >= LOSS_FALLS_TO * start else "healthy"
