"""The HTML report: the views rendered with Jinja2 (autoescape on), charts inline.

Nothing here decides what is wrong; it presents what the diagnosis found. Pages open offline from
disk: no script, style or font is fetched from anywhere.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import __version__
from .problems import Problem
from .tags import layer_path
from .thresholds import DEFAULT_THRESHOLDS
from .views import IndexRow, RunView, finite, hparam_summaries, sci
from .vocabulary import triage_rank


def template_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_templates_dir())),
        autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sci"] = sci
    env.filters["pct"] = lambda v: "—" if not finite(v) else f"{100 * v:.1f} %"
    env.filters["signed"] = lambda v, digits=2: "—" if not finite(v) else f"{v:+.{digits}f}"
    env.filters["fixed"] = lambda v, digits=2: "—" if not finite(v) else f"{v:.{digits}f}"
    env.filters["layer_name"] = layer_name
    return env


def _templates_dir() -> Path:
    """Inside an installed wheel the templates ship in the package; in a checkout they sit beside it."""
    packaged = resources.files("analyzer") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "templates"


def template_text(name: str) -> str:
    """A file of the templates folder as it is (the dashboard's script)."""
    return (_templates_dir() / name).read_text(encoding="utf-8")


def layer_name(tag: str) -> str:
    """A tag shortened to its layer for a table cell (``gradients/sequential/dense_1/kernel`` →
    ``dense_1``, ``grad/encoder.layers.1.linear1.weight`` → ``encoder.layers.1.linear1``)."""
    return layer_path(tag).split("/")[-1] or tag


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return template_environment()


def render_run_page(view: RunView) -> str:
    return (
        _environment()
        .get_template("run.html")
        .render(run=view, version=__version__, root="../", interval=view.interval)
    )


def render_index(
    rows: list[IndexRow],
    problems: list[Problem],
    covers: dict[str, list[str]] | None = None,
    pending: int = 0,
    confidence: float = DEFAULT_THRESHOLDS.confidence,
) -> str:
    """The index page. Inside TensorBoard: `covers` names the TensorBoard runs (event-file folders)
    of each run, and `pending` counts the runs still being analysed."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    rows = sorted(rows, key=lambda r: (r.triage, r.name))  # worst first
    counts = dict(sorted(counts.items(), key=lambda item: triage_rank(item[0], None)[1]))
    keys = sorted({k for row in rows for k in row.hparams})
    return (
        _environment()
        .get_template("index.html")
        .render(
            runs=rows,
            counts=counts,
            problems=problems,
            hparam_keys=keys,
            hparam_summary=hparam_summaries(rows),
            version=__version__,
            root="",
            interval=f"{100 * confidence:g} %",
            covers=covers or {},
            pending=pending,
        )
    )
