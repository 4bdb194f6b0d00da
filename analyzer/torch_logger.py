"""gradaudit's PyTorch logger: every parameter's gradient, as the Keras callback logs it, from any loop.

    from analyzer.torch_logger import watch
    logger = watch(model, "runs/exp1")            # one line; every 100th optimizer step by default
    ...                                           # train as usual
    logger.close()                                # or `with watch(...) as logger:`

It reads each gradient where it is final: in a hook the optimizer runs before each step, after
``backward`` (every micro-batch of gradient accumulation summed), after clipping, and under a
``GradScaler`` after ``scaler.step`` unscaled it (steps the scaler skips never reach the optimizer:
they are not logged). Each gradient becomes TensorBoard's legacy ``HistogramProto`` (exact count,
sum and sum of squares, 10 log-spaced buckets per decade, a bucket of exact zeros, non-finite entries
counted as missing, their sums NaN), identical to what the Keras callback writes for the same tensor.

On an accelerator each gradient is reduced on its own device to its bucket counts and four moments,
and the logged step copies one tensor of (buckets + 4) x parameters numbers to the host (plus the
loss, where one was given as a tensor), without a per-parameter ``.item()``; the histograms are built
and written on a thread of their own. On the CPU a gradient is already on the host: it is copied and
binned on that thread with the table of ``binning.Binning``, several times faster than ``bucketize``.
The module tree is written once (names, classes, and an activation only where a module says it: a
``ReLU`` module after a ``Linear`` in an ``nn.Sequential``; ``F.gelu`` inside ``forward()`` is
unknown). Under ``torch.distributed`` only rank 0 writes; parameters that FSDP shards are refused.
"""

from __future__ import annotations

import json
import time
import weakref

import numpy as np
import torch
from tensorboard.compat.proto import event_pb2, summary_pb2
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .binning import BUCKETS_PER_DECADE, Binning, bucket_limits
from .eventlog import LAYER_LIST_PLUGIN, LAYER_LIST_TAG, EventFile, OrderedThread, text_event

# Every 100th optimizer step (and the first): ten points over 1,000 steps for the analyzer's fits, at
# a cost under 1 % on the trainings bench/torch_overhead.py measures. W&B's watch() logs every 1,000.
DEFAULT_EVERY = 100
LOSS_TAG = "train/loss"
# Module classes that are the activation of the module before them in an nn.Sequential.
_ACTIVATIONS = {
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "ELU",
    "SELU",
    "CELU",
    "PReLU",
    "GELU",
    "SiLU",
    "Mish",
    "Tanh",
    "Sigmoid",
    "Hardtanh",
    "Hardsigmoid",
    "Hardswish",
    "Softplus",
    "Softsign",
    "Softmax",
    "LogSoftmax",
}


def watch(
    model: torch.nn.Module,
    log_dir,
    every_n_steps: int = DEFAULT_EVERY,
    optimizer: torch.optim.Optimizer | None = None,
    tag_prefix: str = "gradients/",
    buckets_per_decade: int = BUCKETS_PER_DECADE,
    reduce_on_device: bool | None = None,
) -> GradientLogger:
    """Log `model`'s gradients every `every_n_steps` optimizer steps (and at the first) to `log_dir`
    (a folder, or a SummaryWriter of PyTorch or tensorboardX whose event file to share), read in a
    hook before the optimizer's step: `optimizer`'s, or, without one, every optimizer that steps any
    of the model's parameters. Returns the logger: `logger.loss(value)` adds the loss to the next
    logged step, `logger.close()` writes what is pending."""
    logger = GradientLogger(model, log_dir, every_n_steps, tag_prefix, buckets_per_decade, reduce_on_device)
    logger.attach(optimizer)
    return logger


class GradientLogger:
    """Reduces and writes a model's gradients at the steps it is told to; `watch` attaches it to the
    optimizer's steps, and `log(step)` logs by hand (after backward, before the optimizer's step)."""

    def __init__(
        self,
        model: torch.nn.Module,
        log_dir,
        every_n_steps: int = DEFAULT_EVERY,
        tag_prefix: str = "gradients/",
        buckets_per_decade: int = BUCKETS_PER_DECADE,
        reduce_on_device: bool | None = None,
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps}")
        model = _unwrapped(model)
        _refuse_sharded(model)
        self.every_n_steps = every_n_steps
        self.tag_prefix = tag_prefix
        self.reduce_on_device = reduce_on_device
        self._model = weakref.ref(model)  # never keeps the model (and its gradients) alive
        self._ids = {id(p) for p in model.parameters()}
        self._optimizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # steps our parameters?
        self._limits = bucket_limits(buckets_per_decade)
        self._zero = int(np.searchsorted(self._limits, 0.0, side="right"))  # the bucket of exact zeros
        self._binning = Binning(self._limits)
        self._boundaries: dict[tuple, torch.Tensor] = {}
        self._writes_here = _is_rank_zero()
        self._events = _event_sink(log_dir) if self._writes_here else None
        self._writer = OrderedThread("gradaudit-writer") if self._writes_here else None
        self._model_event = _module_tree_event(model)
        self._steps = 0
        self._loss = None
        self._hooks: list = []

    # --- when ---------------------------------------------------------------------------------

    def attach(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Log before the optimizer's steps: `optimizer`'s, or any optimizer's that steps one of the
        model's parameters."""
        if optimizer is not None:
            self._hooks.append(optimizer.register_step_pre_hook(self._before_step))
        else:
            self._hooks.append(register_optimizer_step_pre_hook(self._before_step))

    def _before_step(self, optimizer, args, kwargs) -> None:
        steps_ours = self._optimizers.get(optimizer)
        if steps_ours is None:  # asked once per optimizer: the hook runs at every step of every one
            steps_ours = any(id(p) in self._ids for group in optimizer.param_groups for p in group["params"])
            self._optimizers[optimizer] = steps_ours
        if not steps_ours:
            return  # another model's optimizer
        if self._steps % self.every_n_steps == 0:
            self.log(self._steps)
        self._steps += 1

    def loss(self, value) -> None:
        """The training loss to write beside the next logged step's gradients (a float or a tensor;
        a tensor is copied to the host with them, in the same transfer)."""
        self._loss = value.detach() if isinstance(value, torch.Tensor) else float(value)

    # --- what ---------------------------------------------------------------------------------

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The model's trainable parameters, in its order; none once the model is gone."""
        model = self._model()
        return [] if model is None else [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def log(self, step: int) -> None:
        """Reduce the gradients the model holds now and hand them to the writer thread."""
        named = self.parameters()
        if named and self._writes_here:
            self.log_taken(step, [self.take(p.grad) for _, p in named])

    @property
    def on_device(self) -> bool:
        """Reduce on the gradients' device: where the model has a parameter off the CPU, unless told."""
        if self.reduce_on_device is None:
            self.reduce_on_device = any(p.device.type != "cpu" for _, p in self.parameters())
        return self.reduce_on_device

    def take(self, gradient):
        """What a logged step keeps of one gradient, at once (the next backward writes into it): its
        reduction on its device, or on the CPU a copy of its entries."""
        if gradient is None:
            return None
        return self._row(gradient) if self.on_device else _host_copy(gradient)

    def log_taken(self, step: int, taken: list) -> None:
        """Log what take() kept of each parameter's gradient (in the parameters' order, None for one
        without a gradient) as the histograms of `step`, beside the loss given since the last one."""
        named = self.parameters()
        tags = [self.tag_prefix + name for name, _ in named]
        sizes = np.array([p.numel() for _, p in named])
        loss, self._loss = self._loss, None
        if self.on_device:
            reduced = self._to_host(taken, loss)
            self._writer.submit(self._write_reduced, step, tags, sizes, reduced)
        else:
            loss = float(loss) if isinstance(loss, torch.Tensor) else loss
            self._writer.submit(self._write_binned, step, tags, sizes, taken, loss)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """A scalar beside the histograms (a clipping norm, a loss scale), written in order with them."""
        if self._writes_here:
            summary = summary_pb2.Summary()
            summary.value.add(tag=tag, simple_value=float(value))
            event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
            self._writer.submit(self._events.add_event, event)

    @torch.no_grad()
    def _to_host(self, rows: list, loss) -> tuple:
        """The rows of the reduced gradients (NaN rows for those without one) as one [parameters,
        buckets + 4] float64 tensor, and the loss, copied to the host in one transfer (not waited for
        here)."""
        device = next((r.device for r in rows if isinstance(r, torch.Tensor)), torch.device("cpu"))
        buckets = len(self._limits) + 1
        missing = torch.full((buckets + 4,), float("nan"), dtype=torch.float64, device=device)
        reduced = torch.stack([missing if r is None else r.to(device) for r in rows])
        loss_in_host = isinstance(loss, torch.Tensor)  # its last number
        if loss_in_host:
            loss = loss.reshape(1).to(dtype=torch.float64)
            reduced = torch.cat([reduced.reshape(-1), loss if loss.device == device else loss.to(device)])
        pinned = device.type == "cuda"
        host = reduced.to("cpu", copy=True, non_blocking=pinned)
        done = torch.cuda.Event() if pinned else None
        if done is not None:
            done.record()
        return host, done, None if loss_in_host else loss, loss_in_host

    @torch.no_grad()
    def _row(self, g: torch.Tensor) -> torch.Tensor:
        """A gradient's bucket counts and the sum, sum of squares, minimum and maximum of its finite
        entries, as buckets + 4 float64 numbers made on its device."""
        buckets = len(self._limits) + 1
        size = g.numel()
        if g.is_sparse:  # the rows the batch touched; the others are zeros
            g = g.coalesce().values()
        values = g.detach().reshape(-1)
        if values.dtype in (torch.float16, torch.bfloat16):
            values = values.float()  # float32 holds them exactly
        finite = torch.isfinite(values)
        index = torch.bucketize(values, self._boundaries_for(values), right=True)
        index = torch.where(finite, index, buckets)  # non-finite: a column dropped below
        # scatter_add, not bincount: bincount reads its input's maximum back to the host to size
        # its output, a synchronisation on an accelerator
        ones = torch.ones((), dtype=torch.float64, device=values.device).expand(index.shape)
        counts = torch.zeros(buckets + 1, dtype=torch.float64, device=values.device)
        counts = counts.scatter_add_(0, index, ones)[:buckets]
        kept = torch.where(finite, values, 0).to(torch.float64)
        low = torch.where(finite, values, float("inf")).min().to(torch.float64)
        high = torch.where(finite, values, float("-inf")).max().to(torch.float64)
        if size > values.numel():  # a sparse gradient's untouched entries: zeros
            counts[self._zero] += size - values.numel()
            low, high = torch.clamp(low, max=0.0), torch.clamp(high, min=0.0)
        moments = torch.stack([kept.sum(), kept.square().sum(), low, high])
        return torch.cat([counts, moments])

    def _boundaries_for(self, values: torch.Tensor) -> torch.Tensor:
        """The bucket limits in the gradient's dtype and device: for float32, each limit raised to the
        first float32 at or past it, so that a float32 lies at or past a limit exactly when it lies at
        or past the float32 limit (bucketize compares in the input's dtype)."""
        key = (values.dtype, values.device)
        if key not in self._boundaries:
            if values.dtype == torch.float64:
                limits = self._limits
            else:
                with np.errstate(over="ignore"):
                    limits = self._limits.astype(np.float32)
                below = limits.astype(np.float64) < self._limits
                limits[below] = np.nextafter(limits[below], np.float32(np.inf))
            self._boundaries[key] = torch.from_numpy(limits).to(values.device)
        return self._boundaries[key]

    # --- the writer thread ------------------------------------------------------------------------

    def _write_reduced(self, step, tags, sizes, reduced) -> None:
        host, done, loss, loss_in_host = reduced
        if done is not None:
            done.synchronize()
        values = host.numpy()
        buckets = len(self._limits) + 1
        if loss_in_host:
            values, loss = values[:-1], float(values[-1])
        table = values.reshape(len(tags), buckets + 4)
        untouched = np.isnan(table[:, 0])  # no gradient: zeros
        counts = np.where(untouched[:, None], 0.0, table[:, :buckets])
        counts[untouched, self._zero] = sizes[untouched]
        moments = np.where(untouched[:, None], [0.0, 0.0, 0.0, 0.0], table[:, buckets:])
        histograms = self._binning.from_counts(counts, sizes, *moments.T)
        self._write(step, tags, histograms, loss)

    def _write_binned(self, step, tags, sizes, copies, loss) -> None:
        present = [c if c is not None else np.zeros(0, np.float32) for c in copies]
        untouched = [int(s) - c.size for s, c in zip(sizes, present)]
        self._write(step, tags, self._binning.histograms(present, untouched), loss)

    def _write(self, step, tags, histograms, loss) -> None:
        if self._model_event is not None:
            event, self._model_event = self._model_event, None
            self._events.add_event(event)
        summary = summary_pb2.Summary()
        for tag, histogram in zip(tags, histograms):
            histogram.fill(summary.value.add(tag=tag).histo)
        if loss is not None:
            summary.value.add(tag=LOSS_TAG, simple_value=loss)
        self._events.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def close(self) -> None:
        """Stop logging, write every pending step and flush the file; an error of the writer thread
        is raised here."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._writer is not None:
            self._writer.close()
            self._events.flush()
            if isinstance(self._events, EventFile):  # ours; a SummaryWriter's file stays its own
                self._events.close()

    def __enter__(self) -> GradientLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _host_copy(gradient) -> np.ndarray | None:
    """A CPU gradient's entries, copied (the next backward writes into it); a sparse one's values,
    its other entries being zeros the histogram counts."""
    if gradient is None:
        return None
    if gradient.is_sparse:
        gradient = gradient.coalesce().values()
    gradient = gradient.detach()
    if gradient.dtype == torch.bfloat16:  # numpy has no bfloat16: float32 holds it exactly
        gradient = gradient.float()
    return gradient.reshape(-1).numpy().copy()


def _event_sink(log_dir):
    """Where events go: a SummaryWriter's own file (PyTorch's or tensorboardX's), or a new event file
    in the folder `log_dir` (no TensorFlow)."""
    get = getattr(log_dir, "_get_file_writer", None)
    if get is not None:
        return get()
    if hasattr(log_dir, "add_event"):
        return log_dir
    return EventFile(str(log_dir), suffix=".gradaudit")


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose parameters the user named: torch.compile's wrapper holds it as `_orig_mod`
    and DistributedDataParallel as `module` (their names would prefix every tag)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and type(model).__name__ == "DistributedDataParallel":
            inner = model.module
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _is_rank_zero() -> bool:
    distributed = torch.distributed
    return not (distributed.is_available() and distributed.is_initialized()) or distributed.get_rank() == 0


def _refuse_sharded(model) -> None:
    """FSDP shards each parameter across ranks: a rank's gradient is a shard, and its histogram is
    not the parameter's."""
    sharded = "FullyShardedDataParallel" in type(model).__name__ or any(
        type(p).__name__ == "DTensor" or "FlatParameter" in type(p).__name__ for p in model.parameters()
    )
    if sharded:
        raise ValueError(
            "gradaudit's watch() does not log parameters sharded by FSDP: each rank holds a shard of "
            "every gradient; log the model before wrapping it, or its gradient norms"
        )


def _module_tree_event(model: torch.nn.Module) -> event_pb2.Event:
    """The module tree in the shape of a Keras config, as the analyzer reads it: an nn.Sequential's
    children in order (an activation module there is the activation of the module before it), any
    other module's children in attribute order with their activation unknown."""
    config = {"class_name": type(model).__name__, "config": _children(model)}
    return text_event(LAYER_LIST_TAG, LAYER_LIST_PLUGIN, json.dumps(config))


def _children(module: torch.nn.Module) -> dict:
    in_order = isinstance(module, torch.nn.Sequential)
    layers = []
    for name, child in module.named_children():
        class_name = type(child).__name__
        inner: dict = {"name": name}
        if list(child.children()):
            inner.update(_children(child))
        elif class_name not in _ACTIVATIONS and any(True for _ in child.parameters(recurse=False)):
            # Sequential applies nothing between its modules; elsewhere forward() may (F.gelu)
            inner["activation"] = "linear" if in_order else "unknown"
        layers.append({"class_name": class_name, "config": inner})
    out: dict = {"layers": layers}
    if not in_order:
        out["layer_order"] = "attributes"
    return out
