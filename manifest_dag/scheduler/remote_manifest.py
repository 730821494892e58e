"""A ``manifest.json`` in object storage, as a local file the plan cache can key.

dbt CI publishes the manifest to a bucket; the DAG processor parses the DAG file every few
seconds and the task runner once more before every task. Downloading a large manifest each time
would cost more than planning it. So the object's version (ETag, version id, generation) is asked
first, in one metadata request, and the object is downloaded only when it changed, into a private
local copy replaced atomically. The plan cache then keys the plan by that copy's content, as for
a local manifest, and its per-file index makes a task's parse read only its task's record.

A store that fails (object missing, access denied, no answer within the deadline) does not take
the DAG away when an earlier copy exists: that copy, and so the last good plan, is used, with a
warning naming the URL and why; only a first read fails the DAG import, with a ``ManifestError``
naming the URL.
"""

from __future__ import annotations

import logging
from pathlib import Path

from manifest_dag.core import object_store, settings
from manifest_dag.core.errors import ManifestError, ObjectStoreError

log = logging.getLogger(__name__)


def copies_dir(plan_cache_dir: Path | bool) -> Path:
    """Where downloaded manifests are kept: ``objects`` in the plan cache folder (the user cache's
    ``manifests`` when the disk plan cache is off)."""
    if isinstance(plan_cache_dir, Path):
        return plan_cache_dir / "objects"
    configured = settings.plan_cache_dir() if plan_cache_dir else None
    return configured / "objects" if configured is not None else settings.user_cache_dir("manifests")


def local_manifest(url: str, conn_id: str | None, plan_cache_dir: Path | bool = True) -> Path:
    """The local copy of the manifest at ``url``, downloaded only when the object changed."""
    name = "manifest.json.gz" if url.endswith(".gz") else "manifest.json"
    copy = object_store.CachedCopy(url, copies_dir(plan_cache_dir), name, conn_id)
    try:
        path = copy.refresh()
    except ObjectStoreError as exc:
        what = "does not exist" if exc.missing else "cannot be read"
        raise ManifestError(
            f"manifest {exc.url} {what} ({exc.reason}). No earlier copy of it on this machine to fall back "
            "to; check the URL, ProjectConfig.manifest_conn_id and the store"
        ) from None
    if copy.stale is not None:
        log.warning(
            "manifest-dag: cannot read the manifest %s (%s); keeping the last good plan, from the copy fetched %s",
            object_store.shown(url),
            copy.stale.reason,
            copy.fetched_at(),
        )
    elif copy.downloaded:
        log.info("manifest-dag: downloaded the manifest %s (new version)", object_store.shown(url))
    return path
