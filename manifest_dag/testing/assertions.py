"""assert_dag_matches_manifest: a built DAG checked against the manifest and its selection.

The render layer decides which nodes get tasks and which edges survive when nodes in between
have none; a bug there runs a model before its parent, or not at all, and nothing fails until the
data is wrong. This check recomputes the answer from the manifest alone (dbt's graph and
selector rules, not the render code) and compares it with the DAG: the groups and tasks, every
"X finishes before Y" ordering, where the tests run, and what each task's own dbt selection
picks. A failure lists what is missing, extra or out of order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_dag.core.dbt import COMMAND_FOR_TYPE, EXECUTABLE_TYPES, TEST_TYPES
from manifest_dag.core.errors import SelectionError
from manifest_dag.scheduler.graph import DbtGraph, sources_over_seeds
from manifest_dag.scheduler.manifest import Manifest, load_manifest
from manifest_dag.scheduler.selection import select_nodes

if TYPE_CHECKING:
    from manifest_dag.scheduler.plan import RenderPlan

__all__ = ["assert_dag_matches_manifest"]


def _plans(dag: Any, group_id: str | None) -> tuple[str, RenderPlan]:
    """The (task id prefix, plan) of the DbtDag or of the one DbtTaskGroup in ``dag``."""
    found: list[tuple[str, RenderPlan]] = []
    plan = getattr(dag, "dbt_plan", None)
    if plan is not None and group_id is None:
        found.append(("", plan))
    for gid, group in dag.task_group.get_task_group_dict().items():
        if gid and getattr(group, "dbt_plan", None) is not None:
            found.append((f"{gid}.", group.dbt_plan))
    if group_id is not None:
        found = [f for f in found if f[0] == f"{group_id}."]
        if not found:
            raise AssertionError(f"DAG {dag.dag_id!r} has no DbtTaskGroup {group_id!r}")
    if not found:
        raise AssertionError(f"DAG {dag.dag_id!r} is neither a DbtDag nor holds a DbtTaskGroup")
    if len(found) > 1:
        names = ", ".join(repr(p[:-1]) for p, _ in found if p) or "the DAG itself"
        raise AssertionError(f"DAG {dag.dag_id!r} holds several dbt renderings ({names}); pass group_id=")
    return found[0]


def _closure(order: Iterable[str], parents: Any, own_bit: Any) -> dict[str, int]:
    bits: dict[str, int] = {}
    for n in order:
        acc = 0
        for p in parents(n):
            acc |= bits[p] | own_bit(p)
        bits[n] = acc
    return bits


def assert_dag_matches_manifest(
    dag: Any,
    manifest: Manifest | str | Path,
    *,
    select: Sequence[str] | str = (),
    exclude: Sequence[str] | str = (),
    selector: str | None = None,
    indirect_selection: str = "eager",
    include_packages: bool = True,
    group_id: str | None = None,
    check_tests: bool | None = None,
    check_commands: bool | None = None,
    order_sources_after_seeds: bool = True,
    limit: int = 25,
) -> None:
    """Check ``dag`` against the manifest and the selection it should render.

    - every selected model, seed and snapshot (ephemeral models aside) has its group or task,
      and nothing else has one (wherever it sits: folder groups are looked through);
    - "X finishes before Y" holds in the DAG exactly when Y depends on X in the manifest, also
      through nodes without a task (ephemeral models, sources, unselected nodes);
    - every selected test runs once, after every node it tests (skipped when the DAG runs no
      tests at all, unless ``check_tests=True``);
    - each task's own dbt selection (``--select``/``--exclude``/``--selector`` as the operator
      holds them) picks exactly the nodes the task stands for, by the same selector rules as
      ``dbt ls`` (``check_commands``: by default on for DAGs of up to 500 dbt tasks, as each
      task is one selection; templated selections are skipped).

    A source that names a seed's table counts as depending on that seed, as the DAG orders it
    (``order_sources_after_seeds``: set it as the ``RenderConfig`` does).

    Fails with an ``AssertionError`` listing the missing and extra groups and the wrong orderings.
    """
    __tracebackhide__ = True  # pytest shows the message, not this function's code
    import networkx as nx  # ~0.5 s to import: only when a DAG is checked

    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    prefix, plan = _plans(dag, group_id)
    graph = DbtGraph(manifest)
    nodes = manifest.nodes
    selected = select_nodes(
        manifest,
        select=select,
        exclude=exclude,
        selector=selector,
        indirect_selection=indirect_selection,
        graph=graph,
    )

    def keeps(uid: str) -> bool:
        return include_packages or nodes[uid].package_name == manifest.project_name

    expected = {
        u for u in selected if nodes[u].resource_type in EXECUTABLE_TYPES and not nodes[u].is_ephemeral and keeps(u)
    }
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}
    test_tasks: dict[str, list[str]] = {}
    for spec in plan.tasks:
        tid = prefix + spec.task_id
        for uid in spec.node_ids:
            if uid not in nodes:
                continue
            if nodes[uid].resource_type in TEST_TYPES:
                test_tasks.setdefault(uid, []).append(tid)
            elif spec.command != "source freshness" and nodes[uid].resource_type != "source":
                entry.setdefault(uid, tid)
                exit_[uid] = tid
        for uid in spec.node_ids:  # a model's tests in its group finish the model
            if uid in nodes and nodes[uid].resource_type in TEST_TYPES and spec.group_id:
                for parent in graph.test_parents(uid):
                    if parent in exit_ and exit_[parent].startswith(prefix + spec.group_id + "."):
                        exit_[parent] = tid
    actual = set(entry)
    grouped = {g.node_id for g in plan.groups}
    where = _selection_text(manifest, select, exclude, selector)
    lines: list[str] = []

    def label(uid: str) -> str:
        node = nodes[uid]
        return f"{node.label}  ({uid})"

    def kind(uid: str) -> str:
        """A model with tests of its own has a TaskGroup (with ``group_every_model``, every model)."""
        return "group" if uid in grouped else "task"

    missing = sorted(expected - actual)
    extra = sorted(actual - expected)
    if missing:
        lines.append(f"missing {_plural(missing, kind)} (selected, but not in the DAG):")
        lines += [f"  - {kind(u)} for {label(u)}" for u in missing[:limit]]
        lines += _more(missing, limit)
    if extra:
        lines.append(f"extra {_plural(extra, kind)} (in the DAG, but not selected):")
        lines += [f"  + {kind(u)} {_task_name(exit_[u], prefix, grouped, u)} for {label(u)}" for u in extra[:limit]]
        lines += _more(extra, limit)

    # -- orderings, over the nodes both sides render -------------------------------------------
    seeds_of = sources_over_seeds(manifest) if order_sources_after_seeds else {}
    # the seeds such sources read have no parents: listed first, the order stays topological
    order = graph.topological_order()
    if seeds_of:
        first = {s for seeds in seeds_of.values() for s in seeds}
        order = [u for u in order if u in first] + [u for u in order if u not in first]

    def parents_of(uid: str) -> Iterable[str]:
        return (*graph.parents(uid), *seeds_of[uid]) if uid in seeds_of else graph.parents(uid)

    rendered = [u for u in order if u in actual]
    index = {u: i for i, u in enumerate(rendered)}
    m_bits = _closure(order, parents_of, lambda p: 1 << index[p] if p in index else 0)
    tasks = nx.DiGraph()
    for tid, task in dag.task_dict.items():
        tasks.add_node(tid)
        tasks.add_edges_from((up, tid) for up in task.upstream_task_ids)
    by_exit: dict[str, int] = {}
    for u in rendered:
        by_exit[exit_[u]] = by_exit.get(exit_[u], 0) | 1 << index[u]
    a_bits = _closure(nx.topological_sort(tasks), tasks.predecessors, lambda p: by_exit.get(p, 0))
    needed: list[tuple[str, str]] = []
    unneeded: list[tuple[str, str]] = []
    for y in rendered:
        want, have = m_bits[y], a_bits[entry[y]]
        for i in _bits(want & ~have):
            needed.append((rendered[i], y))
        for i in _bits(have & ~want):
            unneeded.append((rendered[i], y))
    if needed or unneeded:
        lines.append("wrong orderings (X → Y: X finishes before Y starts):")
        for x, y in needed[:limit]:
            try:
                path = nx.shortest_path(graph.graph, x, y)
                via = f" via {' → '.join(nodes[p].label for p in path[1:-1])}" if len(path) > 2 else ""
            except nx.NetworkXNoPath:  # through a source that names the seed's table
                via = " via a source naming its table"
            lines.append(
                f"  - {nodes[x].label} → {nodes[y].label}: {nodes[y].label} depends on {nodes[x].label}{via}, "
                "but the DAG can start it first"
            )
        lines += _more(needed, limit)
        for x, y in unneeded[:limit]:
            lines.append(
                f"  + {nodes[x].label} → {nodes[y].label}: the DAG waits, but {nodes[y].label} does not depend "
                f"on {nodes[x].label} in the manifest"
            )
        lines += _more(unneeded, limit)

    # -- tests ---------------------------------------------------------------------------------
    selected_tests = sorted(u for u in selected if nodes[u].resource_type in TEST_TYPES and keeps(u))
    if check_tests is None:
        check_tests = bool(test_tasks)
    if check_tests:
        not_run = [u for u in selected_tests if u not in test_tasks]
        twice = [u for u, ts in sorted(test_tasks.items()) if len(ts) > 1]
        unselected = sorted(u for u in test_tasks if u not in selected)
        if not_run:
            lines.append("selected tests that no task runs:")
            lines += [f"  - {label(u)}" for u in not_run[:limit]] + _more(not_run, limit)
        if twice:
            lines.append("tests run by more than one task:")
            lines += [f"  ! {label(u)}: {', '.join(test_tasks[u])}" for u in twice[:limit]] + _more(twice, limit)
        if unselected:
            lines.append("tests run that the selection leaves out:")
            lines += [f"  + {label(u)}" for u in unselected[:limit]] + _more(unselected, limit)
        early: list[str] = []
        for t, tids in sorted(test_tasks.items()):
            for tid in tids:
                have = a_bits.get(tid, 0) | by_exit.get(tid, 0)
                for parent in graph.test_parents(t):
                    need = m_bits[parent] | (1 << index[parent] if parent in index else 0)
                    late = [rendered[i] for i in _bits(need & ~have)]
                    if exit_.get(parent) == tid:
                        late = [x for x in late if x != parent]
                    early += [f"  - {tid} runs {nodes[t].name} before {nodes[x].label} finishes" for x in late]
        if early:
            lines.append("tests that may run before what they test:")
            lines += early[:limit] + _more(early, limit)
    if check_commands is None:
        check_commands = len(plan.tasks) <= _COMMAND_CHECK_MAX_TASKS
    if check_commands:
        wrong = _check_commands(dag, prefix, plan, manifest, graph)
        if wrong:
            lines.append("tasks whose dbt command runs other nodes than the task stands for:")
            lines += wrong[:limit] + _more(wrong, limit)
    if lines:
        raise AssertionError(
            f"DAG {dag.dag_id!r}{' group ' + repr(prefix[:-1]) if prefix else ''} does not match "
            f"{manifest.path} ({where}):\n" + "\n".join(lines)
        )


#: above this many tasks, assert_dag_matches_manifest checks each task's selection only when asked
_COMMAND_CHECK_MAX_TASKS = 500
#: the resource types each dbt command runs, of the nodes its selection picks
_TYPES_RUN_BY: Mapping[str, frozenset[str]] = {
    **{command: frozenset({kind}) for kind, command in COMMAND_FOR_TYPE.items()},
    "test": TEST_TYPES,
    "build": EXECUTABLE_TYPES | TEST_TYPES,
}


def _check_commands(dag: Any, prefix: str, plan: RenderPlan, manifest: Manifest, graph: Any) -> list[str]:
    nodes = manifest.nodes
    wrong: list[str] = []
    for spec in plan.tasks:
        task = dag.task_dict.get(prefix + spec.task_id)
        command: str = getattr(task, "dbt_command", "")
        if task is None or command not in _TYPES_RUN_BY:
            continue
        select, exclude = list(task.select or ()), list(task.exclude or ())
        if any("{{" in str(v) for v in (*select, *exclude, task.selector or "")):
            continue
        try:
            picked = select_nodes(
                manifest,
                select=select,
                exclude=exclude,
                selector=task.selector,
                indirect_selection=task.indirect_selection or "eager",
                graph=graph,
            )
        except SelectionError as exc:
            wrong.append(f"  ! {prefix + spec.task_id}: dbt {' '.join(task.dbt_args())}: {exc}")
            continue
        runs = {u for u in picked if nodes[u].resource_type in _TYPES_RUN_BY[command]}
        stands = {u for u in spec.node_ids if u in nodes and nodes[u].resource_type in _TYPES_RUN_BY[command]}
        if runs != stands:
            more = sorted(nodes[u].label for u in runs - stands)
            less = sorted(nodes[u].label for u in stands - runs)
            parts = ([f"also runs {', '.join(more)}"] if more else []) + (
                [f"does not run {', '.join(less)}"] if less else []
            )
            wrong.append(f"  ! {prefix + spec.task_id}: dbt {' '.join(task.dbt_args())} {'; '.join(parts)}")
    return wrong


def _bits(value: int) -> Iterator[int]:
    i = 0
    while value:
        if value & 1:
            yield i
        value >>= 1
        i += 1


def _more(items: Sequence[Any], limit: int) -> list[str]:
    return [f"  ... and {len(items) - limit} more"] if len(items) > limit else []


def _plural(uids: Sequence[str], kind: Any) -> str:
    kinds = sorted({kind(u) for u in uids})
    return " and ".join(f"{k}s" for k in kinds)


def _task_name(tid: str, prefix: str, grouped: set[str], uid: str) -> str:
    local = tid[len(prefix) :]
    return local.rsplit(".", 1)[0] if uid in grouped and "." in local else local


def _selection_text(manifest: Manifest, select: Any, exclude: Any, selector: str | None) -> str:
    parts = []
    if select:
        parts.append(f"select={list([select] if isinstance(select, str) else select)}")
    if exclude:
        parts.append(f"exclude={list([exclude] if isinstance(exclude, str) else exclude)}")
    if selector:
        parts.append(f"selector={selector!r}")
    return ", ".join(parts) or "default selection"
