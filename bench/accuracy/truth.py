"""Labels from the TRUE gradients of a run (never from its histograms), by rules written down here.

Per logged step the generator records, for every tag, the true gradient's RMS, its share of exact
zeros and whether any entry was NaN/Inf. From those:

- exploding: a non-finite gradient at any step, or the global L2 norm rising at least 100x above its
  early level (median of the first 3 logged steps) on at least 3 logged steps. Affected: the tags
  with non-finite values, else the tags whose RMS rose 100x above their own early level.
- vanishing: the first weight tag's RMS is below 1e-3 x the last weight tag's on at least half of
  the logged steps (steps with all-finite gradients). Affected: every tag whose median RMS is below
  1e-3 x the last weight tag's.
- dead_units: some tag other than the first weight tag has at least half of its entries exactly zero
  on at least half of the second half of the logged steps. Affected: those tags.
- healthy: none of these. When several hold, the label is the first in the order above.

Weight tags are tags whose name does not mention bias/beta/gamma/norm (as the analyzer's depth fit).
"""

from __future__ import annotations

import numpy as np

NOT_A_WEIGHT = ("bias", "beta", "gamma", "moving_", "running_", "norm")


def is_weight(tag: str) -> bool:
    return not any(m in tag.lower() for m in NOT_A_WEIGHT)


def step_stats(gradients: dict[str, np.ndarray]) -> dict[str, tuple[float, float, bool, int]]:
    """tag → (rms over finite entries, share of exact zeros, any non-finite, entries)."""
    out = {}
    for tag, g in gradients.items():
        g = np.asarray(g, dtype=np.float64).ravel()
        finite = np.isfinite(g)
        rms = float(np.sqrt(np.mean(g[finite] ** 2))) if finite.any() else float("nan")
        out[tag] = (rms, float(np.mean(g == 0)), bool((~finite).any()), int(g.size))
    return out


def label(tags: list[str], history: list[dict[str, tuple[float, float, bool, int]]]) -> tuple[str, list[str]]:
    """(label, affected tags) from the per-step true statistics of a run, tags in depth order."""
    rms = np.array([[h[t][0] if t in h else np.nan for t in tags] for h in history])  # [S, L]
    zeros = np.array([[h[t][1] if t in h else np.nan for t in tags] for h in history])
    bad = np.array([[h[t][2] if t in h else False for t in tags] for h in history])
    size = np.array([[h[t][3] if t in h else 0 for t in tags] for h in history])

    if bad.any():
        return "exploding", [t for i, t in enumerate(tags) if bad[:, i].any()]
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt(np.nansum(rms**2 * size, axis=1))
        log_norm = np.log10(norm)
        early = np.median(log_norm[:3])
        if (log_norm >= early + 2).sum() >= 3:
            log_rms = np.log10(rms)
            grown = [
                t for i, t in enumerate(tags) if np.nanmax(log_rms[:, i]) >= np.nanmedian(log_rms[:3, i]) + 2
            ]
            return "exploding", grown or list(tags)

        weights = [i for i, t in enumerate(tags) if is_weight(t)]
        if len(weights) >= 2:
            first, last = weights[0], weights[-1]
            ratio = np.log10(rms[:, first]) - np.log10(rms[:, last])
            known = np.isfinite(ratio)
            if known.any() and (ratio[known] <= -3).mean() >= 0.5:
                relative = np.nanmedian(np.log10(rms) - np.log10(rms[:, [last]]), axis=0)
                return "vanishing", [t for i, t in enumerate(tags) if relative[i] <= -3]

        late = np.arange(len(history)) >= len(history) // 2
        first_weight = weights[0] if weights else None
        dead = [t for i, t in enumerate(tags) if i != first_weight and (zeros[late, i] >= 0.5).mean() >= 0.5]
    if dead:
        return "dead_units", dead
    return "healthy", []
