"""Keras models of the sizes people train on a CPU, on synthetic data with a learnable rule (nothing
downloaded), for bench/callback_overhead.py's realistic suite. Each builder takes a numpy generator
and returns (model, optimizer, loss, x, y); REALISTIC gives the training each stands for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

SAMPLES = 8192  # 128 batches of 64, repeated to make an epoch of the dataset a model stands for


def cnn(rng: np.random.Generator):
    """Three conv blocks with BatchNorm on 32x32x3 images; the class is which quadrant means are > 0."""
    x = rng.normal(size=(SAMPLES, 32, 32, 3)).astype("float32")
    y = (x[:, :16, :16, 0].mean(axis=(1, 2)) > 0).astype("int64") + 2 * (
        x[:, 16:, 16:, 1].mean(axis=(1, 2)) > 0
    )
    inputs = keras.Input((32, 32, 3))
    h = inputs
    for filters in (32, 64, 128):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(128, activation="relu")(h)
    outputs = keras.layers.Dense(4, activation="softmax")(h)
    return keras.Model(inputs, outputs), keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", x, y


def lstm(rng: np.random.Generator):
    """An LSTM of 128 units over an embedding of 10,000 words, 80 tokens; binary sentiment-like rule."""
    vocabulary, length = 10_000, 80
    x = rng.integers(1, vocabulary, size=(SAMPLES, length))
    y = ((x[:, :10] < vocabulary // 2).sum(axis=1) > 5).astype("float32")
    inputs = keras.Input((length,), dtype="int32")
    h = keras.layers.Embedding(vocabulary, 64)(inputs)
    h = keras.layers.LSTM(128)(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    return keras.Model(inputs, outputs), keras.optimizers.Adam(1e-3), "binary_crossentropy", x, y


def transformer(rng: np.random.Generator):
    """One transformer block (4-head attention, GELU feed-forward, post-norm residuals) of width 128
    over an embedding of 8,000 words, 64 tokens, pooled into 4 classes."""
    vocabulary, length, width = 8_000, 64, 128
    x = rng.integers(1, vocabulary, size=(SAMPLES, length))
    y = ((x % 7) == 0).sum(axis=1) % 4
    inputs = keras.Input((length,), dtype="int32")
    h = keras.layers.Embedding(vocabulary, width)(inputs)
    attended = keras.layers.MultiHeadAttention(4, width // 4)(h, h)
    h = keras.layers.LayerNormalization()(h + attended)
    fed = keras.layers.Dense(4 * width, activation="gelu")(h)
    h = keras.layers.LayerNormalization()(h + keras.layers.Dense(width)(fed))
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(4, activation="softmax")(h)
    return keras.Model(inputs, outputs), keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", x, y


@dataclass(frozen=True)
class Training:
    """A realistic model's training: its builder, epochs, and batches of 64 in an epoch of the
    dataset it stands for (the callback's default frequency probes once an epoch)."""

    build: Callable
    epochs: int
    batches_per_epoch: int


# The datasets people train these on: CIFAR-10's 50,000 images (782 batches of 64) for the CNN, IMDB's
# 25,000 reviews (391) for the LSTM and the transformer; epochs for 45 s or more here.
REALISTIC = {
    "cnn": Training(cnn, epochs=2, batches_per_epoch=782),
    "lstm": Training(lstm, epochs=3, batches_per_epoch=391),
    "transformer": Training(transformer, epochs=2, batches_per_epoch=391),
}
