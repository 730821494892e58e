"""The slot's copy of the dbt project on a worker, kept between tasks and synced with the source.

Why a copy: dbt writes ``target/`` and ``logs/`` into the project, and parallel tasks writing the
same files corrupt each other's artifacts (``run_results.json`` above all). Why the care about
``partial_parse.msgpack``: without it every task re-parses the whole project (seconds for a small
project, minutes for a large one). dbt reuses the file only when it was written by the same dbt
version with the same vars, profile and target. The project's absolute path is baked into it too,
and dbt does *not* notice a move: it silently keeps the old paths (a seed then loads its CSV from
the old folder, or fails when that is gone). So the workspace

- lives at a stable path: one of a few numbered slots per project on the worker
  (``Workspace.slot_number``), each held by a file lock for one task at a time, so parallel tasks
  never share a slot and a slot's path repeats;
- keeps the slot's copy between tasks and brings it up to date with the source
  (``project_sync.sync_project``: only what dbt reads, files added, changed and removed), so an
  unchanged project costs a directory walk, not a copy; at the start of each task it empties the
  copy's ``target/`` (dbt's per-run artifacts: a previous task's ``run_results.json`` must never be
  read as this one's) but for ``partial_parse.msgpack``, and ``logs/``;
- places the best msgpack the venv's dbt version wrote: the one dbt left in the slot's
  ``target/`` when it is the slot's own for this parse state and untouched since (free: nothing
  is copied), else the slot's kept copy, the worker's newest good copy or the one beside the
  manifest, with the project path inside rewritten to the slot's (``relocate_msgpack``);
- after a successful run, keeps dbt's refreshed msgpack for the slot and as the worker's newest,
  keyed by dbt version, profile, target and vars, replaced atomically (only when dbt rewrote it);
- runs ``dbt deps`` once per worker per package spec, in a stable directory (``deps/<key>``), and
  links the result into the slot's copy;
- marks each folder of the state tree it uses (the slots' base, a deps copy, a kept msgpack's
  folder) with the source project (``state_marks``), for ``manifest-dag venv prune``.

Beside it: ``project_sync`` (what is copied and how), ``partial_parse`` (reading, keying and
relocating the msgpack), ``slots`` (the numbered slots) and ``profile_dirs`` (the private folder
of the task's profile).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
import orjson
from filelock import FileLock

from manifest_dag.core.dbt_project import PROJECT_FILE, project_field
from manifest_dag.core.errors import WorkspaceError
from manifest_dag.core.files import PRIVATE_FILE, create_private, make_private_dir, replaced_atomically
from manifest_dag.worker import Log
from manifest_dag.worker.partial_parse import (
    PARTIAL_PARSE,
    ParseState,
    PlacedMsgpack,
    msgpack_dbt_version,
    relocate_msgpack,
)
from manifest_dag.worker.profile_dirs import make_profile_dir
from manifest_dag.worker.project_sync import SYNC_STATE, Layout, SyncReport, project_layout, remove_tree, sync_project
from manifest_dag.worker.slots import take_free_slot
from manifest_dag.worker.state_marks import mark_source

if TYPE_CHECKING:
    from manifest_dag.worker.shared_state import SharedParseState

_PACKAGE_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml")
#: never in the worker's deps copy: dbt gets its profile from a private dir, and that copy outlives
#: every task (earlier versions copied a project's profiles.yml there; it is removed)
_SKIP_FILES = frozenset({"profiles.yml"})
#: the slot's note of the msgpack in its copy's target/: the parse state it is for, and its stat
#: when placed or kept (dbt rewrites the file in place; any other stat means it is not ours)
_PLACED = "placed-msgpack.json"
_DEPS_DONE = ".manifest-dag-deps-ok"


def _stat_tuple(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino] if stat.S_ISREG(st.st_mode) else None


def _empty_folder(folder: Path, keep: frozenset[str] = frozenset()) -> None:
    """``folder`` as an empty folder but for ``keep`` (made when missing, replaced when not a folder)."""
    if folder.is_symlink() or (os.path.lexists(folder) and not folder.is_dir()):
        folder.unlink()
    folder.mkdir(exist_ok=True)
    with os.scandir(folder) as it:
        entries = [e for e in it if e.name not in keep]
    for entry in entries:
        remove_tree(Path(entry.path))


#: the project copy's folder inside a slot
_SLOT_COPY = "project"


def slots_base(cache_root: Path, project_dir: Path) -> Path:
    """The folder of a project's numbered slots in a state tree."""
    return cache_root / "workspaces" / hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:16]


def slot_project(cache_root: Path, project_dir: Path, slot: int) -> Path:
    """Where slot ``slot``'s copy of the project is (``prestart`` expects a pod's task in slot 0)."""
    return slots_base(cache_root, project_dir) / str(slot) / _SLOT_COPY


class Workspace:
    """The slot's copy of one dbt project for one dbt invocation, with a stable path.

    On entry the copy is brought up to date with the source and its per-run outputs are cleared;
    on exit the profile dir (which may hold a profile with env-var references) is removed and the
    slot freed, whatever happens. The copy, its ``target/partial_parse.msgpack`` and the slot's
    sync state stay for the slot's next task.
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
        prepared_root: Path | None = None,
        partial_parse_label: str | None = None,
        shared_state_url: str | None = None,
        shared_state_conn_id: str | None = None,
        secret_values: Iterable[str] = (),
        log: Log = print,
    ) -> None:
        self.source = Path(project_dir)
        self.cache_root = Path(cache_root)
        #: a state tree ``manifest-dag prepare`` baked in (read only): its msgpacks and deps
        self.prepared_root = Path(prepared_root) if prepared_root is not None else None
        self.state = state
        #: the msgpack given to dbt this task (None: dbt parses from scratch), for the miss message
        self.placed: PlacedMsgpack | None = None
        self.manifest_path = manifest_path
        self.partial_parse_path = partial_parse_path
        #: how the log names ``partial_parse_path`` (the URL of a msgpack fetched from object storage)
        self.partial_parse_label = partial_parse_label
        #: where the fleet shares its msgpacks (``worker.shared_state``), None: this worker only
        self.shared_state_url = shared_state_url
        self.shared_state_conn_id = shared_state_conn_id
        #: this task's secret values: a msgpack that records one (dbt keeps the values of the env
        #: vars a parse read) is never published to the shared state
        self._secret_values = tuple(v for v in secret_values if v)
        self.log = log
        self.slot: Path | None = None
        #: the number of the slot this task holds (0, 1, ...), None outside ``with``: the warm
        #: pool picks the dbt process of the same number, which has parsed this very copy before
        self.slot_number: int | None = None
        self._synced: SyncReport | None = None  # this task's sync (fingerprint, what it changed)
        self._lock: FileLock | None = None
        self._private: Path | None = None
        self._layout: Layout | None = None

    # -- paths ------------------------------------------------------------------------------------
    @property
    def project(self) -> Path:
        assert self.slot is not None, "workspace not entered"
        return self.slot / _SLOT_COPY

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

    @property
    def layout(self) -> Layout:
        """What of the project the copy holds (read from dbt_project.yml once per task)."""
        if self._layout is None:
            self._layout = project_layout(self.source)
        return self._layout

    def _state_key(self) -> str:
        return self.state.key(self.source.resolve())

    def _slot_msgpack(self) -> Path:
        assert self.slot is not None
        return self.slot / f"{PARTIAL_PARSE}.{self._state_key()}"

    def _worker_msgpack(self) -> Path:
        return self.cache_root / "partial_parse" / self._state_key() / PARTIAL_PARSE

    def _base(self) -> Path:
        return slots_base(self.cache_root, self.source)

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Workspace:
        self._check_source()
        try:
            self._take_slot()
            self._sync()
            self._private = make_profile_dir()
            self._place_partial_parse()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Remove what belongs to this task only (its profile dir) and free the slot; the copy stays."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        self.slot = None
        self.slot_number = None
        self._synced = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def synced_files(self) -> dict[str, Any] | None:
        """What the warm dbt server may check instead of walking the copy before it reuses a
        parse: the sync's fingerprint of the copied files; the top-level entries no sync covers,
        which it must still walk (the link to the worker's ``dbt deps``, made after the sync);
        and the paths this sync changed, for its note. Call it right before dbt starts:
        ``install_deps`` may have made that link since."""
        if self._synced is None or not self._synced.fingerprint:
            return None
        packages = self.layout.packages_path
        return {
            "fingerprint": self._synced.fingerprint,
            "walk": [packages] if (self.project / packages).is_symlink() else [],
            "changed": [list(c) for c in self._synced.changed],
        }

    def _take_slot(self) -> None:
        """The first free numbered slot for this project; held until ``cleanup``."""
        base = self._base()
        taken = take_free_slot(base, self.max_slots, within=self.cache_root)
        if taken is None:
            raise WorkspaceError(f"all {self.max_slots} workspace slots under {base} are busy")
        n, self._lock = taken
        self.slot = make_private_dir(base / str(n))
        self.slot_number = n
        mark_source(base, self.source)

    def _sync(self) -> None:
        """Bring the slot's copy up to date and clear the previous task's outputs from it."""
        assert self.slot is not None
        layout = self.layout
        for note in layout.notes:
            self.log(note)
        packages = self.project / layout.packages_path
        keep = {"target", "logs"}
        if packages.is_symlink() and "/" not in layout.packages_path:
            keep.add(layout.packages_path)  # the link to the worker's `dbt deps` (checked below)
        report = sync_project(
            self.source, self.project, layout=layout, state_file=self.slot / SYNC_STATE, keep=keep, log=self.log
        )
        self.log(report.line(self.project, self.source))
        self._synced = report
        if packages.is_symlink() and not (self.source / layout.packages_path).exists():
            key = self.deps_key()
            wants = {str(self._deps_dir(key) / layout.packages_path)}
            if self.prepared_root is not None:
                wants.add(str(self.prepared_root / "deps" / key / layout.packages_path))
            if not self.needs_deps() or os.readlink(packages) not in wants:
                packages.unlink()  # another package spec's (install_deps links the right one)
        _empty_folder(self.target, keep=frozenset({PARTIAL_PARSE}))
        _empty_folder(self.logs)

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
    def _placed(self) -> dict[str, object] | None:
        """The slot's note of the msgpack in ``target/`` (parse state key and stat), or None."""
        assert self.slot is not None
        try:
            note = orjson.loads((self.slot / _PLACED).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return note if isinstance(note, dict) else None

    def _note_placed(self, stat_tuple: list[int] | None) -> None:
        assert self.slot is not None
        note = self.slot / _PLACED
        if stat_tuple is None:
            note.unlink(missing_ok=True)
            return
        with replaced_atomically(note, private=True, durable=False) as out:
            out.write(orjson.dumps({"key": self._state_key(), "stat": stat_tuple}))

    def _place_partial_parse(self) -> None:
        want = self.state.dbt_version
        dest = self.target / PARTIAL_PARSE
        placed = self._placed()
        current = _stat_tuple(dest)
        if current is not None and placed is not None and placed == {"key": self._state_key(), "stat": current}:
            version = msgpack_dbt_version(dest)
            if not want or version == want:
                self.log(f"partial parse: reusing this slot's copy (dbt {version}, in place)")
                kept = self._slot_msgpack()  # what was placed; dbt may rewrite the one in target/
                self.placed = PlacedMsgpack("this slot's copy", kept if kept.is_file() else None, kept=True)
                return
        # not this parse state's, or touched since it was placed (a failed run may rewrite it)
        dest.unlink(missing_ok=True)
        self._note_placed(None)
        candidates: list[tuple[str, Path]] = [
            ("this slot's copy", self._slot_msgpack()),
            ("this worker's newest good copy", self._worker_msgpack()),
        ]
        if self.prepared_root is not None:
            prepared = self.prepared_root / "partial_parse" / self._state_key() / PARTIAL_PARSE
            candidates.append((f"the prepared copy {prepared}", prepared))
        name = project_field(self.source, "name")
        shared = self._shared(name)
        if shared is not None and not any(path.is_file() for _label, path in candidates):
            fetched = self._shared_copy(shared)
            if shared.fetch(fetched):
                candidates.append((shared.label, fetched))
        given = self.partial_parse_path or (
            self.manifest_path.parent / PARTIAL_PARSE if self.manifest_path is not None else None
        )
        if given is not None:
            candidates.append((self.partial_parse_label or str(given), given))
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
            if path == self._worker_msgpack():
                mark_source(path.parent, self.source)
            self._note_placed(_stat_tuple(dest))
            self.placed = PlacedMsgpack(label, path, kept=path in (self._slot_msgpack(), self._worker_msgpack()))
            moved = "" if old == str(self.project) else f", paths moved from {old}"
            self.log(f"partial parse: reusing {label} (dbt {version}{moved})")
            return
        self.log("partial parse: no usable partial_parse.msgpack; dbt will parse the whole project")

    def _shared(self, project_name: str | None) -> SharedParseState | None:
        if not self.shared_state_url:
            return None
        from manifest_dag.worker.shared_state import SharedParseState, shared_key

        return SharedParseState(
            self.shared_state_url, self.shared_state_conn_id, shared_key(self.state, project_name), self.log
        )

    def _records_a_secret(self, path: Path) -> bool:
        """Whether the msgpack holds one of this task's secret values (dbt records the values of the
        env vars a parse read, profile and secret-var env vars included); then it stays private."""
        if not self._secret_values:
            return False
        try:
            raw = path.read_bytes()
        except OSError:
            return True
        if any(v.encode() in raw for v in self._secret_values):
            self.log(
                "shared state: not publishing this msgpack: it records the value of a secret (an env var "
                "dbt read while parsing); this worker keeps it for itself"
            )
            return True
        return False

    def _shared_copy(self, shared: SharedParseState) -> Path:
        return self.cache_root / "shared" / self._state_key() / PARTIAL_PARSE

    def keep_partial_parse(self) -> None:
        """After a successful run: keep dbt's refreshed msgpack for this slot and the worker.

        Nothing is copied when dbt left the file as it was placed (it skipped parsing): the slot's
        and the worker's copies are that file already. The run has succeeded by now (models are
        built): a copy that cannot be kept (a full disk, a read-only cache) is a warning, never a
        failed task; its temp file is removed and the old copy, if any, stays in place (the next
        run re-parses at worst).
        """
        produced = self.target / PARTIAL_PARSE
        current = _stat_tuple(produced)
        if current is None:
            return
        if self._placed() == {"key": self._state_key(), "stat": current} and self._slot_msgpack().is_file():
            with contextlib.suppress(OSError):  # the kept copy is in use: its mark says so
                if self._worker_msgpack().is_file():
                    mark_source(self._worker_msgpack().parent, self.source)
            return
        kept_all = True
        for kept in (self._slot_msgpack(), self._worker_msgpack()):
            try:
                make_private_dir(kept.parent, within=self.cache_root)
                with replaced_atomically(kept, private=True, durable=False) as out, produced.open("rb") as src:
                    shutil.copyfileobj(src, out)
            except OSError as e:
                kept_all = kept_all and kept != self._slot_msgpack()
                self.log(f"partial parse: could not keep {kept} ({e.strerror or e}); the task still succeeded")
                continue
            if kept == self._worker_msgpack():
                mark_source(kept.parent, self.source)
                shared = self._shared(project_field(self.source, "name"))
                if shared is not None and not self._records_a_secret(kept):
                    shared.publish(kept)
        try:
            self._note_placed(current if kept_all else None)
        except OSError as e:
            self.log(f"partial parse: could not note the slot's msgpack ({e.strerror or e}); the task still succeeded")

    # -- dbt packages --------------------------------------------------------------------------------
    def needs_deps(self) -> bool:
        has_spec = any((self.source / f).is_file() for f in ("packages.yml", "dependencies.yml"))
        return has_spec and not (self.source / self.layout.packages_path).exists()

    def deps_key(self) -> str:
        h = hashlib.sha256(str(self.state.dbt_version).encode())
        h.update(str(self.source.resolve()).encode())
        for name in _PACKAGE_FILES:
            path = self.source / name
            if path.is_file():
                h.update(name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()[:20]

    def _deps_dir(self, key: str) -> Path:
        return self.cache_root / "deps" / key

    @contextmanager
    def _deps_lock(self, key: str) -> Iterator[Path]:
        base = self.cache_root / "deps"
        make_private_dir(base, within=self.cache_root)
        with FileLock(str(base / f"{key}.lock"), mode=PRIVATE_FILE):
            yield self._deps_dir(key)

    def install_deps(self, run_deps: Callable[[Path], None]) -> None:
        """Link the packages folder from the worker's cache, running ``dbt deps`` once per spec.

        ``dbt deps`` runs in a stable copy of the project (what dbt reads of it, local packages
        included: they become symlinks to it, so it must outlive the task); ``run_deps(project_dir)``
        invokes dbt there. The slot's link is left as it is when it already points there (its
        stat unchanged, so a warm dbt process sees no change).
        """
        key = self.deps_key()
        packages = self.layout.packages_path
        prepared = self.prepared_root / "deps" / key if self.prepared_root is not None else None
        if prepared is not None and (prepared / _DEPS_DONE).is_file() and (prepared / packages).is_dir():
            self.log(f"dbt deps: using the packages prepared in {prepared} (spec {key})")
            self._link_packages(prepared / packages)
            return
        with self._deps_lock(key) as stable:
            done = stable / _DEPS_DONE
            if not done.is_file():
                remove_tree(stable)
                sync_project(self.source, stable, layout=self.layout, log=self.log)
                make_private_dir(stable)
                self.log(f"dbt deps: installing packages once for this worker (spec {key})")
                run_deps(stable)
                if not (stable / packages).is_dir():
                    raise WorkspaceError(f"dbt deps ran in {stable} but wrote no {packages}/")
                with create_private(done) as fh:
                    fh.write(key.encode())
            else:
                self.log(f"dbt deps: reusing packages installed on this worker (spec {key})")
            for name in _SKIP_FILES:  # copied there by earlier versions
                (stable / name).unlink(missing_ok=True)
            mark_source(stable, self.source)
        self._link_packages(stable / packages)

    def _link_packages(self, target: Path) -> None:
        """The slot's packages folder as a link to ``target`` (left alone when it already is)."""
        link = self.project / self.layout.packages_path
        want = str(target)
        if link.is_symlink() and os.readlink(link) == want:
            return
        if os.path.lexists(link):
            remove_tree(link)
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.link.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(want, tmp)
        os.replace(tmp, link)
