"""A run's event files → the statistics of each gradient tag, in depth order, and its loss series.

Both encodings become the same plain data: per step, buckets as (left edge, right edge, count), plus
the exact moments (num, sum, sum of squares) where the legacy ``HistogramProto`` carries them; the
reader reduces them to statistics (``stats.LayerStats``) as it reads.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .blocks import ScalarBlock
from .options import DEFAULT_READ_OPTIONS, LIGHTNING_NORM, PARAMETER_NORM, ReadOptions
from .problems import Problem
from .readers import read_file
from .reduction import merge_pieces, thinned
from .runs import SPLIT_FOLDERS, Run
from .stats import LayerStats
from .store import TRUNCATED_END
from .tags import parameter_name

_PARAMETER_NORM_TAG = re.compile(rf"(?i){PARAMETER_NORM}")
_NORM_TYPE = re.compile(rf"(?i){LIGHTNING_NORM}")
# A run still being written: its newest file (in each folder) ends in a partial record and changed
# less than this long ago. A partial record that stays longer is a killed writer, and an error.
LIVE_WRITE_SECONDS = 600
# The prefix of the metrics PyTorch's add_hparams logs beside the hparams (hparam/Final_Val_Loss).
HPARAM_METRIC = "hparam/"
# A loss series is a validation loss when its folder or its tag says so; the rest are training losses.
_VALIDATION = re.compile(r"(?i)(^|[/_. -])(val|valid|validation|eval|test)($|[/_. -])")


@dataclass
class ScalarSeries:
    """One scalar of a run, by step, from one split folder: the same tag in train/ and validation/
    folders is two series, never spliced."""

    tag: str
    split: str  # the Keras split folder it came from ("train", "validation", ...) or ""
    steps: np.ndarray  # int64 [S], ascending, unique
    values: np.ndarray  # float64 [S], NaN/Inf as logged

    @property
    def name(self) -> str:
        return f"{self.split}/{self.tag}" if self.split else self.tag

    @property
    def in_validation_folder(self) -> bool:
        return bool(_VALIDATION.search(self.split))


@dataclass
class LossSeries(ScalarSeries):
    """A loss. Training and validation losses are separate series."""

    @property
    def is_validation(self) -> bool:
        return bool(_VALIDATION.search(self.name))


@dataclass
class NormSeries(ScalarSeries):
    """A gradient norm: of one parameter (`parameter`), or of all of them (the total)."""

    @property
    def parameter(self) -> str | None:
        match = _PARAMETER_NORM_TAG.search(self.tag)
        return match.group("parameter") if match else None

    @property
    def norm_type(self) -> str:
        """As the tag states it (Lightning's grad_2.0_norm: "2.0"); "2" where it does not."""
        match = _NORM_TYPE.search(self.tag)
        return match.group(1) if match else "2"


@dataclass
class RunData:
    """What a run's files held: the statistics of its gradient tags in depth order, and what else
    was seen."""

    run: Run
    layers: list[LayerStats]
    other_histogram_tags: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    restarted: bool = False  # a later file went back to steps an earlier file had logged
    hparams: dict[str, str] = field(default_factory=dict)  # logged with the hparams plugin
    losses: list[LossSeries] = field(default_factory=list)  # in order of first appearance
    norms: list[NormSeries] = field(default_factory=list)  # gradient norms logged as scalars
    rates: list[ScalarSeries] = field(default_factory=list)  # learning rates logged as scalars
    scales: list[ScalarSeries] = field(default_factory=list)  # mixed precision's loss scale, where logged
    live: dict[str, float] = field(default_factory=dict)  # file still being written → seconds since change
    model_config: str | None = None  # the model's JSON config, where the run logged one

    @property
    def last_step(self) -> int | None:
        steps = [int(layer.steps[-1]) for layer in self.layers if len(layer.steps)]
        return max(steps) if steps else None


def read_run(run: Run, options: ReadOptions = DEFAULT_READ_OPTIONS) -> RunData:
    """Read every event file of a run in name order; a later file's value for a step wins. With
    several processes, a large file's byte ranges are read in parallel."""
    selected = re.compile(options.tag_pattern)
    is_loss, is_norm = re.compile(options.loss_pattern), re.compile(options.norm_pattern)
    is_rate, is_scale = re.compile(options.rate_pattern), re.compile(options.scale_pattern)
    loss_blocks: dict[tuple[str, str], list[ScalarBlock]] = {}
    norm_blocks: dict[tuple[str, str], list[ScalarBlock]] = {}
    rate_blocks: dict[tuple[str, str], list[ScalarBlock]] = {}
    scale_blocks: dict[tuple[str, str], list[ScalarBlock]] = {}
    layers: dict[str, LayerStats] = {}
    other_tags: dict[str, None] = {}
    problems: list[Problem] = []
    hparams: dict[str, str] = {}
    model_config = None
    restarted = False
    for path in run.event_files:
        contents = read_file(path, options, selected.search)
        problems.extend(contents.problems)
        hparams.update(contents.hparams)
        model_config = model_config or contents.model_config
        other_tags.update(dict.fromkeys(contents.other_histogram_tags))
        split = _split_of(path)
        for tag, scalar_block in contents.scalars.items():
            if tag.startswith(HPARAM_METRIC):
                continue  # add_hparams's metrics: one point each, a summary, never a series to judge
            if is_loss.search(tag):
                loss_blocks.setdefault((split, tag), []).append(scalar_block)
            elif is_norm.search(tag):
                norm_blocks.setdefault((split, tag), []).append(scalar_block)
            elif is_rate.search(tag):
                rate_blocks.setdefault((split, tag), []).append(scalar_block)
            elif is_scale.search(tag):
                scale_blocks.setdefault((split, tag), []).append(scalar_block)
        for tag, layer in contents.layers.items():
            known = layers.get(tag)
            if known is None:
                layers[tag] = layer
                continue
            if len(layer.steps) and len(known.steps) and layer.steps.min() <= known.steps.max():
                restarted = True
            layers[tag] = thinned(merge_pieces([known, layer]))
    rates = [_merge_scalars(ScalarSeries, tag, split, parts) for (split, tag), parts in rate_blocks.items()]
    scales = [_merge_scalars(ScalarSeries, tag, split, parts) for (split, tag), parts in scale_blocks.items()]
    live = _being_written(run.event_files, problems)
    problems = [p for p in problems if p.path not in live or p.kind != TRUNCATED_END]
    return RunData(
        run=run,
        layers=_in_depth_order(list(layers.values())),
        other_histogram_tags=[tag for tag in other_tags if tag not in layers],
        problems=problems,
        restarted=restarted,
        hparams=hparams,
        losses=[_merge_scalars(LossSeries, tag, split, parts) for (split, tag), parts in loss_blocks.items()],
        norms=[_merge_scalars(NormSeries, tag, split, parts) for (split, tag), parts in norm_blocks.items()],
        rates=rates,
        scales=scales,
        live=live,
        model_config=model_config,
    )


def parameter_norms(norms: list[NormSeries]) -> list[NormSeries]:
    """The per-parameter gradient norms of the training split, of one norm type (the first seen), in
    the order they were first logged (writers log parameters in model order)."""
    parameters = [n for n in norms if n.parameter is not None and not n.in_validation_folder and len(n.steps)]
    return [n for n in parameters if n.norm_type == parameters[0].norm_type]


def parameter_sizes(
    data: RunData, parameters: set[str], options: ReadOptions = DEFAULT_READ_OPTIONS
) -> dict[str, int]:
    """The entry count of each of `parameters` (names without their writers' wrappers) that the run
    logged a weight histogram of: a second read of its files, for those tags only, and only where
    such tags exist."""
    wanted = {tag for tag in data.other_histogram_tags if parameter_name(tag) in parameters}
    sizes: dict[str, int] = {}
    if not wanted:
        return sizes
    for path in data.run.event_files:
        for tag, layer in read_file(path, options, wanted.__contains__, processes=1).layers.items():
            if layer.size:
                name = parameter_name(tag)
                sizes[name] = max(sizes.get(name, 0), layer.size)
    return sizes


def parameter_norm_layers(norms: list[NormSeries], sizes: dict[str, int]) -> list[LayerStats]:
    """Per-parameter gradient norms as layer statistics, so that the scale-free rules across depth and
    over steps read them as they read histograms. A norm is not an RMS: it is the RMS times the
    square root of the parameter count. Where `sizes` gives that count (by parameter name), the
    magnitude is the RMS; elsewhere the norm itself, with a count of one. Either way the root of the
    summed count x RMS² is the global norm."""
    out = []
    for n in norms:
        steps, values = n.steps, n.values
        size = sizes.get(parameter_name(n.tag))
        finite = np.isfinite(values)
        magnitude = np.where(finite, values / np.sqrt(size or 1), np.nan)
        nan = np.full(len(steps), np.nan)
        out.append(
            LayerStats(
                tag=n.tag,
                steps=steps,
                count=np.full(len(steps), float(size or 1)),
                rms=magnitude,
                rms_low=magnitude,
                rms_high=magnitude,
                rms_exact=finite,
                mean_abs=nan,
                mean_abs_low=nan,
                mean_abs_high=nan,
                abs_quantiles_last=np.full(3, np.nan),
                max_abs=nan,
                zero_share=nan,
                zero_bucket_width=nan,
                zero_excess_share=np.zeros(len(steps)),
                zero_spike_ratio=np.zeros(len(steps)),
                nonfinite=~finite,
                empty=np.zeros(len(steps), dtype=bool),
            )
        )
    return out


def _being_written(paths: list[str], problems: list[Problem]) -> dict[str, float]:
    """The newest file of each folder that ends in a partial record and changed within
    LIVE_WRITE_SECONDS: a writer mid-record, as every live training leaves its file between flushes."""
    newest: dict[str, str] = {}
    for path in paths:
        folder = os.path.dirname(path)
        if folder not in newest or os.path.basename(path) > os.path.basename(newest[folder]):
            newest[folder] = path
    live = {}
    for problem in problems:
        if problem.kind != TRUNCATED_END or problem.path not in newest.values() or "://" in problem.path:
            continue
        try:
            age = time.time() - os.path.getmtime(problem.path)
        except OSError:
            continue
        if age < LIVE_WRITE_SECONDS:
            live[problem.path] = max(age, 0.0)
    return live


def _split_of(path: str) -> str:
    folder = path.replace("\\", "/").rstrip("/").split("/")[-2:-1]
    return folder[0] if folder and folder[0].lower() in SPLIT_FOLDERS else ""


def _merge_scalars(kind: type, tag: str, split: str, blocks: list[ScalarBlock]):
    """A scalar's blocks (in reading order) as one `kind` series; of a step read twice, the last wins."""
    steps = np.concatenate([b.steps for b in blocks])
    values = np.concatenate([b.values for b in blocks])
    unique_steps, from_end = np.unique(steps[::-1], return_index=True)
    return kind(tag, split, unique_steps.astype(np.int64), values[len(steps) - 1 - from_end])


def _in_depth_order(layers: list[LayerStats]) -> list[LayerStats]:
    """Depth order is the order tags first appear: writers log layers from input to output.

    EventAccumulator keeps first-appearance order within one encoding only, so a run that mixes TF2
    and legacy histograms falls back to a natural sort of the tag names (``layer10`` after ``layer9``).
    """
    if len({layer.encodings for layer in layers}) > 1:
        return sorted(layers, key=lambda layer: natural_key(layer.tag))
    return layers


def natural_key(tag: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", tag)]
