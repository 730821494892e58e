"""Objects in a bucket (``s3://``, ``gs://``, ``az://`` ...) through Airflow's ``ObjectStoragePath``.

dbt CI publishes ``manifest.json`` and ``partial_parse.msgpack`` to a bucket; a fleet of workers
can share its parse state there. Both sides read and write such objects, and both must survive a
store that stops answering: the DAG processor parses every few seconds and a hung read would hang
the parse until Airflow kills it, taking the DAG with it. So every call here runs within a
deadline (``MANIFEST_DAG_OBJECT_TIMEOUT``, seconds), and every failure is one
``ObjectStoreError`` naming the URL, whatever the filesystem raised.

Which filesystem serves a scheme, and its credentials, come from Airflow (``airflow.sdk``'s
``ObjectStoragePath`` and the provider that registers the scheme, e.g. the Amazon provider's
``s3fs`` for ``s3://``); ``conn_id`` names the Connection. Airflow is imported on first use only:
``core`` stays importable without it. Error texts never carry the URL's userinfo or the
Connection's secrets (the filesystem's messages are passed through ``mask_url_credentials``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from manifest_dag.core import settings
from manifest_dag.core.errors import ObjectStoreError
from manifest_dag.core.files import make_private_dir, replaced_atomically
from manifest_dag.core.secrets import mask_url_credentials

T = TypeVar("T")

#: a URL with a scheme (``s3://``, ``gs://``, ``az://``, ``file://`` ...), not a local path
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20
#: upload part size: large objects go up in parts (a multipart upload on S3, never visible until
#: completed), small ones in one request
_PART = 8 << 20

#: the fields, by store, that change whenever an object's content does: S3's ETag and VersionId,
#: GCS's generation and md5, Azure's etag; size and modification time for the rest (``file://``)
_VERSION_FIELDS = (
    "VersionId",
    "version_id",
    "generation",
    "ETag",
    "etag",
    "md5Hash",
    "size",
    "LastModified",
    "last_modified",
    "mtime",
    "updated",
)


def is_url(value: object) -> bool:
    """Whether a configured location is an object-store URL rather than a local path."""
    return isinstance(value, str) and bool(_URL.match(value.strip()))


def shown(url: str) -> str:
    """The URL as errors and logs show it: without userinfo (``s3://key:secret@bucket``)."""
    return mask_url_credentials(url)


def timeout() -> float:
    """Seconds one object-store call may take (``MANIFEST_DAG_OBJECT_TIMEOUT``, default 30)."""
    value = settings.number(settings.OBJECT_TIMEOUT, DEFAULT_TIMEOUT)
    return value if value > 0 else DEFAULT_TIMEOUT


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such object"
    if isinstance(exc, PermissionError):
        return f"access denied ({mask_url_credentials(str(exc))})"
    text = mask_url_credentials(str(exc)).strip() or "no message"
    return f"{type(exc).__name__}: {text[:500]}"


def within_deadline(url: str, what: str, fn: Callable[[], T], seconds: float | None = None) -> T:
    """``fn()``, or ``ObjectStoreError`` once ``seconds`` have passed without an answer.

    The call runs in a daemon thread: a store that accepts the connection and never answers
    (network partition, stopped server) keeps that thread until the filesystem's own timeouts
    end it, but never the caller, and never the interpreter's exit.
    """
    limit = timeout() if seconds is None else seconds
    _load_filesystem(url)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"manifest-dag {what}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        reason = f"{what} got no answer within {limit:g} s (MANIFEST_DAG_OBJECT_TIMEOUT)"
        raise ObjectStoreError(f"{shown(url)}: {reason}", url=shown(url), reason=reason)
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, ObjectStoreError):
            raise exc
        reason = f"{what} failed: {_reason(exc)}"
        raise ObjectStoreError(
            f"{shown(url)}: {reason}", url=shown(url), missing=isinstance(exc, FileNotFoundError), reason=reason
        ) from None
    return box["value"]


#: the Airflow provider that serves a scheme, for the error when none does
_PROVIDERS = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "az": "apache-airflow-providers-microsoft-azure",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
}


def _load_filesystem(url: str) -> None:
    """Load Airflow and the providers' filesystems before the clock starts (imports take seconds on
    a busy machine; that is not the store's time), and name the provider a scheme needs."""
    from airflow.sdk.io import has_fs

    scheme = url.split("://", 1)[0].lower()
    if not has_fs(scheme):
        needs = _PROVIDERS.get(scheme, "the Airflow provider that registers it")
        reason = f"no filesystem is registered for {scheme}:// in Airflow; install {needs}"
        raise ObjectStoreError(f"{shown(url)}: {reason}", url=shown(url), reason=reason)


def storage_path(url: str, conn_id: str | None = None) -> Any:
    """Airflow's ``ObjectStoragePath`` for ``url`` with the Connection ``conn_id``."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def _info(path: Any) -> Mapping[str, Any]:
    fs = path.fs
    where = _fs_path(path)
    try:
        fs.invalidate_cache(where)  # never an answer from a listing cache
    except Exception:  # noqa: BLE001 - a filesystem without a cache has nothing to drop
        pass
    info = fs.info(where)
    if info.get("type") == "directory":
        raise IsADirectoryError(f"{where} is a folder, not an object")
    return dict(info)


def _fs_path(path: Any) -> str:
    """The path as the filesystem takes it (``bucket/key``; ``str(path)`` carries the conn id)."""
    return str(path.path)


def version_token(info: Mapping[str, Any]) -> str:
    """One string that changes whenever the object's content does (see ``_VERSION_FIELDS``)."""
    parts = [f"{name}={info[name]}" for name in _VERSION_FIELDS if info.get(name) not in (None, "")]
    return "|".join(parts)


def object_version(url: str, conn_id: str | None = None, seconds: float | None = None) -> str:
    """The object's version token, from one metadata request (no download)."""
    return within_deadline(
        url, "reading its metadata", lambda: version_token(_info(storage_path(url, conn_id))), seconds
    )


def download(url: str, dest: Path, conn_id: str | None = None, seconds: float | None = None) -> tuple[str, str]:
    """Copy the object into ``dest`` (0600, replaced atomically); returns (version token, sha256).

    The version is read before the content; an object replaced in between is stored under the
    older token, so the next check sees a new version and downloads again: never a stale copy
    kept for good.
    """

    def fetch() -> tuple[str, str]:
        path = storage_path(url, conn_id)
        token = version_token(_info(path))
        digest = hashlib.sha256()
        make_private_dir(dest.parent)
        with replaced_atomically(dest, private=True, durable=False) as out, path.open("rb") as src:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        return token, digest.hexdigest()

    return within_deadline(url, "downloading it", fetch, seconds)


def read_bytes(url: str, conn_id: str | None = None, seconds: float | None = None) -> bytes:
    """The whole (small) object."""

    def fetch() -> bytes:
        with storage_path(url, conn_id).open("rb") as src:
            return bytes(src.read())

    return within_deadline(url, "reading it", fetch, seconds)


def write_bytes(url: str, data: bytes, conn_id: str | None = None, seconds: float | None = None) -> None:
    """Write a whole object in one request (object stores make a single PUT visible whole or not at all)."""

    def put() -> None:
        path = storage_path(url, conn_id)
        path.fs.pipe_file(_fs_path(path), data)

    within_deadline(url, "writing it", put, seconds)


def upload(src: Path, url: str, conn_id: str | None = None, seconds: float | None = None) -> None:
    """Copy a local file to ``url`` (streamed; callers make the result safe to read, see ``shared_state``)."""

    def put() -> None:
        path = storage_path(url, conn_id)
        with src.open("rb") as fh, path.open("wb", block_size=_PART) as out:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                out.write(chunk)

    within_deadline(url, "uploading to it", put, seconds)


def exists(url: str, conn_id: str | None = None, seconds: float | None = None) -> bool:
    def check() -> bool:
        try:
            _info(storage_path(url, conn_id))
        except FileNotFoundError:
            return False
        return True

    return within_deadline(url, "checking it", check, seconds)


def join(url: str, *parts: str) -> str:
    """``url`` with ``parts`` appended as path segments (no normalisation of the scheme's ``//``)."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def parent(url: str) -> str:
    """The URL of the folder holding ``url``'s object."""
    return url.rstrip("/").rsplit("/", 1)[0]


def local_name(url: str, conn_id: str | None) -> str:
    """A file-system-safe name for a (URL, Connection) pair, for local copies."""
    return hashlib.sha256(f"{conn_id or ''}\0{url}".encode()).hexdigest()[:24]


def temp_suffix() -> str:
    return secrets.token_hex(6)


class CachedCopy:
    """A local copy of an object, downloaded again only when the object's version changed.

    ``dir/<name>`` holds the bytes, ``dir/<name>.object.json`` the URL, version token, sha256 and
    when it was fetched. ``refresh`` asks the store for the version first (one metadata request);
    an unchanged object is not downloaded. When the store cannot be read (missing object, denied,
    no answer within the deadline) and a copy from an earlier read exists, that copy is kept and
    ``stale`` says why, for the caller's warning; without one, ``ObjectStoreError`` is raised.
    """

    def __init__(self, url: str, cache_dir: Path, name: str, conn_id: str | None = None) -> None:
        self.url = url
        self.conn_id = conn_id
        self.dir = Path(cache_dir) / local_name(url, conn_id)
        self.path = self.dir / name
        self._meta = self.dir / f"{name}.object.json"
        #: why the copy in ``path`` is an earlier one (the store could not be read), else None
        self.stale: ObjectStoreError | None = None
        #: whether this refresh downloaded the object
        self.downloaded = False

    def meta(self) -> dict[str, Any] | None:
        import orjson

        try:
            meta = orjson.loads(self._meta.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != self.url or not self.path.is_file():
            return None
        return meta

    def refresh(self, seconds: float | None = None) -> Path:
        """The copy of the object as it is now, or the last good copy when the store fails."""
        import time

        import orjson

        self.stale, self.downloaded = None, False
        known = self.meta()
        try:
            version = object_version(self.url, self.conn_id, seconds)
            if known is not None and known.get("version") == version:
                return self.path
            version, digest = download(self.url, self.path, self.conn_id, seconds)
        except ObjectStoreError as exc:
            if known is None:
                raise
            self.stale = exc
            return self.path
        self.downloaded = True
        meta = {"url": self.url, "version": version, "sha256": digest, "fetched_at": time.time()}
        with replaced_atomically(self._meta, private=True, durable=False) as out:
            out.write(orjson.dumps(meta))
        return self.path

    def fetched_at(self) -> str:
        """When the copy in ``path`` was downloaded (UTC), for messages."""
        import datetime

        meta = self.meta() or {}
        when = meta.get("fetched_at")
        if not isinstance(when, (int, float)):
            return "an earlier parse"
        return datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
