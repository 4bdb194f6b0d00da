"""The output folder: atomic writes, a manifest of what gradaudit wrote, and nothing else touched."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .problems import AnalyzerError

MANIFEST = ".gradaudit-manifest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


class ReportFolder:
    """Files are written one by one as runs finish; on `close`, files of an earlier report that this
    one did not write again are removed (they are ours: the manifest says so) and the manifest saved.
    A file gradaudit did not write is never overwritten."""

    def __init__(self, out_dir: str):
        self.root = Path(out_dir)
        if self.root.exists() and not self.root.is_dir():
            raise AnalyzerError(out_dir, "exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self._ours = set(_read_manifest(self.root / MANIFEST))
        self._written: list[str] = []

    def check(self, rel: str) -> None:
        target = self.root / rel
        if (target.exists() or target.is_symlink()) and rel not in self._ours:
            raise AnalyzerError(
                str(target),
                "exists and was not written by gradaudit; choose another output folder or remove it",
            )

    def write(self, rel: str, text: str) -> None:
        self.check(rel)
        write_atomic(self.root / rel, text)
        self._written.append(rel)

    def holds(self, rel: str) -> bool:
        """The folder holds `rel` as a file an earlier report of gradaudit's wrote."""
        return rel in self._ours and (self.root / rel).is_file()

    def keep(self, rel: str, text: str) -> None:
        """A file this folder already holds from an earlier report, unchanged: written only if gone."""
        if rel in self._ours and (self.root / rel).is_file():
            self._written.append(rel)
        else:
            self.write(rel, text)

    def close(self) -> None:
        for rel in self._ours - set(self._written):
            stale = self.root / rel
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
        self._save_manifest(set(self._written))

    def abort(self) -> None:
        """After a failure: remember every file that is ours, remove nothing (and leave a folder we
        wrote nothing into as it was)."""
        if self._written:
            self._save_manifest(self._ours | set(self._written))

    def _save_manifest(self, files: set[str]) -> None:
        manifest = json.dumps({"generator": "gradaudit", "files": sorted(files)}, indent=1)
        write_atomic(self.root / MANIFEST, manifest)


def _read_manifest(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text())
        return [
            f for f in data.get("files", []) if isinstance(f, str) and ".." not in f and not f.startswith("/")
        ]
    except (OSError, ValueError, AttributeError):
        return []


def write_json_file(path: str, text: str) -> None:
    """To a file (never over one gradaudit did not write) or, for '-', to stdout."""
    if path == "-":
        sys.stdout.write(text)
        return
    target = Path(path)
    if target.exists() and not _is_our_json(target):
        raise AnalyzerError(path, "exists and is not a gradaudit JSON report; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)


def _is_our_json(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
        return b'"generator": "gradaudit"' in head
    except OSError:
        return False


def write_atomic(path: Path, data: str | bytes) -> None:
    """A temporary file in the same folder, renamed over the target: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a report is as readable as any file
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
