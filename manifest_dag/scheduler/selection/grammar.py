"""The ``--select``/``--exclude`` grammar: selection strings parsed into a tree of set operations.

A criterion is one ``[@][N+]method[.arg...]:value[+N]`` term; a space is a union, a comma an
intersection, and ``--exclude`` a difference. Parsing is kept apart from evaluation so a term is
checked (and its error names the culprit) before any manifest is looked at, and so the YAML
selectors can build the very same tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from manifest_dag.core.errors import SelectionError

#: The methods a manifest alone can answer (``methods.METHOD_FUNCS`` implements each).
METHODS = (
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


Spec = Criterion | SetOp

#: No ``--select``: every node (dbt's defaults ``fqn:* source:* exposure:* ...`` cover them all).
EVERYTHING = SetOp("everything", (), "eager", "<everything>")
#: No ``--exclude``: nothing taken away.
NOTHING = SetOp("union", (), "eager", "<nothing>")


# ---------------------------------------------------------------------------------------------
# Parsing CLI strings
# ---------------------------------------------------------------------------------------------
def parse_cli(select: list[str], exclude: list[str], indirect: str) -> SetOp:
    """``--select A B --exclude C`` → difference(union(A, B), union(C)).

    With no select, everything is included (dbt's defaults ``fqn:* source:* exposure:* ...``
    cover every node). Exclusions are always eager: excluding a model excludes its tests.
    """
    included: Spec = parse_union(select, indirect) if select else EVERYTHING
    excluded: Spec = parse_union(exclude, "eager") if exclude else NOTHING
    return SetOp("difference", (included, excluded), "eager", "")


def parse_union(args: Iterable[str], indirect: str) -> SetOp:
    """Space-separated terms (across all ``args``) → their union."""
    terms = [t for arg in args for t in arg.split()]
    parts = tuple(parse_intersection(t, indirect) for t in terms)
    return SetOp("union", parts, indirect, " ".join(terms))


def parse_intersection(raw: str, indirect: str) -> Spec:
    """Comma-joined terms (no spaces) → their intersection, or the one criterion."""
    pieces = raw.split(",")
    for piece in pieces:
        if not piece:
            raise SelectionError(
                f"selection {raw!r} has an empty term between commas; a comma joins two terms "
                "into an intersection with no space around it, e.g. 'tag:nightly,resource_type:model'."
            )
    parts = tuple(parse_term(p, indirect) for p in pieces)
    if len(parts) == 1:
        # dbt still wraps it, which only matters for incorporating held-back tests; a single
        # component's held-back tests cannot gain parents, so the wrapper changes nothing.
        return parts[0]
    return SetOp("intersection", parts, indirect, raw)


@lru_cache(maxsize=2048)
def parse_term(raw: str, indirect: str = "eager") -> Criterion:
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
        check_method(raw, method, args)
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


def check_method(raw: str, method: str, args: tuple[str, ...]) -> None:
    """Refuse a method (and ``.arg`` parts) the manifest cannot answer, saying what to write."""
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
    if method not in METHODS:
        raise SelectionError(
            f"selection term {raw!r} uses the unknown method '{method}'; dbt's methods are "
            f"{', '.join(METHODS)} (e.g. 'tag:nightly', 'config.materialized:table')."
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
