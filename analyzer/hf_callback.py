"""gradaudit for Hugging Face's ``Trainer``: a ``TrainerCallback`` that logs every parameter's gradient
with the PyTorch logger (analyzer/torch_logger.py) into the run's ``logging_dir``, beside the loss,
learning rate and gradient norm the ``Trainer``'s own TensorBoard callback writes there.

    from analyzer.hf_callback import GradientHistograms
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[GradientHistograms()])

The ``Trainer`` clips the gradients (``max_grad_norm``, 1.0 by default) before any callback event
that follows the backward pass (``on_pre_optimizer_step`` sees them clipped). The gradients are
therefore read where autograd leaves each one final, in a hook PyTorch runs after it accumulates
into ``.grad`` (``register_post_accumulate_grad_hook``): before clipping, summed over the micro-batches
of gradient accumulation (the reductions of the earlier micro-batches of a logged step are dropped at
``on_substep_end``). Under fp16 mixed precision the ``Trainer``'s scaler has not unscaled them yet:
its scale is logged beside them (``gradaudit/loss_scale``) and the analyzer unscales. ``max_grad_norm``
is logged too (``gradaudit/max_grad_norm``). What it cannot do: DeepSpeed and FSDP shard the
gradients (refused in one line by the logger).
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import TrainerCallback

from .torch_logger import DEFAULT_EVERY, GradientLogger


class GradientHistograms(TrainerCallback):
    """Log the model's gradients every `every_n_steps` optimizer steps (and at the first), before the
    Trainer clips them, into `log_dir` (default: the Trainer's ``logging_dir``)."""

    def __init__(self, log_dir=None, every_n_steps: int = DEFAULT_EVERY, tag_prefix: str = "gradients/"):
        self.log_dir = log_dir
        self.every_n_steps = every_n_steps
        self.tag_prefix = tag_prefix
        self._logger: GradientLogger | None = None
        self._hooks: list = []
        self._taken: dict[int, object] = {}
        self._armed = False
        self._scaler = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        log_dir = self.log_dir or _trainer_log_dir(args)
        self._logger = GradientLogger(model, log_dir, self.every_n_steps, self.tag_prefix)
        self._scaler = getattr(optimizer, "scaler", None)  # accelerate's GradScaler under fp16
        self._logger.scalar("gradaudit/max_grad_norm", args.max_grad_norm, state.global_step)
        order = {id(p): i for i, (_, p) in enumerate(self._logger.parameters())}
        for _, parameter in self._logger.parameters():
            self._hooks.append(parameter.register_post_accumulate_grad_hook(self._take(order[id(parameter)])))

    def _take(self, index: int):
        def hook(parameter):
            if self._armed:
                self._taken[index] = self._logger.take(parameter.grad)

        return hook

    def on_step_begin(self, args, state, control, **kwargs):
        self._armed = state.global_step % self.every_n_steps == 0
        self._taken = {}

    def on_substep_end(self, args, state, control, **kwargs):
        self._taken = {}  # an earlier micro-batch: not yet the step's gradients

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not self._armed:
            return
        count = len(self._logger.parameters())
        if self._scaler is not None and self._scaler.is_enabled():
            self._logger.scalar("gradaudit/loss_scale", self._scaler.get_scale(), state.global_step)
        self._logger.log_taken(state.global_step, [self._taken.get(i) for i in range(count)])
        self._armed, self._taken = False, {}

    def on_train_end(self, args, state, control, **kwargs):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._logger is not None:
            self._logger.close()


def _trainer_log_dir(args) -> str:
    """The folder the Trainer's TensorBoard callback writes to: TENSORBOARD_LOGGING_DIR, or
    ``logging_dir`` (transformers 4), or the newest folder under ``output_dir/runs`` (transformers 5
    names it by time and host when training begins, before this callback's turn)."""
    chosen = os.environ.get("TENSORBOARD_LOGGING_DIR") or getattr(args, "logging_dir", None)
    if chosen:
        return os.path.expanduser(chosen)
    runs = Path(args.output_dir) / "runs"
    made = sorted((p for p in runs.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return str(made[-1] if made else runs / "gradaudit")
