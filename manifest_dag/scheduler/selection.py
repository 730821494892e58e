"""dbt's node selection, answered from the manifest alone (no dbt, no Airflow).

``select_nodes`` returns the unique ids that ``dbt ls`` lists for the same ``--select``,
``--exclude``, ``--selector``, ``--resource-type`` and ``--indirect-selection`` arguments
(dbt-core 1.11 semantics, default flags). The differential tests hold it to dbt's own answers.

How an answer is built, the way dbt builds it:

1. The arguments become a tree of set operations over *criteria*. A criterion is one
   ``[@][N+]method[.arg...]:value[+N]`` term; a space is a union, a comma an intersection, and
   ``exclude`` a difference. YAML selectors stored in the manifest become the same tree.
2. Each criterion picks nodes with its method, adds graph neighbours for its operators, then
   adds tests (and unit tests) attached to what it picked, by its indirect-selection mode:
   ``eager`` any parent picked, ``cautious`` every parent picked, ``buildable`` every parent
   picked, upstream of what was picked, or a source; ``empty`` none.
3. Set operations combine the criteria's sets; ``cautious``/``buildable`` get a second look at
   tests held back by one criterion whose parents another criterion brought in. Exclusions are
   always eager, so excluding a model excludes its tests too.
4. What remains is filtered by resource type; ``dbt ls`` lists every type but analyses by default.

A few malformed terms that dbt itself only answers with "no nodes selected" (``tag:``, ``1+``,
``++x``, ``config:x``, an empty term between commas) raise ``SelectionError`` here instead: they
can never select anything, and a DAG silently built from nothing helps nobody.

Where dbt releases disagree (see ``LEAF_WILDCARD_SINCE``), the answer is the one the dbt version
that wrote the manifest gives, since that is the dbt the workers run.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase, translate
import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Union

from manifest_dag.core.errors import SelectionError

_log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import DbtNode, Manifest

__all__ = ["select_nodes", "INDIRECT_SELECTION_MODES"]

#: ``--indirect-selection`` values.
INDIRECT_SELECTION_MODES = ("eager", "cautious", "buildable", "empty")

#: What ``dbt ls`` lists when no ``--resource-type`` is given, and with ``--resource-type all``.
LS_DEFAULT_RESOURCE_TYPES = frozenset(
    {
        "model",
        "snapshot",
        "seed",
        "test",
        "source",
        "exposure",
        "metric",
        "saved_query",
        "semantic_model",
        "unit_test",
        "function",
    }
)
LS_ALL_RESOURCE_TYPES = LS_DEFAULT_RESOURCE_TYPES | {"analysis"}
_RESOURCE_TYPE_CHOICES = LS_ALL_RESOURCE_TYPES | {"all", "default"}

#: Values ``resource_type:`` accepts (dbt's NodeType); other values are an error in dbt too.
_NODE_TYPES = frozenset(
    {
        "model",
        "analysis",
        "test",
        "snapshot",
        "operation",
        "seed",
        "rpc",
        "sql_operation",
        "doc",
        "source",
        "macro",
        "exposure",
        "metric",
        "group",
        "saved_query",
        "semantic_model",
        "unit_test",
        "fixture",
        "function",
    }
)

#: Resource types dbt keeps in the manifest's ``nodes`` collection ("parsed nodes").
_PARSED_TYPES = frozenset(
    {"model", "seed", "snapshot", "test", "analysis", "operation", "sql_operation", "rpc"}
)
#: Tests that indirect selection brings along with the nodes they test.
_TEST_TYPES = frozenset({"test", "unit_test"})

_WILDCARD_CHARS = frozenset("*?[]")

# -- version gates: where dbt releases answer differently, answer as the manifest's dbt would ----
#: A bare wildcard name (``stg_*``) matches model names in sub-folders: seen in dbt 1.11.16; dbt
#: 1.12.0 and the releases before 1.11.16 only match it against the whole fqn after the package
#: (so only root-level nodes). Releases after 1.12.0 are assumed to have the fix.
LEAF_WILDCARD_SINCE = (1, 11, 16)
LEAF_WILDCARD_LACKING = ((1, 12, 0),)


def _version_tuple(version: str) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version or "")
    return tuple(int(g) for g in match.groups()) if match else None


def _leaf_wildcards(dbt_version: str) -> bool:
    version = _version_tuple(dbt_version)
    if version is None:
        return True
    return version >= LEAF_WILDCARD_SINCE and version not in LEAF_WILDCARD_LACKING


_METHODS = (
    "fqn",
    "tag",
    "group",
    "access",
    "source",
    "path",
    "file",
    "package",
    "config",
    "test_name",
    "test_type",
    "resource_type",
    "exposure",
    "metric",
    "semantic_model",
    "saved_query",
    "unit_test",
    "version",
)
#: Methods that need the artifacts of an earlier run, which an offline manifest does not have.
_STATE_METHODS = ("state", "result", "source_status")

# One selection term: [@][N+][method[.arg...]:]value[+N]
_TERM_RE = re.compile(
    r"\A(?P<at>@)?"
    r"(?P<parents>(?P<parents_depth>\d*)\+)?"
    r"(?:(?P<method>[\w.]+):)?"
    r"(?P<value>.*?)"
    r"(?P<children>\+(?P<children_depth>\d*))?\Z",
    re.DOTALL,
)


# ---------------------------------------------------------------------------------------------
# The parsed form
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Criterion:
    """One selection term, e.g. ``2+tag:nightly+``."""

    raw: str
    method: str
    args: tuple[str, ...]
    value: str
    indirect: str = "eager"
    parents: bool = False
    parents_depth: int | None = None
    children: bool = False
    children_depth: int | None = None
    childrens_parents: bool = False


@dataclass(frozen=True, slots=True)
class SetOp:
    """``union``, ``intersection`` or ``difference`` (first minus the union of the rest)."""

    op: str
    parts: tuple[Spec, ...]
    indirect: str = "eager"
    raw: str = ""


Spec = Union[Criterion, SetOp]


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
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
    ctx = _context(manifest, graph)

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
                selector, list(select), list(exclude),
            )
        spec: Spec = ctx.selector_spec(selector.strip(), indirect_selection, where="selector=")
    elif not select and not exclude and ctx.default_selector() is not None:
        spec = ctx.selector_spec(ctx.default_selector(), indirect_selection, where="default selector")
    else:
        spec = _parse_cli(select, exclude, indirect_selection)

    direct, _ = _Evaluator(ctx).evaluate(spec)
    nodes = ctx.nodes
    return frozenset(uid for uid in direct if nodes[uid].resource_type in types)


def _as_list(value: Sequence[str] | str | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value:
        if not isinstance(item, str):
            raise SelectionError(
                f"{what} must hold dbt selection strings, found {type(item).__name__} {item!r}."
            )
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


# ---------------------------------------------------------------------------------------------
# Parsing CLI strings
# ---------------------------------------------------------------------------------------------
def _parse_cli(select: list[str], exclude: list[str], indirect: str) -> SetOp:
    """``--select A B --exclude C`` → difference(union(A, B), union(C)).

    With no select, everything is included (dbt's defaults ``fqn:* source:* exposure:* ...``
    cover every node). Exclusions are always eager: excluding a model excludes its tests.
    """
    included: Spec = _parse_union(select, indirect) if select else _EVERYTHING
    excluded: Spec = _parse_union(exclude, "eager") if exclude else _NOTHING
    return SetOp("difference", (included, excluded), "eager", "")


def _parse_union(args: Iterable[str], indirect: str) -> SetOp:
    terms = [t for arg in args for t in arg.split()]
    parts = tuple(_parse_intersection(t, indirect) for t in terms)
    return SetOp("union", parts, indirect, " ".join(terms))


def _parse_intersection(raw: str, indirect: str) -> Spec:
    pieces = raw.split(",")
    for piece in pieces:
        if not piece:
            raise SelectionError(
                f"selection {raw!r} has an empty term between commas; a comma joins two terms "
                "into an intersection with no space around it, e.g. 'tag:nightly,resource_type:model'."
            )
    parts = tuple(_parse_term(p, indirect) for p in pieces)
    if len(parts) == 1:
        # dbt still wraps it, which only matters for incorporating held-back tests; a single
        # component's held-back tests cannot gain parents, so the wrapper changes nothing.
        return parts[0]
    return SetOp("intersection", parts, indirect, raw)


@lru_cache(maxsize=2048)
def _parse_term(raw: str, indirect: str = "eager") -> Criterion:
    """Parse one selection term (no spaces or commas) into a ``Criterion``."""
    match = _TERM_RE.match(raw)
    if match is None:  # pragma: no cover - the pattern matches any string
        raise SelectionError(f"selection term {raw!r} is not valid dbt selection syntax.")
    at = bool(match.group("at"))
    parents = match.group("parents") is not None
    children = match.group("children") is not None
    method_text = match.group("method")
    value = match.group("value")
    if not value:
        if method_text:
            raise SelectionError(
                f"selection term {raw!r} has nothing after '{method_text}:'; write "
                f"'{method_text}:<value>', e.g. 'tag:nightly'."
            )
        raise SelectionError(
            f"selection term {raw!r} names no node, only graph operators; put a model name or "
            f"'method:value' next to them, e.g. '{raw}my_model'."
        )
    if value[0] in "+@" or value[-1] == "+":
        raise SelectionError(
            f"selection term {raw!r} repeats or misplaces a graph operator; dbt's forms are "
            "'+x', 'N+x', 'x+', 'x+N', '+x+' and '@x' (each operator once)."
        )
    if at and children:
        raise SelectionError(
            f"selection term {raw!r} combines the '@' prefix with a '+' suffix, which dbt "
            "rejects too; '@x' already takes all of x's children and their parents."
        )
    if method_text is None:
        method, args = _default_method(value), ()
    else:
        method, *rest = method_text.split(".")
        args = tuple(rest)
        _check_method(raw, method, args)
    return Criterion(
        raw=raw,
        method=method,
        args=args,
        value=value,
        indirect=indirect,
        parents=parents,
        parents_depth=_depth(match.group("parents_depth")),
        children=children,
        children_depth=_depth(match.group("children_depth")),
        childrens_parents=at,
    )


def _depth(text: str | None) -> int | None:
    return int(text) if text else None


def _default_method(value: str) -> str:
    """No ``method:`` given: a path if it has a slash, a file if it ends like one, else fqn."""
    if "/" in value:
        return "path"
    if value.lower().endswith((".sql", ".py", ".csv")):
        return "file"
    return "fqn"


def _check_method(raw: str, method: str, args: tuple[str, ...]) -> None:
    if method == "selector":
        raise SelectionError(
            f"selection term {raw!r}: dbt 1.11 has no 'selector:' method ('selector' is not a "
            "valid method name; dbt adds it in 1.12). Pass the YAML selector's name as "
            "selector=... (dbt's --selector) instead, or reference it from another YAML selector "
            "with 'method: selector'."
        )
    if method in _STATE_METHODS:
        raise SelectionError(
            f"selection term {raw!r} uses '{method}:', which compares with the artifacts of an "
            "earlier dbt run (--state); a manifest alone cannot answer it. Select the nodes by "
            "name, tag, path or config instead."
        )
    if method not in _METHODS:
        raise SelectionError(
            f"selection term {raw!r} uses the unknown method '{method}'; dbt's methods are "
            f"{', '.join(_METHODS)} (e.g. 'tag:nightly', 'config.materialized:table')."
        )
    if method == "config":
        if not args or any(not a for a in args):
            raise SelectionError(
                f"selection term {raw!r} needs a config key after 'config.', e.g. "
                "'config.materialized:table' or 'config.meta.owner:finance'."
            )
    elif args:
        raise SelectionError(
            f"selection term {raw!r}: the '{method}' method takes no '.{'.'.join(args)}' "
            f"argument (only config does); write '{method}:<value>'."
        )


# ---------------------------------------------------------------------------------------------
# YAML selectors (manifest["selectors"])
# ---------------------------------------------------------------------------------------------
class _YamlParser:
    def __init__(self, ctx: _Context, indirect: str) -> None:
        self.ctx = ctx
        self.indirect = indirect
        self.stack: list[str] = []

    def selector(self, name: str, where: str) -> Spec:
        selectors = self.ctx.selectors
        if name not in selectors:
            known = ", ".join(sorted(selectors)) or "none: the manifest has no selectors"
            raise SelectionError(
                f"{where} {name!r}: no such selector in the manifest (known: {known}). Define it "
                "in the project's selectors.yml and run `dbt parse` again."
            )
        if name in self.stack:
            chain = " → ".join([*self.stack, name])
            raise SelectionError(f"YAML selector {name!r} refers to itself: {chain}.")
        self.stack.append(name)
        try:
            entry = selectors[name]
            definition = entry.get("definition") if isinstance(entry, Mapping) and "definition" in entry else entry
            return self.definition(definition, name, root=True)
        finally:
            self.stack.pop()

    def definition(self, definition: Any, name: str, root: bool = False) -> Spec:
        if isinstance(definition, str):
            text = definition.strip()
            if not text:
                raise SelectionError(f"YAML selector {name!r} has an empty string definition.")
            return self._string(text)
        if not isinstance(definition, Mapping):
            raise SelectionError(
                f"YAML selector {name!r}: a definition is a string, a 'method: value' pair, a "
                f"dict with method/value, or a union/intersection list; found {definition!r}."
            )
        if "union" in definition or "intersection" in definition:
            if root and len(definition) > 1:
                raise SelectionError(
                    f"YAML selector {name!r}: a root definition may hold only one 'union' or "
                    f"'intersection' key; found {', '.join(map(str, definition))}."
                )
            op = "union" if "union" in definition else "intersection"
            return self._set_op(op, definition[op], name)
        if definition.get("method") == "selector":
            return self._reference(definition.get("value"), name)
        if len(definition) == 1:
            ((key, value),) = definition.items()
            if key == "selector":
                return self._reference(value, name)
            return self._criterion({"method": key, "value": value}, name)
        if "method" in definition and "value" in definition:
            base = self._criterion({k: v for k, v in definition.items() if k != "exclude"}, name)
            if "exclude" in definition:
                excluded = self._exclusions(definition["exclude"], name)
                if excluded is not None:
                    return SetOp("difference", (base, excluded), "eager", str(definition))
            return base
        raise SelectionError(
            f"YAML selector {name!r}: expected one 'method: value' pair or both 'method' and "
            f"'value' keys, found keys {', '.join(map(str, definition))}."
        )

    def _string(self, text: str) -> Spec:
        terms = text.split()
        if len(terms) == 1:
            return _parse_intersection(terms[0], self.indirect)
        return _parse_union(terms, self.indirect)

    def _reference(self, value: Any, name: str) -> Spec:
        if not isinstance(value, str):
            raise SelectionError(
                f"YAML selector {name!r}: 'method: selector' needs the name of another selector "
                f"as its value, found {value!r}."
            )
        return self.selector(value, where=f"YAML selector {name!r} refers to selector")

    def _set_op(self, op: str, items: Any, name: str) -> Spec:
        if not isinstance(items, list):
            raise SelectionError(
                f"YAML selector {name!r}: '{op}' must hold a list of definitions, found {items!r}."
            )
        include: list[Spec] = []
        excluded: Spec | None = None
        seen_exclude = False
        for item in items:
            if isinstance(item, Mapping) and "exclude" in item:
                if seen_exclude:
                    raise SelectionError(
                        f"YAML selector {name!r}: one '{op}' may hold only one 'exclude'; "
                        "list everything to exclude under that single key."
                    )
                seen_exclude = True
                excluded = self._exclusions(item["exclude"], name)
            else:
                include.append(self.definition(item, name))
        combined = SetOp(op, tuple(include), "eager", f"{op} in {name}")
        if excluded is None:
            return combined
        return SetOp("difference", (combined, excluded), "eager", f"{op} in {name}")

    def _exclusions(self, items: Any, name: str) -> Spec | None:
        if not isinstance(items, list):
            raise SelectionError(
                f"YAML selector {name!r}: 'exclude' must hold a list of definitions, found {items!r}."
            )
        parsed = [self.definition(item, name) for item in items]
        if not parsed:
            return None
        if len(parsed) == 1:
            return parsed[0]
        return SetOp("union", tuple(parsed), "eager", f"exclude in {name}")

    def _criterion(self, dct: Mapping[str, Any], name: str) -> Spec:
        method_text = dct.get("method", "fqn")
        value = dct.get("value")
        where = f"YAML selector {name!r}"
        if not isinstance(method_text, str) or not method_text:
            raise SelectionError(f"{where}: 'method' must be a method name, found {method_text!r}.")
        if method_text == "selector":
            return self._reference(value, name)
        if isinstance(value, bool) or isinstance(value, (int, float)):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, str) or not value:
            raise SelectionError(
                f"{where}: method {method_text!r} needs a non-empty string value, found {value!r}."
            )
        method, *rest = method_text.split(".")
        raw = f"{method_text}:{value}"
        _check_method(raw, method, tuple(rest))
        indirect = dct.get("indirect_selection", self.indirect)
        if indirect not in INDIRECT_SELECTION_MODES:
            raise SelectionError(
                f"{where}: indirect_selection {indirect!r} is not one of "
                f"{', '.join(INDIRECT_SELECTION_MODES)}."
            )
        return Criterion(
            raw=raw,
            method=method,
            args=tuple(rest),
            value=value,
            indirect=indirect,
            parents=bool(dct.get("parents")),
            parents_depth=self._int(dct, "parents_depth", where),
            children=bool(dct.get("children")),
            children_depth=self._int(dct, "children_depth", where),
            childrens_parents=bool(dct.get("childrens_parents")),
        )

    @staticmethod
    def _int(dct: Mapping[str, Any], key: str, where: str) -> int | None:
        value = dct.get(key)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SelectionError(f"{where}: {key} must be a whole number, found {value!r}.") from None


# ---------------------------------------------------------------------------------------------
# Per-manifest indexes (built lazily, cached while the manifest object is alive in the cache)
# ---------------------------------------------------------------------------------------------
# Small on purpose: an entry keeps its manifest alive, and the indexes are cheap to rebuild
# (tens of milliseconds on a 25k-node manifest); it pays for repeated calls while one DAG is built.
_CACHE: dict[int, _Context] = {}
_CACHE_SIZE = 2


def _context(manifest: Manifest, graph: DbtGraph | None) -> _Context:
    ctx = _CACHE.get(id(manifest))
    if ctx is None or ctx.manifest is not manifest:
        ctx = _Context(manifest)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[id(manifest)] = ctx
    if graph is not None:
        if graph.manifest is not manifest and graph.manifest.nodes.keys() != manifest.nodes.keys():
            raise SelectionError(
                "the graph passed to select_nodes was built from another manifest; pass "
                "DbtGraph(manifest) for the same manifest, or no graph."
            )
        ctx.use_graph(graph)
    return ctx


class _Context:
    """Indexes over one manifest: node families, name lookups, adjacency, paths."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.nodes: Mapping[str, DbtNode] = manifest.nodes
        self.project = manifest.project_name
        self.selectors: Mapping[str, Any] = manifest.selectors or {}
        self._pred: Mapping[str, Iterable[str]] | None = None
        self._succ: Mapping[str, Iterable[str]] | None = None
        self._by_type: dict[str, list[DbtNode]] | None = None
        self._fqn_simple: dict[str, set[str]] | None = None
        self._paths: tuple[frozenset[str], frozenset[str]] | None = None
        self._patch_paths: dict[str, str] | None = None
        self._node_paths: list[tuple[str, str, tuple[str, ...]]] | None = None
        self._default: tuple[str | None] | None = None
        self._sources: frozenset[str] | None = None
        self.leaf_wildcards = _leaf_wildcards(manifest.dbt_version)

    # -- adjacency --------------------------------------------------------------------------
    def use_graph(self, graph: DbtGraph) -> None:
        g = graph.graph
        self._pred = getattr(g, "_pred", None) or g.pred
        self._succ = getattr(g, "_succ", None) or g.succ

    @property
    def pred(self) -> Mapping[str, Iterable[str]]:
        if self._pred is None:
            self._build_adjacency()
        assert self._pred is not None
        return self._pred

    @property
    def succ(self) -> Mapping[str, Iterable[str]]:
        if self._succ is None:
            self._build_adjacency()
        assert self._succ is not None
        return self._succ

    def _build_adjacency(self) -> None:
        nodes = self.nodes
        pred: dict[str, tuple[str, ...]] = {}
        succ: dict[str, list[str]] = {uid: [] for uid in nodes}
        for uid, node in nodes.items():
            parents = tuple(p for p in node.depends_on if p in nodes)
            pred[uid] = parents
            for p in parents:
                succ[p].append(uid)
        self._pred, self._succ = pred, succ

    # -- families ---------------------------------------------------------------------------
    def of_types(self, types: Collection[str]) -> Iterable[DbtNode]:
        if self._by_type is None:
            by_type: dict[str, list[DbtNode]] = {}
            for node in self.nodes.values():
                by_type.setdefault(node.resource_type, []).append(node)
            self._by_type = by_type
        for t in types:
            yield from self._by_type.get(t, ())

    def all_nodes(self) -> Iterable[DbtNode]:
        return self.nodes.values()

    @property
    def source_ids(self) -> frozenset[str]:
        if self._sources is None:
            self._sources = frozenset(n.unique_id for n in self.of_types(("source",)))
        return self._sources

    # -- fqn --------------------------------------------------------------------------------
    @property
    def fqn_simple(self) -> dict[str, set[str]]:
        """For a plain one-part name: every node that ``fqn:<name>`` selects, by name."""
        if self._fqn_simple is None:
            index: dict[str, set[str]] = {}
            for node in self.of_types(_FQN_TYPES):
                for key in _fqn_simple_keys(node):
                    index.setdefault(key, set()).add(node.unique_id)
            self._fqn_simple = index
        return self._fqn_simple

    # -- selectors --------------------------------------------------------------------------
    def default_selector(self) -> str | None:
        if self._default is None:
            defaults = [
                name
                for name, entry in self.selectors.items()
                if isinstance(entry, Mapping) and entry.get("default") is True
            ]
            if len(defaults) > 1:
                raise SelectionError(
                    "more than one YAML selector has 'default: true' "
                    f"({', '.join(sorted(defaults))}); dbt refuses this too. Keep the flag on one."
                )
            self._default = (defaults[0] if defaults else None,)
        return self._default[0]

    def selector_spec(self, name: str, indirect: str, where: str) -> Spec:
        return _YamlParser(self, indirect).selector(name, where)

    # -- paths ------------------------------------------------------------------------------
    def root_paths(self) -> tuple[frozenset[str], frozenset[str]]:
        """Files and folders of the root project that its nodes show to exist."""
        if self._paths is None:
            files: set[str] = set()
            dirs: set[str] = set()
            for _, path, parents in self.node_paths():
                files.add(path)
                dirs.update(parents)
            self._paths = (frozenset(files), frozenset(dirs))
        return self._paths

    def node_paths(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(unique id, original_file_path, its folders) for the root project's nodes.

        Paths are relative to the root project, and a package node's ``original_file_path`` is
        relative to its package, so package nodes never match a ``path:`` (dbt ignores them too).
        """
        if self._node_paths is None:
            out = []
            for uid, node in self.nodes.items():
                if node.original_file_path and node.package_name == self.project:
                    path = _norm_path(node.original_file_path)
                    out.append((uid, path, _parents(path)))
            self._node_paths = out
        return self._node_paths

    def patch_paths(self) -> dict[str, str]:
        """unique id → the YAML file that documents the node (``patch_path`` without ``pkg://``)."""
        if self._patch_paths is None:
            self._patch_paths = _read_patch_paths(self.manifest)
        return self._patch_paths


#: fqn: matches every node but sources (exposures, metrics, unit tests... included).
_FQN_TYPES = _NODE_TYPES - {"source"}


def _fqn_simple_keys(node: DbtNode) -> set[str]:
    fqn = node.fqn
    keys: set[str] = set()
    if not fqn:
        return keys
    if node.version is not None and len(fqn) >= 2:
        keys.add(fqn[-2])
        keys.add(f"{fqn[-2]}_{fqn[-1]}")
    else:
        keys.add(fqn[-1])
    keys.add(fqn[0].split(".")[0])
    if len(fqn) > 1:
        keys.add(fqn[1].split(".")[0])
    return keys


def _norm_path(path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _parents(path: str) -> tuple[str, ...]:
    """The folders holding ``path``, outermost first: a/b/c.sql → (a, a/b)."""
    if "/" not in path:
        return ()
    return _folders(path.rsplit("/", 1)[0])


@lru_cache(maxsize=16384)
def _folders(folder: str) -> tuple[str, ...]:
    if "/" not in folder:
        return (folder,)
    return (*_folders(folder.rsplit("/", 1)[0]), folder)


def _read_patch_paths(manifest: Manifest) -> dict[str, str]:
    """unique id → the YAML file documenting the node, from ``DbtNode.patch_path``."""
    out: dict[str, str] = {}
    for uid, node in manifest.nodes.items():
        value = node.patch_path
        if value:
            out[uid] = _norm_path(value.split("://", 1)[-1])
    return out


# ---------------------------------------------------------------------------------------------
# Methods: each returns the unique ids a criterion's method:value picks (before graph operators)
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=1024)
def _pattern(value: str) -> Callable[[str], bool]:
    """A matcher for a Unix-style wildcard pattern (case-sensitive, like dbt on POSIX)."""
    if not (_WILDCARD_CHARS & set(value)):
        return value.__eq__
    return re.compile(translate(value)).match  # type: ignore[return-value]


def _has_wildcard(text: str) -> bool:
    return bool(_WILDCARD_CHARS & set(text))


def _m_fqn(ctx: _Context, c: Criterion) -> set[str]:
    value = c.value
    if "." not in value and not _has_wildcard(value):
        return set(ctx.fqn_simple.get(value, ()))
    parts = tuple(value.split("."))
    leaf = _pattern(value) if ctx.leaf_wildcards else value.__eq__
    return {
        n.unique_id
        for n in ctx.of_types(_FQN_TYPES)
        if n.fqn
        and (_fqn_match(n.fqn, parts, leaf, n.version is not None)
             or (len(n.fqn) > 1 and _fqn_match(n.fqn[1:], parts, leaf, n.version is not None)))
    }


def _fqn_match(
    fqn: tuple[str, ...], parts: tuple[str, ...], leaf: Callable[[str], bool], versioned: bool
) -> bool:
    """Does a selector (split into ``parts`` on dots; ``leaf`` matches it whole) match this fqn?

    The leaf name matches outright, wildcards allowed (for versioned models: the model name, or
    ``name_vN`` / ``name.vN``); otherwise the selector is a dotted prefix of the fqn, where the
    first part with a wildcard is matched, with the rest of the selector, against the rest of
    the fqn ('*' spans dots there).
    """
    if versioned and len(fqn) >= 2:
        if leaf(fqn[-2]) or f"{fqn[-2]}_{fqn[-1]}" == "_".join(parts[-2:]):
            return True
    elif leaf(fqn[-1]):
        return True
    flat = [p for seg in fqn for p in seg.split(".")]
    if len(flat) < len(parts):
        return False
    for i, part in enumerate(parts):
        if _has_wildcard(part):
            return fnmatchcase(".".join(flat[i:]), ".".join(parts[i:]))
        if flat[i] != part:
            return False
    return True


def _m_tag(ctx: _Context, c: Criterion) -> set[str]:
    match = _pattern(c.value)
    return {n.unique_id for n in ctx.all_nodes() if any(match(t) for t in n.tags)}


_GROUPABLE = _PARSED_TYPES | {"metric"}


def _m_group(ctx: _Context, c: Criterion) -> set[str]:
    match = _pattern(c.value)
    out = set()
    for n in ctx.of_types(_GROUPABLE):
        group = n.config.get("group") or n.group
        if isinstance(group, str) and match(group):
            out.add(n.unique_id)
    return out


def _m_access(ctx: _Context, c: Criterion) -> set[str]:
    return {n.unique_id for n in ctx.of_types(("model",)) if n.access == c.value}


def _m_package(ctx: _Context, c: Criterion) -> set[str]:
    value = ctx.project if c.value == "this" else c.value
    match = _pattern(value)
    return {n.unique_id for n in ctx.all_nodes() if match(n.package_name)}


def _m_resource_type(ctx: _Context, c: Criterion) -> set[str]:
    if c.value not in _NODE_TYPES:
        raise SelectionError(
            f"selection term {c.raw!r}: {c.value!r} is not a dbt resource type; use one of "
            f"{', '.join(sorted(_NODE_TYPES))}."
        )
    return {n.unique_id for n in ctx.of_types((c.value,))}


def _m_source(ctx: _Context, c: Criterion) -> set[str]:
    parts = c.value.split(".")
    if len(parts) == 1:
        package, source, table = "*", parts[0], "*"
    elif len(parts) == 2:
        package, (source, table) = "*", parts
    elif len(parts) == 3:
        package, source, table = parts
    else:
        raise SelectionError(
            f"selection term {c.raw!r}: a source selector is 'source:<source>', "
            "'source:<source>.<table>' or 'source:<package>.<source>.<table>' (wildcards allowed)."
        )
    mp, ms, mt = _pattern(package), _pattern(source), _pattern(table)
    return {
        n.unique_id
        for n in ctx.of_types(("source",))
        if mp(n.package_name) and ms(n.source_name or "") and mt(n.name)
    }


def _named(resource_type: str, label: str) -> Callable[[_Context, Criterion], set[str]]:
    """exposure:/metric:/semantic_model:/saved_query:/unit_test: — ``name`` or ``package.name``."""

    def method(ctx: _Context, c: Criterion) -> set[str]:
        parts = c.value.split(".")
        if len(parts) == 1:
            package, name = "*", parts[0]
        elif len(parts) == 2:
            package, name = parts
        else:
            raise SelectionError(
                f"selection term {c.raw!r}: write '{c.method}:<{label}>' or "
                f"'{c.method}:<package>.<{label}>' (wildcards allowed)."
            )
        mp, mn = _pattern(package), _pattern(name)
        return {n.unique_id for n in ctx.of_types((resource_type,)) if mp(n.package_name) and mn(n.name)}

    return method


_CONFIGURABLE = _PARSED_TYPES | {"source"}
_MISSING = object()


def _m_config(ctx: _Context, c: Criterion) -> set[str]:
    selector = c.value
    lowered = selector.lower()
    case_insensitive = c.args == ("severity",)
    out = set()
    for n in ctx.of_types(_CONFIGURABLE):
        value: Any = n.config
        for key in c.args:
            if isinstance(value, Mapping) and key in value:
                value = value[key]
            else:
                value = _MISSING
                break
        if value is _MISSING:
            continue
        if isinstance(value, list):
            hit = (
                selector in value
                or (lowered == "true" and True in value)
                or (lowered == "false" and False in value)
            )
        elif case_insensitive and isinstance(value, str):
            hit = lowered == value.lower()
        else:
            hit = (
                selector == value
                or (lowered == "true" and value is True)
                or (lowered == "false" and value is False)
            )
        if hit:
            out.add(n.unique_id)
    return out


def _m_test_name(ctx: _Context, c: Criterion) -> set[str]:
    match = _pattern(c.value)
    out = set()
    for n in ctx.of_types(_TEST_TYPES):
        name = n.test_name if n.test_name is not None else n.name
        if match(name):
            out.add(n.unique_id)
    return out


def _m_test_type(ctx: _Context, c: Criterion) -> set[str]:
    value = c.value
    if value in ("generic", "schema"):
        return {n.unique_id for n in ctx.of_types(("test",)) if n.test_name is not None}
    if value == "singular":
        return {n.unique_id for n in ctx.of_types(("test",)) if n.test_name is None}
    if value == "data":
        return {n.unique_id for n in ctx.of_types(("test",))}
    if value == "unit":
        return {n.unique_id for n in ctx.of_types(("unit_test",))}
    raise SelectionError(
        f"selection term {c.raw!r}: test_type is one of 'generic', 'singular', 'unit' or 'data' "
        "(data = generic and singular)."
    )


def _version_cmp(a: str, b: str) -> int:
    try:
        fa, fb = float(a), float(b)
    except ValueError:
        fa, fb = a, b  # type: ignore[assignment]
    return (fa > fb) - (fa < fb)  # type: ignore[operator]


def _m_version(ctx: _Context, c: Criterion) -> set[str]:
    value = c.value
    if value not in ("latest", "prerelease", "old", "none"):
        raise SelectionError(
            f"selection term {c.raw!r}: version is one of 'latest', 'prerelease', 'old' or 'none'."
        )
    out = set()
    for n in ctx.of_types(("model",)):
        v, latest = n.version, n.latest_version
        if value == "none":
            hit = v is None
        elif value == "latest":
            hit = v is not None and v == latest
        elif v is None or latest is None:
            hit = False
        elif value == "prerelease":
            hit = _version_cmp(v, latest) > 0
        else:
            hit = _version_cmp(v, latest) < 0
        if hit:
            out.add(n.unique_id)
    return out


def _m_file(ctx: _Context, c: Criterion) -> set[str]:
    match = _pattern(c.value)
    out = set()
    for n in ctx.all_nodes():
        ofp = n.original_file_path
        if not ofp:
            continue
        name = ofp.replace("\\", "/").rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
        if match(name) or match(stem):
            out.add(n.unique_id)
    return out


def _m_path(ctx: _Context, c: Criterion) -> set[str]:
    pattern = c.value.replace("\\", "/")
    if pattern.startswith("/"):
        raise SelectionError(
            f"selection term {c.raw!r}: a path is relative to the root dbt project, e.g. "
            "'path:models/staging'; absolute paths are not supported (by dbt either)."
        )
    dirs_only = pattern.endswith("/")
    parts = tuple(p for p in pattern.split("/") if p not in ("", "."))
    if not parts:
        raise SelectionError(
            f"selection term {c.raw!r} names no path; write e.g. 'path:models/staging'."
        )
    if parts[-1] == "**":
        dirs_only = True
    files, dirs = ctx.root_paths()
    needs_patches = _has_wildcard(parts[-1]) or parts[-1].endswith((".yml", ".yaml"))
    patches = ctx.patch_paths() if needs_patches else {}
    if patches:
        files = files | frozenset(patches.values())
    if any(_has_wildcard(part) for part in parts):
        candidates = dirs if dirs_only else (files | dirs)
        matched = {p for p in candidates if _glob_match(parts, tuple(p.split("/")))}
    else:
        literal = "/".join(parts)
        matched = {literal} if literal in dirs or (not dirs_only and literal in files) else set()
    if not matched:
        return set()
    out = set()
    for uid, path, parents in ctx.node_paths():
        if path in matched or any(parent in matched for parent in parents):
            out.add(uid)
        elif patches and patches.get(uid) in matched:
            out.add(uid)
    return out


def _glob_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """pathlib-style glob of one relative path: ``*``/``?``/``[]`` within a part, ``**`` spans parts."""
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        return any(_glob_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    if _has_wildcard(head):
        if not fnmatchcase(path[0], head):
            return False
    elif path[0] != head:
        return False
    return _glob_match(pattern[1:], path[1:])


_METHOD_FUNCS: dict[str, Callable[[_Context, Criterion], set[str]]] = {
    "fqn": _m_fqn,
    "tag": _m_tag,
    "group": _m_group,
    "access": _m_access,
    "package": _m_package,
    "resource_type": _m_resource_type,
    "source": _m_source,
    "exposure": _named("exposure", "exposure"),
    "metric": _named("metric", "metric"),
    "semantic_model": _named("semantic_model", "semantic model"),
    "saved_query": _named("saved_query", "saved query"),
    "unit_test": _named("unit_test", "unit test"),
    "config": _m_config,
    "test_name": _m_test_name,
    "test_type": _m_test_type,
    "version": _m_version,
    "file": _m_file,
    "path": _m_path,
}


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
class _Evaluator:
    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.nodes = ctx.nodes

    def evaluate(self, spec: Spec) -> tuple[set[str], set[str]]:
        """(direct, indirect): what the spec selects, and tests it held back (cautious/buildable)."""
        if isinstance(spec, Criterion):
            return self._criterion(spec)
        if spec is _EVERYTHING:
            return set(self.nodes), set()
        bundles = [self.evaluate(part) for part in spec.parts]
        directs = [d for d, _ in bundles]
        indirects = [d | i for d, i in bundles]
        direct = _combine(spec.op, directs)
        indirect = _combine(spec.op, indirects)
        return self._incorporate(direct, indirect, spec.indirect), indirect

    def _criterion(self, c: Criterion) -> tuple[set[str], set[str]]:
        collected = _METHOD_FUNCS[c.method](self.ctx, c)
        selected = collected | self._neighbours(c, collected) if collected else collected
        if c.indirect == "empty":
            return selected, set()
        return self._expand(selected, c.indirect)

    def _neighbours(self, c: Criterion, selected: set[str]) -> set[str]:
        extra: set[str] = set()
        if c.childrens_parents:
            down = _reach(selected, self.ctx.succ, None) | selected
            extra |= _reach(down, self.ctx.pred, None) | down
        if c.parents:
            extra |= _reach(selected, self.ctx.pred, c.parents_depth)
        if c.children:
            extra |= _reach(selected, self.ctx.succ, c.children_depth)
        return extra

    def _expand(self, selected: set[str], mode: str) -> tuple[set[str], set[str]]:
        """Add the tests attached to ``selected`` (dbt's indirect selection)."""
        nodes, succ = self.nodes, self.ctx.succ
        direct = set(selected)
        held: set[str] = set()
        buildable: set[str] | None = None
        for uid in selected:
            for child in succ[uid]:
                node = nodes[child]
                if node.resource_type not in _TEST_TYPES:
                    continue
                if mode == "eager" or _all_in(node.depends_on, selected):
                    direct.add(child)
                    continue
                if mode == "buildable":
                    if buildable is None:
                        buildable = selected | _reach(selected, self.ctx.pred, None) | self.ctx.source_ids
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
            allowed = selected | _reach(selected, self.ctx.pred, None)
        nodes = self.nodes
        for uid in indirect - direct:
            node = nodes[uid]
            # dbt looks only in the manifest's "nodes" collection here, so unit tests held back
            # by one criterion are not reconsidered.
            if node.resource_type in _PARSED_TYPES and _all_in(node.depends_on, allowed):
                selected.add(uid)
        return selected


_EVERYTHING = SetOp("everything", (), "eager", "<everything>")
_NOTHING = SetOp("union", (), "eager", "<nothing>")


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
