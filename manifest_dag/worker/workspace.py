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
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson
from filelock import FileLock

from manifest_dag.core.errors import WorkspaceError

#: What never goes into the copy: dbt's outputs, local environments and database files.
_SKIP_DIRS = frozenset({"target", "logs", ".venv", "venv", "env", ".git", "__pycache__", ".tox", ".mypy_cache"})
_SKIP_SUFFIXES = (".duckdb", ".duckdb.wal", ".db", ".db.wal", ".sqlite", ".pyc")
_PACKAGE_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml")
PARTIAL_PARSE = "partial_parse.msgpack"

Log = Callable[[str], None]


#: never copied: dbt gets its profile from a private dir (or reads the original project's), and a
#: copy that outlives the task (the worker's deps dir, a killed task's slot) must not hold secrets
_SKIP_FILES = frozenset({"profiles.yml"})


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory)
    return {
        n
        for n in names
        if (n in _SKIP_DIRS and (top / n).is_dir()) or n.endswith(_SKIP_SUFFIXES) or n in _SKIP_FILES
    }


def msgpack_dbt_version(path: Path) -> str | None:
    """The dbt version that wrote a ``partial_parse.msgpack``, reading only its header.

    The file is a map whose ``metadata`` entry holds ``dbt_version``; the other entries (the bulk
    of the file) are skipped without being decoded.
    """
    try:
        with path.open("rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False)
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if key == "metadata":
                    meta = unpacker.unpack()
                    version = meta.get("dbt_version") if isinstance(meta, dict) else None
                    return version if isinstance(version, str) else None
                unpacker.skip()
    except (OSError, ValueError, msgpack.UnpackException, msgpack.ExtraData):
        return None
    return None


@dataclass(frozen=True, slots=True)
class ParseState:
    """What dbt checks before it reuses a msgpack, besides the files themselves."""

    dbt_version: str | None
    profile_name: str | None
    target_name: str | None
    vars_json: str
    #: a digest of the target's non-secret connection fields (``runner.connection_fingerprint``)
    connection: str = ""

    def key(self, project: Path) -> str:
        parts = [str(project), self.dbt_version, self.profile_name, self.target_name, self.vars_json]
        if self.connection:
            parts.append(self.connection)
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:20]


def canonical_vars(dbt_vars: Mapping[str, Any] | str | None) -> str | None:
    """``--vars`` as canonical JSON: same values give the same text, so partial parse survives."""
    if dbt_vars is None or dbt_vars == {} or dbt_vars == "":
        return None
    if isinstance(dbt_vars, str):
        return dbt_vars
    try:
        return orjson.dumps(dict(dbt_vars), option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise WorkspaceError(f"dbt_vars must be JSON-serialisable: {exc}") from None


def _project_name(project_dir: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load((project_dir / "dbt_project.yml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def msgpack_project_root(data: Mapping[str, Any], project_name: str | None) -> str | None:
    """The root project's folder recorded in a decoded msgpack (from its files' paths)."""
    files = data.get("files")
    if not isinstance(files, dict):
        return None
    prefix = f"{project_name}://" if project_name else None
    for file_id, entry in files.items():
        if prefix and not str(file_id).startswith(prefix):
            continue
        path = entry.get("path") if isinstance(entry, dict) else None
        root = path.get("project_root") or path.get("root_path") if isinstance(path, dict) else None
        if isinstance(root, str):
            return root
    return None


def relocate_msgpack(source: Path, dest: Path, new_root: Path, project_name: str | None) -> str | None:
    """Copy a msgpack to ``dest`` with the root project's folder rewritten to ``new_root``.

    Every string equal to the old folder, or below it, is rewritten; nothing else changes. Returns
    the old folder (None when it could not be found: then the file is not placed at all, since a
    msgpack with stale paths is worse than none).
    """
    data = msgpack.unpackb(source.read_bytes(), raw=False, strict_map_key=False)
    old = msgpack_project_root(data, project_name)
    if old is None:
        return None
    new = str(new_root)
    if old == new:
        shutil.copyfile(source, dest)
        return old
    below = old.rstrip("/") + "/"

    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            if obj == old:
                return new
            if obj.startswith(below):
                return new + "/" + obj[len(below) :]
            return obj
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    dest.write_bytes(msgpack.packb(walk(data), use_bin_type=True))
    return old


#: the private dir holding a task's profiles.yml: ``<tmp>/<prefix><pid of the task>-<random>``
PROFILE_DIR_PREFIX = "manifest-dag-profile-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_orphaned_profile_dirs(root: Path | None = None) -> list[Path]:
    """Remove the private profile dirs of task processes that are gone.

    A task removes its own dir when it ends, but a SIGKILLed task (a worker killed mid-task, an
    OOM kill) cannot: its profiles.yml, with the warehouse password in it, would stay on disk.
    Every task entering a workspace removes such dirs of dead processes first, so the retry (or
    the next task on that machine) cleans up. Only dirs of this user whose named pid no longer
    exists are touched.
    """
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.glob(f"{PROFILE_DIR_PREFIX}*"))
    except OSError:
        return removed
    for path in entries:
        pid_text = path.name[len(PROFILE_DIR_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


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
            shutil.rmtree(self.project, ignore_errors=True)  # left by a killed task
            shutil.copytree(self.source, self.project, ignore=_ignore, symlinks=True)
            self.target.mkdir(exist_ok=True)
            sweep_orphaned_profile_dirs()
            self._private = Path(tempfile.mkdtemp(prefix=f"{PROFILE_DIR_PREFIX}{os.getpid()}-"))
            os.chmod(self._private, 0o700)
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
            shutil.rmtree(self.project, ignore_errors=True)
            self.slot = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _take_slot(self) -> None:
        """The first free numbered slot for this project; held until ``cleanup``."""
        from filelock import Timeout

        base = self.cache_root / "workspaces" / hashlib.sha256(str(self.source.resolve()).encode()).hexdigest()[:16]
        base.mkdir(parents=True, exist_ok=True)
        for n in range(self.max_slots):
            lock = FileLock(str(base / f"{n}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            self._lock = lock
            self.slot = base / str(n)
            self.slot.mkdir(exist_ok=True)
            return
        raise WorkspaceError(f"all {self.max_slots} workspace slots under {base} are busy")

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
            raise WorkspaceError(f"dbt project dir {src} is not a directory; project_dir must be the folder holding dbt_project.yml.")
        if not os.access(src, os.R_OK | os.X_OK):
            raise WorkspaceError(f"dbt project dir {src} is not readable by {who}: fix its permissions.")
        marker = src / "dbt_project.yml"
        if not marker.is_file():
            raise WorkspaceError(f"dbt project dir {src} has no dbt_project.yml; project_dir must be the folder holding it.")
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
        name = _project_name(self.source)
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
        """After a successful run: keep dbt's refreshed msgpack for this slot and the worker."""
        produced = self.target / PARTIAL_PARSE
        if not produced.is_file():
            return
        for kept in (self._slot_msgpack(), self._worker_msgpack()):
            kept.parent.mkdir(parents=True, exist_ok=True)
            tmp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
            shutil.copyfile(produced, tmp)
            os.replace(tmp, kept)

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
        base.mkdir(parents=True, exist_ok=True)
        with FileLock(str(base / f"{key}.lock")):
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
                shutil.rmtree(stable, ignore_errors=True)
                shutil.copytree(self.source, stable, ignore=_ignore, symlinks=True)
                self.log(f"dbt deps: installing packages once for this worker (spec {key})")
                run_deps(stable)
                if not (stable / "dbt_packages").is_dir():
                    raise WorkspaceError(f"dbt deps ran in {stable} but wrote no dbt_packages/")
                done.write_text(key)
            else:
                self.log(f"dbt deps: reusing packages installed on this worker (spec {key})")
            for name in _SKIP_FILES:  # copied there by earlier versions
                (stable / name).unlink(missing_ok=True)
        target = self.project / "dbt_packages"
        if target.is_symlink() or target.exists():
            return
        os.symlink(stable / "dbt_packages", target)
