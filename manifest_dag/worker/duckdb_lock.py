"""DuckDB allows one writer per database file: tasks on one DuckDB target take turns.

Two tasks of one DAG that run dbt at once against the same DuckDB file fail with DuckDB's "could
not set lock on file" (cosmos's cold runs do). So each dbt call on a DuckDB target holds a file
lock named after the database file, on this worker. Only the dbt call is inside the lock (never
the venv build or the copy), and only for DuckDB targets; other warehouses run tasks in parallel.
``MANIFEST_DAG_DUCKDB_LOCK=off`` turns it off (for example with a read-only target).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from manifest_dag.core import settings
from manifest_dag.core.files import PRIVATE_FILE, make_private_dir
from manifest_dag.worker import Log
from manifest_dag.worker.target import Target, fill_env_vars


def _duckdb_file(raw: Any, env: Mapping[str, str], cwd: Path) -> str:
    """The DuckDB file a target's ``path`` names, with ``{{ env_var(...) }}`` filled in."""
    text = fill_env_vars(str(raw or ""), env)
    if text and text != ":memory:" and "{{" not in text and not text.startswith(("md:", "motherduck:")):
        return str((cwd / text).resolve())
    return text


def _duckdb_key(project_dir: Path, found: Target | None, env: Mapping[str, str]) -> str | None:
    """What names a DuckDB target's database (its file), or None when the target is not DuckDB."""
    if found is None or found[2].get("type") != "duckdb":
        return None
    return _duckdb_file(found[2].get("path"), env, project_dir)


@contextmanager
def duckdb_writer_lock(
    state: Path, project_dir: Path, found: Target | None, env: Mapping[str, str], log: Log
) -> Iterator[None]:
    """Hold this worker's lock on the target's DuckDB file for the block (nothing for other targets)."""
    key = _duckdb_key(project_dir, found, env)
    if key is None or settings.is_off(settings.DUCKDB_LOCK):
        yield
        return
    from filelock import FileLock, Timeout

    locks = state / "locks"
    make_private_dir(locks, within=state)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    lock = FileLock(str(locks / f"duckdb-{digest}.lock"), mode=PRIVATE_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log("waiting for another task's dbt run on the same DuckDB target (DuckDB allows one writer)")
        waited = time.monotonic()
        lock.acquire()
        log(f"DuckDB target free after {time.monotonic() - waited:.2f} s of waiting")
    try:
        yield
    finally:
        lock.release()
