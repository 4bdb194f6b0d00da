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


def _post_ln_transformer_under_adam(root, lr: float, every=(1, 8, 48), steps: int = 480, seed: int = 0):
    """A two-block post-LN transformer encoder (PyTorch's default layer) regressing a count of tokens
    with Adam at `lr` from the first step (no warm-up) on batches of 8; one loop, three
    SummaryWriters logging the loss, the learning rate and every gradient's histogram every 1, 8 and
    48 steps. Returns the true label (bench/accuracy/truth.py: the loss and gradients of every step)."""
    import numpy as np
    import truth  # bench/accuracy/ is on pytest's pythonpath
    from torch import nn
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 200, size=(4096, 20))
    count = ((tokens % 7 == 0).sum(1) - (tokens % 5 == 0).sum(1)).astype("float32")
    target = (count - count.mean()) / count.std() + 0.1 * rng.normal(size=len(count))
    x, y = torch.from_numpy(tokens), torch.from_numpy(target.astype("float32"))
    torch.manual_seed(seed)

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(200, 32)
            self.position = nn.Parameter(torch.randn(20, 32) * 0.02)
            block = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(block, 2, enable_nested_tensor=False)
            self.head = nn.Linear(32, 1)

        def forward(self, t):
            return self.head(self.encoder(self.embed(t) + self.position).mean(1)).squeeze(1)

    model = Regressor()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    writers = {n: SummaryWriter(str(root / f"every{n}")) for n in every}
    losses, history = [], []
    for step in range(steps):
        rows = torch.from_numpy(rng.integers(0, len(x), 8))
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[rows]), y[rows])
        loss.backward()
        losses.append(loss.item())
        history.append(truth.step_stats({n: p.grad.numpy() for n, p in model.named_parameters()}))
        for n, writer in writers.items():
            if step % n == 0:
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("lr", lr, step)
                for name, p in model.named_parameters():
                    writer.add_histogram(f"grad/{name}", p.grad, step)
        opt.step()
    for writer in writers.values():
        writer.close()
    return truth.learning_label([n for n, _ in model.named_parameters()], history, losses)


def test_a_post_ln_transformer_under_adam_without_warmup_swings_and_is_unstable(tmp_path):
    label, detail = _post_ln_transformer_under_adam(tmp_path / "logs", lr=2e-2)
    assert label == "unstable" and detail["spikes"] >= 3, detail  # in truth: every step's loss
    runs = runs_by_name(report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])[1])
    run = runs["every1"]
    assert run["verdict"] == "unstable", run["reason"]
    [finding] = [f for f in run["findings"] if f["kind"] == "unstable"]
    assert finding["evidence"]["warmup"] == "none: the logged learning rate starts at its peak"
    assert finding["remedies"][0].startswith("Add a learning-rate warm-up")
    # Its loss did not fall either: the stall beside it is the swings', not too small a step.
    [stalled] = [f for f in run["findings"] if f["kind"] == "stalled"]
    assert "swings without settling" in stalled["summary"]
    assert not any(r.startswith("Raise the learning rate") for r in stalled["remedies"])
    # Logged every 8 or 48 steps, single batches of 8 mostly miss spikes of one to three steps: the
    # run is never called healthy (its loss did not fall), and a loss that rose is never told to
    # raise the learning rate.
    for every in (8, 48):
        run = runs[f"every{every}"]
        assert run["verdict"] in ("unstable", "stalled"), (every, run["reason"])
        if run["loss"]["state"] == "rose":
            remedies = [r for f in run["findings"] for r in f["remedies"]]
            assert not any(r.startswith("Raise the learning rate") for r in remedies), remedies
    # bench/accuracy/sparse_logging.py measures what sparse logs show by thinning the every-step log:
    # thinned to every 8 or 48 steps from step 0 it is the log those writers wrote beside it.
    import sparse_logging  # bench/accuracy/ is on pytest's pythonpath

    from analyzer.options import DEFAULT_READ_OPTIONS
    from analyzer.pipeline import analyse_evidence, analyse_run, read_evidence
    from analyzer.runs import find_runs

    [every_step] = find_runs([str(tmp_path / "logs" / "every1")]).runs
    data, from_weights = read_evidence(every_step, DEFAULT_READ_OPTIONS)
    for every in (8, 48):
        thinned = analyse_evidence(sparse_logging.thinned(data, every, 0), from_weights, DEFAULT_READ_OPTIONS)
        [logged] = find_runs([str(tmp_path / "logs" / f"every{every}")]).runs
        written = analyse_run(logged)
        assert list(thinned.stats.steps) == list(written.stats.steps) == list(range(0, 480, every))
        assert thinned.stats.rms.tolist() == written.stats.rms.tolist()
        assert (thinned.loss_course.start, thinned.loss_course.end) == (
            written.loss_course.start,
            written.loss_course.end,
        )
        assert thinned.diagnosis.verdict == written.diagnosis.verdict
