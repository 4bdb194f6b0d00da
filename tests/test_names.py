"""Logs as people name them, written by the real writers: PyTorch's add_hparams child folder is part of
its run, and the folder names writers invent (version_0) are names, not settings."""

from __future__ import annotations

import pytest
from conftest import report_json

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")


def test_add_hparams_child_folder_is_part_of_its_run_and_gives_it_its_settings(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "logs" / "version_0"))  # as Lightning names its runs
    for step in range(10):
        writer.add_histogram("grad/fc.weight", torch.randn(200) * 0.1, step)
        writer.add_scalar("train_loss", 2.0 / (step + 1), step)
    writer.add_hparams(
        {"lr": 0.01, "batch_size": 32}, {"hparam/Final_Val_Loss": 0.3, "hparam/train_loss": 5.0}
    )
    writer.close()
    children = [p for p in (tmp_path / "logs" / "version_0").iterdir() if p.is_dir()]
    assert len(children) == 1 and children[0].name.replace(".", "").isdigit()  # <run>/<time.time()>/
    _, document = report_json(tmp_path / "r.json", tmp_path / "logs", args=["--no-html"])
    [run] = document["runs"]  # the child folder is no run of its own
    assert run["run"] == "version_0" and run["hparams"] == {"batch_size": "32", "lr": "0.01"}  # no version=0
    assert run["loss"]["training_series"] == "train_loss"  # never hparam/train_loss's one point
    assert run["verdict"] == "healthy"
