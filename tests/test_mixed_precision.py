"""Mixed precision in PyTorch: a BatchNorm CNN under float16 autocast with a GradScaler, its .grad
logged right after scaler.scale(loss).backward(), as many loops do, beside the scale it carries: the
logged gradients are the true ones times the scale, and the steps the scaler skipped hold Inf.
Healthy is healthy; a divergence is still exploding."""

from __future__ import annotations

import pytest
from conftest import report_json, runs_by_name

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch")


def _amp_cnn(
    log_dir, lr: float, steps: int = 120, every: int = 2, init_scale: float = 2.0**16, log_scale: bool = True
) -> list[float]:
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    x = torch.randn(512, 3, 16, 16)
    y = (x.mean(dim=(2, 3)) @ torch.randn(3, 4)).argmax(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 4),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=10)
    writer = SummaryWriter(str(log_dir))
    scales = []
    for step in range(steps):
        batch = torch.randint(0, 512, (64,))
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        if step % every == 0:  # the scaled gradients, as a loop logs them before scaler.step
            for name, p in model.named_parameters():
                g = p.grad.detach().float()
                if torch.isfinite(g).any():  # add_histogram refuses an all-non-finite tensor
                    writer.add_histogram(f"grad/{name}", g, step)
            writer.add_scalar("train/loss", loss.item(), step)
            if log_scale:  # the scale the logged gradients carry
                writer.add_scalar("amp/scale", scaler.get_scale(), step)
        scales.append(scaler.get_scale())
        scaler.step(optimizer)
        scaler.update()
    writer.close()
    return scales


def test_scaled_gradients_of_a_healthy_run_are_judged_unscaled_and_healthy(tmp_path):
    scales = _amp_cnn(tmp_path / "logs" / "amp", lr=0.05)
    assert max(scales) / min(scales) >= 4  # the scale moved: it grew every 10 good steps, and backed off
    [run] = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1]).values()
    assert run["verdict"] == "healthy", run["reason"]
    assert any("before unscaling" in note for note in run["notes"])
    assert run["loss"]["state"] == "fell"


def test_a_mixed_precision_run_that_truly_diverges_is_still_exploding(tmp_path):
    _amp_cnn(tmp_path / "logs" / "diverging", lr=50.0)
    [run] = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1]).values()
    assert run["verdict"] == "exploding", run["reason"]
