"""gradaudit's PyTorch logger (analyzer/torch_logger.py): the histograms it writes, what a logged step
costs the device (shown under a TorchDispatchMode, without a GPU), what it keeps alive, and real
trainings whose verdicts equal those of hand-written full-precision gradient logging."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from conftest import legacy_histograms, report_json, runs_by_name
from tensorboard.compat.proto import summary_pb2

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from analyzer.binning import Binning, bucket_limits  # noqa: E402
from analyzer.torch_logger import GradientLogger, watch  # noqa: E402

BUCKETS = len(bucket_limits()) + 1


def _histograms(log_dir) -> dict:
    """Each tag's HistogramProtos as written, in order."""
    return {tag: [h for _, h in steps] for tag, steps in legacy_histograms(log_dir).items()}


def _awkward_gradient() -> torch.Tensor:
    """Every kind of entry a histogram must keep apart: exact zeros, -0.0, subnormals, tiny and huge
    values, both signs, NaN and Inf."""
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.normal(0, 1e-3, 500),
            np.zeros(100),
            [-0.0, 1e-45, -3e-45, 1e-40, 1e-30, -1e-20, 3e30, -2e38, np.nan, np.inf, -np.inf],
        ]
    ).astype(np.float32)
    return torch.from_numpy(values.reshape(-1, 1))


class _Holder(torch.nn.Module):
    def __init__(self, gradient: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros_like(gradient))
        self.weight.grad = gradient.clone()


def test_the_pytorch_and_keras_paths_write_the_same_histogram_for_the_same_tensor(tmp_path):
    gradient = _awkward_gradient()
    keras_path = summary_pb2.Summary()  # what the Keras callback writes: Binning's histogram, filled
    [histogram] = Binning(bucket_limits()).histograms([gradient.numpy()])
    histogram.fill(keras_path.value.add(tag="gradients/weight").histo)
    expected = keras_path.value[0].histo
    for on_device in (False, True):
        holder = _Holder(gradient)  # the logger holds it weakly
        logger = GradientLogger(holder, tmp_path / str(on_device), reduce_on_device=on_device)
        logger.log(0)
        logger.close()
        [written] = _histograms(tmp_path / str(on_device))["gradients/weight"]
        assert list(written.bucket_limit) == list(expected.bucket_limit)
        assert list(written.bucket) == list(expected.bucket)
        assert (written.min, written.max, written.num) == (expected.min, expected.max, expected.num)
        assert np.isnan(written.sum) and np.isnan(written.sum_squares)  # a NaN entry: sums unknown
    finite = torch.nan_to_num(gradient, nan=0.5, posinf=2.0, neginf=-2.0)
    [histogram] = Binning(bucket_limits()).histograms([finite.numpy()])
    for on_device in (False, True):
        holder = _Holder(finite)
        logger = GradientLogger(holder, tmp_path / f"finite{on_device}", reduce_on_device=on_device)
        logger.log(0)
        logger.close()
        [written] = _histograms(tmp_path / f"finite{on_device}")["gradients/weight"]
        if not on_device:  # the same numpy binning: byte for byte
            reference = summary_pb2.HistogramProto()
            histogram.fill(reference)
            assert written.SerializeToString() == reference.SerializeToString()
        # on a device, float64 sums in another order: equal to float64's rounding
        assert written.sum == pytest.approx(histogram.total, rel=1e-12)
        assert written.sum_squares == pytest.approx(histogram.total_squares, rel=1e-12)
        assert list(written.bucket) == histogram.bucket.tolist()


def test_a_logged_step_copies_one_small_tensor_off_the_device_and_reads_no_scalar(tmp_path):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            self.calls.append((str(func), args, kwargs))
            return func(*args, **kwargs)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    torch.nn.functional.cross_entropy(model(torch.randn(32, 64)), torch.randint(0, 10, (32,))).backward()
    parameters = len(list(model.parameters()))
    for loss in (None, torch.tensor(2.5)):
        logger = GradientLogger(model, tmp_path / str(loss), reduce_on_device=True)
        if loss is not None:
            logger.loss(loss)
        with Recorder() as recorder:  # what the training thread runs; the writer thread's work is not
            logger.log(0)  # recorded (a dispatch mode is the thread's own)
        logger.close()
        to_host = [
            args[0] for name, args, kwargs in recorder.calls if "_to_copy" in name and "device" in kwargs
        ]
        assert len(to_host) == 1  # one copy off the device per logged step
        assert to_host[0].numel() <= (BUCKETS + 4) * parameters + (loss is not None)
        assert not [name for name, _, _ in recorder.calls if "_local_scalar_dense" in name]  # no .item()
        assert not [name for name, _, _ in recorder.calls if "nonzero" in name]  # no data-dependent shape


@pytest.mark.parametrize("on_device", [False, True])
def test_no_gradient_is_held_after_a_logged_step(tmp_path, on_device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logger = watch(model, tmp_path / "run", every_n_steps=1, optimizer=optimizer, reduce_on_device=on_device)
    torch.nn.functional.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 4, (16,))).backward()
    held = [weakref.ref(p.grad) for p in model.parameters()]
    optimizer.step()  # logged here, before the step
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    assert all(ref() is None for ref in held)
    logger.close()
    gone = weakref.ref(model)
    del model, optimizer
    gc.collect()
    assert gone() is None  # the logger keeps no model alive either


# --- real trainings: the verdicts are the intended ones and those of hand-written logging ----------


def _data(features=32, classes=4, n=2048, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return torch.from_numpy(x), torch.from_numpy(y)


def _mlp(widths, activation, bias=0.0, seed=0, std=None):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        linear = torch.nn.Linear(a, b)
        if std is not None:
            torch.nn.init.normal_(linear.weight, 0, std)
        if i < len(widths) - 2:
            torch.nn.init.constant_(linear.bias, bias)
            layers += [linear, activation()]
        else:
            layers.append(linear)
    return torch.nn.Sequential(*layers)


class _Transformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(100, 32)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.head(torch.nn.functional.gelu(self.encoder(self.embed(x)).mean(1)))


def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1, stride=2),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 4),
    )


def _images(n=2048):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3, 16, 16)).astype("float32") + rng.normal(size=(n, 3, 1, 1)).astype("float32")
    y = np.argmax(x.mean(axis=(2, 3)) @ rng.normal(size=(3, 4)), axis=1)
    return torch.from_numpy(x), torch.from_numpy(y)


RECIPES = {
    # name: (model, optimizer, lr, steps, data)
    "healthy_cnn": (_cnn, "adam", 1e-3, 150, _images),
    "healthy_mlp": (lambda: _mlp([32, 64, 64, 4], torch.nn.ReLU), "adam", 1e-3, 200, _data),
    "vanishing_sigmoid": (lambda: _mlp([32] + [64] * 10 + [4], torch.nn.Sigmoid), "sgd", 0.1, 200, _data),
    "exploding_lr": (lambda: _mlp([32, 64, 64, 64, 4], torch.nn.ReLU, std=0.3), "sgd", 1.0, 100, _data),
    "dead_units": (lambda: _mlp([32, 64, 64, 4], torch.nn.ReLU, bias=-3.0), "sgd", 0.05, 200, _data),
    "healthy_transformer": (
        _Transformer,
        "adam",
        3e-3,
        200,
        # the class: how many of the 12 tokens are below 50 (bag of tokens: no position needed)
        lambda: (lambda x: (x, ((x < 50).sum(1) - 4).clamp(0, 3)))(torch.randint(0, 100, (2048, 12))),
    ),
}


def _train(name, root, every=5):
    """One training, its gradients logged twice at the same steps: by watch() and by hand (PyTorch's
    add_histogram of each full-precision .grad, as the README's loop once did)."""
    from torch.utils.tensorboard import SummaryWriter

    make, kind, lr, steps, data = RECIPES[name]
    model = make()
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[kind](model.parameters(), lr=lr)
    x, y = data()
    logger = watch(model, root / "watch" / name, every_n_steps=every, optimizer=optimizer)
    by_hand = SummaryWriter(str(root / "by_hand" / name))
    rng = np.random.default_rng(0)
    try:
        for step in range(steps):
            batch = torch.from_numpy(rng.integers(0, len(x), 64))
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            if step % every == 0:
                logger.loss(loss)
                by_hand.add_scalar("train/loss", loss.item(), step)
                for parameter, p in model.named_parameters():
                    by_hand.add_histogram(f"grad/{parameter}", p.grad, step)
            optimizer.step()
    except ValueError:
        pass  # add_histogram refuses NaN: a diverged run's hand-written log ends there, as a user's
    finally:
        logger.close()
        by_hand.close()


@pytest.mark.slow
def test_real_pytorch_trainings_logged_by_watch_get_the_intended_verdicts_and_those_of_hand_logging(tmp_path):
    for name in RECIPES:
        _train(name, tmp_path)
    watched = runs_by_name(report_json(tmp_path / "w.json", tmp_path / "watch", args=["--no-html"])[1])
    by_hand = runs_by_name(report_json(tmp_path / "h.json", tmp_path / "by_hand", args=["--no-html"])[1])
    intended = {name: name.split("_")[0] if not name.startswith("dead") else "dead_units" for name in RECIPES}
    intended["exploding_lr"] = "exploding"
    for name, verdict in intended.items():
        assert watched[name]["verdict"] == verdict, (name, watched[name]["reason"])
        assert by_hand[name]["verdict"] == verdict, (name, by_hand[name]["reason"])
    # layers named from the model: its classes and the activations its modules say
    layers = {layer["path"]: layer for layer in watched["vanishing_sigmoid"]["architecture"]["layers"]}
    assert layers["0"]["class"] == "Linear" and layers["0"]["activation"] == "sigmoid"
    transformer = {layer["path"]: layer for layer in watched["healthy_transformer"]["architecture"]["layers"]}
    assert transformer["head"]["activation"] == ""  # F.gelu in forward(): unknown, never guessed


def _steps_logged(log_dir) -> dict[str, list[int]]:
    return {tag: [step for step, _ in steps] for tag, steps in legacy_histograms(log_dir).items()}


def test_one_line_watches_any_optimizer_of_the_model_and_no_other(tmp_path):
    torch.manual_seed(0)
    model, other = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    optimizer, other_optimizer = (
        torch.optim.SGD(model.parameters(), 0.1),
        torch.optim.SGD(other.parameters(), 0.1),
    )
    with watch(model, tmp_path / "run", every_n_steps=3):
        for _ in range(7):
            for m, o in ((model, optimizer), (other, other_optimizer)):
                o.zero_grad()
                m(torch.randn(8, 4)).square().mean().backward()
                o.step()
    assert _steps_logged(tmp_path / "run") == {"gradients/weight": [0, 3, 6], "gradients/bias": [0, 3, 6]}
    optimizer.zero_grad()
    model(torch.randn(8, 4)).square().mean().backward()
    optimizer.step()  # closed: the hook is gone
    assert _steps_logged(tmp_path / "run")["gradients/weight"] == [0, 3, 6]


def test_a_watched_folder_gets_a_new_event_file_without_importing_tensorflow(tmp_path):
    """TensorBoard's EventFileWriter opens its file through tf.io.gfile, which imports TensorFlow
    where it is installed (as here): seconds and hundreds of MB in a PyTorch training."""
    import importlib.util
    import subprocess
    import sys

    assert importlib.util.find_spec("tensorflow") is not None  # else this test shows nothing
    code = f"""
import sys, torch
from analyzer.torch_logger import watch
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), 0.1)
with watch(model, {str(tmp_path / "run")!r}, every_n_steps=2):
    for _ in range(5):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        optimizer.step()
print("tensorflow" in sys.modules)
"""
    (tmp_path / "run").mkdir()
    before = tmp_path / "run" / "events.out.tfevents.0.earlier"
    before.write_bytes(b"a file the user had")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
    assert before.read_bytes() == b"a file the user had"
    before.unlink()
    assert _steps_logged(tmp_path / "run") == {"gradients/weight": [0, 2, 4], "gradients/bias": [0, 2, 4]}
    [path] = (tmp_path / "run").glob("events.out.tfevents.*")
    assert path.name.endswith(".gradaudit")


def test_accumulated_gradients_are_read_once_per_optimizer_step_summed(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), 0.0)
    batches = [torch.randn(8, 4) for _ in range(4)]
    with watch(model, tmp_path / "run", every_n_steps=1, optimizer=optimizer, reduce_on_device=True):
        for pair in (batches[:2], batches[2:]):
            optimizer.zero_grad()
            for x in pair:  # two micro-batches per step
                model(x).sum().backward()
            optimizer.step()
    [first, second] = _histograms(tmp_path / "run")["gradients/weight"]
    assert first.sum == pytest.approx(float(sum(x.sum() for x in batches[:2])), rel=1e-5)
    assert second.sum == pytest.approx(float(sum(x.sum() for x in batches[2:])), rel=1e-5)


def test_under_a_grad_scaler_the_gradients_are_read_unscaled_and_skipped_steps_are_not_logged(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 4)
    optimizer = torch.optim.SGD(model.parameters(), 0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    true_rms = []
    with watch(model, tmp_path / "run", every_n_steps=1, optimizer=optimizer):
        for step in range(4):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                loss = torch.nn.functional.cross_entropy(model(x), y) * (1e6 if step == 2 else 1.0)
            scaler.scale(loss).backward()  # step 2 overflows float16 at this scale: the scaler skips it
            true_rms.append(float((model.weight.grad / scaler.get_scale()).square().mean().sqrt()))
            scaler.step(optimizer)
            scaler.update()
    logged = _histograms(tmp_path / "run")["gradients/weight"]
    assert len(logged) == 3  # the skipped step never reached the optimizer
    rms = [float(np.sqrt(h.sum_squares / h.num)) for h in logged]
    assert rms == pytest.approx([true_rms[0], true_rms[1], true_rms[3]], rel=1e-3)  # unscaled


def test_a_compiled_model_is_logged_under_its_own_parameter_names(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    compiled = torch.compile(model, backend="aot_eager")  # the graph capture, no C++ toolchain needed
    optimizer = torch.optim.SGD(compiled.parameters(), lr=0.1)
    with watch(compiled, tmp_path / "run", every_n_steps=2):
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(
                compiled(torch.randn(16, 8)), torch.randint(0, 4, (16,))
            ).backward()
            optimizer.step()
    logged = _steps_logged(tmp_path / "run")
    assert sorted(logged) == sorted(f"gradients/{name}" for name, _ in model.named_parameters())
    assert logged["gradients/0.weight"] == [0, 2, 4]


def _ddp_worker(rank: int, root: str, store: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(
            torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with watch(model, f"{root}/rank{rank}", every_n_steps=2, optimizer=optimizer):
            for _ in range(5):
                optimizer.zero_grad()
                x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def _spawn(worker, root: str, processes: int) -> None:
    """Run worker(rank, root, store) in `processes` fresh processes that meet at a file store beside
    `root`. (A TCP store is served by rank 0: a rank still tearing its client down when rank 0 exited
    aborted with 'terminate called without an active exception' in two clean-clone CI runs.)"""
    import torch.multiprocessing as mp

    mp.spawn(worker, args=(root, f"file://{root}.store"), nprocs=processes, join=True)


@pytest.mark.slow
def test_under_distributed_data_parallel_rank_zero_writes_under_the_models_own_names(tmp_path):
    _spawn(_ddp_worker, str(tmp_path), 2)
    logged = _steps_logged(tmp_path / "rank0")
    assert sorted(logged) == [
        "gradients/0.bias",
        "gradients/0.weight",
        "gradients/2.bias",
        "gradients/2.weight",
    ]
    assert logged["gradients/0.weight"] == [0, 2, 4]
    assert not list((tmp_path / "rank1").glob("events.out.tfevents.*"))  # only rank 0 writes


def _fsdp_worker(rank: int, root: str, store: str) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel

    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=1)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        sharded = FullyShardedDataParallel(model, device_id=torch.device("cpu"))
        with pytest.raises(ValueError, match="sharded by FSDP"):
            watch(sharded, root)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_parameters_sharded_by_fsdp_are_refused_in_one_line(tmp_path):
    _spawn(_fsdp_worker, str(tmp_path / "run"), 1)
    assert not (tmp_path / "run").exists()  # refused before anything is written
