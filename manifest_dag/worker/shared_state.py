"""Partial-parse state shared by a fleet of workers through object storage.

Each worker keeps its own ``partial_parse.msgpack`` per parse state; a fresh machine (a new
Celery worker, a pod per task) starts with none and pays a full ``dbt parse``. With
``ProjectConfig(shared_state_url="s3://...")`` a worker that kept a new msgpack after a good run
also publishes it, and a worker without one of its own takes the fleet's.

Nothing half-written is ever read, on any store:

- the msgpack goes to a **content-addressed** key, ``<url>/partial_parse/<key>/blobs/<sha256>``;
- a small **pointer**, ``<url>/partial_parse/<key>/latest.json`` (the blob's sha256 and size), is
  written last, in one request, only after the blob's upload finished;
- a reader follows the pointer, downloads the blob and checks its sha256 and size before using it:
  an upload that was interrupted (a killed worker, a multipart upload never completed) is either
  invisible or fails the check, and the pointer still names the last complete blob.

Two workers publishing at once each write their own blob and then the pointer; the last pointer
wins, and whichever it is names a complete blob. With ``MANIFEST_DAG_SHARED_STATE_KEY`` set (the
same secret on every worker) the pointer carries an HMAC-SHA256 that readers require, so only
holders of the key can point the fleet at a msgpack.

``<key>`` is what dbt checks before reusing a msgpack (dbt version, profile, target, vars,
connection fields) plus the project's name, without the project's folder: the workspace moves the
msgpack's paths to each worker's own copy.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import time
from pathlib import Path

import orjson

from manifest_dag.core import object_store, settings
from manifest_dag.core.errors import ObjectStoreError
from manifest_dag.core.files import make_private_dir
from manifest_dag.worker import Log
from manifest_dag.worker.partial_parse import PARTIAL_PARSE, ParseState

_POINTER = "latest.json"


def shared_key(state: ParseState, project_name: str | None) -> str:
    """The parse state's key without the project's folder (each worker's copy lives elsewhere)."""
    parts = [
        "shared-v1",
        project_name,
        state.dbt_version,
        state.profile_name,
        state.target_name,
        state.vars_json,
        state.connection,
    ]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _signing_key() -> bytes | None:
    value = settings.text(settings.SHARED_STATE_KEY)
    return value.encode() if value else None


def _tag(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class SharedParseState:
    """One parse state's msgpack in object storage: ``fetch`` it, ``publish`` a new one."""

    def __init__(self, url: str, conn_id: str | None, key: str, log: Log) -> None:
        self.prefix = object_store.join(url, "partial_parse", key)
        self.conn_id = conn_id
        self.log = log
        #: how the task log names it
        self.label = f"the shared state {object_store.shown(self.prefix)}"

    def _blob_url(self, sha: str) -> str:
        return object_store.join(self.prefix, "blobs", f"{sha}.msgpack")

    def _pointer(self) -> dict[str, object] | None:
        """The pointer, checked (its HMAC when a key is set); None when there is none or it is bad."""
        url = object_store.join(self.prefix, _POINTER)
        try:
            raw = object_store.read_bytes(url, self.conn_id)
        except ObjectStoreError as exc:
            if not exc.missing:
                self.log(f"shared state: cannot read {exc.url} ({exc.reason}); not using it")
            return None
        try:
            pointer = orjson.loads(raw)
            body = orjson.dumps(pointer["body"], option=orjson.OPT_SORT_KEYS)
            sha, size = str(pointer["body"]["sha256"]), int(pointer["body"]["size"])
        except (ValueError, KeyError, TypeError):
            self.log(f"shared state: ignoring {object_store.shown(url)}: malformed")
            return None
        key = _signing_key()
        if key is not None and not hmac.compare_digest(str(pointer.get("hmac", "")), _tag(key, body)):
            self.log(
                f"shared state: ignoring {object_store.shown(url)}: its HMAC does not match "
                "MANIFEST_DAG_SHARED_STATE_KEY (written without the fleet's key, or altered)"
            )
            return None
        if len(sha) != 64 or size < 0:
            return None
        return {"sha256": sha, "size": size, "writer": pointer["body"].get("writer", "?")}

    def fetch(self, dest: Path) -> bool:
        """Place the fleet's msgpack at ``dest`` (0600) after checking it; False when there is none to use."""
        pointer = self._pointer()
        if pointer is None:
            return False
        sha, size = str(pointer["sha256"]), int(str(pointer["size"]))
        tmp = dest.with_name(f".{dest.name}.shared.tmp")
        try:
            make_private_dir(dest.parent)
            object_store.download(self._blob_url(sha), tmp, self.conn_id)
            got_size, got_sha = tmp.stat().st_size, file_sha256(tmp)
            if got_size != size or got_sha != sha:
                self.log(
                    f"shared state: ignoring {object_store.shown(self._blob_url(sha))}: {got_size} bytes with "
                    f"sha256 {got_sha[:12]}..., the pointer says {size} bytes, {sha[:12]}... "
                    "(a half-written or altered object)"
                )
                return False
            os.replace(tmp, dest)
        except ObjectStoreError as exc:
            self.log(f"shared state: cannot fetch {exc.url} ({exc.reason}); dbt will parse without it")
            return False
        except OSError as exc:
            self.log(f"shared state: cannot keep the fetched msgpack ({exc.strerror or exc})")
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self.log(f"shared state: fetched the msgpack {sha[:12]}... written by {pointer['writer']}")
        return True

    def publish(self, path: Path) -> None:
        """Upload the msgpack (content-addressed), then point to it; a failure is a log line."""
        try:
            sha, size = file_sha256(path), path.stat().st_size
        except OSError as exc:
            self.log(f"shared state: cannot read {path} to publish it ({exc.strerror or exc})")
            return
        blob = self._blob_url(sha)
        writer = f"{socket.gethostname()} pid {os.getpid()}"
        body = {"sha256": sha, "size": size, "writer": writer, "at": time.time(), "name": PARTIAL_PARSE}
        pointer: dict[str, object] = {"body": body}
        key = _signing_key()
        if key is not None:
            pointer["hmac"] = _tag(key, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        try:
            object_store.upload(path, blob, self.conn_id)
            object_store.write_bytes(object_store.join(self.prefix, _POINTER), orjson.dumps(pointer), self.conn_id)
        except ObjectStoreError as exc:
            self.log(f"shared state: cannot publish to {exc.url} ({exc.reason}); this worker keeps its own copy")
            return
        self.log(f"shared state: published the msgpack {sha[:12]}... to {object_store.shown(self.prefix)}")
