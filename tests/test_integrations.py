"""gradaudit's Lightning callback and Hugging Face TrainerCallback, in real trainings: the verdicts are
the intended ones, Lightning's equal those of hand-written full-precision logging, and the Trainer's
gradients are read before it clips them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import report_json, runs_by_name

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch")


def _data(n=2048, features=32, classes=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def test_a_lightning_module_logged_by_the_callback_gets_the_verdicts_of_hand_logging(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import TensorBoardLogger

    from analyzer.lightning_callback import GradientHistograms

    class Module(pl.LightningModule):
        def __init__(self, depth: int, activation, lr: float, bias: float = 0.0, std: float | None = None):
            super().__init__()
            torch.manual_seed(0)
            widths = [32] + [64] * depth
            layers = [m for a, b in zip(widths, widths[1:]) for m in (torch.nn.Linear(a, b), activation())]
            self.net = torch.nn.Sequential(*layers, torch.nn.Linear(64, 4))
            for layer in self.net[:-1]:
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.constant_(layer.bias, bias)  # a negative bias: units born dead
                    if std is not None:
                        torch.nn.init.normal_(layer.weight, 0, std)
            self.lr = lr

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def on_before_optimizer_step(self, optimizer):  # hand-written logging, full precision
            if self.by_hand and self.global_step % 5 == 0:
                for name, p in self.named_parameters():
                    self.logger.experiment.add_histogram(f"grad/{name}", p.grad, self.global_step)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    intended = {
        "healthy": (2, torch.nn.ReLU, 0.1, 0.0, None),
        "vanishing": (10, torch.nn.Sigmoid, 0.1, 0.0, None),
        "dead_units": (2, torch.nn.ReLU, 0.05, -3.0, None),
        "exploding": (3, torch.nn.ReLU, 1.0, 0.0, 0.3),
    }
    for name, (depth, activation, lr, bias, std) in intended.items():
        for how in ("callback", "by_hand"):
            callbacks = [GradientHistograms(every_n_steps=5)] if how == "callback" else []
            trainer = pl.Trainer(
                max_steps=160,
                logger=TensorBoardLogger(str(tmp_path / how), name=name, version=""),
                callbacks=callbacks,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                log_every_n_steps=5,
            )
            module = Module(depth, activation, lr, bias, std)
            module.by_hand = how == "by_hand"
            try:
                trainer.fit(module, torch.utils.data.DataLoader(_data(), batch_size=64))
            except ValueError:  # add_histogram refuses an all-NaN gradient: the job ends, as a user's
                assert how == "by_hand" and name == "exploding"
    for how in ("callback", "by_hand"):
        runs = runs_by_name(report_json(tmp_path / f"{how}.json", tmp_path / how, args=["--no-html"])[1])
        for name in intended:
            assert runs[name]["verdict"] == name, (how, name, runs[name]["reason"])
    runs = runs_by_name(report_json(tmp_path / "c.json", tmp_path / "callback", args=["--no-html"])[1])
    layers = {layer["path"]: layer for layer in runs["vanishing"]["architecture"]["layers"]}
    assert layers["net/0"]["class"] == "Linear" and layers["net/0"]["activation"] == "sigmoid"


def test_a_trainer_on_a_tiny_model_from_a_config_is_logged_before_it_clips(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from analyzer.hf_callback import GradientHistograms

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "logs" / "bert"))
    # a GPT-2 of two layers on sequences that count up from a random start: learnable
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    starts = torch.randint(0, 64, (256, 1), generator=torch.Generator().manual_seed(0))
    tokens = (starts + torch.arange(32)) % 64
    data = [{"input_ids": t, "labels": t} for t in tokens]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        report_to=["tensorboard"],
        max_steps=60,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )  # max_grad_norm: the default, 1.0
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, callbacks=[GradientHistograms(every_n_steps=1)]
    )
    trainer.train()
    [run] = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1]).values()
    assert run["verdict"] == "healthy", run["reason"]
    assert run["loss"]["state"] == "fell"
    assert {layer["class"] for layer in run["architecture"]["layers"]} >= {"Conv1D", "Embedding", "LayerNorm"}

    events = EventAccumulator(str(tmp_path / "logs" / "bert"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    histograms = [t for t in events.Tags()["histograms"] if t.startswith("gradients/")]
    ours: dict[int, float] = {}
    for tag in histograms:
        for h in events.Histograms(tag):
            ours[h.step] = ours.get(h.step, 0.0) + h.histogram_value.sum_squares
    # The Trainer logs the pre-clip norm of the step it just took at the next global step.
    theirs = {e.step - 1: e.value for e in events.Scalars("train/grad_norm")}
    common = sorted(set(ours) & set(theirs))
    assert len(common) >= 50
    assert [np.sqrt(ours[s]) for s in common] == pytest.approx([theirs[s] for s in common], rel=1e-3)
    assert max(theirs.values()) > 1.0  # clipped at 1.0, and logged as they were before it
    assert [e.value for e in events.Scalars("gradaudit/max_grad_norm")] == [1.0]


class _Classifier(torch.nn.Module):
    """What a Trainer trains: a module whose forward returns the loss."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def _net(depth, activation, bias=0.0, std=None):
    torch.manual_seed(0)
    widths = [32] + [64] * depth
    layers = [m for a, b in zip(widths, widths[1:]) for m in (torch.nn.Linear(a, b), activation())]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(64, 4))
    for layer in net[:-1]:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.constant_(layer.bias, bias)
            if std is not None:
                torch.nn.init.normal_(layer.weight, 0, std)
    return net


def test_the_trainer_callback_gets_the_four_outcomes_of_an_mlp(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from analyzer.hf_callback import GradientHistograms

    data = [{"x": x, "labels": y} for x, y in _data()]
    recipes = {  # name: (net, learning rate, max_grad_norm)
        "healthy": (_net(2, torch.nn.ReLU), 0.1, 1.0),
        "vanishing": (_net(10, torch.nn.Sigmoid), 0.1, 1.0),
        "dead_units": (_net(2, torch.nn.ReLU, bias=-3.0), 0.05, 1.0),
        # a linear stack (no unit can die) at too fast a step; clipping at the default 1.0 keeps it
        # from diverging: it is turned off, as in a run that sets max_grad_norm=0
        "exploding": (_net(3, torch.nn.Identity, std=0.3), 1.0, 0.0),
    }
    for name, (net, lr, clip) in recipes.items():
        monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "logs" / name))
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out" / name),
            report_to=["tensorboard"],
            max_steps=160,
            per_device_train_batch_size=64,
            learning_rate=lr,
            optim="sgd",
            lr_scheduler_type="constant",
            max_grad_norm=clip,
            logging_steps=5,
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = transformers.Trainer(
            model=_Classifier(net),
            args=args,
            train_dataset=data,
            callbacks=[GradientHistograms(every_n_steps=5)],
        )
        trainer.train()
    runs = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1])
    for name in recipes:
        assert runs[name]["verdict"] == name, (name, runs[name]["reason"])
