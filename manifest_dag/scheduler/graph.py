"""The dbt node graph, and the one rule that keeps a partial DAG correct.

Edges run parent → child, from each node's ``depends_on.nodes``; tests, unit tests and exposures
are children of what they test or expose. Not every node gets an Airflow task (ephemeral models,
sources, unselected nodes), but the order they imply must survive: with A → B → C and no task for
B, C still runs after A. ``nearest_rendered`` computes that once, in topological order, so the
render layer never walks paths itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

from manifest_dag.core.errors import GraphError
from manifest_dag.scheduler.manifest import DbtNode, Manifest

_NONE: frozenset[str] = frozenset()


class DbtGraph:
    """A manifest's enabled nodes and their edges, checked to be acyclic.

    Adjacency, the topological order and the cycle check need no networkx (it costs ~0.5 s to
    import, more than the rest of ``manifest-dag inspect``): ``graph``, the same edges as a
    ``networkx.DiGraph``, is built on first use, for the graph walks that want it.
    """

    __slots__ = ("manifest", "pred", "succ", "_nx", "_order")

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        # parent/child adjacency as networkx keeps it: every node, then each edge once, in
        # manifest order (dicts as ordered sets)
        pred: dict[str, dict[str, None]] = {uid: {} for uid in manifest.nodes}
        succ: dict[str, dict[str, None]] = {uid: {} for uid in manifest.nodes}
        for uid, node in manifest.nodes.items():
            for parent in node.depends_on:
                pred.setdefault(parent, {})
                succ.setdefault(parent, {})[uid] = None
                pred[uid][parent] = None
        #: for each node, its parents (keys, in ``depends_on`` order)
        self.pred: Mapping[str, Mapping[str, None]] = pred
        #: for each node, its children (keys, in manifest order)
        self.succ: Mapping[str, Mapping[str, None]] = succ
        self._nx: nx.DiGraph | None = None
        self._order: list[str] | None = None
        self._check_acyclic()

    @property
    def graph(self) -> nx.DiGraph:
        """The same nodes and edges as a ``networkx.DiGraph`` (built, and networkx imported, on first use)."""
        if self._nx is None:
            import networkx as nx

            graph: nx.DiGraph = nx.DiGraph()
            graph.add_nodes_from(self.pred)
            graph.add_edges_from((parent, uid) for uid, parents in self.pred.items() for parent in parents)
            self._nx = graph
        return self._nx

    def _check_acyclic(self) -> None:
        # graphlib's static order is networkx's topological_sort order (Kahn's algorithm, one
        # generation at a time, nodes and children in insertion order) when every node is added first
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for uid in self.pred:
            sorter.add(uid)
        for uid, parents in self.pred.items():
            sorter.add(uid, *parents)
        try:
            self._order = list(sorter.static_order())
        except CycleError:
            import networkx as nx

            cycle = [edge[0] for edge in nx.find_cycle(self.graph)]
            shown = " → ".join([*cycle, cycle[0]])
            raise GraphError(
                f"{self.manifest.path}: the dbt graph has a cycle: {shown}. dbt refuses such a "
                "project too; remove one of these ref()/source() dependencies and run `dbt parse`."
            ) from None

    # -- lookups -------------------------------------------------------------------------------
    @property
    def nodes(self) -> Mapping[str, DbtNode]:
        return self.manifest.nodes

    def __contains__(self, uid: object) -> bool:
        return uid in self.manifest.nodes

    def __len__(self) -> int:
        return len(self.manifest.nodes)

    def node(self, uid: str) -> DbtNode:
        return self.manifest.nodes[uid]

    def parents(self, uid: str) -> Iterable[str]:
        return iter(self.pred[uid])

    def children(self, uid: str) -> Iterable[str]:
        return iter(self.succ[uid])

    def topological_order(self) -> list[str]:
        assert self._order is not None
        return self._order

    def ancestors(self, uid: str, depth: int | None = None) -> set[str]:
        if depth is None:
            import networkx as nx

            return nx.ancestors(self.graph, uid)
        return _within(self.parents, uid, depth)

    def descendants(self, uid: str, depth: int | None = None) -> set[str]:
        if depth is None:
            import networkx as nx

            return nx.descendants(self.graph, uid)
        return _within(self.children, uid, depth)

    # -- tests -----------------------------------------------------------------------------------
    def test_parents(self, uid: str) -> tuple[str, ...]:
        """The nodes a test tests: its ``depends_on.nodes`` (several for relationships tests)."""
        return self.manifest.nodes[uid].depends_on

    # -- pass-through ordering -------------------------------------------------------------------
    def nearest_rendered(
        self, rendered: Collection[str], extra_parents: Mapping[str, tuple[str, ...]] | None = None
    ) -> dict[str, frozenset[str]]:
        """For every node, the rendered nodes it waits for, looking through unrendered ones.

        A rendered parent counts itself; an unrendered parent contributes what it waits for. One
        pass in topological order, so the cost is linear in the graph plus the size of the sets.
        ``extra_parents``: more parents for some nodes, each one without parents of its own (a seed
        that a source reads, see ``sources_over_seeds``), so the order stays valid.
        """
        rendered = rendered if isinstance(rendered, (set, frozenset)) else set(rendered)
        through: dict[str, frozenset[str]] = {}  # what an unrendered node passes on to its children
        upstream: dict[str, frozenset[str]] = {}
        pred = self.pred
        extra = extra_parents or {}
        for uid in self.topological_order():
            parents: Collection[str] = pred[uid]
            if uid in extra:
                parents = [*parents, *extra[uid]]
            if not parents:
                waits = _NONE
            elif len(parents) == 1:
                (p,) = parents
                waits = frozenset((p,)) if p in rendered else through.get(p, _NONE)
            else:
                acc: set[str] = set()
                for p in parents:
                    if p in rendered:
                        acc.add(p)
                    else:
                        acc.update(through.get(p, _NONE))  # an extra parent may come later: it has none
                waits = frozenset(acc) if acc else _NONE
            upstream[uid] = waits
            if uid not in rendered:
                through[uid] = waits
        return upstream


def _relation_key(database: str | None, schema: str | None, identifier: str | None) -> tuple[str, str, str] | None:
    if not schema or not identifier:
        return None
    # case-insensitive, as DuckDB always and other warehouses for unquoted names: a false match
    # only orders two tasks that could have run side by side
    return ((database or "").casefold(), schema.casefold(), identifier.casefold())


def sources_over_seeds(manifest: Manifest) -> dict[str, tuple[str, ...]]:
    """Sources whose table is a seed's (same database, schema and identifier): source → seeds.

    dbt does not order them: a project whose sources are its seeds' own tables (cosmos's
    ``altered_jaffle_shop``) fails on a fresh database, in ``dbt build`` too, when a model reads
    the source before the seed is loaded. A seed has no parents, so such an edge never makes a cycle.
    """
    seeds: dict[tuple[str, str, str], list[str]] = {}
    for node in manifest.nodes.values():
        if node.resource_type == "seed" and not node.depends_on:
            key = _relation_key(node.database, node.schema, node.alias or node.name)
            if key is not None:
                seeds.setdefault(key, []).append(node.unique_id)
    if not seeds:
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for node in manifest.nodes.values():
        if node.resource_type == "source":
            key = _relation_key(node.database, node.schema, node.identifier or node.name)
            if key is not None and key in seeds:
                found[node.unique_id] = tuple(seeds[key])
    return found


def _within(step, start: str, depth: int) -> set[str]:
    seen: set[str] = set()
    frontier = {start}
    for _ in range(depth):
        nxt: set[str] = set()
        for uid in frontier:
            for other in step(uid):
                if other not in seen and other != start:
                    seen.add(other)
                    nxt.add(other)
        if not nxt:
            break
        frontier = nxt
    return seen
