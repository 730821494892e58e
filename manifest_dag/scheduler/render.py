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


#: what ``make_operator`` may return: a task, a task group (a converter's), or None (no task)
Made = BaseOperator | TaskGroup | None


def task_ends(made: BaseOperator | TaskGroup, first: bool) -> list[BaseOperator]:
    """A task itself, or a task group's first (roots) or last (leaves) tasks."""
    if isinstance(made, TaskGroup):
        return list(made.get_roots() if first else made.get_leaves())
    return [made]


def render_plan(
    plan: RenderPlan,
    *,
    dag: DAG,
    parent_group: TaskGroup | None,
    make_operator: Callable[[TaskSpec, TaskGroup | None, DAG], Made],
) -> dict[str, BaseOperator | TaskGroup]:
    """Create every group and task of ``plan`` under ``parent_group`` and wire them.

    A task that ``make_operator`` does not make (a converter returned None) is wired through: what
    waited for it waits for what it waited for, as for nodes without tasks.
    """
    groups: dict[str, TaskGroup] = {}
    for g in plan.groups:  # a group's parent comes before it
        groups[g.group_id] = _task_group(g, groups[g.parent_id] if g.parent_id else parent_group, dag)
    made: dict[str, Made] = {}
    for spec in plan.tasks:
        group = groups[spec.group_id] if spec.group_id else parent_group
        made[spec.task_id] = make_operator(spec, group, dag)
    dropped = {tid for tid, m in made.items() if m is None}
    through = _through(plan, dropped) if dropped else {}
    for spec in plan.tasks:
        task = made[spec.task_id]
        if task is None:
            continue
        ups = spec.upstream if not dropped else dict.fromkeys(u for up in spec.upstream for u in through.get(up, (up,)))
        firsts = task_ends(task, True)
        for up in ups:
            upstream = made[up]
            assert upstream is not None
            for last in task_ends(upstream, False):
                for first in firsts:
                    link(last, first)
    return {tid: m for tid, m in made.items() if m is not None}


def _through(plan: RenderPlan, dropped: set[str]) -> dict[str, tuple[str, ...]]:
    """For each dropped task, the kept tasks its dependents wait for instead (its upstream, and
    for a dropped upstream, that one's, and so on); iterative, so long chains do not recurse."""
    out: dict[str, tuple[str, ...]] = {}
    for start in dropped:
        stack = [start]
        while stack:
            tid = stack[-1]
            if tid in out:
                stack.pop()
                continue
            pending = [u for u in plan.task(tid).upstream if u in dropped and u not in out]
            if pending:
                stack.extend(pending)
                continue
            kept: dict[str, None] = {}
            for u in plan.task(tid).upstream:
                kept.update(dict.fromkeys(out[u] if u in dropped else (u,)))
            out[tid] = tuple(kept)
            stack.pop()
    return out


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
    make_operator: Callable[[TaskSpec, TaskGroup | None, DAG], Made],
) -> dict[str, BaseOperator | TaskGroup]:
    """Only ``spec``'s task (and its groups, outermost first): what Airflow's task runner needs."""
    group = parent_group
    for group_spec in group_specs:
        group = _task_group(group_spec, group, dag)
    made = make_operator(spec, group, dag)
    return {spec.task_id: made} if made is not None else {}


def asset_outlets(uri: str | None) -> list[Any]:
    if not uri:
        return []
    from airflow.sdk import Asset

    return [Asset(uri)]
