"""Train small real networks and write labelled gradient logs: the accuracy benchmark's corpus.

    python bench/accuracy/make_runs.py [OUTDIR]   # default bench/accuracy/runs; needs tf, torch, tensorboardX

Writers: Keras with gradaudit's callback (``keras``), Keras with a plain ``tf.summary.histogram``
callback every N batches (``keras_tf2``), the seed's way (``seed``: a ``TensorBoard`` subclass that
takes the gradients of one batch with ``GradientTape`` at each epoch's end and writes
``tf.summary.histogram`` per variable, beside Keras's own weight histograms and ``epoch_loss``),
PyTorch's ``SummaryWriter.add_histogram`` (``torch``), tensorboardX's (``tbx``), and a PyTorch loop
whose writer leaves NaN/Inf out of each histogram (``dropnan``). Architectures: MLPs, CNNs (with and
without BatchNorm, max pooling, residual blocks), LSTM/GRU, embeddings over a 20,000-word
vocabulary and a transformer block (multi-head attention, LayerNorm, residuals, GELU).

Every logged step also records the TRUE gradients' statistics and the training loss, and
``truth.py`` labels the run from those and from how a fixed version of the same model trains; a run
whose label is not the one its recipe intended is dropped (and said so). Data are made here, seeded.

The split is by recipe: every recipe the rules were tuned on is ``dev`` (the first corpus's, and
NEW_RECIPES and SECOND_RECIPES, each held back once, scored, then tuned on); HELD_BACK_RECIPES, written
after the rules were last frozen, are ``held_back`` and scored once. A dev run over MAX_DEV_RUN_KB is
left out of the committed corpus (legacy writers' 600-bucket histograms make a few runs large), so
that it stays near 40 MB; held-back runs are all kept. Labels and splits go to OUTDIR/labels.json.

    python bench/accuracy/make_runs.py --norms [OUTDIR]   # default bench/accuracy/norm_runs

writes the norms-only corpus: the newer recipes trained in PyTorch, each logging gradient norms as
scalars and no histograms, as Lightning's grad_norm() does (every parameter and the total) or as
Hugging Face's Trainer does (the total only), labelled from the true gradients as above.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent

import numpy as np  # noqa: E402
import truth  # noqa: E402

FEATURES, CLASSES, SAMPLES = 20, 4, 2048
IMAGE, STEPS_PER_SEQUENCE, VOCABULARY, TOKENS = 12, 20, 20_000, 16
BATCH = 64


# --- data --------------------------------------------------------------------------------------------


def classification(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(FEATURES, 32))) @ rng.normal(size=(32, CLASSES))).argmax(1)
    return x, y.astype("int64")


def regression(seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    return x, ((x @ rng.normal(size=(FEATURES, 1))) * scale).astype("float32")


def images(seed, scale=None):
    """12x12 one-channel images: a bright 4x4 blob in one of four quadrants, noise elsewhere; the class
    is the quadrant, or (regression) the blob's brightness times `scale`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, size=(SAMPLES, IMAGE, IMAGE, 1)).astype("float32")
    quadrant = rng.integers(0, 4, SAMPLES)
    brightness = rng.uniform(0.5, 2.0, SAMPLES).astype("float32")
    for i, (q, b) in enumerate(zip(quadrant, brightness)):
        r, c = 1 + 6 * (q // 2) + rng.integers(0, 2), 1 + 6 * (q % 2) + rng.integers(0, 2)
        x[i, r : r + 4, c : c + 4, 0] += b
    if scale is None:
        return x, quadrant.astype("int64")
    return x, (brightness[:, None] * scale).astype("float32")


def sequences(seed, scale=None):
    """20 steps of 4 features; the class is the feature with the largest mean over the first 5 steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, STEPS_PER_SEQUENCE, 4)).astype("float32")
    early = x[:, :5].mean(axis=1)
    if scale is None:
        return x, early.argmax(1).astype("int64")
    return x, (early @ np.array([1.0, -1.0, 0.5, 2.0], "float32"))[:, None] * scale


def tokens(seed, scale=None):
    """16 tokens from a Zipf-like law over a 20,000-word vocabulary; the class says whether more than
    a third of them come from a fixed set of 'positive' words (about half the frequent ones)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, VOCABULARY + 1) ** 1.05
    x = rng.choice(VOCABULARY, size=(SAMPLES, TOKENS), p=p / p.sum()).astype("int64")
    positive = np.random.default_rng(99).random(VOCABULARY) < 0.5
    share = positive[x].mean(axis=1)
    if scale is None:
        return x.astype("int32"), (share > np.median(share)).astype("int64")
    return x.astype("int32"), ((share - 0.5) * scale).astype("float32")[:, None]


def data_for(task, seed):
    """(x, y, outputs): outputs is the number of classes, or 0 for a regression."""
    kind, _, scale = task.partition(":")
    scale = float(scale) if scale else None
    if kind == "cls":
        return (*classification(seed), CLASSES)
    if kind.startswith("reg"):
        return (*regression(seed, float(kind[3:])), 0)
    maker = {"img": images, "seq": sequences, "tok": tokens}[kind]
    x, y = maker(seed, scale)
    return x, y, 0 if scale is not None else (2 if kind == "tok" else 4)


# --- recipes -----------------------------------------------------------------------------------------
# name: (intended label, task, hidden widths, activation, options). The first corpus's recipes (plain
# MLPs) come first: the rules were tuned on them, so they are all "dev".

RECIPES = {
    # name: intended, task, hidden widths, activation, options
    "sigmoid_deep10_sgd": ("vanishing", "cls", [32] * 10, "sigmoid", {"opt": ("sgd", 0.05)}),
    "sigmoid_deep8_adam": ("vanishing", "cls", [48] * 8, "sigmoid", {"opt": ("adam", 1e-3)}),
    "sigmoid_deep12_sgd": ("vanishing", "cls", [24] * 12, "sigmoid", {"opt": ("sgd", 0.1)}),
    "tanh_deep14_smallinit": (
        "vanishing",
        "cls",
        [32] * 14,
        "tanh",
        {"opt": ("sgd", 0.05), "init_std": 0.08},
    ),
    "explode_sgd_targets10": ("exploding", "reg10", [64] * 3, "relu", {"opt": ("sgd", 0.003)}),
    "explode_sgd_momentum": ("exploding", "reg10", [64] * 3, "relu", {"opt": ("sgdm", 0.001)}),
    "explode_large_init": ("exploding", "reg10", [64] * 4, "relu", {"opt": ("sgd", 0.002), "init_std": 0.5}),
    "explode_slow": ("exploding", "reg10", [64] * 3, "relu", {"opt": ("sgd", 0.0016)}),
    "explode_deep_relu": ("exploding", "reg10", [64] * 6, "relu", {"opt": ("sgd", 0.004)}),
    "explode_adam_high_lr": ("exploding", "reg1000", [64] * 3, "relu", {"opt": ("sgdm", 0.0005)}),
    # activations that cannot die, so divergence shows as growth and NaN rather than dead units
    "explode_linear_sgd": ("exploding", "reg10", [64] * 3, "linear", {"opt": ("sgd", 0.0021)}),
    "explode_linear_momentum": ("exploding", "reg10", [64] * 3, "linear", {"opt": ("sgdm", 0.0012)}),
    "explode_elu_momentum": ("exploding", "reg10", [64] * 4, "elu", {"opt": ("sgdm", 0.002)}),
    "dead_negative_bias": ("dead_units", "cls", [64] * 3, "relu", {"opt": ("adam", 1e-3), "bias_mean": -2.0}),
    "dead_negative_bias_deep": (
        "dead_units",
        "cls",
        [64] * 4,
        "relu",
        {"opt": ("adam", 1e-3), "bias_mean": -2.5},
    ),
    "dead_lr_spike": ("dead_units", "reg10", [64] * 3, "relu", {"opt": ("sgd", 0.002)}),
    "healthy_relu_adam": ("healthy", "cls", [64] * 3, "relu", {"opt": ("adam", 1e-3)}),
    "healthy_converging_long": ("healthy", "cls", [64] * 2, "relu", {"opt": ("adam", 3e-3), "epochs": 16}),
    "healthy_large_targets": ("healthy", "reg1000", [64] * 3, "relu", {"opt": ("adam", 1e-3)}),
    "healthy_batchnorm": ("healthy", "cls", [64] * 6, "sigmoid", {"opt": ("adam", 1e-3), "norm": True}),
    "healthy_residual": ("healthy", "cls", [48] * 8, "relu", {"opt": ("adam", 1e-3), "residual": True}),
    "healthy_clipped": ("healthy", "reg10", [64] * 3, "relu", {"opt": ("sgd", 0.003), "clip": 1.0}),
    "healthy_gelu_sgd": ("healthy", "cls", [64] * 4, "gelu", {"opt": ("sgd", 0.05)}),
    "healthy_relu_zeros": ("healthy", "cls", [128] * 2, "relu", {"opt": ("adam", 1e-3), "bias_mean": -0.5}),
}

# (recipe, writer, log every N batches, epochs, awkwardness[, seed])
FIRST_PLAN = [
    ("sigmoid_deep10_sgd", "keras", 8, 6, ""),
    ("sigmoid_deep10_sgd", "torch", 24, 6, ""),
    ("sigmoid_deep10_sgd", "tbx", 32, 4, "weights"),
    ("sigmoid_deep8_adam", "keras_tf2", 8, 5, ""),
    ("sigmoid_deep8_adam", "torch", 20, 6, "resumed"),
    ("sigmoid_deep12_sgd", "keras", 16, 6, "train_subfolder"),
    ("sigmoid_deep12_sgd", "tbx", 16, 5, ""),
    ("sigmoid_deep12_sgd", "torch", 8, 3, ""),
    ("tanh_deep14_smallinit", "torch", 16, 5, ""),
    ("sigmoid_deep8_adam", "keras", 4, 3, "truncated"),
    ("tanh_deep14_smallinit", "keras", 8, 4, ""),
    ("explode_sgd_targets10", "keras", 4, 4, ""),
    ("explode_sgd_targets10", "keras_tf2", 2, 3, ""),
    ("explode_sgd_targets10", "torch", 3, 2, ""),
    ("explode_sgd_targets10", "tbx", 4, 3, "train_subfolder"),
    ("explode_sgd_momentum", "tbx", 4, 6, ""),
    ("explode_sgd_momentum", "keras_tf2", 4, 6, ""),
    ("explode_large_init", "keras_tf2", 4, 4, ""),
    ("explode_large_init", "torch", 3, 2, ""),
    ("explode_large_init", "keras", 2, 3, "truncated"),
    ("explode_deep_relu", "keras", 4, 6, ""),
    ("explode_deep_relu", "torch", 4, 4, ""),
    ("explode_adam_high_lr", "keras", 8, 8, ""),
    ("explode_adam_high_lr", "tbx", 8, 8, "weights"),
    ("explode_slow", "keras", 4, 10, ""),
    ("explode_linear_sgd", "keras", 2, 3, ""),
    ("explode_linear_sgd", "torch", 3, 2, ""),
    ("explode_linear_sgd", "tbx", 3, 2, "train_subfolder"),
    ("explode_linear_momentum", "torch", 4, 2, "weights"),
    ("explode_linear_momentum", "tbx", 3, 2, ""),
    ("explode_linear_momentum", "keras_tf2", 2, 3, ""),
    ("explode_elu_momentum", "keras_tf2", 4, 4, ""),
    ("dead_negative_bias", "keras", 8, 8, ""),
    ("dead_negative_bias", "keras_tf2", 8, 8, ""),
    ("dead_negative_bias", "torch", 24, 8, ""),
    ("dead_negative_bias", "tbx", 24, 8, "resumed"),
    ("dead_negative_bias_deep", "keras", 16, 10, "train_subfolder"),
    ("dead_negative_bias_deep", "torch", 16, 6, ""),
    ("dead_lr_spike", "keras", 8, 8, ""),
    ("dead_lr_spike", "tbx", 32, 8, ""),
    ("dead_negative_bias", "keras", 2, 4, "weights"),
    ("healthy_relu_adam", "keras", 8, 8, ""),
    ("healthy_relu_adam", "torch", 64, 8, "weights"),
    ("healthy_relu_adam", "keras_tf2", 4, 4, "truncated"),
    ("healthy_converging_long", "keras", 32, 16, ""),
    ("healthy_converging_long", "tbx", 48, 16, "resumed"),
    ("healthy_batchnorm", "keras", 8, 8, "train_subfolder"),
    ("healthy_batchnorm", "torch", 64, 8, ""),
    ("healthy_residual", "keras", 8, 8, ""),
    ("healthy_residual", "tbx", 64, 8, ""),
    ("healthy_clipped", "keras", 4, 6, ""),
    ("healthy_clipped", "torch", 32, 6, ""),
    ("healthy_gelu_sgd", "keras_tf2", 8, 8, ""),
    ("healthy_relu_zeros", "keras", 8, 8, ""),
    ("healthy_relu_zeros", "tbx", 48, 8, ""),
    # PyTorch runs that diverge with growth visible before the writer refuses NaN (seeded explicitly:
    # whether a net near the edge of stability diverges depends on its initialisation)
    ("explode_linear_momentum", "torch", 3, 2, "", 0),
    ("explode_linear_sgd", "torch", 3, 2, "resumed", 0),
    ("explode_linear_momentum", "torch", 3, 2, "weights", 1),
]


# Recipes new with this corpus, of the architectures and writers people use. Options: arch (mlp, cnn,
# rnn, embed, transformer), cell (lstm, gru), pool (max pooling after these conv layers), norm,
# residual, init_std, bias_mean, opt, clip, fixed (the recipe a vanishing one is compared with).
NEW_RECIPES = {
    "cnn_relu_adam": ("healthy", "img", [8, 8, 16], "relu", {"arch": "cnn", "opt": ("adam", 2e-3)}),
    "cnn_bn_sgd": (
        "healthy",
        "img",
        [8, 16, 16],
        "relu",
        {"arch": "cnn", "opt": ("sgd", 0.05), "norm": True},
    ),
    "cnn_maxpool_adam": (
        "healthy",
        "img",
        [8, 16, 16],
        "relu",
        {"arch": "cnn", "opt": ("adam", 2e-3), "pool": [0, 1]},
    ),
    "cnn_bn_maxpool_momentum": (
        "healthy",
        "img",
        [8, 16],
        "relu",
        {"arch": "cnn", "opt": ("sgdm", 0.01), "norm": True, "pool": [0]},
    ),
    "rescnn_adam": (
        "healthy",
        "img",
        [8] * 6,
        "relu",
        {"arch": "cnn", "opt": ("adam", 2e-3), "residual": True},
    ),
    "rescnn_bn_sgd": (
        "healthy",
        "img",
        [8] * 8,
        "relu",
        {"arch": "cnn", "opt": ("sgd", 0.05), "residual": True, "norm": True},
    ),
    "lstm_adam": ("healthy", "seq", [32], "tanh", {"arch": "rnn", "cell": "lstm", "opt": ("adam", 1e-2)}),
    "gru_adam": ("healthy", "seq", [24, 24], "tanh", {"arch": "rnn", "cell": "gru", "opt": ("adam", 3e-3)}),
    "lstm_stacked_adam": (
        "healthy",
        "seq",
        [24, 24],
        "tanh",
        {"arch": "rnn", "cell": "lstm", "opt": ("adam", 5e-3)},
    ),
    "embed_bag_adam": ("healthy", "tok", [32], "relu", {"arch": "embed", "opt": ("adam", 3e-3)}),
    "embed_bag_sgd": ("healthy", "tok", [32, 32], "relu", {"arch": "embed", "opt": ("sgd", 0.2)}),
    "embed_bag_gelu_adam": ("healthy", "tok", [64], "gelu", {"arch": "embed", "opt": ("adam", 1e-3)}),
    "transformer_adam": ("healthy", "tok", [32], "gelu", {"arch": "transformer", "opt": ("adam", 2e-3)}),
    "transformer_wide_adam": ("healthy", "tok", [64], "gelu", {"arch": "transformer", "opt": ("adam", 1e-3)}),
    "gelu_deep_sgd": ("healthy", "cls", [64] * 6, "gelu", {"opt": ("sgd", 0.05)}),
    "relu_wide_adam": ("healthy", "cls", [256, 128], "relu", {"opt": ("adam", 1e-3)}),
    "cnn_sigmoid_deep": (
        "vanishing",
        "img",
        [8] * 8,
        "sigmoid",
        {"arch": "cnn", "opt": ("sgd", 0.05), "fixed": "relu"},
    ),
    "cnn_sigmoid_deep10": (
        "vanishing",
        "img",
        [8] * 10,
        "sigmoid",
        {"arch": "cnn", "opt": ("sgd", 0.1), "fixed": "relu"},
    ),
    "embed_sigmoid_deep": (
        "vanishing",
        "tok",
        [32] * 12,
        "sigmoid",
        {"arch": "embed", "opt": ("sgd", 0.05), "fixed": "relu"},
    ),
    "sigmoid_deep9_momentum": (
        "vanishing",
        "cls",
        [32] * 9,
        "sigmoid",
        {"opt": ("sgdm", 0.01), "fixed": "relu"},
    ),
    "sigmoid_deep12_wide": ("vanishing", "cls", [64] * 12, "sigmoid", {"opt": ("sgd", 0.1), "fixed": "relu"}),
    "cnn_explode_elu": ("exploding", "img:10", [8, 8], "elu", {"arch": "cnn", "opt": ("sgd", 0.02)}),
    "cnn_explode_linear": ("exploding", "img:10", [8, 8], "linear", {"arch": "cnn", "opt": ("sgd", 0.01)}),
    "gru_explode_sgd": (
        "exploding",
        "seq:100",
        [32],
        "tanh",
        {"arch": "rnn", "cell": "gru", "opt": ("sgd", 0.05)},
    ),
    "embed_explode_sgd": ("exploding", "tok:100", [32], "linear", {"arch": "embed", "opt": ("sgd", 0.5)}),
    "mlp_explode_momentum": ("exploding", "reg10", [64] * 4, "linear", {"opt": ("sgdm", 0.003)}),
    "mlp_explode_elu_sgd": ("exploding", "reg10", [64] * 3, "elu", {"opt": ("sgd", 0.003)}),
    "cnn_dead_bias": (
        "dead_units",
        "img",
        [16, 16, 16],
        "relu",
        {"arch": "cnn", "opt": ("adam", 2e-3), "bias_mean": -3.0},
    ),
    "cnn_dead_bias_sgd": (
        "dead_units",
        "img",
        [16, 16],
        "relu",
        {"arch": "cnn", "opt": ("sgd", 0.05), "bias_mean": -3.0},
    ),
    "embed_dead_bias": (
        "dead_units",
        "tok",
        [64, 64],
        "relu",
        {"arch": "embed", "opt": ("adam", 3e-3), "bias_mean": -3.0},
    ),
    "mlp_dead_bias_sgd": ("dead_units", "cls", [64] * 3, "relu", {"opt": ("sgd", 0.05), "bias_mean": -2.5}),
    "mlp_dead_wide_adam": (
        "dead_units",
        "cls",
        [256, 128],
        "relu",
        {"opt": ("adam", 1e-3), "bias_mean": -2.5},
    ),
}
RECIPES.update(NEW_RECIPES)

# Held back twice, each time scored once and then tuned on, so both are dev now. Half of NEW_RECIPES
# was held back first (95.1 % of 41 runs, two healthy residual BN CNNs flagged dead_units from TF2's
# coarse buckets); then these (93.3 % of 45 runs, no healthy run flagged; a dead-units run ranked
# vanishing, a coarse dead-units finding naming 2 of 5 layers). HELD_BACK_RECIPES are the third.
SECOND_RECIPES = {
    "cnn_gelu_pool_adam": (
        "healthy",
        "img",
        [16, 16],
        "gelu",
        {"arch": "cnn", "opt": ("adam", 1e-3), "pool": [0]},
    ),
    "cnn_deep_bn_adam": (
        "healthy",
        "img",
        [8] * 6,
        "relu",
        {"arch": "cnn", "opt": ("adam", 2e-3), "norm": True},
    ),
    "gru_momentum": ("healthy", "seq", [32], "tanh", {"arch": "rnn", "cell": "gru", "opt": ("sgdm", 0.05)}),
    "lstm_wide_adam": (
        "healthy",
        "seq",
        [64],
        "tanh",
        {"arch": "rnn", "cell": "lstm", "opt": ("adam", 3e-3)},
    ),
    "embed_deep_relu_adam": ("healthy", "tok", [64, 32], "relu", {"arch": "embed", "opt": ("adam", 2e-3)}),
    "transformer_momentum": ("healthy", "tok", [32], "gelu", {"arch": "transformer", "opt": ("sgdm", 0.05)}),
    "mlp_tanh_adam": ("healthy", "cls", [64] * 3, "tanh", {"opt": ("adam", 1e-3)}),
    "resmlp_gelu_adam": ("healthy", "cls", [64] * 6, "gelu", {"opt": ("adam", 1e-3), "residual": True}),
    "cnn_sigmoid_deep9_momentum": (
        "vanishing",
        "img",
        [8] * 9,
        "sigmoid",
        {"arch": "cnn", "opt": ("sgdm", 0.01), "fixed": "relu"},
    ),
    "sigmoid_deep10_wide_momentum": (
        "vanishing",
        "cls",
        [48] * 10,
        "sigmoid",
        {"opt": ("sgdm", 0.02), "fixed": "relu"},
    ),
    "tanh_deep16_smallinit": (
        "vanishing",
        "cls",
        [32] * 16,
        "tanh",
        {"opt": ("sgd", 0.05), "init_std": 0.05, "fixed": "relu"},
    ),
    "mlp_linear_wide_explode": ("exploding", "reg10", [128] * 3, "linear", {"opt": ("sgd", 0.002)}),
    "cnn_elu_explode_momentum": (
        "exploding",
        "img:10",
        [8, 8],
        "elu",
        {"arch": "cnn", "opt": ("sgdm", 0.005)},
    ),
    "embed_linear_explode_momentum": (
        "exploding",
        "tok:100",
        [32],
        "linear",
        {"arch": "embed", "opt": ("sgdm", 0.1)},
    ),
    "cnn_dead_bias_momentum": (
        "dead_units",
        "img",
        [16, 16],
        "relu",
        {"arch": "cnn", "opt": ("sgdm", 0.01), "bias_mean": -3.0},
    ),
    "mlp_dead_deep_adam": ("dead_units", "cls", [64] * 5, "relu", {"opt": ("adam", 1e-3), "bias_mean": -2.5}),
    "embed_dead_bias_sgd": (
        "dead_units",
        "tok",
        [64],
        "relu",
        {"arch": "embed", "opt": ("sgd", 0.1), "bias_mean": -3.0},
    ),
}
RECIPES.update(SECOND_RECIPES)

# Written after the rules were last frozen: held back, scored once.
HELD_BACK_RECIPES = {
    "cnn_wide_relu_sgd": (
        "healthy",
        "img",
        [16, 32],
        "relu",
        {"arch": "cnn", "opt": ("sgd", 0.05), "pool": [0]},
    ),
    "cnn_residual_gelu_adam": (
        "healthy",
        "img",
        [8] * 5,
        "gelu",
        {"arch": "cnn", "opt": ("adam", 2e-3), "residual": True},
    ),
    "gru_stacked_adam": (
        "healthy",
        "seq",
        [32, 32],
        "tanh",
        {"arch": "rnn", "cell": "gru", "opt": ("adam", 5e-3)},
    ),
    "lstm_momentum": ("healthy", "seq", [32], "tanh", {"arch": "rnn", "cell": "lstm", "opt": ("sgdm", 0.1)}),
    "embed_bag_wide_adam": ("healthy", "tok", [128], "relu", {"arch": "embed", "opt": ("adam", 1e-3)}),
    "transformer_small_adam": (
        "healthy",
        "tok",
        [16],
        "gelu",
        {"arch": "transformer", "opt": ("adam", 3e-3)},
    ),
    "mlp_elu_adam": ("healthy", "cls", [128] * 3, "elu", {"opt": ("adam", 1e-3)}),
    "mlp_bn_relu_sgd": ("healthy", "cls", [64] * 4, "relu", {"opt": ("sgd", 0.05), "norm": True}),
    "sigmoid_deep11_narrow_sgd": (
        "vanishing",
        "cls",
        [16] * 11,
        "sigmoid",
        {"opt": ("sgd", 0.1), "fixed": "relu"},
    ),
    "cnn_tanh_deep12_smallinit": (
        "vanishing",
        "img",
        [8] * 12,
        "tanh",
        {"arch": "cnn", "opt": ("sgd", 0.05), "init_std": 0.03, "fixed": "relu"},
    ),
    "embed_tanh_deep12_smallinit": (
        "vanishing",
        "tok",
        [32] * 12,
        "tanh",
        {"arch": "embed", "opt": ("sgd", 0.05), "init_std": 0.05, "fixed": "relu"},
    ),
    "mlp_linear_deep_explode": ("exploding", "reg10", [64] * 5, "linear", {"opt": ("sgd", 0.001)}),
    "cnn_linear_explode_momentum": (
        "exploding",
        "img:10",
        [8, 8, 8],
        "linear",
        {"arch": "cnn", "opt": ("sgdm", 0.003)},
    ),
    "gru_explode_high_lr": (
        "exploding",
        "seq:100",
        [32],
        "tanh",
        {"arch": "rnn", "cell": "gru", "opt": ("sgd", 0.1)},
    ),
    "cnn_dead_bias_deep": (
        "dead_units",
        "img",
        [16] * 4,
        "relu",
        {"arch": "cnn", "opt": ("adam", 2e-3), "bias_mean": -3.0},
    ),
    "mlp_dead_wide_sgd": ("dead_units", "cls", [128, 128], "relu", {"opt": ("sgd", 0.05), "bias_mean": -2.5}),
    "embed_dead_two_layers_adam": (
        "dead_units",
        "tok",
        [64, 64],
        "relu",
        {"arch": "embed", "opt": ("adam", 1e-3), "bias_mean": -3.5},
    ),
}
RECIPES.update(HELD_BACK_RECIPES)

# Every new recipe is written by three writers: the seed's way always, and two of the others by
# turns; PyTorch and tensorboardX log every 48 batches (every 4 for diverging runs), Keras every 8.
_OTHER_WRITERS = [("torch", "keras"), ("keras_tf2", "tbx"), ("keras", "torch"), ("tbx", "keras_tf2")]
_DIVERGING_WRITERS = [("keras", "dropnan"), ("dropnan", "torch"), ("keras_tf2", "dropnan"), ("tbx", "keras")]


def _interval(writer: str, intended: str) -> int:
    """Legacy writers' histograms hold ~600 buckets (7.5 KB each): they log less often."""
    legacy = writer in ("torch", "tbx", "dropnan")
    if intended == "exploding":
        return 4 if legacy else 2
    return 48 if legacy else 8


WRITERS_OF_NEW = {
    name: [("seed", 0)]
    + [
        (w, _interval(w, recipe[0]))
        for w in (_DIVERGING_WRITERS if recipe[0] == "exploding" else _OTHER_WRITERS)[i % 4]
    ]
    for i, (name, recipe) in enumerate({**NEW_RECIPES, **SECOND_RECIPES, **HELD_BACK_RECIPES}.items())
}
MAX_DEV_RUN_KB = 400
NEW_EPOCHS = {"healthy": 8, "vanishing": 8, "exploding": 4, "dead_units": 8}


def split_of(recipe_name: str) -> str:
    """'held_back' for the recipes written after the rules were last frozen; 'dev' for the rest."""
    return "held_back" if recipe_name in HELD_BACK_RECIPES else "dev"


PLAN = FIRST_PLAN + [
    (name, writer, every, NEW_EPOCHS[RECIPES[name][0]], "")
    for name, writers in WRITERS_OF_NEW.items()
    for writer, every in writers
]

# Writers of gradient norms as scalars, no histograms: Lightning's grad_norm() (every parameter and
# the total) with its train_loss, and Hugging Face's Trainer (the total only, train/grad_norm, NaN
# written as is; its loss is logged only where finite, as logging_nan_inf_filter does).
NORM_WRITERS = ("norms", "norms_total")
# The norms-only corpus (bench/accuracy/norm_runs): every PyTorch-able recipe of the newer sets once,
# by one of the two norm writers in turn, logged every 8 batches (every 2 where it diverges).
NORM_PLAN = [
    (name, NORM_WRITERS[i % 2], 2 if recipe[0] == "exploding" else 8, NEW_EPOCHS[recipe[0]], "")
    for i, (name, recipe) in enumerate({**NEW_RECIPES, **SECOND_RECIPES, **HELD_BACK_RECIPES}.items())
]

# --- Keras ---------------------------------------------------------------------------------------


def fixed_version(recipe):
    """The same model with the remedy applied: ReLU with He initialisation instead of its activation."""
    intended, task, widths, _activation, opts = recipe
    opts = {k: v for k, v in opts.items() if k not in ("init_std", "fixed")}
    return ("healthy", task, widths, opts.get("fixed", "relu"), opts)


def keras_model(recipe, seed, outputs):
    import keras

    _, task, widths, activation, opts = recipe
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    arch = opts.get("arch", "mlp")
    init = (
        keras.initializers.RandomNormal(stddev=opts["init_std"])
        if "init_std" in opts
        else ("he_normal" if activation in ("relu", "gelu") else "glorot_uniform")
    )
    bias = keras.initializers.RandomNormal(opts["bias_mean"], 1.0) if "bias_mean" in opts else "zeros"
    L = keras.layers

    def dense_stack(h):
        for i, width in enumerate(widths):
            out = L.Dense(width, kernel_initializer=init, bias_initializer=bias)(h)
            if opts.get("norm"):
                out = L.BatchNormalization()(out)
            out = L.Activation(activation)(out)
            h = L.Add()([h, out]) if opts.get("residual") and i > 0 else out
        return h

    if arch == "mlp":
        inputs = keras.Input((FEATURES,))
        h = dense_stack(inputs)
    elif arch == "cnn":
        inputs = keras.Input((IMAGE, IMAGE, 1))
        h = inputs
        for i, width in enumerate(widths):
            out = L.Conv2D(width, 3, padding="same", kernel_initializer=init, bias_initializer=bias)(h)
            if opts.get("norm"):
                out = L.BatchNormalization()(out)
            out = L.Activation(activation)(out)
            h = L.Add()([h, out]) if opts.get("residual") and i > 0 else out
            if i in opts.get("pool", []):
                h = L.MaxPooling2D(2)(h)
        h = L.Flatten()(h)
    elif arch == "rnn":
        inputs = keras.Input((STEPS_PER_SEQUENCE, 4))
        h = inputs
        cell = L.LSTM if opts["cell"] == "lstm" else L.GRU
        for i, width in enumerate(widths):
            h = cell(width, return_sequences=i < len(widths) - 1)(h)
    elif arch == "embed":
        inputs = keras.Input((TOKENS,), dtype="int32")
        h = L.GlobalAveragePooling1D()(L.Embedding(VOCABULARY, 16)(inputs))
        h = dense_stack(h)
    elif arch == "handmade_attention":  # attention written out with plain Dense projections
        inputs = keras.Input((TOKENS,), dtype="int32")
        width = widths[0]
        h = L.Embedding(VOCABULARY, width)(inputs)
        q, k, v = (L.Dense(width)(h) for _ in range(3))
        scores = keras.ops.softmax(keras.ops.matmul(q, keras.ops.transpose(k, (0, 2, 1))) / width**0.5)
        h = L.LayerNormalization()(h + keras.ops.matmul(scores, v))
        ff = L.Dense(width)(L.Dense(2 * width, activation=activation)(h))
        h = L.GlobalAveragePooling1D()(L.LayerNormalization()(h + ff))
    else:  # transformer block: token and position embeddings, attention and GELU feed-forward
        inputs = keras.Input((TOKENS,), dtype="int32")
        width = widths[0]
        positions = L.Embedding(TOKENS, width)(keras.ops.arange(TOKENS)[None, :])
        h = L.Embedding(VOCABULARY, width)(inputs) + positions
        h = L.LayerNormalization()(h + L.MultiHeadAttention(2, width // 2)(h, h))
        ff = L.Dense(width, kernel_initializer=init)(L.Dense(2 * width, activation=activation)(h))
        h = L.GlobalAveragePooling1D()(L.LayerNormalization()(h + ff))
    head = L.Dense(outputs or 1, activation="softmax" if outputs else None)(h)
    model = keras.Model(inputs, head)
    kind, lr = opts["opt"]
    clip = {"clipnorm": opts["clip"]} if "clip" in opts else {}
    optimizer = {
        "sgd": lambda: keras.optimizers.SGD(lr, **clip),
        "sgdm": lambda: keras.optimizers.SGD(lr, momentum=0.9, **clip),
        "adam": lambda: keras.optimizers.Adam(lr, **clip),
    }[kind]()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy" if outputs else "mse")
    return model


def keras_sparse(tag: str) -> bool:
    """Embedding tables: their gradient reaches only the rows a batch looks up."""
    return "embedding" in tag and "embeddings" in tag


def run_keras(recipe, writer, log_dir, every, epochs, seed):
    """Returns (tags, per-step true statistics, per-step probe losses, sparse tags)."""
    import keras
    import tensorflow as tf

    from analyzer.callback import GradientHistograms

    x, y, outputs = data_for(recipe[1], seed)
    model = keras_model(recipe, seed, outputs)
    probe = (x[:256], y[:256])
    history, losses = [], []
    prefix, suffix = {"keras": ("gradients/", ""), "keras_tf2": ("", "/gradient")}.get(writer, ("", "_grad"))

    def gradients(batch=probe):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(
                x=batch[0], y=batch[1], y_pred=model(batch[0], training=False), training=False
            )
        grads = tape.gradient(loss, model.trainable_variables)
        dense = [tf.convert_to_tensor(g) for g in grads]
        return {v.path: g.numpy() for v, g in zip(model.trainable_variables, dense)}, float(loss)

    def record(grads, loss):
        history.append(truth.step_stats({f"{prefix}{k}{suffix}": v for k, v in grads.items()}))
        losses.append(loss)

    class Recorder(keras.callbacks.Callback):
        """Truth at the moments the writer logs: train start and every N batches."""

        def __init__(self):
            super().__init__()
            self.batches = 0
            self.file_writer = tf.summary.create_file_writer(str(log_dir)) if writer == "keras_tf2" else None

        def take(self):
            grads, loss = gradients()
            record(grads, loss)
            if self.file_writer is not None:
                step = int(model.optimizer.iterations.numpy())
                with self.file_writer.as_default():
                    for name, g in grads.items():
                        tf.summary.histogram(f"{name}/gradient", g, step=step)

        def on_train_begin(self, logs=None):
            self.take()

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches % every == 0:
                self.take()

    class SeedStyleTensorBoard(keras.callbacks.TensorBoard):
        """As the seed project logs gradients: one batch's gradients at each epoch's end, written with
        tf.summary.histogram into Keras's own train/ writer, beside its weight histograms and epoch_loss."""

        def on_epoch_end(self, epoch, logs=None):
            grads, loss = gradients((x[:BATCH], y[:BATCH]))
            record(grads, loss)
            with self._train_writer.as_default():
                for name, g in grads.items():
                    tf.summary.histogram(f"{name}_grad", g, step=epoch)
            super().on_epoch_end(epoch, logs)

    callbacks = []
    if writer == "keras":
        callbacks += [GradientHistograms(str(log_dir), probe=probe, every_n_batches=every), Recorder()]
    elif writer == "keras_tf2":
        callbacks.append(Recorder())
    elif writer == "seed":
        callbacks.append(SeedStyleTensorBoard(str(log_dir), histogram_freq=1, write_graph=False))
    elif writer == "none":
        every = max(1, every)
        callbacks.append(Recorder())
    validation = (x[-256:], y[-256:]) if writer == "seed" else None
    model.fit(
        x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=callbacks, validation_data=validation
    )
    tags = [f"{prefix}{v.path}{suffix}" for v in model.trainable_variables]
    return tags, history, losses, [t for t in tags if keras_sparse(t)]


# --- PyTorch and tensorboardX --------------------------------------------------------------------


def torch_model(recipe, seed, outputs):
    import torch
    from torch import nn

    _, task, widths, activation, opts = recipe
    torch.manual_seed(seed)
    arch = opts.get("arch", "mlp")
    act = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "linear": nn.Identity,
        "elu": nn.ELU,
    }[activation]

    def initialise(layer):
        if "init_std" in opts:
            nn.init.normal_(layer.weight, std=opts["init_std"])
        elif activation in ("relu", "gelu", "elu"):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        if "bias_mean" in opts:
            nn.init.normal_(layer.bias, opts["bias_mean"], 1.0)
        return layer

    class Stack(nn.Module):
        """Dense or conv layers with optional norm and residual connections."""

        def __init__(self, sizes, make, norm):
            super().__init__()
            self.hidden = nn.ModuleList(initialise(make(a, b)) for a, b in zip(sizes[:-1], sizes[1:]))
            self.norms = nn.ModuleList(norm(b) for b in sizes[1:]) if opts.get("norm") else None
            self.act = act()
            self.pools = set(opts.get("pool", []))

        def forward(self, x):
            for i, layer in enumerate(self.hidden):
                out = layer(x)
                if self.norms is not None:
                    out = self.norms[i](out)
                out = self.act(out)
                x = x + out if opts.get("residual") and i > 0 else out
                if i in self.pools:
                    x = nn.functional.max_pool2d(x, 2)
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            if arch == "mlp":
                self.body = Stack([FEATURES, *widths], nn.Linear, nn.BatchNorm1d)
                flat = widths[-1]
            elif arch == "cnn":
                self.body = Stack([1, *widths], lambda a, b: nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d)
                side = IMAGE // 2 ** len(opts.get("pool", []))
                flat = widths[-1] * side * side
            elif arch == "rnn":
                cell = nn.LSTM if opts["cell"] == "lstm" else nn.GRU
                self.body = cell(4, widths[0], num_layers=len(widths), batch_first=True)
                flat = widths[-1]
            elif arch == "embed":
                self.embedding = nn.Embedding(VOCABULARY, 16)
                self.body = Stack([16, *widths], nn.Linear, nn.BatchNorm1d)
                flat = widths[-1]
            else:
                self.embedding = nn.Embedding(VOCABULARY, widths[0])
                self.position = nn.Parameter(torch.zeros(TOKENS, widths[0]))
                self.body = nn.TransformerEncoderLayer(
                    widths[0], 2, 2 * widths[0], dropout=0.0, activation=activation, batch_first=True
                )
                flat = widths[0]
            self.out = nn.Linear(flat, outputs or 1)

        def forward(self, x):
            if arch == "cnn":
                x = self.body(x.permute(0, 3, 1, 2)).flatten(1)
            elif arch == "rnn":
                x = self.body(x)[0][:, -1]
            elif arch == "embed":
                x = self.body(self.embedding(x).mean(1))
            elif arch == "transformer":
                x = self.body(self.embedding(x) + self.position).mean(1)
            else:
                x = self.body(x)
            return self.out(x)

    return Net()


def torch_sparse(tag: str) -> bool:
    return "embedding" in tag


def _finite_only_histogram(sw, tag, values, step):
    """A writer that leaves NaN/Inf out of each histogram (as some loggers and hand-written loops
    do): a legacy HistogramProto of the finite values only, with TF1's exponential buckets."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary

    values = np.asarray(values, np.float64).ravel()
    finite = values[np.isfinite(values)]
    positive = 1e-12 * 1.1 ** np.arange(0, 600)
    limits = np.concatenate([-positive[::-1], [0.0], positive[positive < 1e20], [np.finfo(np.float64).max]])
    counts = np.bincount(np.searchsorted(limits, finite, side="left"), minlength=len(limits))[: len(limits)]
    proto = HistogramProto(
        min=float(finite.min()) if finite.size else 0.0,
        max=float(finite.max()) if finite.size else 0.0,
        num=float(finite.size),
        sum=float(finite.sum()),
        sum_squares=float((finite**2).sum()),
    )
    keep = np.flatnonzero(counts)
    proto.bucket_limit.extend(limits[keep].tolist())
    proto.bucket.extend(counts[keep].astype(float).tolist())
    sw._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, histo=proto)]), step)


def run_torch(recipe, writer, log_dir, every, epochs, seed, awkward):
    import torch

    if writer == "tbx":
        from tensorboardX import SummaryWriter
    else:
        from torch.utils.tensorboard import SummaryWriter

    x, y, outputs = data_for(recipe[1], seed)
    model = torch_model(recipe, seed, outputs)
    kind, lr = recipe[4]["opt"]
    optimizer = {
        "sgd": lambda: torch.optim.SGD(model.parameters(), lr),
        "sgdm": lambda: torch.optim.SGD(model.parameters(), lr, momentum=0.9),
        "adam": lambda: torch.optim.Adam(model.parameters(), lr),
    }[kind]()
    loss_fn = torch.nn.CrossEntropyLoss() if outputs else torch.nn.MSELoss()
    name_of = {"tbx": lambda n: f"{n}.grad"}.get(writer, lambda n: f"grad/{n}")
    deep = len(recipe[2]) > 6  # as many users do for deep nets (and to keep the corpus small): weights only

    def logged(m):
        return [(n, p) for n, p in m.named_parameters() if not (deep and n.endswith("bias"))]

    norms = writer in NORM_WRITERS
    if norms:
        name_of = lambda n: f"grad_2.0_norm/{n}"  # noqa: E731 (Lightning's grad_norm() tags)
    tags = [name_of(n) for n, _ in logged(model)]
    history, losses, written = [], [], []
    sw = SummaryWriter(str(log_dir)) if writer != "none" else None
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    step, total = 0, epochs * (SAMPLES // BATCH)
    resume_at = total // 2 if awkward == "resumed" else None
    try:
        for _ in range(epochs):
            for b in range(SAMPLES // BATCH):
                model.train()
                optimizer.zero_grad()
                loss = loss_fn(model(xt[b * BATCH : (b + 1) * BATCH]), yt[b * BATCH : (b + 1) * BATCH])
                loss.backward()
                if recipe[4].get("clip"):
                    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe[4]["clip"])
                if step % every == 0:
                    grads = {name_of(n): p.grad.detach().numpy().copy() for n, p in logged(model)}
                    history.append(truth.step_stats(grads))  # labels count logged steps only
                    losses.append(loss.item())
                    if sw is not None and norms:
                        _write_norms(sw, writer, grads, loss.item(), step)
                        written.append(step)
                    elif sw is not None:
                        for tag, g in grads.items():
                            if writer == "dropnan":
                                _finite_only_histogram(sw, tag, g, step)
                            else:  # PyTorch's raises on NaN/Inf, as for every user
                                sw.add_histogram(tag, g, step)
                        written.append(step)
                        if np.isfinite(loss.item()):
                            # as Hugging Face does by default, a non-finite loss is not logged
                            sw.add_scalar("loss" if writer == "dropnan" else "Loss/train", loss.item(), step)
                        if awkward == "weights":
                            for n, p in model.named_parameters():
                                sw.add_histogram(f"weights/{n}", p.detach().numpy(), step)
                optimizer.step()
                step += 1
                if step == resume_at and sw is not None:  # the job "dies", restarts 3 logs back
                    sw.close()
                    sw = SummaryWriter(str(log_dir), filename_suffix=".resumed")
                    step -= 3 * every
                    resume_at = None
    except ValueError:
        pass  # a diverged run: the writer refused NaN, the job ended here, as it would for a user
    finally:
        if sw is not None:
            sw.close()
    if sw is not None and len(written) < 2:
        raise TooShort(f"the writer wrote {len(written)} logged step(s) before the run ended")
    return tags, history, losses, [t for t in tags if torch_sparse(t)]


def _write_norms(sw, writer, grads, loss, step):
    with np.errstate(over="ignore", invalid="ignore"):
        norms = {tag: float(np.sqrt(np.sum(g.astype(np.float64) ** 2))) for tag, g in grads.items()}
        total = float(np.sqrt(sum(v**2 for v in norms.values())))
    if writer == "norms":
        for tag, value in norms.items():
            sw.add_scalar(tag, value, step)
        sw.add_scalar("grad_2.0_norm_total", total, step)
        sw.add_scalar("train_loss", loss, step)
    else:
        sw.add_scalar("train/grad_norm", total, step)
        if np.isfinite(loss):
            sw.add_scalar("train/loss", loss, step)


class TooShort(Exception):
    """The run diverged before its log held two logged steps: nothing to judge from it."""


# --- the corpus ---------------------------------------------------------------------------------------------


def truncate_last_record(log_dir: Path) -> None:
    [path] = [p for p in log_dir.rglob("events.out.tfevents.*")][:1]
    path.write_bytes(path.read_bytes()[:-9])


def train(recipe, writer, log_dir, every, epochs, seed, awkward):
    if writer.startswith("keras") or writer in ("seed", "keras_none"):
        return run_keras(recipe, "none" if writer == "keras_none" else writer, log_dir, every, epochs, seed)
    return run_torch(recipe, writer, log_dir, every, epochs, seed, awkward)


def main(out_dir: Path, only: set[str] | None = None, plan=None) -> None:
    plan = PLAN if plan is None else plan
    if only is None:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = out_dir / "labels.json"
    previous = json.loads(labels_path.read_text()) if only is not None and labels_path.exists() else {}
    labels, dropped = previous.get("runs", {}), previous.get("dropped", [])
    for index, (recipe_name, writer, every, epochs, awkward, *seed) in enumerate(plan):
        seed = seed[0] if seed else index
        recipe = RECIPES[recipe_name]
        name = f"{recipe_name}__{writer}__every{every}" + (f"__{awkward}" if awkward else "")
        if only is not None and recipe_name not in only:
            continue
        shutil.rmtree(out_dir / name, ignore_errors=True)
        labels.pop(name, None)
        log_dir = out_dir / name / ("train" if awkward == "train_subfolder" else "")
        try:
            tags, history, losses, sparse = train(recipe, writer, log_dir, every, epochs, seed, awkward)
        except TooShort as err:
            dropped.append(f"{name}: {err}")
            shutil.rmtree(out_dir / name, ignore_errors=True)
            print(f"dropped {dropped[-1]}", flush=True)
            continue
        fixed_losses = None
        if recipe[0] == "vanishing":  # how the same model trains with the remedy applied
            framework = "keras_none" if writer.startswith("keras") or writer == "seed" else "none"
            fixed_losses = train(fixed_version(recipe), framework, None, max(every, 8), epochs, seed, "")[2]
        if awkward == "truncated":
            truncate_last_record(out_dir / name)
        size_kb = sum(p.stat().st_size for p in (out_dir / name).rglob("*") if p.is_file()) / 1024
        if split_of(recipe_name) == "dev" and size_kb > MAX_DEV_RUN_KB:
            dropped.append(f"{name}: {size_kb:.0f} KB, over the committed corpus's budget for a dev run")
            shutil.rmtree(out_dir / name, ignore_errors=True)
            print(f"dropped {dropped[-1]}", flush=True)
            continue
        got, layers = truth.label(tags, history, losses, fixed_losses, sparse)
        if got != recipe[0]:
            dropped.append(f"{name}: intended {recipe[0]}, truth says {got}")
            shutil.rmtree(out_dir / name, ignore_errors=True)
            print(f"dropped {dropped[-1]}", flush=True)
            continue
        labels[name] = {
            "label": got,
            "layers": layers,
            "recipe": recipe_name,
            "split": split_of(recipe_name),
            "writer": writer,
            "every": every,
            "logged_steps": len(history),
            "awkward": awkward,
            "loss_first": losses[0] if losses else None,
            "loss_last": truth.last_loss(losses),
            "fixed_loss_last": truth.last_loss(fixed_losses) if fixed_losses else None,
        }
        print(f"{got:>11}  {name}", flush=True)
        labels_path.write_text(json.dumps({"runs": labels, "dropped": dropped}, indent=1, default=float))
    labels_path.write_text(json.dumps({"runs": labels, "dropped": dropped}, indent=1, default=float))
    counts = {}
    for v in labels.values():
        key = (v["split"], v["label"])
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(labels)} runs kept {sorted(counts.items())}, {len(dropped)} dropped")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    only = next((set(a[7:].split(",")) for a in sys.argv[1:] if a.startswith("--only=")), None)
    if "--norms" in sys.argv:  # the norms-only corpus
        main(Path(args[0]) if args else HERE / "norm_runs", only, NORM_PLAN)
    else:
        main(Path(args[0]) if args else HERE / "runs", only)
