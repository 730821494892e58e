"""Pruning the worker's state tree (``<venv cache>/.state``): what projects no longer use.

Every project folder a worker serves gets its own folders there, named by digests: workspace
slots (``workspaces/<hash>/``: the slots' project copies and kept msgpacks), the worker's newest
``partial_parse.msgpack`` per parse state (``partial_parse/<key>/``), ``dbt deps`` copies
(``deps/<key>/``) and warm dbt pools (``warm/<venv>-<boundary>/``). A deployment that points
``project_dir`` through a symlink at a new release folder each time gets a new set per release, and
nothing ever removed the old ones. Each folder holds a mark naming its source project, touched on
every use (``state_marks``), so a folder goes when

- its project is gone (the recorded folder has no ``dbt_project.yml`` any more), or
- it was last used (its mark's mtime) more than the given age ago; a folder without a mark (made
  by an older version) by its own mtime, or its newest direct entry's;
- a warm pool also when its venv is no longer in the cache.

Never while a task uses it: a folder's slot locks are tried without waiting and held while it is
removed (a held one: the folder is skipped and reported busy), a ``deps`` copy's lock likewise, and
a kept msgpack is left while a task of its project holds a workspace slot. A warm pool's processes
are stopped first (only that pool's). A folder is renamed aside before it is deleted, so it stops
being used at once, and a removal that died half-way is finished by the next prune.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from manifest_dag.core.dbt_project import PROJECT_FILE
from manifest_dag.worker.state_marks import last_used, read_source
from manifest_dag.worker.venv_external import KEY_PREFIX as EXTERNAL_KEY_PREFIX

#: the folders of the state tree, in the order they are looked at (workspaces first: a busy one
#: keeps its project's kept msgpacks too)
KINDS = ("workspaces", "warm", "deps", "partial_parse")
#: what a folder renamed aside for deletion is called (``<kind>/.pruning-<name>-<random>``)
ASIDE = ".pruning-"


@dataclass(frozen=True)
class StateFolder:
    """One folder of the state tree that prune looked at: why it goes, or why it cannot."""

    kind: str
    path: Path
    source: Path | None
    last_used: float
    size_bytes: int
    why: str


@dataclass
class StatePruneResult:
    """What went (or, in a dry run, would go), and what was in use and so stayed."""

    removed: list[StateFolder] = field(default_factory=list)
    busy: list[StateFolder] = field(default_factory=list)
    kept: int = 0

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.removed)


def dir_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _touched(folder: Path) -> float:
    """When ``folder`` last served a task: its mark's mtime, else the newest of its own and its
    direct entries' mtimes (a folder without a mark was made by a version that wrote none)."""
    used = last_used(folder)
    if used is not None:
        return used
    newest = folder.lstat().st_mtime
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _gone(source: Path | None) -> bool:
    if source is None:
        return False
    try:
        return not (source / PROJECT_FILE).is_file()
    except OSError:
        return False  # cannot tell (permissions, a stale mount): age decides


def _lock_paths(kind: str, folder: Path) -> list[Path]:
    """The locks a task holds while it uses ``folder``."""
    if kind in ("workspaces", "warm"):
        return sorted(folder.glob("*.lock"))  # one per slot
    if kind == "deps":
        lock = folder.parent / f"{folder.name}.lock"
        return [lock] if lock.exists() else []
    return []


class _Held:
    """The locks of one folder, all taken without waiting, or none (``busy``)."""

    def __init__(self, paths: list[Path]) -> None:
        self.locks: list[FileLock] = []
        self.busy: Path | None = None
        for path in paths:
            lock = FileLock(str(path))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                self.busy = path
                self.release()
                return
            self.locks.append(lock)

    def release(self) -> None:
        while self.locks:
            self.locks.pop().release()


def _stop_warm_pool(pool: Path) -> int:
    """Stop the processes of one warm pool (its slot locks are held: none is serving a task)."""
    from manifest_dag.worker.warm import stop_pool

    return stop_pool(pool)


def _warm_socket_dir(pool: Path) -> Path | None:
    """The private folder under the temp dir that holds a deep pool's sockets, if it has one."""
    from manifest_dag.worker.warm import SOCKET_PATH_MAX, socket_path

    if len(os.fsencode(pool / "0.sock")) <= SOCKET_PATH_MAX:
        return None
    return socket_path(pool, 0).parent


def _rmtree(path: Path) -> bool:
    """Delete ``path``, also when it holds read-only folders (a read-only project's copy)."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        for root, dirs, _files in os.walk(path):
            for name in dirs:
                with contextlib.suppress(OSError):
                    p = os.path.join(root, name)
                    os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | stat.S_IRWXU)
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def _remove(kind: str, folder: Path) -> bool:
    """Rename ``folder`` aside (it stops being the folder at once), then delete it."""
    short = _warm_socket_dir(folder) if kind == "warm" else None
    if kind == "warm":
        _stop_warm_pool(folder)
    aside = folder.parent / f"{ASIDE}{folder.name}-{secrets.token_hex(4)}"
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return True
    except OSError:
        aside = folder
    done = _rmtree(aside)
    if short is not None:
        _rmtree(short)
    return done


def _folders(state_dir: Path, kind: str) -> Iterator[Path]:
    base = state_dir / kind
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            yield entry


def prune_state(
    state_dir: Path,
    older_than_days: float,
    *,
    dry_run: bool = False,
    venv_root: Path | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> StatePruneResult:
    """Remove the state folders of projects that are gone or unused for ``older_than_days`` days.

    ``venv_root`` (the venv cache, the state tree's parent by default) decides whether a warm
    pool's venv still exists. With ``dry_run`` nothing is removed and nothing is stopped; the result
    lists what would go. Busy folders are listed in ``busy`` whatever the run.
    """
    state_dir = Path(state_dir)
    venv_root = Path(venv_root) if venv_root is not None else state_dir.parent
    cutoff = time.time() - older_than_days * 86400.0
    result = StatePruneResult()
    busy_sources: set[Path] = set()
    for kind in KINDS:
        for folder in _folders(state_dir, kind):
            if folder.name.startswith(ASIDE):  # a removal that died half-way
                if not dry_run:
                    _rmtree(folder)
                continue
            source = read_source(folder)
            try:
                used = _touched(folder)
            except OSError:
                continue  # gone meanwhile
            why = ""
            if _gone(source):
                why = f"project {source} is gone"
            elif (
                kind == "warm"
                and not folder.name.startswith(EXTERNAL_KEY_PREFIX)  # a dbt brought along: not in the cache
                and not (venv_root / folder.name.rsplit("-", 1)[0]).is_dir()
            ):
                why = "its venv is no longer in the cache"
            elif used < cutoff:
                why = f"last used {(time.time() - used) / 86400.0:.1f} days ago"
            if kind == "partial_parse" and source is not None and source in busy_sources:
                if why:
                    result.busy.append(StateFolder(kind, folder, source, used, 0, "a task of its project is running"))
                else:
                    result.kept += 1
                continue
            held = _Held(_lock_paths(kind, folder))
            try:
                if held.busy is not None:
                    if source is not None:
                        busy_sources.add(source)
                    if why:
                        entry = StateFolder(kind, folder, source, used, 0, f"in use ({held.busy.name} is held)")
                        result.busy.append(entry)
                        log(f"prune: skipping {folder} ({why}, but {entry.why})")
                    else:
                        result.kept += 1
                    continue
                if not why:
                    result.kept += 1
                    continue
                entry = StateFolder(kind, folder, source, used, dir_size(folder), why)
                log(f"prune: {'would remove' if dry_run else 'removing'} {folder} ({why})")
                if dry_run or _remove(kind, folder):
                    result.removed.append(entry)
                else:
                    log(f"prune: could not remove all of {folder} (check its owner and modes)")
            finally:
                held.release()
    return result
