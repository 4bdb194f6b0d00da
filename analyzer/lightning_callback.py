"""gradaudit for Lightning: a ``Callback`` that logs every parameter's gradient with the PyTorch logger
(analyzer/torch_logger.py), into the trainer's TensorBoard log where it has one.

    from analyzer.lightning_callback import GradientHistograms
    trainer = lightning.Trainer(callbacks=[GradientHistograms()])

It reads the gradients in ``on_before_optimizer_step``, which Lightning calls once the gradients of
all accumulated micro-batches are summed and, under mixed precision, unscaled, and before it clips
them (``gradient_clip_val``). The loss is what the module logs itself (``self.log("train_loss", ...)``)
into the same TensorBoard log.
"""

from __future__ import annotations

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    from pytorch_lightning import Callback

from .torch_logger import DEFAULT_EVERY, GradientLogger


class GradientHistograms(Callback):
    """Log the module's gradients every `every_n_steps` optimizer steps (and at the first), into
    `log_dir`, or else the trainer's TensorBoard logger's event file, or else ``trainer.log_dir``."""

    def __init__(self, log_dir=None, every_n_steps: int = DEFAULT_EVERY, tag_prefix: str = "gradients/"):
        self.log_dir = log_dir
        self.every_n_steps = every_n_steps
        self.tag_prefix = tag_prefix
        self._logger: GradientLogger | None = None

    def on_fit_start(self, trainer, pl_module):
        sink = self.log_dir
        if sink is None:
            experiment = getattr(trainer.logger, "experiment", None)
            sink = experiment if hasattr(experiment, "_get_file_writer") else trainer.log_dir
        self._logger = GradientLogger(pl_module, sink, self.every_n_steps, self.tag_prefix)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step % self.every_n_steps == 0:
            self._logger.log(trainer.global_step)

    def on_fit_end(self, trainer, pl_module):
        if self._logger is not None:
            self._logger.close()
