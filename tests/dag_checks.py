"""Checks that a rendered Airflow DAG keeps dbt's order, shared by the render tests."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from manifest_dag.graph import TEST_TYPES, DbtGraph
from manifest_dag.plan import RenderPlan


def _closure_bits(order: Iterable[str], parents, own_bit) -> dict[str, int]:
    """Ancestor sets as int bitsets, in one topological pass (fast even for 30k nodes)."""
    bits: dict[str, int] = {}
    for n in order:
        acc = 0
        for p in parents(n):
            acc |= bits[p] | own_bit(p)
        bits[n] = acc
    return bits


def assert_order_matches(graph: DbtGraph, plan: RenderPlan, upstream_of, prefix: str = "") -> int:
    """For every pair of rendered nodes, X finishes before Y in the tasks iff Y depends on X.

    ``upstream_of(task_id)`` gives a task's upstream ids as the DAG holds them (``prefix`` is the
    DbtTaskGroup's id prefix). Returns the number of rendered nodes checked.
    """
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}
    for spec in plan.tasks:
        for uid in spec.node_ids:
            if graph.node(uid).resource_type not in TEST_TYPES:
                entry.setdefault(uid, prefix + spec.task_id)
                exit_[uid] = prefix + spec.task_id
        for uid in spec.node_ids:  # a model's tests run in its group's last task
            if graph.node(uid).resource_type in TEST_TYPES:
                for parent in graph.test_parents(uid):
                    if parent in exit_ and spec.group_id and exit_[parent].startswith(prefix + spec.group_id + "."):
                        exit_[parent] = prefix + spec.task_id
    rendered = list(entry)
    index = {uid: i for i, uid in enumerate(rendered)}
    by_exit = {exit_[uid]: 1 << index[uid] for uid in rendered}

    m_bits = _closure_bits(
        graph.topological_order(),
        graph.parents,
        lambda p: 1 << index[p] if p in index else 0,
    )
    tasks = nx.DiGraph()
    for spec in plan.tasks:
        tid = prefix + spec.task_id
        tasks.add_node(tid)
        tasks.add_edges_from((u, tid) for u in upstream_of(tid))
    assert nx.is_directed_acyclic_graph(tasks)
    a_bits = _closure_bits(nx.topological_sort(tasks), tasks.predecessors, lambda p: by_exit.get(p, 0))
    for uid in rendered:
        expected = m_bits[uid]
        actual = a_bits[entry[uid]]
        if expected != actual:
            missing = [rendered[i] for i in range(len(rendered)) if expected >> i & 1 and not actual >> i & 1]
            extra = [rendered[i] for i in range(len(rendered)) if actual >> i & 1 and not expected >> i & 1]
            raise AssertionError(f"{uid}: waits for {extra} that dbt does not require; misses {missing}")
    # a task running tests waits for every rendered node its tests depend on
    for spec in plan.tasks:
        if spec.command != "test":
            continue
        tid = prefix + spec.task_id
        for uid in spec.node_ids:
            need = 0
            for parent in graph.test_parents(uid):
                need |= m_bits[parent] | (1 << index[parent] if parent in index else 0)
            have = a_bits[tid] | by_exit.get(tid, 0)
            if exit_.get(graph.test_parents(uid)[0] if graph.test_parents(uid) else "") == tid:
                have |= 1 << index[graph.test_parents(uid)[0]]
            assert need & ~have == 0, f"{tid} runs {uid} before all of its parents"
    return len(rendered)
