"""Plan cache entries shared by every machine that parses the DAG file, through object storage.

A fresh DAG-processor machine, or a fresh worker (a pod per task), has an empty plan cache and
plans the manifest again: seconds for a large one, before every task on a pod. With
``ProjectConfig.shared_state_url`` and ``MANIFEST_DAG_SHARED_STATE_KEY``, an entry built on one
machine is published as ``<url>/plans/<manifest sha>-<render key>.plan`` and read by the others.

Entries are pickles, and unpickling runs code, so an entry from the bucket is trusted only when
its header's HMAC was made with the fleet's key (``MANIFEST_DAG_SHARED_STATE_KEY``, the same
secret on every machine). Without the key, plans are not shared (the msgpacks still are). Before
an entry is placed in the local cache, every part is checked against the digests its header and
meta carry (nothing is unpickled for that): a half-written, cut-short or altered object is
ignored, and the plan is built as without sharing. Placed locally, the header is re-signed with
this user's local key, as any local entry.

The name is content-addressed (the manifest's sha256 and the render options), and each object
is written in one request, so concurrent publishers write the same bytes to the same name.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from manifest_dag.core import object_store, settings
from manifest_dag.core.errors import ObjectStoreError
from manifest_dag.core.files import replaced_atomically

log = logging.getLogger(__name__)

_warned: set[str] = set()


class SharedPlans:
    """Read and publish plan cache entries under ``<url>/plans/``."""

    def __init__(self, url: str, conn_id: str | None, key: bytes) -> None:
        self.url = object_store.join(url, "plans")
        self.conn_id = conn_id
        self.key = key

    @classmethod
    def configured(cls, url: str | None, conn_id: str | None) -> SharedPlans | None:
        if not url:
            return None
        secret = settings.text(settings.SHARED_STATE_KEY)
        if not secret:
            if url not in _warned:
                _warned.add(url)
                log.info(
                    "manifest-dag: plans are not shared through %s: set MANIFEST_DAG_SHARED_STATE_KEY "
                    "(the same secret on every machine) to share them",
                    object_store.shown(url),
                )
            return None
        return cls(url, conn_id, hashlib.sha256(b"manifest-dag plans\0" + secret.encode()).digest())

    def fetch(self, name: str, dest: Path, local_key: bytes) -> bool:
        """Place the shared entry ``name`` at ``dest`` (checked, re-signed); False when there is none to use."""
        from manifest_dag.scheduler import plan_cache

        url = object_store.join(self.url, name)
        try:
            blob = object_store.read_bytes(url, self.conn_id)
        except ObjectStoreError as exc:
            if not exc.missing:
                log.warning("manifest-dag: cannot read the shared plan %s (%s); planning here", exc.url, exc.reason)
            return False
        try:
            plan_cache.check_entry_bytes(blob, self.key)
        except plan_cache.CorruptEntry as exc:
            log.warning("manifest-dag: ignoring the shared plan %s: %s; planning here", object_store.shown(url), exc)
            return False
        try:
            with replaced_atomically(dest, private=True, durable=False) as out:
                out.write(plan_cache.resigned(blob, local_key))
        except OSError as exc:
            log.warning("manifest-dag: cannot keep the shared plan in %s: %s", dest, exc)
            return False
        log.info("manifest-dag: using the plan shared at %s", object_store.shown(url))
        return True

    def publish(self, name: str, entry: Path, local_key: bytes) -> None:
        """Upload a local entry (re-signed with the fleet's key); a failure is a warning."""
        from manifest_dag.scheduler import plan_cache

        url = object_store.join(self.url, name)
        try:
            blob = entry.read_bytes()
            plan_cache.check_entry_bytes(blob, local_key)
            object_store.write_bytes(url, plan_cache.resigned(blob, self.key), self.conn_id)
        except (OSError, plan_cache.CorruptEntry) as exc:
            log.warning("manifest-dag: not publishing the plan %s: %s", entry, exc)
        except ObjectStoreError as exc:
            log.warning("manifest-dag: cannot publish the plan to %s (%s)", exc.url, exc.reason)
        else:
            log.info("manifest-dag: published the plan to %s", object_store.shown(url))
