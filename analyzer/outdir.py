"""The output folder: atomic writes, a manifest of what gradaudit wrote, and nothing else touched."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from .problems import AnalyzerError

MANIFEST = ".gradaudit-manifest.json"
LOCK = ".gradaudit-lock"
# A second report into a folder another one is writing waits this long for it, then refuses.
LOCK_WAIT_SECONDS = 10.0
# A lock whose process cannot be checked (another host) is stale after this long.
LOCK_STALE_SECONDS = 3600.0
_UMASK = os.umask(0)
os.umask(_UMASK)


class ReportFolder:
    """Files are written one by one as runs finish; on `close`, files of an earlier report that this
    one did not write again are removed (they are ours: the manifest says so) and the manifest saved.
    A file gradaudit did not write is never overwritten."""

    def __init__(self, out_dir: str, lock_wait: float = LOCK_WAIT_SECONDS):
        """`lock_wait`: seconds to wait for another report writing this folder to finish."""
        self.root = Path(out_dir)
        if self.root.exists() and not self.root.is_dir():
            raise AnalyzerError(out_dir, "exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.root / LOCK, lock_wait)
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
        try:
            for rel in self._ours - set(self._written):
                stale = self.root / rel
                if stale.is_file() and not stale.is_symlink():
                    stale.unlink()
            self._save_manifest(set(self._written))
        finally:
            self._release()

    def abort(self) -> None:
        """After a failure: remember every file that is ours, remove nothing (and leave a folder we
        wrote nothing into as it was)."""
        try:
            if self._written:
                self._save_manifest(self._ours | set(self._written))
        finally:
            self._release()

    def _release(self) -> None:
        owner = _lock_owner(self._lock) if self._lock is not None else None
        if owner is not None and (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname()):
            self._lock.unlink(missing_ok=True)
        self._lock = None

    def _save_manifest(self, files: set[str]) -> None:
        manifest = json.dumps({"generator": "gradaudit", "files": sorted(files)}, indent=1)
        write_atomic(self.root / MANIFEST, manifest)


def _take_lock(path: Path, wait: float) -> Path:
    """One report at a time per folder. The lock is made whole, then linked into place (a link
    fails if the name exists), so a reader never sees half a lock. A lock whose process is gone (on
    this host), or that is older than LOCK_STALE_SECONDS (elsewhere), is stale and taken over."""
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    deadline = time.monotonic() + wait
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-lock-")
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        try:
            os.link(tmp, path)
            return path
        except FileExistsError:
            holder = _lock_owner(path)
            if _is_stale(path, holder):
                path.unlink(missing_ok=True)
                continue
            if time.monotonic() >= deadline:
                who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
                raise AnalyzerError(
                    str(path.parent),
                    f"another gradaudit report is writing this folder ({who}); "
                    f"waited {wait:g} s; try again when it has finished, or use another -o",
                ) from None
            time.sleep(0.2)
        finally:
            os.unlink(tmp)


def _lock_owner(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("pid"), int) and isinstance(data.get("host"), str):
        return {"pid": data["pid"], "host": data["host"], "since": data.get("since")}
    return None


def _is_stale(path: Path, holder: dict | None) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return True  # gone meanwhile: try again
    if holder is None or holder["host"] != socket.gethostname():
        return age > LOCK_STALE_SECONDS  # unreadable (a crafted file) or another machine's
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True  # the report that took it crashed
    except PermissionError:
        return False  # alive, another user's
    return False


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
