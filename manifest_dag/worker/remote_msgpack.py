"""A ``partial_parse.msgpack`` published to object storage beside the manifest, on the worker.

dbt CI that publishes ``manifest.json`` to a bucket usually publishes the ``partial_parse.msgpack``
of the same ``dbt parse`` beside it. A worker fetches it (only when the object changed: one
metadata request per task otherwise) into its state folder and offers it to the workspace as the
given msgpack, which checks its dbt version and relocates its paths; dbt itself then checks the
vars, profile, target and files, so a msgpack written with other settings costs a full parse,
never a wrong result. A store that fails costs the same, with a line in the task log: the task
does not fail for an optimisation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from manifest_dag.core import object_store
from manifest_dag.core.errors import ObjectStoreError
from manifest_dag.worker.partial_parse import PARTIAL_PARSE


def fetch_msgpack(url: str, conn_id: str | None, state_root: Path, log: Callable[[str], None]) -> Path | None:
    """The local copy of the msgpack at ``url`` (the last good one when the store fails), or None."""
    copy = object_store.CachedCopy(url, state_root / "objects", PARTIAL_PARSE, conn_id)
    try:
        path = copy.refresh()
    except ObjectStoreError as exc:
        if exc.missing:
            log(f"partial parse: no {PARTIAL_PARSE} at {exc.url}")
        else:
            log(f"partial parse: cannot fetch {exc.url} ({exc.reason}); dbt will parse without it")
        return None
    if copy.stale is not None:
        log(
            f"partial parse: cannot fetch {object_store.shown(url)} ({copy.stale.reason}); using the copy fetched {copy.fetched_at()}"
        )
    elif copy.downloaded:
        log(f"partial parse: fetched {object_store.shown(url)}")
    return path
