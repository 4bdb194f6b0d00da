"""The pipeline flows one way: no module imports a stage downstream of it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYZER = Path(__file__).resolve().parent.parent / "analyzer"
# Each module may import only modules to its left.
ORDER = [
    "problems",
    "runs",
    "records",
    "blocks",
    "stats",  # the readers reduce histograms to statistics as they read them
    "architecture",  # the model's layers, from its logged config or the parameter names
    "readers",
    "events",
    "trends",
    "diagnosis",
    "remedies",
    "pipeline",
    "charts",
    "report",
    "jsonreport",
    "outdir",
    "batch",
    "terminal",
    "cli",
    "dashboard",  # TensorBoard's plugin: the batch pipeline behind TensorBoard's server
]


def imported_siblings(module: str) -> set[str]:
    tree = ast.parse((ANALYZER / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("analyzer."):
            found.add(node.module.split(".")[1])
    return found - {"__init__", "__version__"}  # `from . import __version__` is the package itself


@pytest.mark.parametrize("module", ORDER)
def test_imports_only_point_upstream(module):
    allowed = set(ORDER[: ORDER.index(module)]) | {""}
    assert imported_siblings(module) <= allowed


def test_every_module_is_placed_in_the_order():
    modules = {p.stem for p in ANALYZER.glob("*.py")} - {"__init__", "callback"}
    assert modules == set(ORDER)


def test_only_the_callback_imports_tensorflow_or_keras():
    for path in ANALYZER.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        if path.stem != "callback":
            assert not names & {"tensorflow", "keras"}, path.name
