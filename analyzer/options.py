"""What to read from a run's files, in one object: which tags are gradients, losses and norms, which
reader, how many processes, and what the statistics computed while reading must resolve."""

from __future__ import annotations

from dataclasses import dataclass

from .thresholds import DEFAULT_THRESHOLDS

# The default choice of gradient tags: any tag that mentions a gradient ("grad", "gradient", "Grad").
DEFAULT_TAG_PATTERN = r"(?i)grad"
# The default choice of loss scalars: a tag with "loss" as a word of its own (Keras's epoch_loss and
# batch_loss, gradaudit's probe/loss, PyTorch users' loss, Loss/train, train/loss, train_loss).
DEFAULT_LOSS_PATTERN = r"(?i)(^|[/_. -])loss($|[/_. -])"
# The prefix of a per-parameter norm's tag (Lightning's grad_2.0_norm/<parameter>); group 1: the
# norm type.
LIGHTNING_NORM = r"grad_([0-9.]+|inf)_norm"
# Gradient norms logged as scalars, by the conventions of the tools that write them: PyTorch
# Lightning's grad_norm() (grad_2.0_norm_total, grad_2.0_norm/<parameter>), Hugging Face's Trainer
# (train/grad_norm), and hand-written loops (grad_norm, grad/norm, gradient_norm, grads/<parameter>).
TOTAL_NORM = rf"(^|[/_. -])(grad(ient)?[_/ ]norm|{LIGHTNING_NORM}_total)$"
PARAMETER_NORM = rf"^({LIGHTNING_NORM}|grads)/(?P<parameter>.+)$"
DEFAULT_NORM_PATTERN = rf"(?i){TOTAL_NORM}|{PARAMETER_NORM}"
# Learning rates logged as scalars: Keras's epoch_learning_rate, Hugging Face's train/learning_rate,
# Lightning's LearningRateMonitor (lr-Adam, lr-SGD/pg1), hand-written loops' lr.
DEFAULT_RATE_PATTERN = r"(?i)(^|[/_. -])(learning_rate|lr)($|[/_. -])|(^|/)lr-"
# The loss scale of mixed precision, where a loop or gradaudit's logger logs it.
DEFAULT_SCALE_PATTERN = r"(?i)(^|[/_. -])(loss_?scale|grad_?scale|amp/scale|scaler/scale)$"
READERS = ("streaming", "tensorboard")


@dataclass(frozen=True)
class ReadOptions:
    tag_pattern: str = DEFAULT_TAG_PATTERN  # histogram tags read as the evidence (Python regex)
    loss_pattern: str = DEFAULT_LOSS_PATTERN  # scalars read as losses
    norm_pattern: str = DEFAULT_NORM_PATTERN  # scalars read as gradient norms
    reader: str = READERS[0]  # "streaming" (gradaudit's) or "tensorboard" (EventAccumulator)
    processes: int = 1  # how many may read a large file's byte ranges in parallel
    # The statistics made while reading fit a zero bucket's excess only where that bucket holds at
    # least this share of a step's entries (Thresholds.zero_spike_fit_share of the thresholds in force).
    zero_spike_fit_share: float = DEFAULT_THRESHOLDS.zero_spike_fit_share
    rate_pattern: str = DEFAULT_RATE_PATTERN  # scalars read as the learning rate
    scale_pattern: str = DEFAULT_SCALE_PATTERN  # scalars read as the loss scale of mixed precision


DEFAULT_READ_OPTIONS = ReadOptions()
