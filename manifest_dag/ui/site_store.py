"""Reading published dbt docs sites, for the docs plugin: one root, one folder per DAG, a few names.

Every read goes through ``check_site_id`` and the ``SERVED`` names of ``core.docs_site``, so a
request can name a DAG and one of those files and nothing else; a local root is also checked after
resolving links, so a folder linked out of the root is not followed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from manifest_dag.core import settings
from manifest_dag.core.docs_site import META, SERVED, check_site_id

#: the largest META the plugin reads (it names tasks and nodes; a bigger one is not ours)
_META_LIMIT = 64 << 20


class SiteStore:
    """The sites under one docs root: a local folder, or an object storage URL with a Connection."""

    def __init__(self, root: str, conn_id: str | None = None) -> None:
        self.root = root.strip()
        self.conn_id = conn_id or None
        self.remote = "://" in self.root

    @classmethod
    def from_settings(cls) -> SiteStore | None:
        """The store the deployment configured (``MANIFEST_DAG_DOCS_ROOT`` or ``[manifest_dag]
        docs_root``), or None when it set none."""
        root = settings.airflow_setting(settings.DOCS_ROOT, "docs_root")
        if not root:
            return None
        return cls(root, settings.airflow_setting(settings.DOCS_CONN_ID, "docs_conn_id") or None)

    def local_file(self, site_id: str, name: str) -> Path | None:
        """The file of a local root, or None when it is not there (or not one the plugin serves)."""
        if self.remote or (name not in SERVED and name != META):
            return None
        root = Path(self.root).resolve()
        path = (root / check_site_id(site_id) / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def read(self, site_id: str, name: str) -> bytes | None:
        """The file's bytes, or None when it is not there (or not one the plugin serves)."""
        if name not in SERVED and name != META:
            return None
        if not self.remote:
            path = self.local_file(site_id, name)
            return path.read_bytes() if path is not None else None
        from airflow.sdk import ObjectStoragePath

        obj = ObjectStoragePath(self.root, conn_id=self.conn_id) / check_site_id(site_id) / name
        try:
            return obj.read_bytes() if obj.is_file() else None
        except FileNotFoundError:
            return None

    def meta(self, site_id: str) -> dict[str, Any]:
        """The site's META (empty when absent or unreadable: the page works without it)."""
        try:
            raw = self.read(site_id, META)
            data = json.loads(raw) if raw is not None and len(raw) <= _META_LIMIT else {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
