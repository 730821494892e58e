"""Set evaluation: a grammar tree and a manifest index in, the unique ids it selects out.

Methods only name nodes; here the graph operators, the indirect selection of tests and the set
operations are applied, in dbt's order of work (criterion by criterion, then a second look at
held-back tests once the sets are combined), because for ``cautious`` and ``buildable`` the order
changes the answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from manifest_dag.core.dbt import PARSED_TYPES, TEST_TYPES
from manifest_dag.scheduler.selection.grammar import EVERYTHING, Criterion
from manifest_dag.scheduler.selection.methods import METHOD_FUNCS

if TYPE_CHECKING:  # pragma: no cover
    from manifest_dag.scheduler.selection.grammar import Spec
    from manifest_dag.scheduler.selection.index import ManifestIndex


class Evaluator:
    """Evaluates grammar trees against one manifest's index."""

    def __init__(self, index: ManifestIndex) -> None:
        self.index = index
        self.nodes = index.nodes

    def evaluate(self, spec: Spec) -> tuple[set[str], set[str]]:
        """(direct, indirect): what the spec selects, and tests it held back (cautious/buildable)."""
        if isinstance(spec, Criterion):
            return self._criterion(spec)
        if spec is EVERYTHING:
            return set(self.nodes), set()
        bundles = [self.evaluate(part) for part in spec.parts]
        directs = [d for d, _ in bundles]
        indirects = [d | i for d, i in bundles]
        direct = _combine(spec.op, directs)
        indirect = _combine(spec.op, indirects)
        return self._incorporate(direct, indirect, spec.indirect), indirect

    def _criterion(self, c: Criterion) -> tuple[set[str], set[str]]:
        collected = METHOD_FUNCS[c.method](self.index, c)
        selected = collected | self._neighbours(c, collected) if collected else collected
        if c.indirect == "empty":
            return selected, set()
        return self._expand(selected, c.indirect)

    def _neighbours(self, c: Criterion, selected: set[str]) -> set[str]:
        extra: set[str] = set()
        if c.childrens_parents:
            down = _reach(selected, self.index.succ, None) | selected
            extra |= _reach(down, self.index.pred, None) | down
        if c.parents:
            extra |= _reach(selected, self.index.pred, c.parents_depth)
        if c.children:
            extra |= _reach(selected, self.index.succ, c.children_depth)
        return extra

    def _expand(self, selected: set[str], mode: str) -> tuple[set[str], set[str]]:
        """Add the tests attached to ``selected`` (dbt's indirect selection)."""
        nodes, succ = self.nodes, self.index.succ
        direct = set(selected)
        held: set[str] = set()
        buildable: set[str] | None = None
        for uid in selected:
            for child in succ[uid]:
                node = nodes[child]
                if node.resource_type not in TEST_TYPES:
                    continue
                if mode == "eager" or _all_in(node.depends_on, selected):
                    direct.add(child)
                    continue
                if mode == "buildable":
                    if buildable is None:
                        buildable = selected | _reach(selected, self.index.pred, None) | self.index.source_ids
                    if _all_in(node.depends_on, buildable):
                        direct.add(child)
                        continue
                held.add(child)
        return direct, held

    def _incorporate(self, direct: set[str], indirect: set[str], mode: str) -> set[str]:
        """Cautious/buildable: take held-back tests whose parents the combined set now holds."""
        if mode not in ("cautious", "buildable") or direct == indirect:
            return direct
        selected = set(direct)
        allowed = selected
        if mode == "buildable":
            allowed = selected | _reach(selected, self.index.pred, None)
        nodes = self.nodes
        for uid in indirect - direct:
            node = nodes[uid]
            # dbt looks only in the manifest's "nodes" collection here, so unit tests held back
            # by one criterion are not reconsidered.
            if node.resource_type in PARSED_TYPES and _all_in(node.depends_on, allowed):
                selected.add(uid)
        return selected


def _combine(op: str, sets: list[set[str]]) -> set[str]:
    if not sets:
        return set()
    if op == "union":
        return set().union(*sets)
    if op == "intersection":
        first, *rest = sets
        return first.intersection(*rest) if rest else set(first)
    if op == "difference":
        first, *rest = sets
        return first.difference(*rest) if rest else set(first)
    raise AssertionError(op)  # pragma: no cover


def _all_in(items: Iterable[str], container: Collection[str]) -> bool:
    return all(i in container for i in items)


def _reach(start: Iterable[str], step: Mapping[str, Iterable[str]], depth: int | None) -> set[str]:
    """Nodes reachable from ``start`` in 1..depth steps (any number when ``depth`` is None)."""
    seen: set[str] = set()
    frontier = list(start)
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        nxt = []
        for uid in frontier:
            for other in step[uid]:
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
        frontier = nxt
    return seen
