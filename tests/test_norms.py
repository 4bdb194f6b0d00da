"""Gradient norms logged as scalars: runs with no histograms, written by PyTorch's own SummaryWriter."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import report_json, runs_by_name

from analyzer.cli import FOUND, OK, main

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")


def _train(
    log_dir,
    *,
    lr: float,
    optimizer: str,
    steps: int,
    total: bool,
    per_parameter: bool,
    histograms=False,
    sigmoid_depth: int = 0,
    histograms_of: tuple[str, ...] = (),
    weights=False,
):
    """A small MLP on a regression task, logging its loss and gradient norms every step the way
    hand-written loops do: clip_grad_norm_'s total as grad_norm, each parameter's as grads/<name>.
    Every 10 steps, gradient histograms as grad/<name> (all, or the parameters `histograms_of`), and
    with `weights` weight histograms as weights/<name>."""
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = x @ torch.randn(16, 1) * 3 + 0.1 * torch.randn(512, 1)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )
    if sigmoid_depth:  # a deep sigmoid stack instead: the textbook vanishing case
        layers = [torch.nn.Linear(16, 32), torch.nn.Sigmoid()]
        for _ in range(sigmoid_depth - 1):
            layers += [torch.nn.Linear(32, 32), torch.nn.Sigmoid()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(32, 1))
    make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    opt = make(model.parameters(), lr=lr)
    writer = SummaryWriter(str(log_dir))
    for step in range(steps):
        batch = torch.randint(0, 512, (64,))
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        writer.add_scalar("train/loss", loss.item(), step)
        if total:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            writer.add_scalar("grad_norm", norm.item(), step)
        if per_parameter:
            for name, p in model.named_parameters():
                writer.add_scalar(f"grads/{name}", p.grad.norm().item(), step)
        for name, p in model.named_parameters() if step % 10 == 0 else ():
            if histograms or name in histograms_of:
                writer.add_histogram(f"grad/{name}", p.grad, step)
            if weights:
                writer.add_histogram(f"weights/{name}", p.detach(), step)
        opt.step()
    writer.close()


def _report(tmp_path, *extra):
    rc, document = report_json(tmp_path / "report.json", tmp_path / "logs", args=["--no-html", *extra])
    return rc, runs_by_name(document)


def test_norm_scalars_alone_are_judged_for_exploding_only(tmp_path):
    _train(
        tmp_path / "logs" / "healthy", lr=1e-2, optimizer="adam", steps=150, total=True, per_parameter=True
    )
    _train(
        tmp_path / "logs" / "diverging", lr=0.2, optimizer="sgd", steps=150, total=True, per_parameter=False
    )
    _train(
        tmp_path / "logs" / "per_parameter",
        lr=1e-2,
        optimizer="adam",
        steps=150,
        total=False,
        per_parameter=True,
    )
    rc, runs = _report(tmp_path, "--fail-on", "exploding")
    assert rc == FOUND
    healthy, diverging, per_parameter = runs["healthy"], runs["diverging"], runs["per_parameter"]
    # Per-parameter norms are read as layers (vanishing and exploding); a total alone, for exploding.
    for run in (healthy, per_parameter):
        assert run["evidence"] == "per-parameter gradient norms" and run["judged"] == [
            "vanishing",
            "exploding",
            "unstable",
            "stalled",
        ]
        assert run["verdict"] == "healthy" and len(run["layers"]) == 6
    assert diverging["evidence"] == "gradient norm" and diverging["judged"][0] == "exploding"
    assert healthy["gradient_norm"]["series"] == "grad_norm"
    assert healthy["gradient_norm"]["trend"]["points"] >= 100
    assert per_parameter["gradient_norm"]["series"] == "the 6 per-parameter norms combined"
    assert diverging["verdict"] == "exploding"
    [finding, *_] = diverging["findings"]
    assert finding["severity"] == "critical" and finding["evidence_source"] == "gradient norm"
    assert diverging["gradient_norm"]["nonfinite_points"] > 0


def test_norm_scalars_beside_histograms_leave_the_verdict_to_the_histograms(tmp_path):
    _train(
        tmp_path / "logs" / "both",
        lr=1e-2,
        optimizer="adam",
        steps=60,
        total=True,
        per_parameter=False,
        histograms=True,
    )
    rc, runs = _report(tmp_path)
    assert rc == OK
    [run] = runs.values()
    assert run["evidence"] == "gradient histograms" and run["judged"] == [
        "vanishing",
        "exploding",
        "dead_units",
        "unstable",
        "stalled",
    ]
    assert any("a gradient norm was logged too (grad_norm)" in note for note in run["notes"])


def test_the_run_page_draws_the_norm_and_says_what_it_cannot_judge(tmp_path):
    _train(
        tmp_path / "logs" / "healthy", lr=1e-2, optimizer="adam", steps=80, total=True, per_parameter=False
    )
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "logs"), "-o", str(out), "-q"]) == OK
    [page] = (out / "runs").glob("*.html")
    html = page.read_text()
    said = (
        "no sign of exploding gradients; vanishing gradients and dead units cannot be seen in a global "
        "gradient norm"
    )
    assert f"— {said}" in html and "Gradient norm over steps" in html
    assert said in (out / "index.html").read_text()


def test_norm_tags_option_chooses_the_series(tmp_path):
    _train(tmp_path / "logs" / "run", lr=1e-2, optimizer="adam", steps=40, total=True, per_parameter=False)
    _, runs = _report(tmp_path, "--norm-tags", "^$")
    # No gradient evidence: only what the loss shows is judged (it fell: no verdict on gradients).
    assert runs["run"]["verdict"] == "insufficient_data" and runs["run"]["judged"] == ["unstable", "stalled"]
    _, runs = _report(tmp_path, "--norm-tags", "grad_norm")
    assert runs["run"]["evidence"] == "gradient norm"
    assert np.isfinite(runs["run"]["gradient_norm"]["last"])


def _lightning_run(out, activation: str, lr: float):
    """A LightningModule logging Lightning's own grad_norm() through its TensorBoardLogger."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities import grad_norm

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            width, depth = (64, 3) if activation == "relu" else (32, 10)
            layers, fan_in = [], 16
            for _ in range(depth):
                layers += [
                    torch.nn.Linear(fan_in, width),
                    {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid}[activation](),
                ]
                fan_in = width
            self.net = torch.nn.Sequential(*layers, torch.nn.Linear(fan_in, 4))

        def training_step(self, batch, index):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def on_before_optimizer_step(self, optimizer):
            self.log_dict(grad_norm(self, norm_type=2))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr)

    torch.manual_seed(0)
    x = torch.randn(2048, 16)
    y = (x[:, :4] @ torch.randn(4, 4)).argmax(1)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
    trainer = L.Trainer(
        max_epochs=4,
        logger=TensorBoardLogger(str(out), name="run"),
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(Net(), data)


def test_lightning_grad_norm_through_its_tensorboard_logger(tmp_path):
    pytest.importorskip("lightning")
    _lightning_run(tmp_path / "logs" / "healthy", "relu", 0.5)
    _lightning_run(tmp_path / "logs" / "diverging", "relu", 20.0)
    _lightning_run(tmp_path / "logs" / "sigmoid", "sigmoid", 0.05)
    _, runs = _report(tmp_path)
    healthy, diverging = runs["healthy/run/version_0"], runs["diverging/run/version_0"]
    sigmoid = runs["sigmoid/run/version_0"]
    for run in (healthy, diverging, sigmoid):
        assert "version" not in run["hparams"]  # Lightning's version_0 is a name, not a setting
        assert run["gradient_norm"]["series"] == "grad_2.0_norm_total"
        # stalled and unstable are judged only where the loss has enough points
        assert run["evidence"] == "per-parameter gradient norms" and run["judged"][:2] == [
            "vanishing",
            "exploding",
        ]
        assert run["layers"][0]["tag"] == "grad_2.0_norm/net.0.weight"  # in model order
    assert healthy["verdict"] == "healthy"
    assert diverging["verdict"] == "exploding" and diverging["findings"][0]["severity"] == "critical"
    assert sigmoid["verdict"] == "vanishing"
    # The vanishing finding, and the flat loss beside it (stalled, not setting the verdict)
    finding, *beside = sigmoid["findings"]
    assert [f["kind"] for f in beside] in ([], ["stalled"])
    assert finding["evidence_source"].startswith("per-parameter gradient norms")
    assert "first-layer gradient norm" in finding["summary"]


def _hugging_face_run(out, lr: float, optimizer: str):
    """A tiny GPT-2 built from a config (nothing downloaded), trained by Hugging Face's Trainer with
    report_to="tensorboard", clipping on (max_grad_norm > 0, so it logs train/grad_norm)."""
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    # Sequences that count up from a random start: learnable, so a healthy run's loss falls.
    starts = torch.randint(0, 64, (256, 1), generator=torch.Generator().manual_seed(0))
    tokens = (starts + torch.arange(32)) % 64

    class Tokens(torch.utils.data.Dataset):
        def __len__(self):
            return len(tokens)

        def __getitem__(self, i):
            return {"input_ids": tokens[i], "labels": tokens[i]}

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    arguments = TrainingArguments(
        output_dir=str(out),
        report_to=["tensorboard"],
        logging_steps=2,
        max_steps=60,
        per_device_train_batch_size=16,
        learning_rate=lr,
        optim=optimizer,
        max_grad_norm=1e9,  # clipping on, so the norm is logged; too high to stop a divergence
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    Trainer(model=model, args=arguments, train_dataset=Tokens()).train()


def test_hugging_face_trainer_grad_norm_and_its_nan(tmp_path):
    pytest.importorskip("transformers")
    _hugging_face_run(tmp_path / "logs" / "healthy", 5e-4, "adamw_torch")
    _hugging_face_run(tmp_path / "logs" / "diverging", 50.0, "sgd")
    _, runs = _report(tmp_path)
    by_name = {name.split("/")[0]: run for name, run in runs.items()}
    healthy, diverging = by_name["healthy"], by_name["diverging"]
    for run in (healthy, diverging):
        assert run["gradient_norm"]["series"] == "train/grad_norm" and run["evidence"] == "gradient norm"
    assert healthy["verdict"] == "healthy"
    # The Trainer filters NaN out of the loss it logs (logging_nan_inf_filter); the norm shows it.
    assert diverging["verdict"] == "exploding" and diverging["gradient_norm"]["nonfinite_points"] > 0
    assert diverging["findings"][0]["evidence_source"].startswith("gradient norm")


# A 10-layer sigmoid stack trained with plain SGD, its per-parameter norms logged every step.
SIGMOID_STACK_NORMS = dict(
    lr=0.05, optimizer="sgd", steps=150, total=False, per_parameter=True, sigmoid_depth=10
)


def test_a_plain_loops_per_parameter_norms_show_a_sigmoid_stack_vanishing(tmp_path):
    _train(tmp_path / "logs" / "sigmoid", **SIGMOID_STACK_NORMS)
    _, runs = _report(tmp_path)
    run = runs["sigmoid"]
    assert run["evidence"] == "per-parameter gradient norms" and run["verdict"] == "vanishing"
    assert run["findings"][0]["layers"][0] == "grads/0.weight"


def test_histograms_win_per_parameter_and_norms_judge_the_rest(tmp_path):
    # Gradient histograms of the output-side layers only, norms of every parameter: the histograms
    # are used for their parameters, the norms of the others show the vanishing input side.
    output_side = ("18.weight", "18.bias", "20.weight", "20.bias")
    _train(tmp_path / "logs" / "sigmoid", **SIGMOID_STACK_NORMS, histograms_of=output_side)
    _, runs = _report(tmp_path)
    run = runs["sigmoid"]
    assert run["evidence"] == "gradient histograms and per-parameter gradient norms"
    assert [layer["tag"] for layer in run["layers"]] == [f"grad/{name}" for name in output_side]
    assert run["verdict"] == "vanishing"
    [vanishing] = [f for f in run["findings"] if f["kind"] == "vanishing"]
    assert vanishing["evidence_source"].startswith("per-parameter gradient norms")
    assert vanishing["layers"][0] == "grads/0.weight"
    assert not any(f"grads/{name}" in f["layers"] for f in run["findings"] for name in output_side)
    notes = " | ".join(run["notes"])
    assert "gradient norms of 4 parameters were logged beside their histograms" in notes
    assert "of 18 parameters without gradient histograms" in notes
    # The run page draws the norms beside the histograms' charts, next to the finding they show.
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "logs"), "-o", str(out), "-q"]) == OK
    [page] = (out / "runs").glob("*.html")
    html = page.read_text()
    assert "Rests on per-parameter gradient norms" in html
    assert "Gradient RMS over training steps, log scale, with fitted trends: grads/0.weight" in html


def test_weight_histograms_give_the_norms_their_sizes(tmp_path):
    for name, depth in (("sigmoid", 10), ("relu", 0)):
        _train(
            tmp_path / "logs" / name,
            lr=0.05 if depth else 1e-2,
            optimizer="sgd" if depth else "adam",
            steps=150,
            total=False,
            per_parameter=True,
            sigmoid_depth=depth,
            weights=True,
        )
    _, runs = _report(tmp_path)
    sigmoid, relu = runs["sigmoid"], runs["relu"]
    assert sigmoid["verdict"] == "vanishing" and relu["verdict"] == "healthy"
    assert "square root of its parameter's size (from its weight histogram)" in relu["reason"]
    # Divided by the square root of its 512 entries, the first kernel's norm is an RMS: the finding
    # speaks of RMS, and its depth ratio is the histograms' own (the norm thresholds are not raised).
    [vanishing] = [f for f in sigmoid["findings"] if f["kind"] == "vanishing"]
    assert "gradient RMS" in vanishing["summary"]
    assert vanishing["threshold"]["depth_log10_ratio"] == "<= -3.0"
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "logs"), "-o", str(out), "-q"]) == OK
    assert all(
        "read from the run's weight histograms" in page.read_text() for page in (out / "runs").iterdir()
    )
