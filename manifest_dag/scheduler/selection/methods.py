"""The ``method:value`` implementations: each returns the unique ids a criterion's method picks.

Graph operators (``+``, ``@``) and indirect selection come after, in ``evaluate``; a method only
answers "which nodes does ``tag:nightly`` name". Each follows dbt-core 1.11's own method of the
same name, including its quirks, since the differential tests hold the answers to dbt's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from manifest_dag.core.dbt import NODE_TYPES, PARSED_TYPES, TEST_TYPES
from manifest_dag.core.errors import SelectionError
from manifest_dag.scheduler.selection.index import FQN_TYPES
from manifest_dag.scheduler.selection.patterns import glob_match, has_wildcard, pattern

if TYPE_CHECKING:  # pragma: no cover
    from manifest_dag.scheduler.selection.grammar import Criterion
    from manifest_dag.scheduler.selection.index import ManifestIndex

# -- version gates: where dbt releases answer differently, answer as the manifest's dbt would ----
#: A bare wildcard name (``stg_*``) matches model names in sub-folders: seen in dbt 1.11.16; dbt
#: 1.12.0 and the releases before 1.11.16 only match it against the whole fqn after the package
#: (so only root-level nodes). Releases after 1.12.0 are assumed to have the fix.
LEAF_WILDCARD_SINCE = (1, 11, 16)
LEAF_WILDCARD_LACKING = ((1, 12, 0),)


def _version_tuple(version: str) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version or "")
    return tuple(int(g) for g in match.groups()) if match else None


@lru_cache(maxsize=64)
def _leaf_wildcards(dbt_version: str) -> bool:
    version = _version_tuple(dbt_version)
    if version is None:
        return True
    return version >= LEAF_WILDCARD_SINCE and version not in LEAF_WILDCARD_LACKING


# ---------------------------------------------------------------------------------------------
def _m_fqn(index: ManifestIndex, c: Criterion) -> set[str]:
    value = c.value
    if "." not in value and not has_wildcard(value):
        return set(index.fqn_simple.get(value, ()))
    parts = tuple(value.split("."))
    leaf = pattern(value) if _leaf_wildcards(index.manifest.dbt_version) else value.__eq__
    return {
        n.unique_id
        for n in index.of_types(FQN_TYPES)
        if n.fqn
        and (
            _fqn_match(n.fqn, parts, leaf, n.version is not None)
            or (len(n.fqn) > 1 and _fqn_match(n.fqn[1:], parts, leaf, n.version is not None))
        )
    }


def _fqn_match(fqn: tuple[str, ...], parts: tuple[str, ...], leaf: Callable[[str], bool], versioned: bool) -> bool:
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
        if has_wildcard(part):
            return fnmatchcase(".".join(flat[i:]), ".".join(parts[i:]))
        if flat[i] != part:
            return False
    return True


def _m_tag(index: ManifestIndex, c: Criterion) -> set[str]:
    match = pattern(c.value)
    return {n.unique_id for n in index.all_nodes() if any(match(t) for t in n.tags)}


_GROUPABLE = PARSED_TYPES | {"metric"}


def _m_group(index: ManifestIndex, c: Criterion) -> set[str]:
    match = pattern(c.value)
    out = set()
    for n in index.of_types(_GROUPABLE):
        group = n.config.get("group") or n.group
        if isinstance(group, str) and match(group):
            out.add(n.unique_id)
    return out


def _m_access(index: ManifestIndex, c: Criterion) -> set[str]:
    return {n.unique_id for n in index.of_types(("model",)) if n.access == c.value}


def _m_package(index: ManifestIndex, c: Criterion) -> set[str]:
    value = index.project if c.value == "this" else c.value
    match = pattern(value)
    return {n.unique_id for n in index.all_nodes() if match(n.package_name)}


def _m_resource_type(index: ManifestIndex, c: Criterion) -> set[str]:
    if c.value not in NODE_TYPES:
        raise SelectionError(
            f"selection term {c.raw!r}: {c.value!r} is not a dbt resource type; use one of "
            f"{', '.join(sorted(NODE_TYPES))}."
        )
    return {n.unique_id for n in index.of_types((c.value,))}


def _m_source(index: ManifestIndex, c: Criterion) -> set[str]:
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
    mp, ms, mt = pattern(package), pattern(source), pattern(table)
    return {
        n.unique_id
        for n in index.of_types(("source",))
        if mp(n.package_name) and ms(n.source_name or "") and mt(n.name)
    }


def _named(resource_type: str, label: str) -> Callable[[ManifestIndex, Criterion], set[str]]:
    """exposure:/metric:/semantic_model:/saved_query:/unit_test: — ``name`` or ``package.name``."""

    def method(index: ManifestIndex, c: Criterion) -> set[str]:
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
        mp, mn = pattern(package), pattern(name)
        return {n.unique_id for n in index.of_types((resource_type,)) if mp(n.package_name) and mn(n.name)}

    return method


_CONFIGURABLE = PARSED_TYPES | {"source"}
_MISSING = object()


def _m_config(index: ManifestIndex, c: Criterion) -> set[str]:
    selector = c.value
    lowered = selector.lower()
    case_insensitive = c.args == ("severity",)
    out = set()
    for n in index.of_types(_CONFIGURABLE):
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
            hit = selector in value or (lowered == "true" and True in value) or (lowered == "false" and False in value)
        elif case_insensitive and isinstance(value, str):
            hit = lowered == value.lower()
        else:
            hit = selector == value or (lowered == "true" and value is True) or (lowered == "false" and value is False)
        if hit:
            out.add(n.unique_id)
    return out


def _m_test_name(index: ManifestIndex, c: Criterion) -> set[str]:
    match = pattern(c.value)
    out = set()
    for n in index.of_types(TEST_TYPES):
        name = n.test_name if n.test_name is not None else n.name
        if match(name):
            out.add(n.unique_id)
    return out


def _m_test_type(index: ManifestIndex, c: Criterion) -> set[str]:
    value = c.value
    if value in ("generic", "schema"):
        return {n.unique_id for n in index.of_types(("test",)) if n.test_name is not None}
    if value == "singular":
        return {n.unique_id for n in index.of_types(("test",)) if n.test_name is None}
    if value == "data":
        return {n.unique_id for n in index.of_types(("test",))}
    if value == "unit":
        return {n.unique_id for n in index.of_types(("unit_test",))}
    raise SelectionError(
        f"selection term {c.raw!r}: test_type is one of 'generic', 'singular', 'unit' or 'data' "
        "(data = generic and singular)."
    )


def _version_cmp(a: str, b: str) -> int:
    """-1, 0 or 1: as numbers when both versions are numbers, else as text."""
    try:
        fa, fb = float(a), float(b)
    except ValueError:
        return (a > b) - (a < b)
    return (fa > fb) - (fa < fb)


def _m_version(index: ManifestIndex, c: Criterion) -> set[str]:
    value = c.value
    if value not in ("latest", "prerelease", "old", "none"):
        raise SelectionError(f"selection term {c.raw!r}: version is one of 'latest', 'prerelease', 'old' or 'none'.")
    out = set()
    for n in index.of_types(("model",)):
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


def _m_file(index: ManifestIndex, c: Criterion) -> set[str]:
    match = pattern(c.value)
    out = set()
    for n in index.all_nodes():
        ofp = n.original_file_path
        if not ofp:
            continue
        name = ofp.replace("\\", "/").rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
        if match(name) or match(stem):
            out.add(n.unique_id)
    return out


def _m_path(index: ManifestIndex, c: Criterion) -> set[str]:
    pattern = c.value.replace("\\", "/")
    if pattern.startswith("/"):
        raise SelectionError(
            f"selection term {c.raw!r}: a path is relative to the root dbt project, e.g. "
            "'path:models/staging'; absolute paths are not supported (by dbt either)."
        )
    dirs_only = pattern.endswith("/")
    parts = tuple(p for p in pattern.split("/") if p not in ("", "."))
    if not parts:
        raise SelectionError(f"selection term {c.raw!r} names no path; write e.g. 'path:models/staging'.")
    if parts[-1] == "**":
        dirs_only = True
    files, dirs = index.root_paths()
    needs_patches = has_wildcard(parts[-1]) or parts[-1].endswith((".yml", ".yaml"))
    patches = index.patch_paths() if needs_patches else {}
    if patches:
        files = files | frozenset(patches.values())
    if any(has_wildcard(part) for part in parts):
        candidates = dirs if dirs_only else (files | dirs)
        matched = {p for p in candidates if glob_match(parts, tuple(p.split("/")))}
    else:
        literal = "/".join(parts)
        matched = {literal} if literal in dirs or (not dirs_only and literal in files) else set()
    if not matched:
        return set()
    out = set()
    for uid, path, parents in index.node_paths():
        if path in matched or any(parent in matched for parent in parents):
            out.add(uid)
        elif patches and patches.get(uid) in matched:
            out.add(uid)
    return out


METHOD_FUNCS: dict[str, Callable[[ManifestIndex, Criterion], set[str]]] = {
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
