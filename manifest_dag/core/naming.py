"""One object names everything the renderer creates from a dbt node.

Users who want other task ids, group ids, display names, docs or Asset URIs subclass
``DbtNaming`` and override one method, instead of forking the renderer. Ids are made unique (and
fitted to Airflow's length limit) by the planner, not here.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the worker's task parse names nodes without loading a manifest
    from manifest_dag.scheduler.manifest import DbtNode

#: Airflow allows letters, digits, ``_``, ``-`` and ``.`` in task ids; ``.`` joins group and task.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_ID = 200  # one segment; the whole dotted id is held to AIRFLOW_MAX_ID by the planner (fit_id)
#: Airflow's limit for a whole task or group id, the DbtTaskGroup's (and its parents') prefix included
AIRFLOW_MAX_ID = 250


def fit_id(raw: str, limit: int) -> str:
    """``raw`` if it has at most ``limit`` characters, else its head and a digest of all of it.

    Deterministic (the worker re-plans the same DAG and must find the same ids), and distinct
    inputs give distinct results.
    """
    if len(raw) <= limit:
        return raw
    if limit < 12:
        raise ValueError(f"no room for an id: {limit} characters left after the task group prefix")
    digest = hashlib.sha1(raw.encode()).hexdigest()[:10]
    return f"{raw[: limit - 11].rstrip('._-')}_{digest}"


def sanitize(raw: str) -> str:
    """A string made safe as one Airflow id segment, shortened with a hash when too long."""
    safe = _UNSAFE.sub("_", raw).strip("_") or "node"
    if len(safe) > MAX_ID:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:10]
        safe = f"{safe[: MAX_ID - 11]}_{digest}"
    return safe


class DbtNaming:
    """Default names: a group per tested model named after it, ``run``/``test`` inside; a plain
    ``<name>_run`` task for a model without tests; ``<name>_seed`` and the like for the rest."""

    #: task id per dbt command, inside a model's group
    command_task_ids = {"run": "run", "test": "test", "build": "build"}

    def base_name(self, node: DbtNode) -> str:
        """The node's readable name: ``orders``, ``orders_v2``, ``raw_orders`` (source ``raw``)."""
        if node.resource_type == "source" and node.source_name:
            return sanitize(f"{node.source_name}_{node.name}")
        if node.version is not None:
            return sanitize(f"{node.name}_v{node.version}")
        return sanitize(node.name)

    def qualified_name(self, node: DbtNode) -> str:
        """Used when two nodes share a base name (same model name in two packages)."""
        return sanitize(f"{node.package_name}__{self.base_name(node)}")

    def group_id(self, node: DbtNode) -> str:
        return self.base_name(node)

    def task_id(self, name: str, command: str, in_group: bool) -> str:
        """A task's id from the node's unique name: ``run`` inside a group, else ``<name>_seed``."""
        if in_group:
            return self.command_task_ids.get(command, command)
        suffix = {"source freshness": "freshness"}.get(command, command)
        return f"{name}_{suffix}"

    def folders(self, node: DbtNode, project_name: str) -> tuple[str, ...]:
        """The folders a node sits in, for ``RenderConfig(folder_groups=True)``: those of its fully
        qualified name (dbt's own: ``shop.marts.finance.orders`` is in ``marts/finance``, relative
        to the model, seed or snapshot paths), under the package's name for an installed
        package's node. The fqn, not ``path``: a YAML-defined snapshot's path names its file."""
        fqn = node.fqn
        end = len(fqn) - 1
        if node.version is not None and end > 1 and fqn[end] == f"v{node.version}":
            end -= 1  # a versioned model's fqn ends with its name and version
        parts = tuple(fqn[1:end])
        return parts if node.package_name == project_name else (node.package_name, *parts)

    def folder_group_id(self, folder: str) -> str:
        """One folder's TaskGroup id (its parent folders' ids are put in front by Airflow)."""
        return sanitize(folder)

    def task_display_name(self, node: DbtNode, command: str, in_group: bool) -> str | None:
        """The name the Airflow UI shows for a node's task (``task_display_name``); None: its id.

        By default, only where the id had to change the node's name (characters Airflow refuses
        in ids, such as non-ASCII letters): then the real name, with the command for a plain
        task. Override to show other names; ids stay as they are, so runs and history keep them.
        """
        if in_group or _UNSAFE.search(node.name) is None:
            return None
        suffix = {"source freshness": "freshness"}.get(command, command)
        return f"{node.label} {suffix}"

    def group_display_name(self, node: DbtNode) -> str | None:
        """The name the UI shows for a model's TaskGroup (``group_display_name``); None: its id."""
        return node.label if _UNSAFE.search(node.name) else None

    def folder_display_name(self, folders: tuple[str, ...]) -> str | None:
        """The name the UI shows for a folder's TaskGroup; None: its id."""
        return folders[-1] if _UNSAFE.search(folders[-1]) else None

    def tests_task_id(self, parents: list[DbtNode], tests: list[DbtNode]) -> str:
        """A task running tests outside any model's group (several parents, or none rendered)."""
        if len(tests) == 1:
            return sanitize(f"test_{tests[0].name}")
        if parents:
            return sanitize("test_" + "__".join(self.base_name(p) for p in parents))
        return "tests"

    def dbt_selector(self, node: DbtNode) -> str:
        """The ``--select`` value that picks exactly this node: its fully qualified name."""
        if node.resource_type == "source":
            return f"source:{node.package_name}.{node.source_name}.{node.name}"
        return ".".join(node.fqn) if node.fqn else node.name

    def doc_md(self, node: DbtNode) -> str:
        """Task docs: the node's description and where it comes from."""
        head = f"**dbt {node.resource_type}** `{node.unique_id}`  \n`{node.original_file_path}`"
        return f"{node.description.strip()}\n\n{head}" if node.description.strip() else head

    def openlineage_asset_uri(self, node: DbtNode, namespace: str) -> str | None:
        """Asset URI as cosmos writes it on Airflow 3 (``RenderConfig(asset_uri_style="openlineage")``):
        ``<namespace>/<database>/<schema>/<alias>``, from OpenLineage's dataset naming."""
        from manifest_dag.core.openlineage import asset_uri, dataset_name

        name = dataset_name(node.database, node.schema, node.alias or node.name)
        return asset_uri(namespace, name) if name else None

    def asset_uri(self, node: DbtNode, adapter: str | None) -> str | None:
        """Asset URI ``<adapter>://<database>/<schema>/<alias>``, or None when unknown."""
        relation = node.alias or node.name
        if not adapter or not node.schema:
            return None
        database = node.database or "default"
        return f"{adapter.lower()}://{database}/{node.schema}/{relation}"
