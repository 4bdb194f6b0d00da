"""The JSON of two versions of gradaudit on the same runs, compared field by field.

    python bench/compare_json.py                    # HEAD's committed tree against the work tree
    python bench/compare_json.py --base v0.1 --corpus sample_logs
    python bench/compare_json.py --list             # the differences, one line each, not just counts

A change that keeps behaviour shows no difference; one that means to change verdicts or words names
the differences it intends with this script's output. The base version runs from a `git worktree`
of REF, imported ahead of the installed package (PYTHONPATH), with the same interpreter and
dependencies. Corpora: the bundled sample runs, the labelled accuracy corpus (gradient histograms,
norms only, and weights only as `score.py --weights` reads them), the committed learning corpus
(`learning_runs.py`'s runs) and the shared real logs where they are present. `schema_version`,
`version` and `generator` are left out of the comparison, and a file's age ("changed 12 s ago") is
masked.
Exits 1 when any document differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHT_TAGS = r"^(?!.*grad).*/histogram$"  # as bench/accuracy/score.py --weights reads the seed runs

# name → (folders, extra arguments)
CORPORA: dict[str, tuple[list[str], list[str]]] = {
    "sample_logs": (["sample_logs"], []),
    "accuracy": (["bench/accuracy/runs"], []),
    "accuracy_norms": (["bench/accuracy/norm_runs"], []),
    "accuracy_weights": (["bench/accuracy/runs"], ["--tags", WEIGHT_TAGS]),
    "learning": (["bench/accuracy/learning_runs"], []),
    "real_logs": (["../shared/real_logs"], []),
}
VERSION_FIELDS = ("schema_version", "version", "generator")
# Words that depend on when the report ran, not on what it read: a file's age.
VOLATILE = re.compile(r"changed \d+ s ago")


def run_report(tree: Path, folders: list[str], extra: list[str], out: Path) -> dict:
    """gradaudit as `tree` holds it, on `folders` (relative to the work tree), JSON only."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    paths = [str((ROOT / f).resolve()) for f in folders]
    cmd = [sys.executable, "-m", "analyzer.cli", "report", *paths, "--no-html", "--json", str(out), "-q"]
    subprocess.run(cmd + extra, cwd=tree, env=env, check=False, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def differences(base, new, path: str = "") -> list[tuple[str, object, object]]:
    """Every leaf where the two documents differ, as (path, base value, new value)."""
    if isinstance(base, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(base) | set(new), key=str):
            if not path and key in VERSION_FIELDS:
                continue
            if key not in base or key not in new:
                out.append((f"{path}.{key}", base.get(key, "<absent>"), new.get(key, "<absent>")))
            else:
                out += differences(base[key], new[key], f"{path}.{key}")
        return out
    if isinstance(base, list) and isinstance(new, list) and len(base) == len(new):
        return [d for i, (b, n) in enumerate(zip(base, new)) for d in differences(b, n, f"{path}[{i}]")]
    if isinstance(base, str) and isinstance(new, str):
        base, new = VOLATILE.sub("changed … s ago", base), VOLATILE.sub("changed … s ago", new)
    return [] if base == new else [(path, base, new)]


def by_run(doc: dict) -> dict:
    """The document with its runs keyed by name, so that order alone is no difference."""
    return {**doc, "runs": {run["run"]: run for run in doc.get("runs", [])}}


def field_of(path: str) -> str:
    """`.runs.x/y.findings[0].summary` → `runs[].findings[].summary`: the field, across runs."""
    parts = path.split(".")
    if len(parts) > 2 and parts[1] == "runs":
        rest = ".".join(parts[3:])
        path = "runs[]." + rest
    else:
        path = path.lstrip(".")
    while "[" in path:
        start = path.index("[")
        end = path.index("]", start)
        path = path[:start] + "{}" + path[end + 1 :]
    return path.replace("{}", "[]")


def compare(base_tree: Path, corpora: list[str], listing: bool, scratch: Path) -> int:
    changed = 0
    for name in corpora:
        folders, extra = CORPORA[name]
        if not all((ROOT / f).exists() for f in folders):
            print(f"{name}: not here, skipped")
            continue
        base = by_run(run_report(base_tree, folders, extra, scratch / f"{name}.base.json"))
        new = by_run(run_report(ROOT, folders, extra, scratch / f"{name}.new.json"))
        diffs = differences(base, new)
        runs = len(new["runs"])
        touched = len({d[0].split(".")[2] for d in diffs if d[0].startswith(".runs.")})
        print(f"{name}: {runs} runs, {touched} differ, {len(diffs)} differing fields")
        for field, count in Counter(field_of(d[0]) for d in diffs).most_common():
            print(f"  {count:5d}  {field}")
        if listing:
            for path, was, now in diffs:
                print(f"    {path}\n      - {json.dumps(was)[:300]}\n      + {json.dumps(now)[:300]}")
        changed += len(diffs)
    return 1 if changed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git ref of the version to compare with (HEAD)")
    parser.add_argument(
        "--corpus", action="append", choices=sorted(CORPORA), help="corpora to run (default: all)"
    )
    parser.add_argument("--list", action="store_true", help="print each difference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradaudit-compare-") as scratch:
        tree = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(tree), args.base], cwd=ROOT, check=True
        )
        try:
            return compare(tree, args.corpus or list(CORPORA), args.list, Path(scratch))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    sys.exit(main())
