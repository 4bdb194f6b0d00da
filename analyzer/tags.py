"""What a tag names: the parameter behind it (its writer's wrappers removed), whether that parameter
is a weight matrix the depth fit reads, whether its gradient is sparse by construction, and whether
a histogram holds a parameter's values rather than its gradient."""

from __future__ import annotations

import re

from .options import LIGHTNING_NORM

# Tags of parameters whose gradients do not follow the depth profile of the weights: biases and
# normalization parameters. They are analysed, but the depth fit uses the weights when it can.
_NOT_A_WEIGHT = ("bias", "beta", "gamma", "moving_", "running_", "norm")


# Attention's query and key projections: their gradients scale with how much the attention logits
# matter (little while attention is near uniform), not with depth; the depth fit leaves them out.
_ATTENTION_QUERY_KEY = re.compile(r"(?i)(^|[/._])(query|key|q_proj|k_proj|wq|wk)([/._]|$)")


# Around a parameter's name in a histogram or norm tag: gradaudit's and other writers' gradient
# wrappers (gradients/…, grad/…, …/gradient, ….grad), Lightning's norm prefix, and the wrappers of
# weight histograms (weights/…, params/…, Keras's …/histogram), so that a gradient histogram, a norm
# and a weight histogram of one parameter give the same name.
_PARAMETER_WRAPPERS = re.compile(
    rf"(?i)^({LIGHTNING_NORM}|gradients|grads?|weights?|params|parameters)/|(/gradient|_grad|\.grad|/grads?|/histogram)$"
)


def parameter_name(tag: str) -> str:
    """The parameter a tag describes, its writer's wrappers removed (``grad/0.weight``,
    ``grad_2.0_norm/0.weight`` and ``weights/0.weight`` → ``0.weight``)."""
    return _PARAMETER_WRAPPERS.sub("", _PARAMETER_WRAPPERS.sub("", tag))


def follows_depth(tag: str) -> bool:
    """A weight matrix's tag, whose gradient follows the depth profile: not a bias, a normalization
    parameter or attention's query and key (unlike is_weight_histogram, which asks whether a histogram
    holds a parameter's values rather than its gradient)."""
    lowered = parameter_name(tag).lower()
    return not any(marker in lowered for marker in _NOT_A_WEIGHT) and not _ATTENTION_QUERY_KEY.search(tag)


# Variables whose gradient only reaches the rows a batch looks up: Keras's Embedding (…/embeddings),
# PyTorch's nn.Embedding (embedding.weight, embed_tokens, wte) and lookup tables.
_SPARSE_BY_NAME = re.compile(r"(?i)embed|(^|[/._])(wte|tok_emb|lookup)([/._]|$)")


def is_sparse_by_name(tag: str) -> bool:
    return bool(_SPARSE_BY_NAME.search(tag))


# The parameter's own name at the end of a tag's parameter name: a kernel and its bias are one layer.
# Keras (kernel, bias, recurrent_kernel, depthwise_kernel, embeddings, gamma, beta, moving_mean, and
# tf.keras 2's kernel_0), PyTorch (weight, bias, weight_ih_l0, in_proj_weight), raw tf.summary and TF1
# code (h1/weights, h1/biases).
_PARAMETER = re.compile(
    r"[/.](((depthwise|pointwise|recurrent)_)?kernel|bias|biases|weights?|gamma|beta|embeddings|moving_mean|"
    r"moving_variance|running_mean|running_var|(?:weight|bias)_[a-z0-9_]+|in_proj_\w+)(_\d+)?$"
)


def is_bias(tag: str) -> bool:
    """The tag holds a layer's bias (``…/bias``, ``…/biases``, ``head.bias``, tf.keras 2's ``bias_0``),
    not a recurrent layer's ``bias_ih_l0``."""
    own = _PARAMETER.search(parameter_name(tag))
    return bool(own) and own.group(1) in ("bias", "biases")


def layer_path(tag: str) -> str:
    """The layer a tag belongs to, with its model scope (``gradients/sequential/dense_1/kernel`` and
    ``…/bias`` → ``sequential/dense_1``; ``grad/encoder.layers.1.linear1.weight`` →
    ``encoder.layers.1.linear1``)."""
    return _PARAMETER.sub("", parameter_name(tag))


_GRADIENT = re.compile(r"(?i)grad")


# Statistics a layer keeps, not parameters training moves: never read as weights.
_RUNNING_STATISTICS = re.compile(r"(?i)moving_(mean|variance)|running_(mean|var)|num_batches_tracked")


def names_a_gradient(tag: str) -> bool:
    """The tag says it holds a gradient ("grad" anywhere, any case)."""
    return bool(_GRADIENT.search(tag))


def is_weight_histogram(tag: str) -> bool:
    """A histogram of a parameter's values, not of its gradient: Keras's ``dense/kernel_0/histogram``
    and ``dense/kernel/histogram``, PyTorch-style ``weights/fc1.weight`` or ``fc1.weight``."""
    if _GRADIENT.search(tag) or _RUNNING_STATISTICS.search(tag):
        return False
    return bool(_PARAMETER.search(parameter_name(tag)))
