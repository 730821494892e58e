"""The per-task copy of the dbt project on a worker.

Why a copy: dbt writes ``target/`` and ``logs/`` into the project, and parallel tasks writing the
same files corrupt each other's artifacts (``run_results.json`` above all). Why the care about
``partial_parse.msgpack``: without it every task re-parses the whole project (seconds for a small
project, minutes for a large one). dbt reuses the file only when it was written by the same dbt
version with the same vars, profile and target. The project's absolute path is baked into it too,
and dbt does *not* notice a move: it silently keeps the old paths (a seed then loads its CSV from
the old folder, or fails when that is gone). So the workspace

- lives at a stable path: one of a few numbered slots per project on the worker, each held by a
  file lock for one task at a time, so parallel tasks never share a slot and a slot's path repeats;
- places the best msgpack the venv's dbt version wrote: the slot's own (same path: used as is),
  else the worker's newest good copy or the one beside the manifest, with the project path inside
  rewritten to the slot's (``relocate_msgpack``);
- after a successful run, keeps dbt's refreshed msgpack for the slot and as the worker's newest,
  keyed by dbt version, profile, target and vars, replaced atomically;
- runs ``dbt deps`` once per worker per package spec, in a stable directory, and links the
  result into each task's copy.

Beside it: ``partial_parse`` (reading, keying and relocating the msgpack), ``slots`` (the
numbered slots) and ``profile_dirs`` (the private folder of the task's profile).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
from filelock import FileLock

from manifest_dag.core.dbt_project import PROJECT_FILE, project_field
from manifest_dag.core.errors import WorkspaceError
from manifest_dag.core.files import PRIVATE_FILE, create_private, make_private_dir, replaced_atomically
from manifest_dag.worker import Log
from manifest_dag.worker.partial_parse import PARTIAL_PARSE, ParseState, msgpack_dbt_version, relocate_msgpack
from manifest_dag.worker.profile_dirs import make_profile_dir
from manifest_dag.worker.slots import take_free_slot

#: What never goes into the copy: dbt's outputs, local environments and database files.
#: left out at the project's top level only: dbt's outputs, environments, VCS, local databases. A
#: model folder named ``logs`` or a seed ``x.db`` deeper down is part of the project and is copied.
_SKIP_DIRS = frozenset({"target", "logs", ".venv", "venv", "env", ".git", ".tox", ".mypy_cache"})
_SKIP_SUFFIXES = (".duckdb", ".duckdb.wal", ".db", ".db.wal", ".sqlite")
#: left out at any depth: Python's byte code is never part of a dbt project
_SKIP_ANYWHERE_DIRS = frozenset({"__pycache__"})
_SKIP_ANYWHERE_SUFFIXES = (".pyc",)
_PACKAGE_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml")
#: never copied: dbt gets its profile from a private dir (or reads the original project's), and a
#: copy that outlives the task (the worker's deps dir, a killed task's slot) must not hold secrets
_SKIP_FILES = frozenset({"profiles.yml"})


def _ignore_for(root: Path) -> Callable[[str, list[str]], set[str]]:
    """``copytree``'s ``ignore``: outputs and local state at ``root``'s top level, byte code anywhere."""
    top_level = os.fspath(root)

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = {
            n
            for n in names
            if (n in _SKIP_ANYWHERE_DIRS and (here / n).is_dir()) or n.endswith(_SKIP_ANYWHERE_SUFFIXES)
        }
        if directory == top_level:
            skipped.update(
                n
                for n in names
                if (n in _SKIP_DIRS and (here / n).is_dir()) or n.endswith(_SKIP_SUFFIXES) or n in _SKIP_FILES
            )
        return skipped

    return ignore


def _owner_writable(top: Path) -> None:
    """Give the owner rwx on every folder under ``top`` (not through symlinks): a copy of a
    read-only tree must stay writable (dbt writes in it) and removable by the worker."""
    if top.is_symlink() or not top.is_dir():
        return
    for folder in (top, *(Path(root) / d for root, dirs, _ in os.walk(top) for d in dirs)):
        if not folder.is_symlink():
            with contextlib.suppress(OSError):
                folder.chmod(stat.S_IMODE(folder.lstat().st_mode) | stat.S_IRWXU)


def _copy_file_writable(src: str, dst: str, *, follow_symlinks: bool = True) -> str:
    shutil.copy2(src, dst, follow_symlinks=follow_symlinks)
    os.chmod(dst, stat.S_IMODE(os.stat(dst).st_mode) | stat.S_IRUSR | stat.S_IWUSR)
    return dst


def _copy_project(source: Path, dest: Path) -> None:
    """``source`` copied to ``dest`` without dbt's outputs, owner-writable whatever its modes."""
    try:
        shutil.copytree(source, dest, ignore=_ignore_for(source), symlinks=True, copy_function=_copy_file_writable)
    finally:
        _owner_writable(dest)  # also when the copy failed half-way, so it can be removed


def _remove_tree(path: Path) -> None:
    """Remove a copy even if it holds read-only folders (left by a killed task or an older
    version); ``WorkspaceError`` naming it if it still cannot be removed."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        _owner_writable(path)
        shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        raise WorkspaceError(f"cannot remove the previous copy at {path} (check its owner and modes)")


class Workspace:
    """A copy of one dbt project for one dbt invocation, in a slot with a stable path.

    The copy (and the profile dir, which may hold a profile with env-var references) is removed
    on exit whatever happens; the slot keeps only its partial-parse file.
    """

    max_slots = 256

    def __init__(
        self,
        project_dir: Path,
        *,
        cache_root: Path,
        state: ParseState,
        manifest_path: Path | None = None,
        partial_parse_path: Path | None = None,
        log: Log = print,
    ) -> None:
        self.source = Path(project_dir)
        self.cache_root = Path(cache_root)
        self.state = state
        self.manifest_path = manifest_path
        self.partial_parse_path = partial_parse_path
        self.log = log
        self.slot: Path | None = None
        self._lock: FileLock | None = None
        self._private: Path | None = None

    # -- paths ------------------------------------------------------------------------------------
    @property
    def project(self) -> Path:
        assert self.slot is not None, "workspace not entered"
        return self.slot / "project"

    @property
    def target(self) -> Path:
        return self.project / "target"

    @property
    def logs(self) -> Path:
        return self.project / "logs"

    @property
    def profiles_dir(self) -> Path:
        assert self._private is not None, "workspace not entered"
        return self._private

    def _state_key(self) -> str:
        return self.state.key(self.source.resolve())

    def _slot_msgpack(self) -> Path:
        assert self.slot is not None
        return self.slot / f"{PARTIAL_PARSE}.{self._state_key()}"

    def _worker_msgpack(self) -> Path:
        return self.cache_root / "partial_parse" / self._state_key() / PARTIAL_PARSE

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Workspace:
        self._check_source()
        try:
            self._take_slot()
            assert self.slot is not None
            _remove_tree(self.project)  # left by a killed task
            _copy_project(self.source, self.project)
            self.target.mkdir(exist_ok=True)
            self._private = make_profile_dir()
            self._place_partial_parse()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        if self.slot is not None:
            with contextlib.suppress(WorkspaceError):  # the next task in this slot retries
                _remove_tree(self.project)
            self.slot = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _take_slot(self) -> None:
        """The first free numbered slot for this project; held until ``cleanup``."""
        base = self.cache_root / "workspaces" / hashlib.sha256(str(self.source.resolve()).encode()).hexdigest()[:16]
        taken = take_free_slot(base, self.max_slots, within=self.cache_root)
        if taken is None:
            raise WorkspaceError(f"all {self.max_slots} workspace slots under {base} are busy")
        n, self._lock = taken
        self.slot = make_private_dir(base / str(n))

    def _check_source(self) -> None:
        src = self.source
        who = f"this worker ({os.uname().nodename}, uid {os.getuid()})"
        try:
            is_dir = stat.S_ISDIR(os.stat(src).st_mode)
        except FileNotFoundError:
            raise WorkspaceError(
                f"dbt project dir {src} does not exist on {who}. Deploy the dbt project to the "
                "workers at that path, or set ProjectConfig(project_dir=...)."
            ) from None
        except PermissionError:
            raise WorkspaceError(f"dbt project dir {src} is not readable by {who}: fix its permissions.") from None
        if not is_dir:
            raise WorkspaceError(
                f"dbt project dir {src} is not a directory; project_dir must be the folder holding dbt_project.yml."
            )
        if not os.access(src, os.R_OK | os.X_OK):
            raise WorkspaceError(f"dbt project dir {src} is not readable by {who}: fix its permissions.")
        marker = src / PROJECT_FILE
        if not marker.is_file():
            raise WorkspaceError(
                f"dbt project dir {src} has no dbt_project.yml; project_dir must be the folder holding it."
            )
        if not os.access(marker, os.R_OK):
            raise WorkspaceError(f"{marker} is not readable by {who}: fix its permissions.")

    # -- partial parse ------------------------------------------------------------------------------
    def _place_partial_parse(self) -> None:
        want = self.state.dbt_version
        dest = self.target / PARTIAL_PARSE
        candidates: list[tuple[str, Path]] = [
            ("this slot's copy", self._slot_msgpack()),
            ("this worker's newest good copy", self._worker_msgpack()),
        ]
        given = self.partial_parse_path or (
            self.manifest_path.parent / PARTIAL_PARSE if self.manifest_path is not None else None
        )
        if given is not None:
            candidates.append((str(given), given))
        name = project_field(self.source, "name")
        for label, path in candidates:
            if not path.is_file():
                continue
            version = msgpack_dbt_version(path)
            if want and version != want:
                self.log(
                    f"partial parse: not using {label}: written by dbt {version or 'unknown'}, "
                    f"this venv runs dbt {want} (dbt would re-parse the whole project)"
                )
                continue
            try:
                old = relocate_msgpack(path, dest, self.project, name)
            except (OSError, ValueError, msgpack.UnpackException) as exc:
                self.log(f"partial parse: not using {label}: unreadable ({exc})")
                continue
            if old is None:
                self.log(f"partial parse: not using {label}: it records no files of project {name}")
                continue
            moved = "" if old == str(self.project) else f", paths moved from {old}"
            self.log(f"partial parse: reusing {label} (dbt {version}{moved})")
            return
        self.log("partial parse: no usable partial_parse.msgpack; dbt will parse the whole project")

    def keep_partial_parse(self) -> None:
        """After a successful run: keep dbt's refreshed msgpack for this slot and the worker.

        The run has succeeded by now (models are built): a copy that cannot be kept (a full disk,
        a read-only cache) is a warning, never a failed task; its temp file is removed and the old
        copy, if any, stays in place (the next run re-parses at worst).
        """
        produced = self.target / PARTIAL_PARSE
        if not produced.is_file():
            return
        for kept in (self._slot_msgpack(), self._worker_msgpack()):
            try:
                make_private_dir(kept.parent, within=self.cache_root)
                with replaced_atomically(kept, private=True, durable=False) as out, produced.open("rb") as src:
                    shutil.copyfileobj(src, out)
            except OSError as e:
                self.log(f"partial parse: could not keep {kept} ({e.strerror or e}); the task still succeeded")

    # -- dbt packages --------------------------------------------------------------------------------
    def needs_deps(self) -> bool:
        has_spec = any((self.source / f).is_file() for f in ("packages.yml", "dependencies.yml"))
        return has_spec and not (self.source / "dbt_packages").exists()

    def deps_key(self) -> str:
        h = hashlib.sha256(str(self.state.dbt_version).encode())
        h.update(str(self.source.resolve()).encode())
        for name in _PACKAGE_FILES:
            path = self.source / name
            if path.is_file():
                h.update(name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()[:20]

    @contextmanager
    def _deps_lock(self, key: str) -> Iterator[Path]:
        base = self.cache_root / "deps"
        make_private_dir(base, within=self.cache_root)
        with FileLock(str(base / f"{key}.lock"), mode=PRIVATE_FILE):
            yield base / key

    def install_deps(self, run_deps: Callable[[Path], None]) -> None:
        """Link ``dbt_packages`` from the worker's cache, running ``dbt deps`` once per spec.

        ``dbt deps`` runs in a stable copy of the project (local packages become symlinks to
        it, so it must outlive the task); ``run_deps(project_dir)`` invokes dbt there.
        """
        key = self.deps_key()
        with self._deps_lock(key) as stable:
            done = stable / ".manifest-dag-deps-ok"
            if not done.is_file():
                _remove_tree(stable)
                _copy_project(self.source, stable)
                make_private_dir(stable)  # copytree gave it the source's modes
                self.log(f"dbt deps: installing packages once for this worker (spec {key})")
                run_deps(stable)
                if not (stable / "dbt_packages").is_dir():
                    raise WorkspaceError(f"dbt deps ran in {stable} but wrote no dbt_packages/")
                with create_private(done) as fh:
                    fh.write(key.encode())
            else:
                self.log(f"dbt deps: reusing packages installed on this worker (spec {key})")
            for name in _SKIP_FILES:  # copied there by earlier versions
                (stable / name).unlink(missing_ok=True)
        target = self.project / "dbt_packages"
        if target.is_symlink() or target.exists():
            return
        os.symlink(stable / "dbt_packages", target)
