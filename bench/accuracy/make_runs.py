"""Train small real networks and write labelled gradient logs: the accuracy benchmark's corpus.

    python bench/accuracy/make_runs.py [OUTDIR]   # default bench/accuracy/runs; needs tf, torch, tensorboardX

Writers: Keras with gradaudit's callback, Keras with a plain ``tf.summary.histogram`` callback (TF2
encoding), PyTorch's ``SummaryWriter.add_histogram`` and tensorboardX's. Every logged step also
records the TRUE gradients' statistics, and ``truth.py`` labels the run from those; a run whose label
is not the one its recipe intended is dropped (and said so). Data are made here, seeded.
Labels go to OUTDIR/labels.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent)]

import numpy as np  # noqa: E402
import truth  # noqa: E402

FEATURES, CLASSES, SAMPLES = 20, 4, 2048


def classification(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(FEATURES, 32))) @ rng.normal(size=(32, CLASSES))).argmax(1)
    return x, y.astype("int64")


def regression(seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    return x, ((x @ rng.normal(size=(FEATURES, 1))) * scale).astype("float32")


# --- recipes: (intended label, data, model, optimizer) for both frameworks ------------------------------

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

# (recipe, writer, log every N batches, epochs, awkwardness)
PLAN = [
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
    ("explode_sgd_targets10", "torch", 1, 2, ""),
    ("explode_sgd_targets10", "tbx", 2, 3, "train_subfolder"),
    ("explode_sgd_momentum", "tbx", 4, 6, ""),
    ("explode_sgd_momentum", "keras_tf2", 4, 6, ""),
    ("explode_large_init", "keras_tf2", 4, 4, ""),
    ("explode_large_init", "torch", 1, 2, ""),
    ("explode_large_init", "keras", 2, 3, "truncated"),
    ("explode_deep_relu", "keras", 4, 6, ""),
    ("explode_deep_relu", "torch", 2, 4, ""),
    ("explode_adam_high_lr", "keras", 8, 8, ""),
    ("explode_adam_high_lr", "tbx", 8, 8, "weights"),
    ("explode_slow", "keras", 4, 10, ""),
    ("explode_linear_sgd", "keras", 2, 3, ""),
    ("explode_linear_sgd", "torch", 1, 2, ""),
    ("explode_linear_sgd", "tbx", 1, 2, "train_subfolder"),
    ("explode_linear_momentum", "torch", 2, 2, "weights"),
    ("explode_linear_momentum", "tbx", 1, 2, ""),
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
    ("explode_linear_momentum", "torch", 1, 2, "", 0),
    ("explode_linear_sgd", "torch", 1, 2, "resumed", 0),
    ("explode_linear_momentum", "torch", 1, 2, "weights", 1),
]


def data_for(task, seed):
    if task == "cls":
        return classification(seed)
    return regression(seed, 10.0 if task == "reg10" else 1000.0)


# --- Keras ---------------------------------------------------------------------------------------


def keras_model(recipe, seed):
    import keras

    _, task, widths, activation, opts = recipe
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    init = (
        keras.initializers.RandomNormal(stddev=opts["init_std"])
        if "init_std" in opts
        else ("he_normal" if activation in ("relu", "gelu") else "glorot_uniform")
    )
    bias = keras.initializers.RandomNormal(opts["bias_mean"], 1.0) if "bias_mean" in opts else "zeros"
    inputs = keras.Input((FEATURES,))
    h = inputs
    for i, width in enumerate(widths):
        out = keras.layers.Dense(width, kernel_initializer=init, bias_initializer=bias)(h)
        if opts.get("norm"):
            out = keras.layers.BatchNormalization()(out)
        out = keras.layers.Activation(activation)(out)
        h = keras.layers.Add()([h, out]) if opts.get("residual") and i > 0 else out
    outputs = keras.layers.Dense(
        CLASSES if task == "cls" else 1, activation="softmax" if task == "cls" else None
    )(h)
    model = keras.Model(inputs, outputs)
    kind, lr = opts["opt"]
    clip = {"clipnorm": opts["clip"]} if "clip" in opts else {}
    optimizer = {
        "sgd": lambda: keras.optimizers.SGD(lr, **clip),
        "sgdm": lambda: keras.optimizers.SGD(lr, momentum=0.9, **clip),
        "adam": lambda: keras.optimizers.Adam(lr, **clip),
    }[kind]()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy" if task == "cls" else "mse")
    return model


def run_keras(recipe, writer, log_dir, every, epochs, seed):
    import keras
    import tensorflow as tf

    from analyzer.callback import GradientHistograms

    x, y = data_for(recipe[1], seed)
    model = keras_model(recipe, seed)
    probe = (x[:256], y[:256])
    history = []

    def gradients():
        with tf.GradientTape() as tape:
            loss = model.compute_loss(
                x=probe[0], y=probe[1], y_pred=model(probe[0], training=False), training=False
            )
        grads = tape.gradient(loss, model.trainable_variables)
        return {f"{v.path}": g.numpy() for v, g in zip(model.trainable_variables, grads)}

    class Recorder(keras.callbacks.Callback):
        """Both writers log at train start and every N batches: truth is taken at the same moments."""

        def __init__(self):
            super().__init__()
            self.batches = 0
            self.file_writer = tf.summary.create_file_writer(str(log_dir)) if writer == "keras_tf2" else None

        def record(self):
            grads = gradients()
            history.append(truth.step_stats({f"{tag_prefix}{k}": v for k, v in grads.items()}))
            if self.file_writer is not None:
                step = int(model.optimizer.iterations.numpy())
                with self.file_writer.as_default():
                    for name, g in grads.items():
                        tf.summary.histogram(f"{name}/gradient", g, step=step)

        def on_train_begin(self, logs=None):
            self.record()

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches % every == 0:
                self.record()

    callbacks = []
    if writer == "keras":
        tag_prefix = "gradients/"
        callbacks.append(GradientHistograms(str(log_dir), probe=probe, every_n_batches=every))
    else:
        tag_prefix = ""
    callbacks.append(Recorder())
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=callbacks)
    tags = [
        f"{tag_prefix}{v.path}" + ("" if writer == "keras" else "/gradient")
        for v in model.trainable_variables
    ]
    if writer == "keras_tf2":
        history = [{f"{k}/gradient": v for k, v in h.items()} for h in history]
    return tags, history


# --- PyTorch and tensorboardX --------------------------------------------------------------------


def torch_model(recipe, seed):
    import torch
    from torch import nn

    _, task, widths, activation, opts = recipe
    torch.manual_seed(seed)
    act = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "linear": nn.Identity,
        "elu": nn.ELU,
    }[activation]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [FEATURES, *widths]
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in widths) if opts.get("norm") else None
            self.act = act()
            self.out = nn.Linear(widths[-1], CLASSES if task == "cls" else 1)
            for layer in self.hidden:
                if "init_std" in opts:
                    nn.init.normal_(layer.weight, std=opts["init_std"])
                elif activation in ("relu", "gelu", "elu"):
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if "bias_mean" in opts:
                    nn.init.normal_(layer.bias, opts["bias_mean"], 1.0)

        def forward(self, x):
            for i, layer in enumerate(self.hidden):
                out = layer(x)
                if self.norms is not None:
                    out = self.norms[i](out)
                out = self.act(out)
                x = x + out if opts.get("residual") and i > 0 else out
            return self.out(x)

    return Net()


def run_torch(recipe, writer, log_dir, every, epochs, seed, awkward):
    import torch

    if writer == "torch":
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter

    x, y = data_for(recipe[1], seed)
    model = torch_model(recipe, seed)
    kind, lr = recipe[4]["opt"]
    optimizer = {
        "sgd": lambda: torch.optim.SGD(model.parameters(), lr),
        "sgdm": lambda: torch.optim.SGD(model.parameters(), lr, momentum=0.9),
        "adam": lambda: torch.optim.Adam(model.parameters(), lr),
    }[kind]()
    loss_fn = torch.nn.CrossEntropyLoss() if recipe[1] == "cls" else torch.nn.MSELoss()
    name_of = (lambda n: f"grad/{n}") if writer == "torch" else (lambda n: f"{n}.grad")
    deep = len(recipe[2]) > 6  # as many users do for deep nets (and to keep the corpus small): weights only

    def logged(m):
        return [(n, p) for n, p in m.named_parameters() if not (deep and n.endswith("bias"))]

    tags = [name_of(n) for n, _ in logged(model)]
    history, sw = [], SummaryWriter(str(log_dir))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    step, total = 0, epochs * (SAMPLES // 64)
    resume_at = total // 2 if awkward == "resumed" else None
    try:
        for _ in range(epochs):
            for b in range(SAMPLES // 64):
                model.train()
                optimizer.zero_grad()
                loss = loss_fn(model(xt[b * 64 : (b + 1) * 64]), yt[b * 64 : (b + 1) * 64])
                loss.backward()
                if recipe[4].get("clip"):
                    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe[4]["clip"])
                if step % every == 0:
                    grads = {name_of(n): p.grad.detach().numpy().copy() for n, p in logged(model)}
                    for tag, g in grads.items():
                        sw.add_histogram(tag, g, step)  # PyTorch's raises on NaN/Inf, as for every user
                    history.append(truth.step_stats(grads))  # labels count logged steps only
                    if awkward == "weights":
                        for n, p in model.named_parameters():
                            sw.add_histogram(f"weights/{n}", p.detach().numpy(), step)
                optimizer.step()
                step += 1
                if step == resume_at:  # the job "dies" and restarts from a checkpoint 3 logs back
                    sw.close()
                    sw = SummaryWriter(str(log_dir), filename_suffix=".resumed")
                    step -= 3 * every
                    resume_at = None
    except ValueError:
        pass  # a diverged run: the writer refused NaN, the job ended here, as it would for a user
    finally:
        sw.close()
    return tags, history


# --- the corpus ---------------------------------------------------------------------------------------------


def truncate_last_record(log_dir: Path) -> None:
    [path] = [p for p in log_dir.rglob("events.out.tfevents.*")][:1]
    path.write_bytes(path.read_bytes()[:-9])


def main(out_dir: Path) -> None:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    labels, dropped = {}, []
    for index, (recipe_name, writer, every, epochs, awkward, *seed) in enumerate(PLAN):
        seed = seed[0] if seed else index
        recipe = RECIPES[recipe_name]
        name = f"{recipe_name}__{writer}__every{every}" + (f"__{awkward}" if awkward else "")
        log_dir = out_dir / name / ("train" if awkward == "train_subfolder" else "")
        if writer.startswith("keras"):
            tags, history = run_keras(recipe, writer, log_dir, every, epochs, seed)
        else:
            tags, history = run_torch(recipe, writer, log_dir, every, epochs, seed, awkward)
        if awkward == "truncated":
            truncate_last_record(out_dir / name)
        got, layers = truth.label(tags, history)
        if got != recipe[0]:
            dropped.append(f"{name}: intended {recipe[0]}, true gradients say {got}")
            shutil.rmtree(out_dir / name)
            print(f"dropped {dropped[-1]}", flush=True)
            continue
        labels[name] = {
            "label": got,
            "layers": layers,
            "writer": writer,
            "every": every,
            "logged_steps": len(history),
            "awkward": awkward,
        }
        print(f"{got:>11}  {name}", flush=True)
    (out_dir / "labels.json").write_text(json.dumps({"runs": labels, "dropped": dropped}, indent=1))
    counts = {}
    for v in labels.values():
        counts[v["label"]] = counts.get(v["label"], 0) + 1
    print(f"{len(labels)} runs kept {counts}, {len(dropped)} dropped")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs")
