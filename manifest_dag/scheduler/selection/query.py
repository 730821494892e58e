"""``select_nodes``: one ``dbt ls`` question, its arguments checked and its answer filtered.

This is where the ``dbt ls`` flags meet the layers below: ``--select``/``--exclude`` strings go to
the grammar, ``--selector`` (or the default selector) to the YAML selectors, the tree to the
evaluator, and what it selects is filtered by ``--resource-type`` as ``dbt ls`` filters it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from manifest_dag.core.dbt import INDIRECT_SELECTION_MODES, LS_ALL_RESOURCE_TYPES, LS_DEFAULT_RESOURCE_TYPES
from manifest_dag.core.errors import SelectionError
from manifest_dag.scheduler.selection.evaluate import Evaluator
from manifest_dag.scheduler.selection.grammar import parse_cli
from manifest_dag.scheduler.selection.index import index_for
from manifest_dag.scheduler.selection.yaml_selectors import default_selector, selector_spec

if TYPE_CHECKING:  # pragma: no cover
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import Manifest
    from manifest_dag.scheduler.selection.grammar import Spec

_log = logging.getLogger(__package__)  # the package's logger: where users look for selection's warnings

_RESOURCE_TYPE_CHOICES = LS_ALL_RESOURCE_TYPES | {"all", "default"}


def select_nodes(
    manifest: Manifest,
    select: Sequence[str] | str = (),
    exclude: Sequence[str] | str = (),
    selector: str | None = None,
    resource_types: Sequence[str] | str = (),
    indirect_selection: str = "eager",
    *,
    graph: DbtGraph | None = None,
) -> frozenset[str]:
    """The unique ids ``dbt ls`` would list for these arguments.

    ``select``/``exclude`` are dbt selection strings as given to ``--select``/``--exclude``
    (each may hold several space-separated terms); ``selector`` names a YAML selector stored in
    the manifest (``--selector``); ``resource_types`` are ``--resource-type`` values (empty:
    what ``dbt ls`` lists by default). When no select, exclude or selector is given, the
    selector marked ``default: true`` applies, as in dbt. An expression that is valid but
    matches nothing gives an empty set; a malformed one raises ``SelectionError``.
    """
    select = _as_list(select, "select")
    exclude = _as_list(exclude, "exclude")
    if indirect_selection not in INDIRECT_SELECTION_MODES:
        raise SelectionError(
            f"indirect_selection={indirect_selection!r} is not a dbt indirect selection mode; "
            f"use one of {', '.join(repr(m) for m in INDIRECT_SELECTION_MODES)} (dbt's default "
            "is 'eager')."
        )
    types = _resource_types(resource_types)
    index = index_for(manifest, graph)

    spec: Spec
    if selector is not None:
        if not isinstance(selector, str) or not selector.strip():
            raise SelectionError(
                f"selector={selector!r} is not a selector name; pass the name of a selector "
                "from the project's selectors.yml, or None."
            )
        if select or exclude:
            # dbt (1.11) silently ignores --select/--exclude next to --selector; we select the
            # same nodes, but say so rather than drop the user's terms without a word.
            _log.warning(
                "selector=%r ignores select=%r and exclude=%r, as dbt does: a YAML selector is "
                "the whole selection; put extra terms in its definition in selectors.yml",
                selector,
                list(select),
                list(exclude),
            )
        spec = selector_spec(index.selectors, selector.strip(), indirect_selection, where="selector=")
    elif not select and not exclude and (default := default_selector(index.selectors)) is not None:
        spec = selector_spec(index.selectors, default, indirect_selection, where="default selector")
    else:
        spec = parse_cli(select, exclude, indirect_selection)

    direct, _ = Evaluator(index).evaluate(spec)
    nodes = index.nodes
    return frozenset(uid for uid in direct if nodes[uid].resource_type in types)


def _as_list(value: Sequence[str] | str | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value:
        if not isinstance(item, str):
            raise SelectionError(f"{what} must hold dbt selection strings, found {type(item).__name__} {item!r}.")
        if item.strip():
            out.append(item)
    return out


def _resource_types(values: Sequence[str] | str) -> frozenset[str]:
    if isinstance(values, str):
        values = [values]
    if not values:
        return LS_DEFAULT_RESOURCE_TYPES
    chosen: set[str] = set()
    for value in values:
        if value not in _RESOURCE_TYPE_CHOICES:
            raise SelectionError(
                f"resource type {value!r} is not one dbt ls accepts; use one of "
                f"{', '.join(sorted(_RESOURCE_TYPE_CHOICES))}."
            )
        if value == "all":
            chosen |= LS_ALL_RESOURCE_TYPES
        elif value == "default":
            chosen |= LS_DEFAULT_RESOURCE_TYPES
        else:
            chosen.add(value)
    return frozenset(chosen)
