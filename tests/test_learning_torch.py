"""PyTorch loops that swing without diverging, and one whose warm restarts make the loss jump and fall:
the verdict asks whether they learned (issue 27's unstable and its restarts)."""

from __future__ import annotations

import pytest
from conftest import report_json, runs_by_name

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch")


def _tanh_mlp(
    log_dir, optimizer: str, lr: float, batch: int, restarts: bool = False, steps: int = 600
) -> None:
    """A tanh MLP classifying 4 classes; every step the loss, the global gradient norm and the learning
    rate, every 10 steps each gradient's histogram."""
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    x = torch.randn(2048, 20)
    y = (x[:, :5] @ torch.randn(5, 4)).argmax(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(20, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 4),
    )
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer](model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=100) if restarts else None
    writer = SummaryWriter(str(log_dir))
    for step in range(steps):
        batch_rows = torch.randint(0, 2048, (batch,))
        loss = torch.nn.functional.cross_entropy(model(x[batch_rows]), y[batch_rows])
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        writer.add_scalar("train/loss", loss.item(), step)
        writer.add_scalar("grad_norm", norm.item(), step)
        writer.add_scalar("lr", opt.param_groups[0]["lr"], step)
        for name, p in model.named_parameters() if step % 10 == 0 else ():
            writer.add_histogram(f"grad/{name}", p.grad, step)
        opt.step()
        if schedule is not None:
            schedule.step()
    writer.close()


def test_adam_too_fast_on_tiny_batches_is_unstable_and_warm_restarts_are_healthy(tmp_path):
    _tanh_mlp(tmp_path / "logs" / "adam_spikes", "adam", 0.1, 8)
    _tanh_mlp(tmp_path / "logs" / "adam_swings", "adam", 0.05, 8)
    _tanh_mlp(tmp_path / "logs" / "sgdr", "sgd", 0.5, 32, restarts=True)
    runs = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1])
    assert runs["adam_spikes"]["verdict"] == "unstable", runs["adam_spikes"]["reason"]
    assert runs["adam_swings"]["verdict"] == "unstable", runs["adam_swings"]["reason"]
    [finding] = [f for f in runs["adam_spikes"]["findings"] if f["kind"] == "unstable"]
    # the logged learning rate starts at its peak (0.1 throughout): a warm-up first, then a lower rate
    assert finding["evidence"]["warmup"] == "none: the logged learning rate starts at its peak"
    assert finding["remedies"][0].startswith("Add a learning-rate warm-up")
    assert finding["remedies"][1].startswith("Lower the learning rate")
    assert runs["sgdr"]["verdict"] == "healthy", runs["sgdr"]["reason"]
    assert runs["sgdr"]["loss"]["state"] == "fell"
