"""YAML selectors (``selectors.yml``, stored in the manifest's ``selectors``) as grammar trees.

``--selector name`` and the selector marked ``default: true`` become the same ``Criterion`` /
``SetOp`` tree as ``--select``/``--exclude`` strings, so one evaluator answers both. Definitions
are checked as dbt checks them, and a selector that refers to itself is named with its chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from manifest_dag.core.dbt import INDIRECT_SELECTION_MODES
from manifest_dag.core.errors import SelectionError
from manifest_dag.scheduler.selection.grammar import (
    Criterion,
    SetOp,
    Spec,
    check_method,
    parse_intersection,
    parse_union,
)


def selector_spec(selectors: Mapping[str, Any], name: str, indirect: str, where: str) -> Spec:
    """The tree for YAML selector ``name``; ``where`` starts the error if there is none."""
    return _YamlParser(selectors, indirect).selector(name, where)


def default_selector(selectors: Mapping[str, Any]) -> str | None:
    """The selector marked ``default: true``, if any (dbt applies it when nothing is selected)."""
    defaults = [
        name for name, entry in selectors.items() if isinstance(entry, Mapping) and entry.get("default") is True
    ]
    if len(defaults) > 1:
        raise SelectionError(
            "more than one YAML selector has 'default: true' "
            f"({', '.join(sorted(defaults))}); dbt refuses this too. Keep the flag on one."
        )
    return defaults[0] if defaults else None


class _YamlParser:
    def __init__(self, selectors: Mapping[str, Any], indirect: str) -> None:
        self.selectors = selectors
        self.indirect = indirect
        self.stack: list[str] = []

    def selector(self, name: str, where: str) -> Spec:
        selectors = self.selectors
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
            return parse_intersection(terms[0], self.indirect)
        return parse_union(terms, self.indirect)

    def _reference(self, value: Any, name: str) -> Spec:
        if not isinstance(value, str):
            raise SelectionError(
                f"YAML selector {name!r}: 'method: selector' needs the name of another selector "
                f"as its value, found {value!r}."
            )
        return self.selector(value, where=f"YAML selector {name!r} refers to selector")

    def _set_op(self, op: str, items: Any, name: str) -> Spec:
        if not isinstance(items, list):
            raise SelectionError(f"YAML selector {name!r}: '{op}' must hold a list of definitions, found {items!r}.")
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
            raise SelectionError(f"YAML selector {name!r}: 'exclude' must hold a list of definitions, found {items!r}.")
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
            raise SelectionError(f"{where}: method {method_text!r} needs a non-empty string value, found {value!r}.")
        method, *rest = method_text.split(".")
        raw = f"{method_text}:{value}"
        check_method(raw, method, tuple(rest))
        indirect = dct.get("indirect_selection", self.indirect)
        if indirect not in INDIRECT_SELECTION_MODES:
            raise SelectionError(
                f"{where}: indirect_selection {indirect!r} is not one of {', '.join(INDIRECT_SELECTION_MODES)}."
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
