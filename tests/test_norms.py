"""Gradient norms logged as scalars: runs with no histograms, written by PyTorch's own SummaryWriter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analyzer.cli import FOUND, OK, main

torch = pytest.importorskip("torch")


def _train(
    log_dir, *, lr: float, optimizer: str, steps: int, total: bool, per_parameter: bool, histograms=False
):
    """A small MLP on a regression task, logging its loss and gradient norms every step the way
    hand-written loops do: clip_grad_norm_'s total as grad_norm, each parameter's as grads/<name>."""
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
        if histograms and step % 10 == 0:
            for name, p in model.named_parameters():
                writer.add_histogram(f"grad/{name}", p.grad, step)
        opt.step()
    writer.close()


def _report(tmp_path, *extra):
    out = tmp_path / "report.json"
    rc = main(["report", str(tmp_path / "logs"), "--no-html", "--json", str(out), "-q", *extra])
    return rc, {r["run"]: r for r in json.loads(out.read_text())["runs"]}


def test_norm_scalars_alone_are_judged_for_exploding_only(tmp_path):
    _train(
        tmp_path / "logs" / "healthy", lr=1e-3, optimizer="adam", steps=150, total=True, per_parameter=True
    )
    _train(
        tmp_path / "logs" / "diverging", lr=0.2, optimizer="sgd", steps=150, total=True, per_parameter=False
    )
    _train(
        tmp_path / "logs" / "per_parameter",
        lr=1e-3,
        optimizer="adam",
        steps=150,
        total=False,
        per_parameter=True,
    )
    rc, runs = _report(tmp_path, "--fail-on", "exploding")
    assert rc == FOUND
    healthy, diverging, per_parameter = runs["healthy"], runs["diverging"], runs["per_parameter"]
    for run in runs.values():
        assert run["evidence"] == "gradient norm" and run["judged"] == ["exploding"]
    assert healthy["verdict"] == "healthy" and "judged for exploding only" in healthy["reason"]
    assert (
        healthy["gradient_norm"]["series"] == "grad_norm"
        and healthy["gradient_norm"]["trend"]["points"] >= 100
    )
    assert per_parameter["verdict"] == "healthy"
    assert per_parameter["gradient_norm"]["series"] == "the 6 per-parameter norms combined"
    assert diverging["verdict"] == "exploding"
    [finding, *_] = diverging["findings"]
    assert finding["severity"] == "critical" and finding["evidence_source"] == "gradient norm"
    assert diverging["gradient_norm"]["nonfinite_points"] > 0


def test_norm_scalars_beside_histograms_leave_the_verdict_to_the_histograms(tmp_path):
    _train(
        tmp_path / "logs" / "both",
        lr=1e-3,
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
    ]
    assert any("a gradient norm was logged too (grad_norm)" in note for note in run["notes"])


def test_the_run_page_draws_the_norm_and_says_what_it_cannot_judge(tmp_path):
    _train(
        tmp_path / "logs" / "healthy", lr=1e-3, optimizer="adam", steps=80, total=True, per_parameter=False
    )
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "logs"), "-o", str(out), "-q"]) == OK
    [page] = (out / "runs").glob("*.html")
    html = page.read_text()
    assert "— exploding only" in html and "Gradient norm over steps" in html
    assert "exploding only" in (out / "index.html").read_text()


def test_norm_tags_option_chooses_the_series(tmp_path):
    _train(tmp_path / "logs" / "run", lr=1e-3, optimizer="adam", steps=40, total=True, per_parameter=False)
    _, runs = _report(tmp_path, "--norm-tags", "^$")
    assert runs["run"]["verdict"] == "insufficient_data" and runs["run"]["judged"] == []
    _, runs = _report(tmp_path, "--norm-tags", "grad_norm")
    assert runs["run"]["evidence"] == "gradient norm"
    assert np.isfinite(runs["run"]["gradient_norm"]["last"])
