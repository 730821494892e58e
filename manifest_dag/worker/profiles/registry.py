"""The table of adapters: which Airflow ``conn_type`` becomes which dbt target, and how.

One table, ``ADAPTERS``, so a user can teach manifest-dag a warehouse with
:func:`register_adapter` the same way the built-in ones (``adapters/``) register themselves; or,
without touching any DAG file, from an installed package's entry point in the group
``manifest_dag.profile_mappings`` (name: the ``conn_type``; value: an :class:`AdapterMapping`),
looked up on the worker the first time that ``conn_type`` is asked for. A registered mapping wins
over an entry point, so a DAG file can still override one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.worker.profiles.view import ConnectionView

#: the entry point group an installed package names its mappings in (``conn_type = "pkg.mod:MAPPING"``).
ENTRY_POINT_GROUP = "manifest_dag.profile_mappings"

Builder = Callable[[ConnectionView], dict[str, Any]]


@dataclass(frozen=True)
class AdapterMapping:
    """How one Airflow ``conn_type`` becomes a dbt target."""

    dbt_type: str
    build: Builder
    #: target fields that must be set after ``profile_args`` are merged, with how to set them.
    required: Mapping[str, str] = field(default_factory=dict)
    #: ``profile_args`` names that mean another field (``database`` → ``dbname``).
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: target fields holding secrets: given in ``profile_args`` they go through env vars too.
    secret_fields: frozenset[str] = frozenset({"password"})
    #: other dbt ``type``s the same fields serve (dbt-mysql's ``mariadb``), picked with
    #: ``profile_args={"type": ...}``; any other ``type`` is replaced by ``dbt_type``.
    type_variants: frozenset[str] = frozenset()
    #: fields this adapter wants as text where others want numbers (dbt-teradata's ``port``).
    text_fields: frozenset[str] = frozenset()
    #: a last check of the merged target (raise ProfileError), beyond ``required``.
    check: Callable[[ConnectionView, dict[str, Any]], None] | None = None


ADAPTERS: dict[str, AdapterMapping] = {}


def register_adapter(conn_types: str | tuple[str, ...], mapping: AdapterMapping) -> None:
    """Teach ``profile_from_connection`` a new Airflow ``conn_type`` (or replace one)."""
    for conn_type in (conn_types,) if isinstance(conn_types, str) else conn_types:
        ADAPTERS[conn_type] = mapping


def find_mapping(conn_type: str) -> AdapterMapping | None:
    """The mapping for ``conn_type``: a registered one, else an installed package's entry point."""
    mapping = ADAPTERS.get(conn_type)
    if mapping is not None:
        return mapping
    for entry in _entry_points():
        if entry.name != conn_type:
            continue
        try:
            loaded = entry.load()
        except Exception as exc:
            raise ProfileError(
                f"the {ENTRY_POINT_GROUP} entry point {entry.name!r} = {entry.value!r} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(loaded, AdapterMapping):
            raise ProfileError(
                f"the {ENTRY_POINT_GROUP} entry point {entry.name!r} = {entry.value!r} is a "
                f"{type(loaded).__name__}, not a manifest_dag AdapterMapping"
            )
        ADAPTERS[conn_type] = loaded
        return loaded
    return None


def supported_conn_types() -> list[str]:
    """The conn_types with a mapping: registered ones and installed packages' entry points."""
    return sorted(set(ADAPTERS) | {entry.name for entry in _entry_points()})


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def required(**fields: str) -> dict[str, str]:
    """``AdapterMapping.required`` from ``field="where the Connection sets it"`` hints."""
    return {name: f"{where}, or ProfileConfig(profile_args={{{name!r}: ...}})" for name, where in fields.items()}
