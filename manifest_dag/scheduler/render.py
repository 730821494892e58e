"""Plan → Airflow objects: TaskGroups, operators and edges, in linear time.

Airflow 3.3's ``set_downstream`` puts the DAG into a set on every call, and ``DAG.__hash__`` walks
every task id, so wiring N edges that way costs O(N × tasks): 50 s for 10,000 models. Every task
here is created in the same DAG by construction, which is exactly what ``set_downstream``'s check
establishes before it adds the two ids to the tasks' ``upstream_task_ids``/``downstream_task_ids``
sets; ``link`` does that last step directly. ``tests/scheduler/test_render.py`` compares it with
``set_downstream`` so an Airflow upgrade that changes the bookkeeping fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG, TaskGroup
from airflow.sdk.bases.operator import BaseOperator

from manifest_dag.scheduler.plan import GroupSpec, RenderPlan, TaskSpec

MakeOperator = Callable[..., BaseOperator]


def link(upstream: BaseOperator, downstream: BaseOperator) -> None:
    """``upstream >> downstream`` for two tasks already in the same DAG, without hashing it."""
    upstream.downstream_task_ids.add(downstream.task_id)
    downstream.upstream_task_ids.add(upstream.task_id)


def render_plan(
    plan: RenderPlan,
    *,
    dag: DAG,
    parent_group: TaskGroup | None,
    make_operator: Callable[[TaskSpec, TaskGroup | None, DAG], BaseOperator],
) -> dict[str, BaseOperator]:
    """Create every group and task of ``plan`` under ``parent_group`` and wire them."""
    groups: dict[str, TaskGroup] = {}
    for g in plan.groups:  # a group's parent comes before it
        groups[g.group_id] = _task_group(g, groups[g.parent_id] if g.parent_id else parent_group, dag)
    tasks: dict[str, BaseOperator] = {}
    for spec in plan.tasks:
        group = groups[spec.group_id] if spec.group_id else parent_group
        tasks[spec.task_id] = make_operator(spec, group, dag)
    for spec in plan.tasks:
        task = tasks[spec.task_id]
        for up in spec.upstream:
            link(tasks[up], task)
    return tasks


def _task_group(spec: GroupSpec, parent: TaskGroup | None, dag: DAG) -> TaskGroup:
    return TaskGroup(
        group_id=spec.local_id,
        group_display_name=spec.display_name or "",
        tooltip=spec.tooltip,
        parent_group=parent,
        dag=dag,
    )


def render_one(
    spec: TaskSpec,
    group_specs: tuple[GroupSpec, ...],
    *,
    dag: DAG,
    parent_group: TaskGroup | None,
    make_operator: Callable[[TaskSpec, TaskGroup | None, DAG], BaseOperator],
) -> dict[str, BaseOperator]:
    """Only ``spec``'s task (and its groups, outermost first): what Airflow's task runner needs."""
    group = parent_group
    for group_spec in group_specs:
        group = _task_group(group_spec, group, dag)
    return {spec.task_id: make_operator(spec, group, dag)}


def asset_outlets(uri: str | None) -> list[Any]:
    if not uri:
        return []
    from airflow.sdk import Asset

    return [Asset(uri)]
