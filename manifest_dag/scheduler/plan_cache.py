"""Don't parse an unchanged manifest twice.

A DAG file is parsed again and again: by the DAG processor every few seconds, and by Airflow's
task runner before every single task. Parsing a large manifest with orjson and planning it costs
seconds; the plan it yields is small plain data. So plans are cached at two levels:

- in the process, keyed by the manifest file's identity (path, inode, size, mtime, ctime) and the render
  options: re-building the DAG in the same process costs only the Airflow objects;
- on disk, keyed by the manifest's *content* digest and the render options, so a fresh process
  (a task on a worker, a DAG-processor child) reads a ~1 MB pickle instead of a ~100 MB JSON.

A disk entry is read part by part (see ``_EntryReader``): a task's parse on a worker decodes only
its own task, the DAG processor the whole plan. Every part is checksummed; anything that does not
check out (truncated, corrupt, other version, unreadable) is ignored and rebuilt, never trusted. Entries are replaced atomically (``core.files``), so readers never see half a file.

Entries are pickles, and unpickling runs code, so nothing is unpickled that this user did not write:

- the directory is used only if this user owns it and neither group nor others may write to it
  (created 0700 when missing); otherwise the plan is built without the disk level, with one
  warning naming the directory;
- every entry's header carries an HMAC-SHA256 made with a random per-user key (``key``, 0600 in
  the directory, created on first use); the header holds the SHA-256 of the meta, the plan and
  every record, and the tag is checked before any part is unpickled. An entry that fails is
  corrupt: rebuilt and replaced.
- entries shared by a fleet through object storage (``shared_plans``) are signed with a key
  derived from the fleet's secret (``MANIFEST_DAG_SHARED_STATE_KEY``), checked whole before they
  are placed here, and re-signed with the local key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import secrets
import stat
import struct
from array import array
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

from manifest_dag.core import settings
from manifest_dag.core.files import create_private, make_private_dir, read_only_dir, replaced_atomically
from manifest_dag.core.gc import paused_gc
from manifest_dag.scheduler.plan import GroupSpec, RenderPlan, TaskSpec

if TYPE_CHECKING:
    from manifest_dag.scheduler.shared_plans import SharedPlans

log = logging.getLogger(__name__)

_MAGIC = b"MDPLAN3\n"
_HEAD = struct.Struct("<QQ32s32s32s")  # meta length, plan length, sha256(meta), sha256(plan), HMAC tag
_TAGGED = len(_MAGIC) + _HEAD.size - 32  # the tag covers the magic and the header before it
_KEY_FILE = "key"
FORMAT = 9  # bump when RenderPlan/TaskSpec, the entry layout or the planning rules change
_MEMO_MAX = 16


class _CorruptEntry(Exception):
    """A part of a cache entry that does not check out: rebuild, never trust."""


CorruptEntry = _CorruptEntry


def check_entry_bytes(blob: bytes, key: bytes) -> None:
    """Check a whole entry held in memory without unpickling anything: its header's tag (made with
    ``key``), the meta's and the plan's sha256, and every record's digest. Raises ``CorruptEntry``."""
    size = len(_MAGIC) + _HEAD.size
    if len(blob) < size or not blob.startswith(_MAGIC):
        raise _CorruptEntry("not a plan cache entry of this version")
    meta_len, plan_len, meta_sha, plan_sha, tag = _HEAD.unpack_from(blob, len(_MAGIC))
    if not hmac.compare_digest(tag, _tag(key, blob[:_TAGGED])):
        raise _CorruptEntry("not signed with this key (authentication tag mismatch)")
    meta = blob[size : size + meta_len]
    plan = blob[size + meta_len : size + meta_len + plan_len]
    if len(meta) != meta_len or len(plan) != plan_len:
        raise _CorruptEntry("truncated")
    if hashlib.sha256(meta).digest() != meta_sha or hashlib.sha256(plan).digest() != plan_sha:
        raise _CorruptEntry("checksum mismatch")
    facts = _unpickle(meta)  # authenticated above: written by a holder of the key
    if not isinstance(facts, dict):
        raise _CorruptEntry("malformed header")
    try:
        offsets, digests = array("Q", facts["offsets"]), facts["digests"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _CorruptEntry(f"malformed header ({exc})") from None
    records = blob[size + meta_len + plan_len :]
    if len(records) != offsets[-1]:
        raise _CorruptEntry("truncated records")
    for i in range(len(offsets) - 1):
        if not hmac.compare_digest(_record_digest(records[offsets[i] : offsets[i + 1]]), digests[i * 16 : i * 16 + 16]):
            raise _CorruptEntry("checksum mismatch in a record")


def resigned(blob: bytes, key: bytes) -> bytes:
    """The same entry with its header's tag made with ``key`` (local key <-> the fleet's)."""
    return blob[:_TAGGED] + _tag(key, blob[:_TAGGED]) + blob[_TAGGED + 32 :]


class _EntryReader:
    """Reads one cache entry part by part.

    Layout: magic, ``_HEAD``, *meta* (facts about the manifest, plus every task id with the offset
    and CRC-32 of its record), the whole *plan* (one pickle), then one *record* per task (its
    ``TaskSpec`` and the ``GroupSpec``s around it, outermost first). A task's parse on a worker reads the header, the meta and one
    record; the DAG processor reads the plan. Each part is checked before it is unpickled.
    """

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        with path.open("rb") as fh:
            head = fh.read(len(_MAGIC) + _HEAD.size)
            if len(head) < len(_MAGIC) + _HEAD.size or not head.startswith(_MAGIC):
                raise _CorruptEntry("not a plan cache entry of this version")
            meta_len, self.plan_len, meta_sha, self.plan_sha, tag = _HEAD.unpack_from(head, len(_MAGIC))
            if not hmac.compare_digest(tag, _tag(key, head[:_TAGGED])):
                raise _CorruptEntry("not written by this user (authentication tag mismatch)")
            if len(head) + meta_len + self.plan_len > os.fstat(fh.fileno()).st_size:
                raise _CorruptEntry("truncated, or lengths in its header are wrong")
            blob = fh.read(meta_len)
        if len(blob) != meta_len or hashlib.sha256(blob).digest() != meta_sha:
            raise _CorruptEntry("checksum mismatch in its header")
        meta = _unpickle(blob)
        if not isinstance(meta, dict):
            raise _CorruptEntry("malformed header")
        self.meta = meta
        self.plan_at = len(head) + meta_len
        self.records_at = self.plan_at + self.plan_len
        self._ids: dict[str, int] | None = None

    def _index(self) -> dict[str, int]:
        if self._ids is None:
            self._ids = {task_id: i for i, task_id in enumerate(self.meta["ids"])}
        return self._ids

    def has(self, task_id: str) -> bool:
        return task_id in self._index()

    def _read(self, offset: int, length: int) -> bytes:
        with self.path.open("rb") as fh:
            fh.seek(offset)
            blob = fh.read(length)
        if len(blob) != length:
            raise _CorruptEntry("truncated")
        return blob

    def plan(self) -> RenderPlan:
        blob = self._read(self.plan_at, self.plan_len)
        if hashlib.sha256(blob).digest() != self.plan_sha:
            raise _CorruptEntry("checksum mismatch in its plan")
        plan = _unpickle(blob)
        if not isinstance(plan, RenderPlan):
            raise _CorruptEntry("malformed plan")
        return plan

    def record(self, task_id: str) -> tuple[TaskSpec, tuple[GroupSpec, ...]]:
        i = self._index()[task_id]
        offsets, digests = array("Q", self.meta["offsets"]), self.meta["digests"]
        blob = self._read(self.records_at + offsets[i], offsets[i + 1] - offsets[i])
        if not hmac.compare_digest(_record_digest(blob), digests[i * 16 : i * 16 + 16]):
            raise _CorruptEntry(f"checksum mismatch in the record of {task_id}")
        spec, groups = _unpickle(blob)
        if (
            not isinstance(spec, TaskSpec)
            or spec.task_id != task_id
            or not isinstance(groups, tuple)
            or not all(isinstance(g, GroupSpec) for g in groups)
        ):
            raise _CorruptEntry(f"malformed record for {task_id}")
        return spec, groups


def _tag(key: bytes, head: bytes) -> bytes:
    return hmac.new(key, head, hashlib.sha256).digest()


def _record_digest(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()[:16]


_refused: set[str] = set()


def _usable_dir(directory: Path) -> bytes | None:
    """The cache's key when ``directory`` may be trusted (created 0700 when missing), else None.

    Refused, with one warning per directory: one this user does not own, or that group or others
    may write to (anyone could have planted a pickle there); or one whose key cannot be read or
    made. The key: 32 random bytes in ``directory/key``, 0600, made on first use.
    """
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return _refuse(directory, f"cannot stat it ({exc.strerror or exc})")
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            return _refuse(directory, "it is not a directory")
        if st.st_uid != os.getuid():
            return _refuse(directory, f"it is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return _refuse(directory, f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")
    try:
        if st is None:
            make_private_dir(directory)
        elif read_only_dir(directory):
            # baked into an image and made read-only (``manifest-dag prepare``): read as is, its
            # modes untouched; a missing key then means there is nothing here to trust
            return _key(directory / _KEY_FILE, create=False)
        else:
            make_private_dir(directory)
        return _key(directory / _KEY_FILE)
    except (OSError, ValueError) as exc:
        return _refuse(directory, str(exc))


def _key(path: Path, create: bool = True) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        if not create:
            raise ValueError(f"it is read-only and has no key file {path.name}") from None
        key = secrets.token_bytes(32)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with create_private(tmp) as fh:
            fh.write(key)
        try:
            os.link(tmp, path)  # whole or not at all, and never over another process's key
            return key
        except FileExistsError:  # another process made it first: use theirs
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        finally:
            tmp.unlink(missing_ok=True)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ValueError(f"its key file {path} is not private to this user (mode {stat.S_IMODE(st.st_mode):o})")
        key = fh.read()
    if len(key) != 32:
        raise ValueError(f"its key file {path} is malformed")
    return key


def _refuse(directory: Path, why: str) -> bytes | None:
    if str(directory) not in _refused:
        _refused.add(str(directory))
        log.warning(
            "manifest-dag: not using plan cache dir %s: %s; building plans without the disk cache "
            "(use a directory only this user may write to, or plan_cache_dir=False)",
            directory,
            why,
        )
    return None


def _unpickle(blob: bytes) -> Any:
    try:
        with paused_gc():  # tens of thousands of small objects, no cycles
            return pickle.loads(blob)  # noqa: S301 - authenticated (HMAC) before, in a dir only this user writes
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means: rebuild
        raise _CorruptEntry(f"cannot unpickle ({type(exc).__name__})") from None


class PlannedManifest:
    """A manifest's plan plus the few facts about the manifest that DAG building needs.

    Read from disk, the plan itself is decoded on first use only: a task's parse asks for one
    task (``task``) and never pays for the other thousands. A part found corrupt then is rebuilt
    from the manifest (``rebuild``), like a corrupt entry found up front.
    """

    __slots__ = ("digest", "dbt_version", "adapter_type", "project_name", "_plan", "_reader", "_rebuild")

    def __init__(
        self,
        digest: str,
        dbt_version: str,
        adapter_type: str | None,
        project_name: str,
        plan: RenderPlan | None = None,
        *,
        reader: _EntryReader | None = None,
        rebuild: Callable[[], RenderPlan] | None = None,
    ) -> None:
        self.digest, self.dbt_version, self.adapter_type, self.project_name = (
            digest,
            dbt_version,
            adapter_type,
            project_name,
        )
        self._plan, self._reader, self._rebuild = plan, reader, rebuild

    @property
    def plan(self) -> RenderPlan:
        if self._plan is None:
            try:
                assert self._reader is not None
                self._plan = self._reader.plan()
            except (_CorruptEntry, OSError) as exc:
                self._plan = self._rebuilt(exc)
            self._reader = None
        return self._plan

    def _rebuilt(self, exc: BaseException) -> RenderPlan:
        where = self._reader.path if self._reader is not None else "?"
        log.warning("manifest-dag: plan cache entry %s: %s; rebuilding it", where, exc)
        if self._rebuild is None:
            raise RuntimeError("a lazily read plan without a way to rebuild it") from exc
        return self._rebuild()

    def __contains__(self, task_id: object) -> bool:
        if self._plan is None and self._reader is not None:
            return isinstance(task_id, str) and self._reader.has(task_id)
        return task_id in self.plan

    def task(self, task_id: str) -> tuple[TaskSpec, tuple[GroupSpec, ...]]:
        """One task and its groups (outermost first), without decoding the whole plan when it is still on disk."""
        if self._plan is None and self._reader is not None:
            try:
                return self._reader.record(task_id)
            except (_CorruptEntry, OSError) as exc:
                log.warning("manifest-dag: plan cache entry %s: %s; reading the whole plan", self._reader.path, exc)
        plan = self.plan
        return plan.task(task_id), plan.groups_of(task_id)


_memo: dict[tuple[Any, ...], PlannedManifest] = {}


def render_key(render_config: Any) -> str:
    """A stable digest of everything in a RenderConfig that shapes the plan."""
    parts: list[Any] = []
    for f in fields(render_config):
        value = getattr(render_config, f.name)
        if f.name == "naming":
            cls = type(value)
            state = sorted(vars(value).items()) if hasattr(value, "__dict__") else ()
            value = (cls.__module__, cls.__qualname__, repr(state), naming_code_digest(cls))
        elif f.name in ("callbacks", "node_converters"):
            value = sorted(value)  # only the names shape the plan; the callables are looked up as it renders
        elif hasattr(value, "value"):
            value = value.value
        parts.append((f.name, value))
    parts.append(("format", FORMAT))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def naming_code_digest(cls: type) -> str:
    """A digest of the code a naming class runs: its methods' byte code and its plain class values.

    A user who edits a method of their ``DbtNaming`` subclass (same module, same class name)
    changes the task ids; a key of the class's name alone would keep serving the old plan.
    """
    digest = hashlib.sha256()
    for klass in cls.__mro__:
        if klass is object:
            continue
        digest.update(f"{klass.__module__}.{klass.__qualname__}".encode())
        for name, attr in sorted(vars(klass).items()):
            for code_of in (attr, getattr(attr, "__func__", None), getattr(attr, "fget", None)):
                code = getattr(code_of, "__code__", None)
                if code is not None:
                    digest.update(name.encode() + _code_text(code).encode())
                    break
            else:
                if isinstance(attr, (str, int, float, bool, tuple, frozenset)) and not name.startswith("__"):
                    digest.update(f"{name}={_stable(attr)}".encode())
    return digest.hexdigest()[:16]


def _code_text(code: CodeType) -> str:
    """The same text in every process for the same code (``marshal`` output depends on refcounts)."""
    consts = ",".join(_code_text(c) if isinstance(c, CodeType) else _stable(c) for c in code.co_consts)
    return f"{code.co_code.hex()}|{code.co_names}|{code.co_varnames}|{consts}"


def _stable(value: Any) -> str:
    """``repr`` with sets sorted (their order changes with each process's hash seed)."""
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(_stable(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_stable(v) for v in value) + ")"
    return repr(value)


def file_digest(path: Path) -> str:
    """sha256 of the file, read in chunks (``hashlib.file_digest`` is Python 3.11+; we support 3.10)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def _identity(path: Path) -> tuple[Any, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    # ctime too: a file rewritten in place can keep its inode, size and mtime (``touch -d``), but
    # its ctime, which no user can set, moves on
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _ident_file(directory: Path, ident: tuple[Any, ...]) -> Path:
    return directory / "ids" / hashlib.sha256(repr(ident).encode()).hexdigest()[:32]


def _known_digest(directory: Path, ident: tuple[Any, ...]) -> str | None:
    """The content digest recorded for this exact file identity, so a fresh process skips hashing.

    The identity includes the inode, size, nanosecond mtime and ctime: rewriting the manifest changes it.
    """
    try:
        text = _ident_file(directory, ident).read_text().strip()
    except OSError:
        return None
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else None


def _remember_digest(directory: Path, ident: tuple[Any, ...], digest: str) -> None:
    path = _ident_file(directory, ident)
    if path.is_file() or read_only_dir(directory):
        return  # known, or a read-only cache (prepared in an image): hashing again is the cost
    try:
        make_private_dir(path.parent)
        with replaced_atomically(path, private=True, durable=False) as fh:
            fh.write(digest.encode())
    except OSError as exc:
        log.warning("manifest-dag: cannot write plan cache index %s: %s", path, exc)


def _read_entry(entry: Path, key: bytes, digest: str, rebuild: Callable[[], RenderPlan]) -> PlannedManifest | None:
    """The entry's facts with a lazily decoded plan, or None when it is missing, corrupt or foreign."""
    try:
        reader = _EntryReader(entry, key)
    except FileNotFoundError:
        return None
    except (_CorruptEntry, OSError) as exc:
        log.warning("manifest-dag: ignoring plan cache entry %s: %s", entry, exc)
        return None
    meta = reader.meta
    try:
        if meta["digest"] != digest:
            return None
        return PlannedManifest(
            str(meta["digest"]),
            str(meta["dbt_version"]),
            meta["adapter_type"],
            str(meta["project_name"]),
            reader=reader,
            rebuild=rebuild,
        )
    except (KeyError, TypeError) as exc:
        log.warning("manifest-dag: ignoring plan cache entry %s: malformed header (%s)", entry, exc)
        return None


def _write_entry(entry: Path, key: bytes, value: PlannedManifest) -> None:
    plan = value.plan
    records = [pickle.dumps((t, plan.groups_of(t.task_id)), protocol=pickle.HIGHEST_PROTOCOL) for t in plan.tasks]
    offsets = array("Q", [0])
    for r in records:
        offsets.append(offsets[-1] + len(r))
    meta = pickle.dumps(
        {
            "digest": value.digest,
            "dbt_version": value.dbt_version,
            "adapter_type": value.adapter_type,
            "project_name": value.project_name,
            "ids": tuple(t.task_id for t in plan.tasks),
            "offsets": offsets.tobytes(),
            "digests": b"".join(_record_digest(r) for r in records),
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    whole = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
    head = _MAGIC + _HEAD.pack(
        len(meta), len(whole), hashlib.sha256(meta).digest(), hashlib.sha256(whole).digest(), bytes(32)
    )
    head = head[:_TAGGED] + _tag(key, head[:_TAGGED])
    try:
        make_private_dir(entry.parent)
        with replaced_atomically(entry, private=True, durable=False) as fh:  # a cache: rebuilt if lost
            fh.write(head)
            fh.write(meta)
            fh.write(whole)
            fh.writelines(records)
    except OSError as exc:  # a read-only or full cache dir must not fail the DAG import
        log.warning("manifest-dag: cannot write plan cache entry %s: %s", entry, exc)


def cached_plan(
    manifest_path: Path,
    render_config: Any,
    build: Callable[[], tuple[Any, RenderPlan]],
    *,
    cache_dir: Path | None | bool = True,
    id_prefix: int = 0,
    shared: SharedPlans | None = None,
) -> tuple[PlannedManifest, str]:
    """The plan for ``manifest_path``; ``build() -> (manifest, plan)`` runs only on a miss.

    Returns the plan and where it came from (``memory``, ``disk``, ``shared`` or ``built``).
    ``shared``: object storage where the fleet shares entries (``shared_plans``), read on a local
    miss and written after a build. ``id_prefix``
    (the task group prefix length the ids were fitted to) is part of the key.
    """
    rkey = render_key(render_config) + (f"-p{id_prefix}" if id_prefix else "")
    ident = _identity(manifest_path)
    memo_key = (ident, rkey) if ident is not None else None
    if memo_key is not None and memo_key in _memo:
        return _memo[memo_key], "memory"
    directory = settings.plan_cache_dir() if cache_dir is True else (cache_dir or None)
    entry = None
    key: bytes | None = None
    digest = ""
    source = "built"
    value: PlannedManifest | None = None

    def build_and_store() -> PlannedManifest:
        manifest, plan = build()
        built = PlannedManifest(digest, manifest.dbt_version, manifest.adapter_type, manifest.project_name, plan)
        if entry is not None and key is not None and not read_only_dir(entry.parent):
            _write_entry(entry, key, built)
            if shared is not None and entry.is_file():
                shared.publish(entry.name, entry, key)
        return built

    if directory is not None and ident is not None:
        key = _usable_dir(Path(directory))
        if key is None:
            directory = None
    if directory is not None and ident is not None and key is not None:
        digest = _known_digest(Path(directory), ident) or file_digest(manifest_path)
        entry = Path(directory) / f"{digest}-{rkey}.plan"
        value = _read_entry(entry, key, digest, lambda: build_and_store().plan)
        if value is not None:
            source = "disk"
        elif shared is not None and shared.fetch(entry.name, entry, key):
            value = _read_entry(entry, key, digest, lambda: build_and_store().plan)
            if value is not None:
                source = "shared"
    if value is None:
        value = build_and_store()
    if directory is not None and ident is not None and digest:
        _remember_digest(Path(directory), ident, digest)
    if memo_key is not None:
        if len(_memo) >= _MEMO_MAX:
            _memo.pop(next(iter(_memo)))
        _memo[memo_key] = value
    return value, source


def clear_memory() -> None:
    """Forget the in-process level (tests, benchmarks)."""
    _memo.clear()
