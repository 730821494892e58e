"""What a published dbt docs site is: its files, its folder per DAG, and which node a task shows.

The docs task (a worker) writes these files and the docs plugin (the api-server) reads them, so
both sides take the names from here. The plugin serves only these names, from only the folder
``<docs root>/<dag_id>``, and only for a ``dag_id`` that passes ``check_site_id``: nothing a
request says ever becomes a path of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from manifest_dag.core.errors import ConfigError

#: The page the plugin shows: dbt's ``docs generate --static`` output, the site with manifest and
#: catalog inside one HTML file, so it needs no further request (and runs sandboxed, see the plugin)
PAGE = "static_index.html"
#: What the docs task publishes, data first and pages last (a reader never sees a page whose data
#: is not there yet); ``index.html`` + the two JSON files are the site dbt's own ``docs serve`` uses
SITE_FILES: tuple[str, ...] = ("manifest.json", "catalog.json", "index.html", PAGE)
#: manifest-dag's note beside the site: when and by which task it was made, and which dbt nodes
#: each task of the DAG runs (the plugin's per-task link opens the first one)
META = "manifest-dag-docs.json"
#: The files the plugin hands out, each with its media type
SERVED: Mapping[str, str] = {
    PAGE: "text/html; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
    "manifest.json": "application/json",
    "catalog.json": "application/json",
}

# Airflow's own rule for dag ids (letters, digits, ``-``, ``.``, ``_``; at most 250), less the names
# that mean a folder other than the DAG's own
_SITE_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
#: node types the docs site has a page for, in the order a task's link prefers them
_PAGE_TYPES = ("model", "seed", "snapshot", "source", "test", "unit_test")


def check_site_id(site_id: str) -> str:
    """``site_id`` (a dag id) if it can name a docs folder, else ConfigError naming it."""
    if not isinstance(site_id, str) or not _SITE_ID.fullmatch(site_id) or set(site_id) == {"."}:
        raise ConfigError(
            f"{site_id!r} cannot name a docs site: use a dag id (letters, digits, '-', '.', '_'; not only dots)"
        )
    return site_id


def site_location(root: str, site_id: str) -> str:
    """``<root>/<site_id>``: the folder (or object storage prefix) of one DAG's site."""
    root = str(root).strip()
    if not root:
        raise ConfigError("the docs root is empty")
    return f"{root.rstrip('/')}/{check_site_id(site_id)}"


def task_nodes(meta: Mapping[str, Any]) -> Mapping[str, Sequence[str]]:
    """The ``tasks`` table of a site's META (task id → dbt node ids); empty when absent or malformed."""
    tasks = meta.get("tasks") if isinstance(meta, Mapping) else None
    if not isinstance(tasks, Mapping):
        return {}
    return {str(k): [str(n) for n in v] for k, v in tasks.items() if isinstance(v, (list, tuple))}


def node_page(node_ids: Sequence[str]) -> str | None:
    """The docs page (``#!/<type>/<unique_id>``) for a task's nodes: its model (seed, snapshot ...)
    rather than its tests; None when no node has a page."""
    for kind in _PAGE_TYPES:
        for node_id in node_ids:
            if node_id.split(".", 1)[0] == kind:
                return f"#!/{kind}/{node_id}"
    return None
