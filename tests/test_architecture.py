"""The pipeline flows one way: no module imports a stage downstream of it; each names its one job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYZER = Path(__file__).resolve().parent.parent / "analyzer"
# Each module may import only modules to its left.
ORDER = [
    "problems",
    "thresholds",  # every number a verdict depends on
    "vocabulary",  # the words every layer shares
    "options",  # what to read
    "binning",  # gradients → legacy histograms, for every logger (numpy only)
    "records",  # TFRecord framing: the readers take records apart, the loggers frame them
    "eventlog",  # the loggers' model-layers event, event files and writing thread (TensorBoard's protos)
    "runs",
    "blocks",
    "zeros",  # the zero bucket's excess over a heavy-tailed fit
    "stats",  # the readers reduce histograms to statistics as they read them
    "reduction",  # collected histograms → statistics, at the steps thinning keeps
    "tags",  # what a tag names: its parameter, weight or not, sparse or not
    "runstats",
    "architecture",  # the model's layers, from its logged config or the parameter names
    "store",
    "streaming",
    "accumulator",
    "readers",
    "events",
    "trends",
    "learning",  # did the training learn: the loss's course, the learning rate, the gradients' course
    "scaling",  # gradients logged before unscaling (mixed precision), brought back
    "facts",
    "findings",
    "rules.loss",
    "rules.norms",
    "rules.gradients",
    "rules.weights",
    "rules.learning",
    "wording",
    "reasons",
    "remedies",
    "pipeline",
    "charts",
    "heatmaps",
    "views",
    "report",
    "jsonreport",
    "outdir",
    "config",  # thresholds, fail-on and the baseline from pyproject.toml and the command line
    "cache",
    "batch",
    "terminal",
    "cli",
    "dashboard",  # TensorBoard's plugin: the batch pipeline behind TensorBoard's server
]
LOGGERS = {
    "callback",
    "keras_tf",
    "keras_stateless",
    "torch_logger",
    "hf_callback",
    "lightning_callback",
}  # import a training framework; nothing imports them


def _path(module: str) -> Path:
    return ANALYZER.joinpath(*module.split(".")).with_suffix(".py")


def modules_present() -> set[str]:
    found = set()
    for path in ANALYZER.rglob("*.py"):
        parts = path.relative_to(ANALYZER).with_suffix("").parts
        if parts[-1] != "__init__":
            found.add(".".join(parts))
    return found


def imported_siblings(module: str) -> set[str]:
    """The analyzer's modules that `module` imports, as dotted names relative to the package."""
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(_path(module).read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif node.module and node.module.startswith("analyzer."):
                base, node = [], ast.ImportFrom(node.module.split(".", 1)[1], node.names, 0)
            else:
                continue
            if node.module:
                found.add(".".join([*base, *node.module.split(".")]))
            else:
                found.update(".".join([*base, alias.name]) for alias in node.names)
    return {name for name in found if name in modules_present()}


@pytest.mark.parametrize("module", ORDER)
def test_imports_only_point_upstream(module):
    allowed = set(ORDER[: ORDER.index(module)])
    assert imported_siblings(module) <= allowed


def test_every_module_is_placed_in_the_order():
    assert modules_present() - LOGGERS == set(ORDER)


@pytest.mark.parametrize("module", ORDER + sorted(LOGGERS))
def test_every_module_says_its_one_job_and_stays_readable(module):
    text = _path(module).read_text()
    assert ast.get_docstring(ast.parse(text)), module
    assert len(text.splitlines()) <= 450, module


def test_only_the_loggers_import_a_training_framework():
    for path in ANALYZER.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        if path.stem not in LOGGERS:
            assert not names & {"tensorflow", "keras", "torch", "jax", "lightning", "transformers"}, path.name
