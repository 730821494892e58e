"""Load, select and plan a project: everything short of Airflow objects, without importing Airflow.

``DbtDag``/``DbtTaskGroup`` (through the plan cache) and the CLI's ``inspect``, ``graph`` and
``check`` all go through ``plan_project``, so what a person inspects is what the DAG renders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from manifest_dag.core.config import RenderConfig
from manifest_dag.core.errors import SelectionError
from manifest_dag.scheduler.plan import RenderPlan, plan_tasks, unrunnable_nodes

if TYPE_CHECKING:  # imported on use: a warm plan cache never loads a manifest
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectPlan:
    manifest: Manifest
    graph: DbtGraph
    selected: frozenset[str]
    plan: RenderPlan


def describe_selection(rc: RenderConfig) -> str:
    parts = []
    if rc.select:
        parts.append(f"select={list(rc.select)}")
    if rc.exclude:
        parts.append(f"exclude={list(rc.exclude)}")
    if rc.selector:
        parts.append(f"selector={rc.selector!r}")
    return "RenderConfig(" + ", ".join(parts) + ")" if parts else "the default selection"


def selected_by(rc: RenderConfig, manifest: Manifest, graph: DbtGraph) -> frozenset[str]:
    """The unique ids a render config's selection picks (what ``dbt ls`` would list)."""
    from manifest_dag.scheduler.selection import select_nodes

    return select_nodes(
        manifest,
        select=rc.select,
        exclude=rc.exclude,
        selector=rc.selector,
        indirect_selection=rc.indirect_selection,
        graph=graph,
    )


def plan_project(
    manifest_path: str | Path,
    render_config: RenderConfig | None = None,
    describe: Callable[[RenderConfig], str] = describe_selection,
    *,
    id_prefix: int = 0,
) -> ProjectPlan:
    """The plan for a manifest; an empty one raises unless ``render_config.allow_empty``.

    ``describe`` names the selection in that error (the CLI names its own options); ``id_prefix``
    is the length of the task group prefix the ids get (see ``plan_tasks``).
    """
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import load_manifest

    rc = render_config or RenderConfig()
    manifest = load_manifest(manifest_path)
    graph = DbtGraph(manifest)
    selected = selected_by(rc, manifest, graph)
    plan = plan_tasks(graph, selected, rc, id_prefix=id_prefix)
    for node in unrunnable_nodes(graph, selected):
        log.warning(
            "manifest-dag: %s: %s has resource type %r, which no task runs (unknown to this "
            "release); what reads it may fail. `manifest-dag check` fails on it",
            manifest.path,
            node.unique_id,
            node.resource_type,
        )
    if not plan.tasks and not rc.allow_empty:
        found = f"{len(selected)} nodes, none of which runs as a task" if selected else "no nodes"
        raise SelectionError(
            f"{manifest.path}: {describe(rc)} selects {found}. Check the expression "
            "against `dbt ls`, or set RenderConfig(allow_empty=True) for an empty DAG."
        )
    return ProjectPlan(manifest=manifest, graph=graph, selected=selected, plan=plan)
