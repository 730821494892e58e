"""Don't parse an unchanged manifest twice.

A DAG file is parsed again and again: by the DAG processor every few seconds, and by Airflow's
task runner before every single task. Parsing a large manifest with orjson and planning it costs
seconds; the plan it yields is small plain data. So plans are cached at two levels:

- in the process, keyed by the manifest file's identity (path, inode, size, mtime) and the render
  options: re-building the DAG in the same process costs only the Airflow objects;
- on disk, keyed by the manifest's *content* digest and the render options, so a fresh process
  (a task on a worker, a DAG-processor child) reads a ~1 MB pickle instead of a ~100 MB JSON.

A disk entry carries a header with a format version and a SHA-256 of its payload; anything that
does not check out (truncated, corrupt, other version, unreadable) is ignored and rewritten, never
trusted. Entries are written to a temp file and renamed into place, so readers never see half a file.
The directory is created 0700: entries are pickles, read only from a directory this user owns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from manifest_dag.plan import RenderPlan

log = logging.getLogger(__name__)

_MAGIC = b"MDPLAN1\n"
FORMAT = 2  # bump when RenderPlan/TaskSpec change shape
_MEMO_MAX = 16


@dataclass(frozen=True)
class PlannedManifest:
    """A manifest's plan plus the few facts about the manifest that DAG building needs."""

    digest: str
    dbt_version: str
    adapter_type: str | None
    project_name: str
    plan: RenderPlan


_memo: dict[tuple[Any, ...], PlannedManifest] = {}


def default_cache_dir() -> Path | None:
    """``MANIFEST_DAG_PLAN_CACHE`` (``off`` disables), else ``~/.cache/manifest-dag/plans``."""
    value = os.environ.get("MANIFEST_DAG_PLAN_CACHE", "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "manifest-dag" / "plans"


def render_key(render_config: Any) -> str:
    """A stable digest of everything in a RenderConfig that shapes the plan."""
    parts: list[Any] = []
    for f in fields(render_config):
        value = getattr(render_config, f.name)
        if f.name == "naming":
            cls = type(value)
            state = sorted(vars(value).items()) if hasattr(value, "__dict__") else ()
            value = (cls.__module__, cls.__qualname__, repr(state))
        elif hasattr(value, "value"):
            value = value.value
        parts.append((f.name, value))
    parts.append(("format", FORMAT))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:32]


def _identity(path: Path) -> tuple[Any, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def _ident_file(directory: Path, ident: tuple[Any, ...]) -> Path:
    return directory / "ids" / hashlib.sha256(repr(ident).encode()).hexdigest()[:32]


def _known_digest(directory: Path, ident: tuple[Any, ...]) -> str | None:
    """The content digest recorded for this exact file identity, so a fresh process skips hashing.

    The identity includes the inode, size and nanosecond mtime: rewriting the manifest changes it.
    """
    try:
        text = _ident_file(directory, ident).read_text().strip()
    except OSError:
        return None
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else None


def _remember_digest(directory: Path, ident: tuple[Any, ...], digest: str) -> None:
    path = _ident_file(directory, ident)
    if path.is_file():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".id-", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(digest)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("manifest-dag: cannot write plan cache index %s: %s", path, exc)


def _read_entry(entry: Path) -> PlannedManifest | None:
    try:
        blob = entry.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if len(blob) < head or not blob.startswith(_MAGIC):
        return None
    checksum, payload = blob[len(_MAGIC) : head], blob[head:]
    if hashlib.sha256(payload).digest() != checksum:
        log.warning("manifest-dag: ignoring corrupt plan cache entry %s", entry)
        return None
    try:
        value = pickle.loads(payload)  # noqa: S301 - our own file, in a 0700 directory, checksummed
    except Exception:  # noqa: BLE001 - any unpickling problem means: rebuild
        return None
    return value if isinstance(value, PlannedManifest) else None


def _write_entry(entry: Path, value: PlannedManifest) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=entry.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, entry)
    except OSError as exc:  # a read-only or full cache dir must not fail the DAG import
        log.warning("manifest-dag: cannot write plan cache entry %s: %s", entry, exc)


def cached_plan(
    manifest_path: Path,
    render_config: Any,
    build: Callable[[], tuple[Any, RenderPlan]],
    *,
    cache_dir: Path | None | bool = True,
) -> tuple[PlannedManifest, str]:
    """The plan for ``manifest_path``; ``build() -> (manifest, plan)`` runs only on a miss.

    Returns the plan and where it came from (``memory``, ``disk`` or ``built``).
    """
    rkey = render_key(render_config)
    ident = _identity(manifest_path)
    memo_key = (ident, rkey) if ident is not None else None
    if memo_key is not None and memo_key in _memo:
        return _memo[memo_key], "memory"
    directory = default_cache_dir() if cache_dir is True else (cache_dir or None)
    entry = None
    digest = ""
    source = "built"
    value: PlannedManifest | None = None
    if directory is not None and ident is not None:
        digest = _known_digest(Path(directory), ident) or file_digest(manifest_path)
        entry = Path(directory) / f"{digest}-{rkey}.plan"
        value = _read_entry(entry)
        if value is not None and value.digest != digest:
            value = None
        if value is not None:
            source = "disk"
    if value is None:
        manifest, plan = build()
        value = PlannedManifest(
            digest=digest,
            dbt_version=manifest.dbt_version,
            adapter_type=manifest.adapter_type,
            project_name=manifest.project_name,
            plan=plan,
        )
        if entry is not None:
            _write_entry(entry, value)
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
