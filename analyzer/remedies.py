"""What to try about each finding, in order, with the reason and values taken from the evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .diagnosis import Finding


@dataclass(frozen=True)
class Remedy:
    action: str  # what to do, with a suggested value where the evidence gives one
    why: str  # why it helps with this finding


def remedies_for(finding: Finding) -> list[Remedy]:
    return _BY_KIND[finding.kind](finding)


def _vanishing(finding: Finding) -> list[Remedy]:
    decades = _finite(finding.evidence.get("median_depth_log10_ratio"))
    per_layer = _finite(finding.evidence.get("decades_per_layer"))
    loss = (
        f"{-decades:.1f} decades between first and last layer"
        if decades is not None
        else "the first layers get far less gradient than the last"
    )
    if per_layer is not None:
        loss += f", {abs(per_layer):.2f} decades per layer"
    return [
        Remedy(
            "Replace sigmoid/tanh hidden activations with ReLU or GELU, and initialise with He "
            "(kernel_initializer='he_normal')",
            f"saturating activations scale the backward signal by at most 0.25 (sigmoid) per layer; {loss}",
        ),
        Remedy(
            "Add normalization (BatchNormalization or LayerNormalization) between layers",
            "it re-centres pre-activations away from saturation, so the local derivatives stay near 1",
        ),
        Remedy(
            "Add residual (skip) connections around blocks of layers",
            "an identity path carries the gradient to early layers unattenuated",
        ),
        Remedy(
            "Check the initialisation scale (Glorot/He, not a tiny constant or normal(0, 1e-3))",
            "weights that are too small shrink the gradient by their scale at every layer",
        ),
    ]


def _exploding(finding: Finding) -> list[Remedy]:
    norm = _finite(finding.evidence.get("early_global_norm")) or _finite(
        finding.evidence.get("last_finite_global_norm")
    )
    clip = _suggested_clip_norm(norm)
    clip_text = f"clipnorm={clip:g}" if clip else "a global-norm clip near the healthy early norm"
    return [
        Remedy(
            f"Clip gradients by global norm ({clip_text}, e.g. keras.optimizers.Adam(clipnorm=...) or "
            "torch.nn.utils.clip_grad_norm_)",
            (f"the norm was {norm:.3g} while training was still stable; " if norm else "")
            + "clipping near the healthy norm caps the runaway steps without changing healthy ones",
        ),
        Remedy(
            "Lower the learning rate (try 1/10), or add warm-up",
            "a step size too large for the loss curvature makes each update overshoot and grow",
        ),
        Remedy(
            "Check initialisation and input scale (He/Glorot init, standardised inputs and targets)",
            "large weights or unscaled inputs multiply the gradient at every layer",
        ),
        Remedy(
            "Add normalization layers; for recurrent nets, prefer LSTM/GRU and clip",
            "they bound activation scale, and with it the backward signal",
        ),
    ]


def _dead_units(finding: Finding) -> list[Remedy]:
    share = _finite(finding.evidence.get("worst_zero_share"))
    how = "an estimated" if finding.evidence.get("zero_share_estimated") else ""
    if share is None:
        zeros = "many gradient entries are zero"
    elif how:
        zeros = f"an estimated {share:.0%} of the gradient entries are zero"
    else:
        zeros = f"{share:.0%} of the gradient entries are exactly zero"
    return [
        Remedy(
            "Use a leaky activation (LeakyReLU(negative_slope=0.01), ELU or GELU)",
            f"{zeros}: units whose ReLU input stays negative get no gradient and cannot recover",
        ),
        Remedy(
            "Lower the learning rate",
            "one large update can push a unit's bias so negative that it never activates again",
        ),
        Remedy(
            "Initialise biases at zero or slightly positive (e.g. 0.01) and use He initialisation",
            "negative biases start units in the dead region",
        ),
    ]


def _finite(value: object) -> float | None:
    """A number fit to print: evidence may hold NaN or infinities (a run that blew up)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _suggested_clip_norm(norm: object) -> float | None:
    if not isinstance(norm, (int, float)) or not math.isfinite(norm) or norm <= 0:
        return None
    # One significant digit, rounded up, so the healthy early norm passes unclipped.
    exponent = math.floor(math.log10(norm))
    return math.ceil(norm / 10**exponent) * 10**exponent


_BY_KIND = {"vanishing": _vanishing, "exploding": _exploding, "dead_units": _dead_units}
