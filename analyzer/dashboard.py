"""gradaudit inside TensorBoard: a "Gradients" dashboard, loaded by TensorBoard from the
``tensorboard_plugins`` entry point. It shows the static report's own pages (the same templates and
renderer) for the runs under TensorBoard's logdir, analysed in the background by the same pipeline.

Nothing here runs on a request thread but lookups: a background thread finds the runs every
``--reload_interval`` seconds and sends the runs whose event files changed to a small pool of worker
processes. The cache and the pages live in the user's cache folder, never in the logdir.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import multiprocessing
import os
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from .batch import BatchOptions, process_runs
from .cache import RunCache, RunOutput
from .outdir import write_atomic
from .problems import Problem
from .report import render_index, template_text
from .runs import Run, find_runs

PLUGIN_NAME = "gradaudit"
TAB_NAME = "Gradients"
# Where the cache and the pages go: $GRADAUDIT_CACHE_DIR, else the user's cache folder
# ($XDG_CACHE_HOME or ~/.cache)/gradaudit/tensorboard/<a hash of the logdirs>.
CACHE_DIR_VARIABLE = "GRADAUDIT_CACHE_DIR"
# Analysis never takes more than this many cores from the machine TensorBoard serves from.
MAX_WORKERS = 2
# TensorBoard's own default --reload_interval, where its flags do not say.
DEFAULT_RELOAD_SECONDS = 5.0

logger = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """What the background analysis knows at one moment; request handlers read only this."""

    runs: list[Run] = field(default_factory=list)  # found at the last look, in report order
    outputs: dict[str, RunOutput] = field(default_factory=dict)  # run name → its analysis, once done
    problems: list[Problem] = field(default_factory=list)
    looked: bool = False  # the logdir was walked at least once

    @property
    def pending(self) -> list[Run]:
        return [run for run in self.runs if run.name not in self.outputs]

    @property
    def has_evidence(self) -> bool:
        return any(output.document.get("evidence", "none") != "none" for output in self.outputs.values())


class BackgroundAnalysis:
    """Finds the runs under `logdirs` (folder → TensorBoard's run prefix) every `interval` seconds and
    analyses those whose event files changed, in `workers` processes, keeping what is done."""

    def __init__(self, logdirs: dict[str, str], folder: Path, interval: float, workers: int = MAX_WORKERS):
        self.logdirs = logdirs
        self.folder = folder
        self.interval = interval
        self.workers = workers
        self.options = BatchOptions()
        self.cache = RunCache(folder / ".gradaudit-cache", lambda rel: (folder / rel).is_file())
        self._snapshot = Snapshot()
        self._keys: dict[str, str] = {}  # run name → the cache key its output was made under
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gradaudit-analysis", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def _loop(self) -> None:
        # Worker processes started from a fork server, not forked from TensorBoard's threads (spawned
        # where there is no fork server: Windows).
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["analyzer.batch"])
        else:
            context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as pool:
            while not self._stop.is_set():
                try:
                    self.look_once(pool)
                except Exception:  # a failed look must not end the dashboard: say so, look again
                    logger.exception("gradaudit: analysing the logdir failed")
                self._stop.wait(self.interval)

    def look_once(self, pool) -> None:
        """Walk the logdirs; analyse the runs that are new or whose files changed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        roots = list(self.logdirs)
        discovery = find_runs(roots, exclude=[str(self.folder)])
        keys = {run.name: self.cache.key(run, self.options) for run in discovery.runs}
        with self._lock:
            kept = {
                name: output
                for name, output in self._snapshot.outputs.items()
                if name in keys and self._keys.get(name) == keys[name]
            }
            self._snapshot = Snapshot(discovery.runs, kept, discovery.problems, looked=True)
        changed = [run for run in discovery.runs if run.name not in kept]
        outputs = process_runs(
            changed, self.options, self.workers, self.cache, executor=pool, forget_others=False
        )
        for run, output in zip(changed, outputs):
            if output.page and not output.from_cache:
                write_atomic(self.folder / output.page[0], output.page[1].encode())
            with self._lock:  # a new dict: request threads may be reading the old one
                self._snapshot = replace(self._snapshot, outputs={**self._snapshot.outputs, run.name: output})
                self._keys[run.name] = keys[run.name]
        self.cache.forget_all_but(list(keys.values()))


class GradauditPlugin(base_plugin.TBPlugin):
    """The Gradients dashboard. TensorBoard makes one per process, with its flags in `context`."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        flags = context.flags
        self.logdirs = logdirs_of(flags, context.logdir)
        interval = float(getattr(flags, "reload_interval", 0) or DEFAULT_RELOAD_SECONDS)
        self.analysis = BackgroundAnalysis(self.logdirs, cache_folder(self.logdirs), max(interval, 1.0))
        if self.logdirs:
            self.analysis.start()

    def is_active(self) -> bool:
        """From what the background analysis already knows: never a walk of the logdir."""
        return self.analysis.snapshot.has_evidence

    def data_plugin_names(self):
        return ()  # no summaries of its own: is_active() decides

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name=TAB_NAME)

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_module,
            "/runs": self._serve_runs,
            "/run": self._serve_run,
            "/report/*": self._serve_page,
        }

    @wrappers.Request.application
    def _serve_module(self, request):
        return http_util.Respond(request, template_text("dashboard.js"), "text/javascript")

    @wrappers.Request.application
    def _serve_runs(self, request):
        snapshot = self.analysis.snapshot
        runs = []
        for run in snapshot.runs:
            output = snapshot.outputs.get(run.name)
            runs.append(
                {
                    "run": run.name,
                    "verdict": output.verdict if output else None,
                    "reason": output.document["reason"] if output else None,
                    "done": output is not None,
                    "tensorboard_runs": tensorboard_runs(run, self.logdirs),
                }
            )
        done = snapshot.looked and not snapshot.pending
        return http_util.Respond(request, {"runs": runs, "done": done}, "application/json")

    @wrappers.Request.application
    def _serve_run(self, request):
        name = request.args.get("run", "")
        output = self.analysis.snapshot.outputs.get(name)
        if output is None:
            return _bad_request(request, f"no analysed run named {name!r}")
        return http_util.Respond(request, output.document, "application/json")

    @wrappers.Request.application
    def _serve_page(self, request):
        """The report's index, rendered from what is known now, or a run page the analysis wrote.
        Only names the analysis made are served: the path never reaches the file system."""
        page = request.path.split("/report/", 1)[-1]
        snapshot = self.analysis.snapshot
        if page in ("", "index.html"):
            rows = [o.row for run in snapshot.runs if (o := snapshot.outputs.get(run.name)) and o.row]
            covers = {run.name: tensorboard_runs(run, self.logdirs) for run in snapshot.runs}
            html = render_index(rows, snapshot.problems, covers, len(snapshot.pending))
            return _html(request, html)
        pages = {o.page[0]: o for o in snapshot.outputs.values() if o.page}
        if page not in pages:
            return _bad_request(request, "no such page")
        try:
            html = (self.analysis.folder / page).read_text(encoding="utf-8")
        except OSError:
            return _bad_request(request, "that page is being written again; reload")
        return _html(request, html)


# A URI (s3://bucket/...): never split at its colon.
_URI = re.compile(r"[a-zA-Z][0-9a-zA-Z.]*://.*")


def logdirs_of(flags, logdir: str | None = None) -> dict[str, str]:
    """Folder → TensorBoard's prefix of its run names ("" for none), read from --logdir and
    --logdir_spec by TensorBoard's own rules: `name:path` unless the spec is a URI, starts with a
    slash or with a Windows drive; paths made absolute."""
    folder = getattr(flags, "logdir", None) or logdir
    if folder:
        return {folder: ""}
    out = {}
    for spec in filter(None, (getattr(flags, "logdir_spec", None) or "").split(",")):
        name, path = "", spec
        if not _URI.match(spec) and ":" in spec and spec[0] != "/" and not os.path.splitdrive(spec)[0]:
            name, _, path = spec.partition(":")
        out[path if _URI.match(path) else os.path.realpath(os.path.expanduser(path))] = name
    return out


def cache_folder(logdirs: dict[str, str]) -> Path:
    base = os.environ.get(CACHE_DIR_VARIABLE)
    if base:
        root = Path(base)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradaudit" / "tensorboard"
    described = json.dumps(
        sorted((os.path.abspath(k) if "://" not in k else k, v) for k, v in logdirs.items())
    )
    return root / hashlib.sha256(described.encode()).hexdigest()[:16]


def tensorboard_runs(run: Run, logdirs: dict[str, str]) -> list[str]:
    """The TensorBoard runs (event-file folders, named relative to their logdir) a run covers."""
    names = set()
    for path in run.event_files:
        folder = os.path.dirname(path)
        for root, prefix in logdirs.items():
            rel = os.path.relpath(folder, root) if "://" not in root else folder[len(root) :].strip("/")
            if not rel.startswith(".."):
                rel = "." if rel in ("", ".") else rel.replace(os.sep, "/")
                names.add(f"{prefix}/{rel}" if prefix and rel != "." else (prefix or rel))
                break
    return sorted(names)


def _html(request, html: str):
    """A page under TensorBoard's Content-Security-Policy: its inline scripts allowed by their hashes."""
    hashes = [
        base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    ]
    return http_util.Respond(request, html, "text/html", csp_scripts_sha256s=hashes)


def _bad_request(request, message: str):
    return http_util.Respond(request, {"error": message}, "application/json", code=400)
