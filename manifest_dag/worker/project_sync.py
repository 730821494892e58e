"""A slot's copy of a dbt project, brought up to date with its source instead of copied again.

Why: each task used to remove its slot's copy and ``copytree`` the whole project again (1.7-6.5 s
per task at 2,000 models; 18 s each with a 500 MB ``data/`` folder and four tasks at once). Now
the copy stays in its slot and each task brings it up to date (``sync_project``): files added,
changed and removed, folders too. An unchanged project costs a walk of the source and one of the
copy, and writes nothing.

**What is copied** (``project_layout``): what dbt reads, nothing else. ``dbt_project.yml`` and the
folders it names (model, seed, macro, snapshot, analysis, test, function, docs and asset paths,
with dbt's defaults when absent), ``packages.yml``, ``dependencies.yml``, ``package-lock.yml``,
``selectors.yml``, ``catalogs.yml``, ``.dbtignore``, the installed packages folder
(``packages-install-path``) and local packages inside the project. Never a ``data/``,
``node_modules/`` or any other folder dbt does not use, never ``profiles.yml`` at the top (it may
hold passwords; the task's profile comes from a private dir), never byte code. dbt's outputs
(``target/``, ``logs/`` and where ``target-path``/``log-path`` put them) are left out at the
project's top level only: a ``models/logs/`` folder or a seed ``archive.db`` is copied like any
other file. A path that leaves the project (``../shared``) is not copied, with a warning (dbt in
the copy will not find it; an absolute path is read in place by dbt and needs no copy). When the
paths cannot be known (``dbt_project.yml`` unreadable, or a path that is a Jinja expression) the
whole project is copied, less outputs, environments, VCS folders, local databases and
``node_modules/`` at the top.

**When a file counts as changed.** The slot's state file (``SYNC_STATE``) records, per copied
file, the *source's* (size, mtime_ns, ctime_ns, inode, device) when it was copied and the
*copy's* (size, mtime_ns, ctime_ns, inode) right after. A file is copied again when either differs:
an edit that keeps size and mtime still moves the source's ctime, and anything that touched the
copy moves the copy's. The state file is removed before a sync starts and written when it ends,
so a sync that fails half way leaves none, and the next one copies every file again (and makes
the copy's folders owner-writable first, in case an older version left them read-only).

**How a file is written.** To a temp file beside it, with ``copy2`` semantics (mode and mtime
kept, made owner-readable and -writable: a read-only source gives a writable copy), then
``os.replace``: a dbt process that has the old file open keeps reading the old inode, and the
copy's (size, mtime_ns, ctime_ns, inode) always changes (a new inode), which the warm dbt server
relies on to know whether what it parsed is still the project on disk.

**Symlinks.** One whose target is inside the copied part of the project stays a relative symlink
(re-aimed in the copy's terms). One that points elsewhere (out of the project, typically a
relative ``../../shared/x.sql``) must give the same content: a file is copied (tracked by its
target's stat, so an edit there is picked up); a folder is copied too where dbt walks into it (a
searched path itself, ``models`` -> ``../shared/models``; the packages folder, its packages and
their top-level folders), and becomes an absolute symlink to its target elsewhere (dbt's file
search does not follow a symlinked folder below a searched path, so the copy behaves as the
source). A dangling symlink, a loop, or a folder reached inside itself is skipped with a log line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from manifest_dag.core.dbt_project import read_dbt_project
from manifest_dag.core.errors import WorkspaceError
from manifest_dag.core.files import replaced_atomically
from manifest_dag.worker import Log

#: the slot's record of what each copied file looked like (see the module docstring)
SYNC_STATE = "sync-state.msgpack"
_FORMAT = 2
#: how many of a sync's written or removed paths its report names
_CHANGED_SHOWN = 20
#: temp files of an interrupted copy end so (and start with a dot: no dbt file pattern matches)
_TEMP_SUFFIX = ".md-sync.tmp"

#: top-level files dbt reads besides the folders ``dbt_project.yml`` names
TOP_LEVEL_FILES = (
    "dbt_project.yml",
    "packages.yml",
    "dependencies.yml",
    "package-lock.yml",
    "selectors.yml",
    "catalogs.yml",
    ".dbtignore",
)
#: the fields naming folders dbt searches, the pre-1.0 alias of each, and dbt's default
_PATH_FIELDS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("model-paths", "source-paths", ("models",)),
    ("seed-paths", "data-paths", ("seeds",)),
    ("macro-paths", None, ("macros",)),
    ("snapshot-paths", None, ("snapshots",)),
    ("analysis-paths", None, ("analyses",)),
    ("test-paths", None, ("tests",)),
    ("function-paths", None, ("functions",)),  # dbt 1.11's user-defined functions
)
#: folders and files the copy never takes from the top level (also when the whole project is
#: copied): outputs, environments, VCS, tool caches, JS dependencies, local databases, the profile
_TOP_SKIP_DIRS = frozenset(
    {"target", "logs", ".venv", "venv", "env", ".git", ".tox", ".mypy_cache", ".ruff_cache", "node_modules"}
)
_TOP_SKIP_SUFFIXES = (".duckdb", ".duckdb.wal", ".db", ".db.wal", ".sqlite")
_TOP_SKIP_FILES = frozenset({"profiles.yml"})
#: byte code is never part of a dbt project, at any depth
_BYTECODE_DIR = "__pycache__"
_BYTECODE_SUFFIX = ".pyc"

Rel = tuple[str, ...]


class _Node:
    """One position of the copied tree: an explicitly wanted path, or a folder on the way to one.

    ``whole``: everything below is wanted. ``follow``: a symlink to a folder here is walked into
    (its content copied), as dbt walks into it. ``below``: inside a whole subtree, for how many
    levels under this one symlinked folders are still walked into.
    """

    __slots__ = ("_implicit", "below", "children", "explicit", "follow", "whole")

    def __init__(self, *, whole: bool = False, follow: bool = True, below: int = 0, explicit: bool = True) -> None:
        self.whole = whole
        self.follow = follow
        self.below = below
        self.explicit = explicit
        self.children: dict[str, _Node] = {}
        self._implicit: _Node | None = None

    def child(self, name: str) -> _Node | None:
        found = self.children.get(name)
        if found is not None:
            return found
        if not self.whole:
            return None
        if self._implicit is None:  # every other child of a whole folder is alike: one node for all
            self._implicit = _Node(whole=True, follow=self.below > 0, below=max(self.below - 1, 0), explicit=False)
        return self._implicit

    def add(self, parts: Rel, *, below: int = 0) -> None:
        node = self
        for part in parts:
            nxt = node.children.get(part)
            if nxt is None:  # below a whole folder it inherits what that implies; else a way to a path
                implied = node.child(part)
                nxt = _Node(whole=True, follow=implied.follow, below=implied.below) if implied else _Node()
                node.children[part] = nxt
            node = nxt
        node.whole = True
        node.follow = True
        node.below = max(node.below, below)


@dataclass(frozen=True)
class Layout:
    """What of a project the copy holds, read from its ``dbt_project.yml``."""

    tree: _Node
    #: ``packages-install-path`` as dbt_project.yml says (default ``dbt_packages``), relative
    packages_path: str
    #: paths never copied from the source: where dbt writes its outputs, relative to the root
    excluded: frozenset[Rel]
    #: the whole project is copied (paths unknown, or a searched path that is the root itself)
    whole_root: bool
    #: warnings for the task log (a path outside the project, a path that could not be read)
    notes: tuple[str, ...] = field(default=())


def _rel(value: str) -> Rel | None:
    """A path from ``dbt_project.yml`` as parts below the root; None for an absolute path (dbt
    reads it in place); raises ValueError for one that leaves the project."""
    if os.path.isabs(value):
        return None
    norm = os.path.normpath(value)
    if norm == ".":
        return ()
    if norm == ".." or norm.startswith("../"):
        raise ValueError(norm)
    return tuple(norm.split("/"))


def _as_paths(value: Any) -> list[str] | None:
    """A path field's value as a list of strings, or None when it is not one (or is templated)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    if any("{{" in v or "{%" in v for v in value):
        return None
    return list(value)


def _local_packages(source: Path) -> list[str]:
    """``local:`` entries of packages.yml / dependencies.yml (plain strings only)."""
    import yaml  # only a worker reads them

    found: list[str] = []
    for name in ("packages.yml", "dependencies.yml"):
        try:
            data = yaml.safe_load((source / name).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        packages = data.get("packages") if isinstance(data, dict) else None
        for entry in packages if isinstance(packages, list) else ():
            local = entry.get("local") if isinstance(entry, dict) else None
            if isinstance(local, str) and "{{" not in local:
                found.append(local)
    return found


def project_layout(source: Path) -> Layout:
    """Which files and folders of ``source`` dbt reads, as ``dbt_project.yml`` names them."""
    data = read_dbt_project(source)
    notes: list[str] = []
    tree = _Node()
    searched: list[tuple[str, str]] = []  # (field, path)
    whole_root = data is None
    if data is None:
        notes.append(
            f"workspace: {source / 'dbt_project.yml'} could not be read as YAML: copying the whole "
            "project (less outputs and environments); dbt will report what is wrong with the file"
        )
    else:
        all_source: list[str] = []
        for name, alias, default in _PATH_FIELDS:
            raw = data.get(name)
            if raw is None and alias is not None:
                raw = data.get(alias)
            paths = list(default) if raw is None else _as_paths(raw)
            if paths is None:
                notes.append(
                    f"workspace: {name} in dbt_project.yml is not a plain path or list of paths ({raw!r}): "
                    "copying the whole project (less outputs and environments)"
                )
                whole_root = True
                break
            all_source += paths
            searched += [(name, p) for p in paths]
        for name, fallback in (("docs-paths", all_source), ("asset-paths", [])):
            raw = data.get(name)
            listed = list(fallback) if raw is None else _as_paths(raw)
            if listed is None:
                notes.append(
                    f"workspace: {name} in dbt_project.yml is not a plain path or list of paths ({raw!r}): "
                    "copying the whole project (less outputs and environments)"
                )
                whole_root = True
                break
            searched += [(name, p) for p in listed]

    def plain(name: str, default: str) -> str:
        value = (data or {}).get(name)
        return value if isinstance(value, str) and value.strip() and "{{" not in value else default

    packages_path = plain("packages-install-path", "dbt_packages")
    excluded: set[Rel] = {("target",), ("logs",)}
    for name, output in (("target-path", "target"), ("log-path", "logs")):
        with contextlib.suppress(ValueError):
            rel = _rel(plain(name, output))
            if rel:
                excluded.add(rel)

    if whole_root:
        tree = _Node(whole=True, below=1)  # the top-level folders may be searched paths: followed
    for name, path in searched:
        try:
            rel = _rel(path)
        except ValueError:
            notes.append(
                f"workspace: {name} entry {path!r} is outside the project: not copied, so dbt in the "
                "workspace copy will not find it (give it as an absolute path to read it in place)"
            )
            continue
        if rel is None:
            continue  # absolute: dbt reads it where it is
        if rel in excluded:
            notes.append(f"workspace: {name} entry {path!r} is where dbt writes its outputs: not copied")
            continue
        if rel == ():
            whole_root = True
            tree.whole, tree.below = True, max(tree.below, 1)
            continue
        tree.add(rel)
    for name in TOP_LEVEL_FILES:
        tree.add((name,))
    with contextlib.suppress(ValueError):
        rel = _rel(packages_path)
        if rel:
            tree.add(rel, below=2)  # dbt walks into each package and its top-level folders
    for local in _local_packages(source):
        try:
            rel = _rel(local)
        except ValueError:
            notes.append(
                f"workspace: local package {local!r} is outside the project: not copied (`dbt deps` "
                "in the worker's copy will not find it unless it is an absolute path)"
            )
            continue
        if rel:
            tree.add(rel, below=1)
    return Layout(tree, packages_path, frozenset(excluded), whole_root, tuple(notes))


@dataclass(frozen=True)
class SyncReport:
    """What one sync did, for the task log and tests."""

    copied: int
    removed: int
    unchanged: int
    linked: int
    skipped: tuple[str, ...]
    seconds: float
    fresh: bool  # there was no state to trust: every file was copied
    #: a digest of what the copy holds after this sync (every file's record and every symlink's
    #: text): equal after two syncs only when no file of the copy was written or touched in
    #: between, so the warm dbt server may trust it instead of walking the copy again
    fingerprint: str = ""
    #: the copy's paths this sync changed, added or removed, as (how, path): a few, for the
    #: warm server's note on why it parses again
    changed: tuple[tuple[str, str], ...] = ()

    def line(self, dest: Path, source: Path) -> str:
        how = "copied afresh" if self.fresh else "brought up to date"
        return (
            f"workspace: {dest} {how} from {source} ({self.copied} copied, {self.removed} removed, "
            f"{self.unchanged} unchanged, {self.linked} symlinks made, {self.seconds:.2f} s)"
        )


def owner_writable(top: Path) -> None:
    """Give the owner rwx on every folder under ``top`` (not through symlinks): a copy of a
    read-only tree must stay writable (dbt writes in it) and removable by the worker."""
    if top.is_symlink() or not top.is_dir():
        return
    for folder in (top, *(Path(root) / d for root, dirs, _ in os.walk(top) for d in dirs)):
        if not folder.is_symlink():
            with contextlib.suppress(OSError):
                folder.chmod(stat.S_IMODE(folder.lstat().st_mode) | stat.S_IRWXU)


def remove_tree(path: Path) -> None:
    """Remove a folder even if it holds read-only folders (left by a killed task or an older
    version); ``WorkspaceError`` naming it if it still cannot be removed. A symlink or a file at
    ``path`` is unlinked."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        owner_writable(path)
        shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        raise WorkspaceError(f"cannot remove {path} (check its owner and modes)")


def _load_state(state_file: Path, source: str) -> dict[str, Any] | None:
    try:
        data = msgpack.unpackb(state_file.read_bytes(), raw=False, strict_map_key=False)
    except (OSError, ValueError, TypeError, msgpack.UnpackException):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("source") != source:
        return None
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else None


def sync_project(
    source: Path,
    dest: Path,
    *,
    layout: Layout | None = None,
    state_file: Path | None = None,
    keep: Iterable[str] = (),
    log: Log = print,
) -> SyncReport:
    """Make ``dest`` hold what dbt reads of ``source``, copying only what changed.

    ``state_file`` (None: no record, every file is copied) is removed first and written last.
    ``keep``: names at the top of ``dest`` that are the workspace's own (``target``, ``logs``,
    the link to the worker's packages) and are neither removed nor looked into.
    """
    started = time.monotonic()
    layout = layout or project_layout(source)
    root = os.path.realpath(source)
    old: dict[str, Any] | None = None
    if state_file is not None:
        old = _load_state(state_file, root)
        state_file.unlink(missing_ok=True)  # dropped first: a sync that fails leaves no record
    if dest.is_symlink() or (os.path.lexists(dest) and not dest.is_dir()):
        dest.unlink()
    if old is None and dest.is_dir():
        owner_writable(dest)  # an older version's (or a killed task's) copy may be read-only
    dest.mkdir(parents=True, exist_ok=True)
    run = _Sync(root, layout, old or {}, frozenset(keep), log)
    run.tree(str(dest))
    if state_file is not None:
        with replaced_atomically(state_file, private=True, durable=False) as out:
            out.write(msgpack.packb({"format": _FORMAT, "source": root, "entries": run.new}, use_bin_type=True))
    return SyncReport(
        copied=run.copied,
        removed=run.removed,
        unchanged=run.unchanged,
        linked=run.linked,
        skipped=tuple(run.skipped),
        seconds=time.monotonic() - started,
        fresh=old is None,
        fingerprint=run.fingerprint(),
        changed=tuple(run.changed[:_CHANGED_SHOWN]),
    )


#: a file's record: the source's (size, mtime_ns, ctime_ns, inode, device), then the copy's (size,
#: mtime_ns, ctime_ns, inode), packed (a few bytes objects decode far faster than nested lists)
_SOURCE_SIG = struct.Struct("<QqqQQ")
_DEST_SIG = struct.Struct("<QqqQ")


def _dest_sig(st: os.stat_result) -> bytes:
    return _DEST_SIG.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _source_sig(st: os.stat_result) -> bytes:
    return _SOURCE_SIG.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class _Sync:
    """One sync's walk: the source and the copy side by side, folder by folder."""

    def __init__(self, root: str, layout: Layout, old: dict[str, Any], keep: frozenset[str], log: Log) -> None:
        self.root = root
        self.layout = layout
        self.old = old
        self.keep = keep
        self.log = log
        self.new: dict[str, Any] = {}
        self.links: dict[str, str] = {}  # the copy's symlinks and their text (they have no record)
        self.changed: list[tuple[str, str]] = []  # what this sync changed, added or removed in the copy
        self.dest = ""
        self.copied = self.removed = self.unchanged = self.linked = 0
        self.skipped: list[str] = []
        self.chain: set[str] = set()  # real paths of the folders being walked (loop guard)

    def fingerprint(self) -> str:
        """See ``SyncReport.fingerprint``. Sorted: the walk's order is the file system's."""
        digest = hashlib.sha256(f"{self.root}\0".encode())
        for key in sorted(self.new):
            value = self.new[key]
            digest.update(key.encode() + b"\0" + (value if isinstance(value, bytes) else repr(value).encode()) + b"\1")
        for key in sorted(self.links):
            digest.update(key.encode() + b"\0" + self.links[key].encode() + b"\2")
        return digest.hexdigest()

    # -- what is wanted ---------------------------------------------------------------------------
    def _left_out(self, rel: Rel, node: _Node, is_dir: bool) -> bool:
        name = rel[-1]
        if (is_dir and name == _BYTECODE_DIR) or name.endswith(_BYTECODE_SUFFIX):
            return True
        if rel in self.layout.excluded:
            return True
        if len(rel) == 1 and not node.explicit:  # the top level of a whole-project copy
            if is_dir and name in _TOP_SKIP_DIRS:
                return True
            return name in _TOP_SKIP_FILES or name.endswith(_TOP_SKIP_SUFFIXES)
        return False

    def _copied_rel(self, real: str) -> Rel | None:
        """``real`` (no symlinks in it) as a path of the copy, if the copy holds it as is."""
        if real == self.root:
            return None
        if not real.startswith(self.root.rstrip("/") + "/"):
            return None
        parts = tuple(real[len(self.root.rstrip("/")) + 1 :].split("/"))
        node: _Node | None = self.layout.tree
        for i in range(len(parts)):
            assert node is not None
            node = node.child(parts[i])
            if node is None or self._left_out(parts[: i + 1], node, is_dir=i < len(parts) - 1 or os.path.isdir(real)):
                return None
        return parts if node is not None and node.whole else None

    def _skip(self, rel: Rel, why: str) -> None:
        where = "/".join(rel)
        self.skipped.append(where)
        self.log(f"workspace: skipping {where}: {why}")

    # -- the walk ---------------------------------------------------------------------------------
    def tree(self, dest: str) -> None:
        self.dest = dest
        self.chain.add(self.root)
        self._folder(self.root, dest, (), self.layout.tree)

    def _folder(self, src: str, dst: str, rel: Rel, node: _Node) -> None:
        try:
            with os.scandir(src) as it:
                source_entries = list(it)
        except OSError as exc:
            raise WorkspaceError(f"cannot list {src} to copy it into the workspace ({exc.strerror or exc})") from None
        wanted: dict[str, tuple[os.DirEntry[str], _Node]] = {}
        for entry in source_entries:
            child = node.child(entry.name)
            if child is None or entry.name.endswith(_TEMP_SUFFIX):
                continue
            if self._left_out((*rel, entry.name), child, _is_dir(entry)):
                continue
            wanted[entry.name] = (entry, child)
        with os.scandir(dst) as it:
            present = {e.name: e for e in it}
        for name, have in present.items():
            if name in wanted or (not rel and name in self.keep):
                continue
            self._remove(have)
        for name in sorted(wanted):
            entry, child = wanted[name]
            self._entry(entry, os.path.join(dst, name), (*rel, name), child, present.get(name))

    def _remove(self, have: os.DirEntry[str] | None) -> None:
        if have is None:
            return
        if have.is_dir(follow_symlinks=False):
            remove_tree(Path(have.path))
        else:
            os.unlink(have.path)
        self.removed += 1
        self.changed.append(("removed", os.path.relpath(have.path, self.dest)))

    def _entry(self, entry: os.DirEntry[str], dst: str, rel: Rel, node: _Node, have: os.DirEntry[str] | None) -> None:
        if entry.is_symlink():
            self._symlink(entry.path, dst, rel, node, have)
            return
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed from the source while we walk it
            self._remove(have)
            return
        if stat.S_ISDIR(st.st_mode):
            self._into(entry.path, dst, rel, node, have)
        elif stat.S_ISREG(st.st_mode):
            self._file(entry.path, st, dst, rel, have)
        else:
            self._skip(rel, "not a regular file, folder or symlink")
            self._remove(have)

    def _symlink(self, path: str, dst: str, rel: Rel, node: _Node, have: os.DirEntry[str] | None) -> None:
        try:
            text = os.readlink(path)
        except OSError:  # no longer a symlink: replaced in the source while we walk it
            text = "?"
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                why = "a symlink loop"
            elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
                why = "a dangling symlink"
            else:
                why = f"an unreadable symlink ({exc.strerror or exc})"
            self._skip(rel, f"{why} (-> {text})")
            self._remove(have)
            return
        real = os.path.realpath(path)
        inside = self._copied_rel(real)
        if inside is not None:  # stays a symlink, relative, aimed at the copy's own file
            self._link(dst, os.path.relpath("/".join(inside), start="/".join(rel[:-1]) or "."), have, rel)
        elif stat.S_ISDIR(st.st_mode):
            if node.follow:
                self._into(real, dst, rel, node, have)
            else:  # dbt does not walk into it here: the same folder, by its absolute path
                self._link(dst, real, have, rel)
        elif stat.S_ISREG(st.st_mode):
            self._file(real, st, dst, rel, have)
        else:
            self._skip(rel, f"a symlink to something that is not a file or folder (-> {text})")
            self._remove(have)

    def _into(self, src_real: str, dst: str, rel: Rel, node: _Node, have: os.DirEntry[str] | None) -> None:
        if src_real in self.chain:
            self._skip(rel, f"a symlink loop ({src_real} is a folder around it)")
            self._remove(have)
            return
        if have is not None and have.is_dir(follow_symlinks=False):
            mode = have.stat(follow_symlinks=False).st_mode
            if mode & stat.S_IRWXU != stat.S_IRWXU:
                os.chmod(dst, stat.S_IMODE(mode) | stat.S_IRWXU)
        else:
            self._remove(have)
            os.mkdir(dst)
            mode = os.lstat(dst).st_mode
            if mode & stat.S_IRWXU != stat.S_IRWXU:
                os.chmod(dst, stat.S_IMODE(mode) | stat.S_IRWXU)
        self.chain.add(src_real)
        try:
            self._folder(src_real, dst, rel, node)
        finally:
            self.chain.discard(src_real)

    def _file(self, src: str, st: os.stat_result, dst: str, rel: Rel, have: os.DirEntry[str] | None) -> None:
        key = "/".join(rel)
        sig = _source_sig(st)
        prev = self.old.get(key)
        if have is not None and isinstance(prev, bytes) and prev[: _SOURCE_SIG.size] == sig:
            try:
                now = have.stat(follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is not None and stat.S_ISREG(now.st_mode) and _dest_sig(now) == prev[_SOURCE_SIG.size :]:
                self.new[key] = prev
                self.unchanged += 1
                return
        if have is not None and have.is_dir(follow_symlinks=False):
            self._remove(have)
            have = None
        try:
            written = _write_copy(src, dst)
        except FileNotFoundError:  # removed from the source while we walk it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dst)
            return
        except PermissionError as exc:
            raise WorkspaceError(f"cannot copy {src} into the workspace: {exc.strerror or exc}") from None
        self.new[key] = sig + _dest_sig(written)
        self.copied += 1
        self.changed.append(("changed" if have is not None else "added", key))

    def _link(self, dst: str, text: str, have: os.DirEntry[str] | None, rel: Rel) -> None:
        self.links["/".join(rel)] = text
        if have is not None and have.is_symlink():
            with contextlib.suppress(OSError):
                if os.readlink(dst) == text:
                    return
        how = "changed" if have is not None and have.is_symlink() else "added"
        if have is not None and have.is_dir(follow_symlinks=False):
            self._remove(have)
        tmp = _temp_name(dst)
        os.symlink(text, tmp)
        try:
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.linked += 1
        self.changed.append((how, "/".join(rel)))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a folder (through a symlink); False for a loop or a dangling link."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _temp_name(dst: str) -> str:
    head, name = os.path.split(dst)
    return os.path.join(head, f".{name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")


def _write_copy(src: str, dst: str) -> os.stat_result:
    """``src`` copied over ``dst`` in one step (temp file + ``os.replace``), copy2 semantics, owner rw."""
    tmp = _temp_name(dst)
    try:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)
        mode = stat.S_IMODE(os.lstat(tmp).st_mode)
        if mode & (stat.S_IRUSR | stat.S_IWUSR) != stat.S_IRUSR | stat.S_IWUSR:
            os.chmod(tmp, mode | stat.S_IRUSR | stat.S_IWUSR)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return os.lstat(dst)
