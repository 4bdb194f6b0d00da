"""What to try about each finding, in order, with the reason and values taken from the evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .architecture import (
    DYING,
    FROM_PARAMETER_NAMES,
    SATURATING,
    Architecture,
    ModelLayer,
)
from .facts import NO_WARMUP, shown
from .findings import Finding
from .vocabulary import Kind, StallCause


@dataclass(frozen=True)
class Remedy:
    action: str  # what to do, with a suggested value where the evidence gives one
    why: str  # why it helps with this finding


def remedies_for(
    finding: Finding, model: Architecture | None = None, true_norms: bool = True
) -> list[Remedy]:
    """What to try, in order. With the `model`'s layers known, never what it already does, and with
    the layers and activations that cause the finding named. `true_norms`: the gradients' magnitudes
    are true ones (not scaled by mixed precision's unknown loss scale), so a clip value may be quoted."""
    model = model or Architecture(FROM_PARAMETER_NAMES, [])
    if finding.kind in _QUOTING_NORMS:
        return _QUOTING_NORMS[finding.kind](finding, model, true_norms)
    return _BY_KIND[finding.kind](finding, model)


def _vanishing(finding: Finding, model: Architecture) -> list[Remedy]:
    decades = _finite(_fact(finding, "median_depth_log10_ratio"))
    per_layer = _finite(_fact(finding, "decades_per_layer"))
    loss = (
        f"{-decades:.1f} decades between first and last layer"
        if decades is not None
        else "the first layers get far less gradient than the last"
    )
    if per_layer is not None:
        loss += f", {abs(per_layer):.2f} decades per layer"
    initialisation = Remedy(
        "Check the initialisation scale (Glorot/He, not a tiny constant or normal(0, 1e-3))",
        "weights that are too small shrink the gradient by their scale at every layer",
    )
    saturating = [
        layer for layer in model.layers if layer.activation in SATURATING and not layer.gated_recurrent
    ]
    out = []
    if saturating:
        names = sorted({layer.activation for layer in saturating})
        out.append(
            Remedy(
                f"Replace {' and '.join(names)} in {_named(saturating)} with ReLU or GELU, and initialise "
                "them with He (kernel_initializer='he_normal')",
                f"{_named(saturating)} use{'s' if len(saturating) == 1 else ''} {' and '.join(names)}, which "
                f"scale{'s' if len(names) == 1 else ''} the backward signal by at most 0.25 (sigmoid) or 1 "
                f"(tanh, at zero only) per layer; {loss}",
            )
        )
    elif model.known and model.layers:
        used = sorted({layer.activation for layer in model.layers if layer.activation not in ("", "linear")})
        cause = "the scale of the initial weights" + (
            "" if model.has_residual else ", or depth without residuals"
        )
        out.append(
            Remedy(
                initialisation.action,
                f"the model already uses {', '.join(used) or 'no saturating activation'}: saturation is not "
                f"the likely cause, {cause} is; {loss}",
            )
        )
    else:
        out.append(
            Remedy(
                "If hidden layers use sigmoid or tanh, replace them with ReLU or GELU and initialise with He "
                "(kernel_initializer='he_normal')",
                "saturating activations scale the backward signal by at most 0.25 (sigmoid) per layer; "
                f"{loss} (the run logged no model config, so its activations are not known here)",
            )
        )
    if not model.has_normalization:
        out.append(
            Remedy(
                "Add normalization (BatchNormalization or LayerNormalization) between layers",
                "it re-centres pre-activations away from saturation, so the local derivatives stay near 1",
            )
        )
    if not model.has_residual:
        out.append(
            Remedy(
                "Add residual (skip) connections around blocks of layers",
                "an identity path carries the gradient to early layers unattenuated",
            )
        )
    if out[0].action != initialisation.action:
        out.append(initialisation)
    return out


def _exploding(finding: Finding, model: Architecture, true_norms: bool = True) -> list[Remedy]:
    norm = _finite(_fact(finding, "early_global_norm")) or _finite(_fact(finding, "last_finite_global_norm"))
    norm = norm if true_norms else None
    clip = _suggested_clip_norm(norm)
    clip_text = f"clipnorm={clip:g}" if clip else "a global-norm clip near the healthy early norm"
    out = [
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
    ]
    plain_recurrent = [layer for layer in model.layers if layer.recurrent and not layer.gated_recurrent]
    if plain_recurrent:
        out.append(
            Remedy(
                f"Replace {_named(plain_recurrent)} ({plain_recurrent[0].class_name}) with LSTM or GRU",
                "their gates bound the recurrent signal that a plain RNN multiplies at every time step",
            )
        )
    if not model.has_normalization:
        # Without a config the model may be recurrent: the gated cells are worth naming.
        recurrent = "" if model.known else "; for recurrent nets, prefer LSTM/GRU and clip"
        out.append(
            Remedy(
                f"Add normalization layers{recurrent}",
                "they bound activation scale, and with it the backward signal",
            )
        )
    return out


def _dead_units(finding: Finding, model: Architecture, true_norms: bool = True) -> list[Remedy]:
    share = _finite(_fact(finding, "worst_zero_share"))
    how = "an estimated" if _fact(finding, "zero_share_estimated") else ""
    if share is None:
        zeros = "many gradient entries are zero"
    elif how:
        zeros = f"an estimated {share:.0%} of the gradient entries are zero"
    else:
        zeros = f"{share:.0%} of the gradient entries are exactly zero"
    affected = model.layers_of(finding.tags)
    dying = [layer for layer in affected if layer.activation in DYING]
    jump = _clip_before_the_jump(finding, true_norms)
    out = list(jump)
    if not affected or not model.known:
        out.append(
            Remedy(
                "Use a leaky activation (LeakyReLU(negative_slope=0.01), ELU or GELU)",
                f"{zeros}: units whose ReLU input stays negative get no gradient and cannot recover",
            )
        )
    elif dying:
        names = sorted({layer.activation for layer in dying})
        out.append(
            Remedy(
                f"Use a leaky activation in {_named(dying)} (now {' and '.join(names)}): "
                "LeakyReLU(negative_slope=0.01), ELU or GELU",
                f"{zeros}: units whose input stays in the flat part of their activation get no gradient and "
                "cannot recover",
            )
        )
    if not jump:  # the jump's remedy lowers it already
        out.append(
            Remedy(
                "Lower the learning rate",
                "one large update can push a unit's bias so negative that it never activates again",
            )
        )
    out.append(
        Remedy(
            "Initialise biases at zero or slightly positive (e.g. 0.01) and use He initialisation",
            "negative biases start units in the dead region",
        )
    )
    return out


def _clip_before_the_jump(finding: Finding, true_norms: bool) -> list[Remedy]:
    """Where the gradient norm jumped at the first updates as the units died, the jump is the first thing
    to stop."""
    step, decades = _fact(finding, "jump_step"), _finite(_fact(finding, "jump_decades"))
    if step is None or decades is None:
        return []
    norm = _finite(_fact(finding, "early_global_norm")) if true_norms else None
    clip = _suggested_clip_norm(norm)
    clip_text = f"clipnorm={clip:g}" if clip else "a global-norm clip near the early norm"
    return [
        Remedy(
            f"Clip gradients by global norm ({clip_text}), lower the learning rate or add warm-up",
            f"the gradient norm jumped {10**decades:.3g}x at the first updates (step {step}) as these units "
            "stopped activating: one such update can push their inputs negative for good",
        )
    ]


# Too large a step: the first remedy for a loss that swings, spikes or rises while gradients look normal.
_LOWER_RATE = Remedy(
    "Lower the learning rate (try 1/3 to 1/10)",
    "a step too large for the loss's curvature overshoots: the loss jumps, then recovers",
)


def _stalled(finding: Finding, model: Architecture) -> list[Remedy]:
    cause = _fact(finding, "cause")
    rate = Remedy(
        "Raise the learning rate (try 10x), or check the schedule did not bring it to zero",
        "the gradients reach every layer, yet the loss does not move: each step is too small to matter",
    )
    labels = Remedy(
        "Check the data and the labels: that inputs and targets are paired, shuffled together and scaled",
        "labels that do not match their inputs give gradients that cancel out: the loss stays at chance",
    )
    frozen = Remedy(
        "Check that the layers are trainable and handed to the optimizer (model.trainable, requires_grad, "
        "the optimizer's parameter groups), and that the learning rate is not 0",
        "frozen layers or a zero learning rate leave every weight where it started",
    )
    saturated = Remedy(
        "Average the loss over the batch (reduction='mean' or Keras's default, not 'sum') and lower the "
        "learning rate (try 1/10)",
        "a summed loss scales the first update with the batch size: it can blow the output layer's "
        "weights up, saturate its softmax or sigmoid, and leave every later gradient near zero",
    )
    output = Remedy(
        "Check the output layer for saturation: standardise inputs, initialise the last layer small "
        "(Glorot), and use logits with a from_logits loss rather than a softmax followed by a log",
        "a saturated softmax or sigmoid passes almost no gradient back: the loss stalls where it started",
    )
    if cause == StallCause.ZERO_RATE:
        return [
            Remedy("Set a non-zero learning rate", "the logged learning rate is 0: no weight can move"),
            frozen,
        ]
    if cause == StallCause.FROZEN:
        return [frozen, rate]
    if cause == StallCause.CHANCE:
        return [labels, rate, output]
    if cause in (StallCause.JUMP_THEN_COLLAPSE, StallCause.JUMP_THEN_STILL, StallCause.COLLAPSE):
        return [saturated, output, labels]
    if cause == StallCause.PATHOLOGY:
        return [
            Remedy(
                "Treat the gradient finding first (its remedies come before these), then read the loss again",
                "layers whose gradients vanished, exploded or died cannot learn: the flat loss follows",
            )
        ]
    if cause in (StallCause.SWINGS, StallCause.RISES):  # raising the rate would make it worse
        return [_LOWER_RATE, labels]
    return [rate, labels, frozen]


def _unstable(finding: Finding, model: Architecture, true_norms: bool) -> list[Remedy]:
    facts = finding.facts
    rate = _LOWER_RATE
    no_warmup = getattr(facts, "warmup", None) == NO_WARMUP
    warmup = Remedy(
        "Add a learning-rate warm-up (linear over the first few percent of steps)",
        ("the logged learning rate starts at its peak: " if no_warmup else "")
        + "early steps with an untrained model's large gradients are the ones that overshoot, as "
        "transformers trained with Adam and no warm-up show",
    )
    norm = getattr(facts, "typical_gradient_norm", None)
    at = f"{norm:.3g} (the run's median global norm)" if norm and true_norms else "their typical norm"
    clip = Remedy(
        f"Clip gradients by global norm near {at} "
        "(keras.optimizers.Adam(clipnorm=...) or torch.nn.utils.clip_grad_norm_)",
        "clipping caps the steps that throw the loss up without changing the others",
    )
    batches = Remedy(
        "Use larger batches (or accumulate gradients over several)",
        "a tiny batch's gradient is noisy: single batches throw the loss around",
    )
    return [warmup, rate, clip, batches] if no_warmup else [rate, warmup, clip, batches]


def _named(layers: list[ModelLayer]) -> str:
    """ "dense_1", "dense_1 and dense_2", or "dense_1 … dense_9 (9 layers)"."""
    names = [layer.path or layer.name for layer in layers]
    if len(names) <= 2:
        return " and ".join(names)
    if len(names) == 3:
        return f"{names[0]}, {names[1]} and {names[2]}"
    return f"{names[0]} … {names[-1]} ({len(names)} layers)"


def _fact(finding: Finding, name: str):
    """A value of the finding's evidence as shown (rounded), None where its rule measures no such thing."""
    return next((item.value for item in shown(finding.facts) if item.name == name), None)


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


_BY_KIND = {
    Kind.VANISHING: _vanishing,
    Kind.STALLED: _stalled,
}
# The remedies that may quote a gradient norm: only where the norms are true (not loss-scaled).
_QUOTING_NORMS = {Kind.EXPLODING: _exploding, Kind.UNSTABLE: _unstable, Kind.DEAD_UNITS: _dead_units}
