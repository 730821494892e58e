"""Offline tests of dbt DAGs: no dbt, no warehouse, no network.

What a data team's CI needs to prove, in seconds, before a DAG file is deployed:

- :class:`ManifestBuilder` writes a small, valid ``manifest.json`` for a test (models, seeds,
  snapshots, tests, sources, exposures, selectors, disabled nodes), in dbt's current schema (v12)
  or an older one;
- :func:`block_dbt` makes ``import dbt`` fail, naming the chain of modules that tried (the
  scheduler side must never need dbt); :func:`load_dag_bag` loads a DAG folder the way Airflow
  does, with dbt blocked, and fails listing every file's import error in full;
- :func:`assert_dag_matches_manifest` checks a built DAG against the manifest: the selected nodes
  and only they have tasks, and the DAG orders them exactly as dbt's graph does;
- :func:`dag_shape` prints a DAG as stable, sorted text for golden-file tests
  (:func:`assert_matches_golden`);
- :func:`plan_task` is a dry run of one task: the venv, the dbt argv, the environment (secrets
  masked), the profile and the rendered ``vars``, for a given logical date, with nothing run.

The pytest plugin (``manifest_dag.testing.plugin``, registered through the ``pytest11`` entry
point) wraps these as fixtures. This module imports Airflow only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import importlib.abc
import os
import re
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson

from manifest_dag.scheduler.manifest import Manifest, load_manifest

if TYPE_CHECKING:
    from manifest_dag.scheduler.plan import RenderPlan

__all__ = [
    "BlockedImport",
    "DbtImportBlocked",
    "ManifestBuilder",
    "NoDbt",
    "TaskPlan",
    "assert_dag_matches_manifest",
    "assert_matches_golden",
    "block_dbt",
    "dag_shape",
    "load_dag_bag",
    "plan_task",
]

# =============================================================================================
# ManifestBuilder

#: dbt-core version written for each schema version (the oldest dbt that writes it, except v12).
_SCHEMA_DBT_VERSION = {9: "1.5.0", 10: "1.6.0", 11: "1.7.0", 12: "1.11.0"}

_TOP_LEVEL = {
    9: ("metadata", "nodes", "sources", "macros", "docs", "exposures", "metrics", "groups", "selectors",
        "disabled", "parent_map", "child_map", "group_map"),
}
_TOP_LEVEL[10] = (*_TOP_LEVEL[9], "semantic_models")
_TOP_LEVEL[11] = (*_TOP_LEVEL[10], "saved_queries")
_TOP_LEVEL[12] = (*_TOP_LEVEL[11], "unit_tests", "functions")

_NODE_CONFIG = {
    "enabled": True, "alias": None, "schema": None, "database": None, "tags": [], "meta": {}, "group": None,
    "static_analysis": None, "materialized": "view", "incremental_strategy": None, "batch_size": None,
    "lookback": 1, "begin": None, "persist_docs": {}, "post-hook": [], "pre-hook": [], "quoting": {},
    "column_types": {}, "full_refresh": None, "unique_key": None, "on_schema_change": "ignore",
    "on_configuration_change": "apply", "grants": {}, "packages": [],
    "docs": {"show": True, "node_color": None}, "contract": {"enforced": False, "alias_types": True},
    "event_time": None, "concurrent_batches": None,
}
_TEST_CONFIG = {
    "enabled": True, "alias": None, "schema": "dbt_test__audit", "database": None, "tags": [], "meta": {},
    "group": None, "static_analysis": None, "materialized": "test", "severity": "ERROR", "store_failures": None,
    "store_failures_as": None, "where": None, "limit": None, "fail_calc": "count(*)", "warn_if": "!= 0",
    "error_if": "!= 0",
}
_SNAPSHOT_CONFIG = {
    "strategy": "timestamp", "target_schema": None, "target_database": None, "updated_at": "updated_at",
    "check_cols": None, "snapshot_meta_column_names": {
        "dbt_valid_to": None, "dbt_valid_from": None, "dbt_scd_id": None, "dbt_updated_at": None,
        "dbt_is_deleted": None,
    },
    "dbt_valid_to_current": None,
}
_FOLDER = {"model": "models", "seed": "seeds", "snapshot": "snapshots", "test": "tests", "analysis": "analyses"}
_SUFFIX = {"model": ".sql", "seed": ".csv", "snapshot": ".sql", "test": ".sql", "analysis": ".sql"}


def _ref_entry(name: str, package: str | None = None, version: Any = None) -> dict[str, Any]:
    return {"name": name, "package": package, "version": version}


@dataclass
class _Pending:
    """A node declared but not yet resolved (refs are resolved when the manifest is built)."""

    uid: str
    raw: dict[str, Any]
    refs: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    depends_on: list[str] | None = None
    collection: str = "nodes"
    enabled: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    #: ordered mixed references (names and ``source:`` ones), used instead of refs + sources
    targets: list[Any] | None = None


class ManifestBuilder:
    """A fluent builder of small, valid dbt manifests for tests.

    ::

        path = (
            ManifestBuilder("shop")
            .seed("raw_orders")
            .source("shop_raw", "payments", freshness=True)
            .model("stg_orders", refs=["raw_orders"], path="staging/stg_orders.sql")
            .model("orders", refs=["stg_orders"], sources=["shop_raw.payments"], tags=["nightly"])
            .test("not_null", on="orders", column="order_id")
            .selector("nightly", {"method": "tag", "value": "nightly"})
            .write(tmp_path)
        )

    References are by name (``refs=["stg_orders"]``; ``("dim", 2)`` for a model version,
    ``"pkg.name"`` for a package's node; sources as ``"raw.orders"``) and are resolved when the
    manifest is built, so nodes may be declared in any order;
    a ``depends_on=[unique ids]`` argument bypasses resolution. Every method takes ``**fields``:
    raw manifest fields set last, over what the builder wrote. Nodes carry every field dbt writes
    for the chosen ``schema_version`` (12 by default; 9, 10 and 11 for dbt 1.5, 1.6 and 1.7).
    """

    def __init__(
        self,
        project: str = "my_project",
        *,
        schema_version: int = 12,
        dbt_version: str | None = None,
        adapter_type: str | None = "duckdb",
        database: str = "warehouse",
        schema: str = "main",
    ) -> None:
        if schema_version not in _SCHEMA_DBT_VERSION:
            raise ValueError(
                f"ManifestBuilder writes manifest schema v9-v12 (dbt 1.5 to 1.12), not v{schema_version}"
            )
        self.project = project
        self.schema_version = schema_version
        self.dbt_version = dbt_version or _SCHEMA_DBT_VERSION[schema_version]
        self.adapter_type = adapter_type
        self.database = database
        self.schema = schema
        self._nodes: dict[str, _Pending] = {}
        self._by_name: dict[str, list[str]] = {}
        self._sources: dict[tuple[str, str], str] = {}
        self._selectors: dict[str, Any] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._created = 1700000000.0

    # -- ids ---------------------------------------------------------------------------------------
    def uid(self, name: str, resource_type: str | None = None, package: str | None = None) -> str:
        """The unique id of a declared node by name (latest version for versioned models)."""
        found = self._find(name, resource_type=resource_type, package=package)
        if found is None:
            raise KeyError(f"ManifestBuilder: no node named {name!r} has been declared")
        return found

    def _find(self, name: str, *, resource_type: str | None = None, package: str | None = None, version: Any = None) -> str | None:
        candidates = []
        for uid in self._by_name.get(name, ()):
            raw = self._nodes[uid].raw
            if raw.get("name") != name or (resource_type and raw["resource_type"] != resource_type):
                continue
            if package and raw["package_name"] != package:
                continue
            if raw["resource_type"] in ("test", "source", "exposure", "unit_test"):
                continue
            if version is not None and str(raw.get("version")) != str(version):
                continue
            candidates.append(uid)
        if not candidates:
            return None
        enabled = [u for u in candidates if self._nodes[u].enabled]
        candidates = enabled or candidates
        if version is None and len(candidates) > 1:
            latest = [u for u in candidates if str(self._nodes[u].raw.get("version")) == str(self._nodes[u].raw.get("latest_version"))]
            own = [u for u in (latest or candidates) if self._nodes[u].raw["package_name"] == self.project]
            return (own or latest or candidates)[0]
        return candidates[0]

    def _add(self, pending: _Pending) -> ManifestBuilder:
        if pending.uid in self._nodes:
            raise ValueError(f"ManifestBuilder: {pending.uid} is declared twice")
        self._nodes[pending.uid] = pending
        self._by_name.setdefault(pending.raw.get("name", ""), []).append(pending.uid)
        if pending.collection == "sources":
            self._sources[(pending.raw["source_name"], pending.raw["name"])] = pending.uid
        return self

    def _time(self) -> float:
        self._created += 1.0
        return self._created

    # -- common node bodies ------------------------------------------------------------------------
    def _fqn(self, package: str, resource_type: str, path: str, name: str, version: Any = None) -> list[str]:
        folders = [p for p in Path(path).parent.parts if p not in ("", ".")]
        fqn = [package, *folders, name]
        if version is not None:
            fqn.append(f"v{version}")
        return fqn

    def _columns(self, columns: Any) -> dict[str, Any]:
        if not columns:
            return {}
        if isinstance(columns, Mapping):
            items = columns.items()
        else:
            items = ((c, {}) for c in columns)
        out: dict[str, Any] = {}
        for name, spec in items:
            spec = {"description": spec} if isinstance(spec, str) else dict(spec or {})
            entry: dict[str, Any] = {
                "name": name, "description": spec.pop("description", ""), "meta": spec.pop("meta", {}),
                "data_type": spec.pop("data_type", None), "constraints": spec.pop("constraints", []),
                "quote": spec.pop("quote", None),
            }
            if self.schema_version >= 12:
                entry["config"] = {"meta": entry["meta"], "tags": spec.get("tags", [])}
            entry["tags"] = spec.pop("tags", [])
            if self.schema_version >= 12:
                entry["granularity"] = spec.pop("granularity", None)
                entry["doc_blocks"] = []
            entry.update(spec)
            out[name] = entry
        return out

    def _sql_node(
        self,
        resource_type: str,
        name: str,
        *,
        package: str | None,
        path: str | None,
        tags: Sequence[str],
        config: Mapping[str, Any] | None,
        meta: Mapping[str, Any] | None,
        description: str,
        columns: Any,
        base_config: Mapping[str, Any],
        version: Any = None,
        alias: str | None = None,
        schema: str | None = None,
    ) -> dict[str, Any]:
        package = package or self.project
        file_name = f"{name}_v{version}" if version is not None else name
        path = path or f"{file_name}{_SUFFIX[resource_type]}"
        folder = _FOLDER[resource_type]
        cfg = copy.deepcopy(dict(base_config))
        cfg["tags"] = list(tags)
        cfg["meta"] = dict(meta or {})
        cfg.update(copy.deepcopy(dict(config or {})))
        tags = list(dict.fromkeys([*tags, *cfg.get("tags", [])]))
        cfg["tags"] = tags
        meta = {**(meta or {}), **cfg.get("meta", {})}
        relation_alias = alias or cfg.get("alias") or file_name
        node_schema = schema or cfg.get("schema") or self.schema
        raw: dict[str, Any] = {
            "database": self.database,
            "schema": node_schema,
            "name": name,
            "resource_type": resource_type,
            "package_name": package,
            "path": path,
            "original_file_path": f"{folder}/{path}",
            "unique_id": "",
            "fqn": self._fqn(package, resource_type, path, name, version),
            "alias": relation_alias,
            "checksum": {"name": "sha256", "checksum": hashlib.sha256(f"{package}.{name}.{version}".encode()).hexdigest()},
            "config": cfg,
            "tags": tags,
            "description": description,
            "columns": self._columns(columns),
            "meta": meta,
            "group": cfg.get("group"),
            "docs": {"show": True, "node_color": None},
            "patch_path": None,
            "build_path": None,
            "unrendered_config": {k: v for k, v in (config or {}).items()},
            "created_at": self._time(),
            "relation_name": f'"{self.database}"."{node_schema}"."{relation_alias}"',
        }
        if self.schema_version < 12:
            raw["deferred"] = False
        else:
            raw["doc_blocks"] = []
        return raw

    def _code_fields(self, raw: dict[str, Any], language: str = "sql") -> None:
        """Fields of nodes that have code (everything but seeds)."""
        raw["raw_code"] = ""
        raw["language"] = language
        raw["refs"] = []
        raw["sources"] = []
        raw["metrics"] = []
        if self.schema_version >= 12:
            raw["functions"] = []
        raw["depends_on"] = {"macros": [], "nodes": []}
        raw["compiled_path"] = None
        raw["contract"] = {"enforced": False, "alias_types": True, "checksum": None}

    # -- resources ---------------------------------------------------------------------------------
    def model(
        self,
        name: str,
        *,
        refs: Sequence[Any] = (),
        sources: Sequence[Any] = (),
        depends_on: Sequence[str] | None = None,
        materialized: str = "view",
        tags: Sequence[str] = (),
        path: str | None = None,
        package: str | None = None,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        description: str = "",
        columns: Any = None,
        version: Any = None,
        versions: Sequence[Any] | None = None,
        latest_version: Any = None,
        access: str = "protected",
        group: str | None = None,
        language: str = "sql",
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        """A model; ``versions=[1, 2]`` declares one node per version (``latest_version``: the last)."""
        if versions:
            latest = latest_version if latest_version is not None else versions[-1]
            for v in versions:
                self.model(
                    name, refs=refs, sources=sources, depends_on=depends_on, materialized=materialized, tags=tags,
                    path=path.replace("{version}", str(v)) if path else None, package=package, config=config,
                    meta=meta, description=description, columns=columns, version=v, latest_version=latest,
                    access=access, group=group, language=language, enabled=enabled, **fields,
                )
            return self
        cfg = {"materialized": materialized, "access": access, "group": group, "freshness": None}
        cfg.update(dict(config or {}))
        cfg["enabled"] = enabled
        raw = self._sql_node(
            "model", name, package=package, path=path, tags=tags, config=cfg, meta=meta,
            description=description, columns=columns, base_config=_NODE_CONFIG, version=version,
        )
        if self.schema_version < 12:
            for key in ("static_analysis", "lookback", "batch_size", "begin", "event_time", "concurrent_batches", "freshness"):
                raw["config"].pop(key, None)
        raw["unrendered_config"] = {"materialized": materialized, **{k: v for k, v in (config or {}).items()}}
        self._code_fields(raw, language)
        raw["access"] = cfg["access"]
        raw["constraints"] = []
        raw["version"] = version
        raw["latest_version"] = latest_version if version is not None else None
        if self.schema_version >= 10:
            raw["deprecation_date"] = None
        if self.schema_version >= 12:
            raw["primary_key"] = []
            raw["time_spine"] = None
        uid = f"model.{raw['package_name']}.{name}" + (f".v{version}" if version is not None else "")
        return self._pending(uid, raw, refs, sources, depends_on, enabled, fields)

    def seed(
        self,
        name: str,
        *,
        tags: Sequence[str] = (),
        path: str | None = None,
        package: str | None = None,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        description: str = "",
        columns: Any = None,
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        cfg = {"materialized": "seed", "delimiter": ",", "quote_columns": None, **dict(config or {}), "enabled": enabled}
        raw = self._sql_node(
            "seed", name, package=package, path=path, tags=tags, config=cfg, meta=meta,
            description=description, columns=columns, base_config=_NODE_CONFIG,
        )
        raw["raw_code"] = ""
        raw["root_path"] = f"/dbt/{raw['package_name']}"
        raw["depends_on"] = {"macros": []}
        uid = f"seed.{raw['package_name']}.{name}"
        return self._pending(uid, raw, (), (), None, enabled, fields)

    def snapshot(
        self,
        name: str,
        *,
        refs: Sequence[Any] = (),
        sources: Sequence[Any] = (),
        depends_on: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        path: str | None = None,
        package: str | None = None,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        description: str = "",
        columns: Any = None,
        unique_key: str = "id",
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        cfg = {"materialized": "snapshot", "unique_key": unique_key, **_SNAPSHOT_CONFIG, **dict(config or {}), "enabled": enabled}
        raw = self._sql_node(
            "snapshot", name, package=package, path=path, tags=tags, config=cfg, meta=meta,
            description=description, columns=columns, base_config=_NODE_CONFIG,
        )
        self._code_fields(raw)
        uid = f"snapshot.{raw['package_name']}.{name}"
        return self._pending(uid, raw, refs, sources, depends_on, enabled, fields)

    def test(
        self,
        test_name: str,
        *,
        on: str | Sequence[str],
        column: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        namespace: str | None = None,
        package: str | None = None,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        depends_on: Sequence[str] | None = None,
        yaml_path: str = "models/schema.yml",
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        """A generic (YAML) test such as ``not_null``, on one node or several.

        ``on``: the node it is attached to, then the other nodes it reads (a relationships test:
        ``on=["orders", "customers"]``). ``"source:raw.orders"`` names a source. ``yaml_path``:
        the YAML file declaring it (its folder is part of the test's fqn, as in dbt).
        """
        targets = [on] if isinstance(on, (str, tuple)) else list(on)
        if not targets and depends_on is None:
            raise ValueError("ManifestBuilder.test: `on` names at least one node")
        labels = [_target_label(t) for t in targets]
        first_label = labels[0] if labels else ""
        parts = [test_name if not namespace else f"{namespace}_{test_name}", first_label]
        if column:
            parts.append(column)
        parts += labels[1:]
        test_node_name = name or re.sub(r"[^A-Za-z0-9_]+", "_", "_".join(parts))
        cfg = {**dict(config or {}), "enabled": enabled}
        raw = self._sql_node(
            "test", test_node_name, package=package, path=None, tags=tags, config=cfg, meta=None,
            description="", columns=None, base_config=_TEST_CONFIG, schema=f"{self.schema}_dbt_test__audit",
        )
        raw["original_file_path"] = yaml_path
        raw["fqn"] = [raw["package_name"], *Path(yaml_path).parent.parts[1:], test_node_name]
        raw["checksum"] = {"name": "none", "checksum": ""}
        raw["relation_name"] = None
        self._code_fields(raw)
        raw["column_name"] = column
        raw["file_key_name"] = f"models.{first_label}"
        raw["attached_node"] = None  # resolved at build time
        raw["test_metadata"] = {
            "name": test_name,
            "kwargs": {**({"column_name": column} if column else {}), **dict(kwargs or {})},
            "namespace": namespace,
        }
        digest = hashlib.md5(f"{raw['package_name']}.{test_node_name}.{targets}".encode()).hexdigest()[:10]
        uid = f"test.{raw['package_name']}.{test_node_name}.{digest}"
        # dbt lists the other nodes first and the one the test is attached to last
        pending = _Pending(uid, raw, [], [], list(depends_on) if depends_on is not None else None)
        pending.targets = [*targets[1:], *targets[:1]]
        pending.overrides = dict(fields)
        pending.enabled = enabled
        return self._add(pending)

    def singular_test(
        self,
        name: str,
        *,
        refs: Sequence[Any] = (),
        sources: Sequence[Any] = (),
        depends_on: Sequence[str] | None = None,
        package: str | None = None,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        path: str | None = None,
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        """A singular test (a ``.sql`` file under ``tests/``) reading ``refs`` and ``sources``."""
        cfg = {**dict(config or {}), "enabled": enabled}
        raw = self._sql_node(
            "test", name, package=package, path=path, tags=tags, config=cfg, meta=None, description="",
            columns=None, base_config=_TEST_CONFIG, schema=f"{self.schema}_dbt_test__audit",
        )
        raw["relation_name"] = None
        self._code_fields(raw)
        uid = f"test.{raw['package_name']}.{name}"
        return self._pending(uid, raw, refs, sources, depends_on, enabled, fields)

    def source(
        self,
        source_name: str,
        table: str,
        *,
        identifier: str | None = None,
        freshness: bool | Mapping[str, Any] = False,
        loaded_at_field: str | None = None,
        tags: Sequence[str] = (),
        package: str | None = None,
        path: str | None = None,
        meta: Mapping[str, Any] | None = None,
        description: str = "",
        columns: Any = None,
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        """A source table; ``freshness=True`` gives it a warn/error freshness (a freshness task)."""
        package = package or self.project
        path = path or "models/sources.yml"
        fresh: dict[str, Any] | None
        if freshness is True:
            fresh = {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 24, "period": "hour"}, "filter": None}
        elif isinstance(freshness, Mapping):
            fresh = {"filter": None, **dict(freshness)}
        else:
            fresh = {"warn_after": {"count": None, "period": None}, "error_after": {"count": None, "period": None}, "filter": None}
        if freshness and not loaded_at_field:
            loaded_at_field = "_loaded_at"
        ident = identifier or table
        raw: dict[str, Any] = {
            "database": self.database,
            "schema": source_name,
            "name": table,
            "resource_type": "source",
            "package_name": package,
            "path": path,
            "original_file_path": path,
            "unique_id": f"source.{package}.{source_name}.{table}",
            "fqn": [package, *[p for p in Path(path).parent.parts if p not in ("models", "", ".")], source_name, table],
            "source_name": source_name,
            "source_description": "",
            "loader": "",
            "identifier": ident,
            "quoting": {"database": None, "schema": None, "identifier": None, "column": None},
            "loaded_at_field": loaded_at_field,
            "loaded_at_query": None,
            "freshness": fresh,
            "external": None,
            "description": description,
            "columns": self._columns(columns),
            "meta": dict(meta or {}),
            "source_meta": {},
            "tags": list(tags),
            "config": {
                "enabled": enabled, "event_time": None, "freshness": fresh, "loaded_at_field": loaded_at_field,
                "loaded_at_query": None, "meta": dict(meta or {}), "tags": list(tags), "static_analysis": None,
            },
            "patch_path": None,
            "unrendered_config": {},
            "relation_name": f'"{self.database}"."{source_name}"."{ident}"',
            "created_at": self._time(),
            "unrendered_database": None,
            "unrendered_schema": None,
            "doc_blocks": [],
        }
        if self.schema_version < 12:
            for key in ("loaded_at_query", "unrendered_database", "unrendered_schema", "doc_blocks"):
                raw.pop(key)
            for key in ("event_time", "freshness", "loaded_at_field", "loaded_at_query", "meta", "tags", "static_analysis"):
                raw["config"].pop(key)
        pending = _Pending(raw["unique_id"], raw, collection="sources", enabled=enabled, overrides=dict(fields))
        return self._add(pending)

    def exposure(
        self,
        name: str,
        *,
        refs: Sequence[Any] = (),
        sources: Sequence[Any] = (),
        depends_on: Sequence[str] | None = None,
        type: str = "dashboard",  # noqa: A002 - dbt's field name
        owner: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        package: str | None = None,
        path: str = "exposures.yml",
        meta: Mapping[str, Any] | None = None,
        description: str = "",
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        package = package or self.project
        raw: dict[str, Any] = {
            "name": name,
            "resource_type": "exposure",
            "package_name": package,
            "path": path,
            "original_file_path": f"models/{path}",
            "unique_id": f"exposure.{package}.{name}",
            "fqn": [package, *[p for p in Path(path).parent.parts if p not in ("", ".")], name],
            "type": type,
            "owner": dict(owner or {"email": "owner@example.com", "name": "Owner"}),
            "description": description,
            "label": None,
            "maturity": None,
            "meta": dict(meta or {}),
            "tags": list(tags),
            "config": {"enabled": enabled, "tags": list(tags), "meta": dict(meta or {})},
            "unrendered_config": {},
            "url": None,
            "depends_on": {"macros": [], "nodes": []},
            "refs": [],
            "sources": [],
            "metrics": [],
            "created_at": self._time(),
        }
        pending = _Pending(raw["unique_id"], raw, list(refs), list(sources), list(depends_on) if depends_on is not None else None,
                           collection="exposures", enabled=enabled, overrides=dict(fields))
        return self._add(pending)

    def unit_test(self, name: str, *, model: Any, **fields: Any) -> ManifestBuilder:
        """A unit test of ``model`` (dbt 1.8+: schema v12 only)."""
        if self.schema_version < 12:
            raise ValueError("unit tests exist from manifest schema v12 (dbt 1.8)")
        model_name = model[0] if isinstance(model, tuple) else model
        raw: dict[str, Any] = {
            "model": model_name, "given": [], "expect": {"rows": [], "format": "dict", "fixture": None},
            "name": name, "resource_type": "unit_test", "package_name": self.project,
            "path": "unit_tests.yml", "original_file_path": "models/unit_tests.yml",
            "unique_id": f"unit_test.{self.project}.{model_name}.{name}",
            "fqn": [self.project, model_name, name], "description": "", "overrides": None,
            "depends_on": {"macros": [], "nodes": []},
            "config": {"tags": [], "meta": {}, "enabled": True, "static_analysis": None},
            "checksum": "", "schema": self.schema, "created_at": self._time(), "versions": None, "version": None,
        }
        pending = _Pending(raw["unique_id"], raw, [model], collection="unit_tests", overrides=dict(fields))
        return self._add(pending)

    def selector(
        self, name: str, definition: Any, *, description: str = "", default: bool = False
    ) -> ManifestBuilder:
        """A YAML selector, as dbt stores it from ``selectors.yml`` (``definition`` as written there)."""
        entry: dict[str, Any] = {"name": name, "description": description, "definition": definition}
        if default:
            entry["default"] = True
        self._selectors[name] = entry
        return self

    def group(self, name: str, *, owner: Mapping[str, Any] | None = None) -> ManifestBuilder:
        self._groups[name] = {
            "name": name, "resource_type": "group", "package_name": self.project, "path": "groups.yml",
            "original_file_path": "models/groups.yml", "unique_id": f"group.{self.project}.{name}",
            "owner": dict(owner or {"name": name, "email": None}), "description": None,
            "config": {"meta": {}},
        }
        return self

    def _pending(self, uid, raw, refs, sources, depends_on, enabled, fields) -> ManifestBuilder:
        raw["unique_id"] = uid
        return self._add(
            _Pending(uid, raw, list(refs), list(sources), list(depends_on) if depends_on is not None else None,
                     enabled=enabled, overrides=dict(fields))
        )

    # -- output ------------------------------------------------------------------------------------
    def _resolve_ref(self, ref: Any, owner: str) -> tuple[str, dict[str, Any]]:
        version = package = None
        if isinstance(ref, tuple):
            name, version = ref
        else:
            name = str(ref)
            if "." in name:
                package, name = name.split(".", 1)
        uid = self._find(name, package=package, version=version)
        if uid is None:
            raise ValueError(f"ManifestBuilder: {owner} refers to {ref!r}, which is not declared")
        return uid, _ref_entry(name, package, version)

    def _resolve_source(self, source: Any, owner: str) -> tuple[str, list[str]]:
        if isinstance(source, str):
            source = tuple(source.removeprefix("source:").split(".", 1))
        source_name, table = source
        uid = self._sources.get((source_name, table))
        if uid is not None:
            return uid, [source_name, table]
        raise ValueError(f"ManifestBuilder: {owner} reads source {source_name}.{table}, which is not declared")

    def build(self) -> dict[str, Any]:
        """The manifest as a dict (what :meth:`write` writes)."""
        v = self.schema_version
        data: dict[str, Any] = {key: {} for key in _TOP_LEVEL[v]}
        metadata: dict[str, Any] = {
            "dbt_schema_version": f"https://schemas.getdbt.com/dbt/manifest/v{v}.json",
            "dbt_version": self.dbt_version,
            "generated_at": "2024-01-01T00:00:00.000000Z",
            "invocation_id": str(uuid.UUID(int=0)),
        }
        if v >= 12:
            metadata["invocation_started_at"] = "2024-01-01T00:00:00.000000Z"
        metadata["env"] = {}
        if v >= 10:
            metadata["project_name"] = self.project
        metadata["project_id"] = hashlib.md5(self.project.encode()).hexdigest()
        metadata["user_id"] = None
        metadata["send_anonymous_usage_stats"] = False
        metadata["adapter_type"] = self.adapter_type
        if v >= 12:
            metadata["quoting"] = {"database": True, "schema": True, "identifier": True, "column": None}
            metadata["run_started_at"] = "2024-01-01T00:00:00.000000+00:00"
        data["metadata"] = metadata
        parent_map: dict[str, list[str]] = {}
        for uid, p in self._nodes.items():
            raw = copy.deepcopy(p.raw)
            nodes: list[str] = []
            if p.depends_on is not None:
                nodes = list(p.depends_on)
            else:
                targets = p.targets if p.targets is not None else [*p.refs, *map(_source_ref, p.sources)]
                for target in targets:
                    if isinstance(target, str) and target.startswith("source:"):
                        found, source_entry = self._resolve_source(target, uid)
                        nodes.append(found)
                        if "sources" in raw:
                            raw["sources"].append(source_entry)
                    else:
                        found, ref_entry = self._resolve_ref(target, uid)
                        nodes.append(found)
                        if "refs" in raw:
                            raw["refs"].append(ref_entry)
            if raw["resource_type"] == "test" and "test_metadata" in raw and nodes:
                raw["attached_node"] = nodes[-1] if not nodes[-1].startswith("source.") else None
                if raw["test_metadata"]["name"] == "relationships" and len(nodes) > 1:
                    raw["test_metadata"]["kwargs"].setdefault("to", f"ref('{nodes[0].split('.')[2]}')")
            if raw["resource_type"] == "test" and "test_metadata" in raw:
                raw["depends_on"]["macros"] = [f"macro.dbt.test_{raw['test_metadata']['name']}"]
            if "depends_on" in raw and (nodes or raw["resource_type"] != "seed"):
                raw["depends_on"]["nodes"] = nodes
            raw.update(copy.deepcopy(p.overrides))
            if p.enabled:
                data[p.collection][uid] = raw
                parent_map[uid] = list(dict.fromkeys(raw.get("depends_on", {}).get("nodes", [])))
            else:
                raw.setdefault("config", {})["enabled"] = False
                data["disabled"].setdefault(uid, []).append(raw)
        child_map: dict[str, list[str]] = {uid: [] for uid in parent_map}
        for uid, parents in parent_map.items():
            for parent in parents:
                child_map.setdefault(parent, []).append(uid)
        data["parent_map"] = parent_map
        data["child_map"] = child_map
        data["selectors"] = copy.deepcopy(self._selectors)
        group_map: dict[str, list[str]] = {}
        for uid, raw in data["nodes"].items():
            if raw.get("group"):
                group_map.setdefault(raw["group"], []).append(uid)
        for name in group_map:  # a group used but not declared: declare it, as dbt requires
            if name not in self._groups:
                self.group(name)
        data["groups"] = {g["unique_id"]: copy.deepcopy(g) for g in self._groups.values()}
        data["group_map"] = group_map
        return data

    def write(self, path: str | Path, name: str = "manifest.json") -> Path:
        """Write the manifest; ``path`` is a folder (``manifest.json`` inside it) or a ``.json`` file."""
        path = Path(path)
        if path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
            path = path / name
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.build(), option=orjson.OPT_INDENT_2))
        return path

    def load(self, path: str | Path) -> Manifest:
        """Write the manifest under ``path`` and load it with :func:`manifest_dag.load_manifest`."""
        return load_manifest(self.write(path))


def _source_ref(source: Any) -> str:
    """``"raw.orders"``, ``("raw", "orders")`` or ``"source:raw.orders"`` → ``"source:raw.orders"``."""
    if isinstance(source, tuple):
        return f"source:{source[0]}.{source[1]}"
    return source if source.startswith("source:") else f"source:{source}"


def _target_label(target: Any) -> str:
    if isinstance(target, tuple):
        return f"{target[0]}_v{target[1]}"
    return str(target).split(":", 1)[-1].replace(".", "_")


def _split_targets(targets: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    refs: list[Any] = []
    sources: list[Any] = []
    for t in targets:
        if isinstance(t, str) and t.startswith("source:"):
            sources.append(t)
        else:
            refs.append(t)
    return refs, sources


# =============================================================================================
# No dbt on the scheduler side


class DbtImportBlocked(ImportError):
    """``import dbt`` while dbt is blocked; the message names the chain of importing modules."""


@dataclass(frozen=True)
class BlockedImport:
    """One blocked ``import dbt...``: the module asked for and who asked, outermost first."""

    name: str
    chain: tuple[str, ...]

    def __str__(self) -> str:
        return " → ".join([*self.chain, f"import {self.name}"])


_IMPORT_MACHINERY = ("<frozen importlib", "importlib/__init__.py", "importlib/_bootstrap")


def _is_dbt(name: str) -> bool:
    return name == "dbt" or name.startswith("dbt.")


def _import_chain(skip_file: str) -> tuple[str, ...]:
    """Who imported dbt: the code that started the imports, each module being imported
    (outermost first), then the function that ran ``import dbt`` when it was not module code."""
    frame = sys._getframe(1)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()

    def machinery(f: Any) -> bool:
        return any(m in f.f_code.co_filename for m in _IMPORT_MACHINERY)

    chain: list[str] = []
    innermost: Any = None
    for i, f in enumerate(frames):
        if f.f_code.co_filename == skip_file or machinery(f):
            continue
        imported = f.f_code.co_name == "<module>" and i > 0 and machinery(frames[i - 1])
        if imported:
            if not chain and innermost is not None and not _third_party(innermost.f_code.co_filename):
                chain.append(_describe_frame(innermost))
            chain.append(_describe_module(f.f_globals.get("__name__", "?"), f.f_code.co_filename, f.f_lineno))
        innermost = f
    if innermost is not None and innermost.f_code.co_name != "<module>":  # imported inside a function
        chain.append(_describe_frame(innermost))
    return tuple(chain)


def _third_party(filename: str) -> bool:
    return "site-packages" in filename or "dist-packages" in filename or filename.startswith("<")


def _describe_frame(f: Any) -> str:
    name = f.f_code.co_name
    where = f"{_short(f.f_code.co_filename)}:{f.f_lineno}"
    return where if name == "<module>" else f"{name}() at {where}"


def _short(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def _describe_module(name: str, filename: str, line: int) -> str:
    short = _short(filename)
    if name.startswith("unusual_prefix_") or name == "__main__":  # Airflow's name for a DAG file
        return f"{short}:{line}"
    return f"{name} ({short}:{line})"


class NoDbt(importlib.abc.MetaPathFinder):
    """A finder that refuses ``dbt`` and ``dbt.*``; ``attempts`` records every refused import."""

    def __init__(self) -> None:
        self.attempts: list[BlockedImport] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if not _is_dbt(fullname):
            return None
        attempt = BlockedImport(fullname, _import_chain(__file__))
        self.attempts.append(attempt)
        raise DbtImportBlocked(
            f"dbt is blocked here (manifest-dag no_dbt): {attempt}. DAG files, and everything they "
            "import, run on the scheduler and DAG processor, where dbt is not installed; dbt runs "
            "only on workers, in manifest-dag's virtualenvs. Remove this import, or move it into code "
            "that runs inside a task.",
            name=fullname,
        )

    def find_module(self, fullname: str, path: Any = None) -> None:  # pragma: no cover - legacy API
        return None

    def __repr__(self) -> str:
        return f"NoDbt(attempts={[str(a) for a in self.attempts]})"


@contextlib.contextmanager
def block_dbt() -> Iterator[NoDbt]:
    """Within the block, ``import dbt`` and ``import dbt.<x>`` raise :class:`DbtImportBlocked`.

    Already-imported dbt modules are hidden for the block and restored after it.
    """
    hidden = {name: sys.modules.pop(name) for name in [m for m in sys.modules if _is_dbt(m)]}
    finder = NoDbt()
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for name in [m for m in sys.modules if _is_dbt(m)]:
            del sys.modules[name]
        sys.modules.update(hidden)


# =============================================================================================
# Loading a DAG folder like Airflow does

_FULL_TRACEBACKS = {
    "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
    "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "1000",
}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def load_dag_bag(folder: str | Path, *, check: bool = True, safe_mode: bool = False) -> Any:
    """Load every DAG file under ``folder`` as Airflow's DAG processor does, with dbt blocked.

    With ``check`` (the default), fail with an ``AssertionError`` that lists each file's import
    error in full, and every import of dbt (even one the file caught). Returns the ``DagBag``.
    """
    folder = Path(folder)
    if not folder.exists():
        raise AssertionError(f"DAG folder {folder} does not exist (check manifest_dag_dags_folder or the path given)")
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # pragma: no cover - older Airflow 3 layouts
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    with block_dbt() as guard, _environ(_FULL_TRACEBACKS):
        bag = DagBag(dag_folder=str(folder), safe_mode=safe_mode)
    bag.dbt_import_attempts = list(guard.attempts)
    if check:
        problems = []
        for path, error in sorted(bag.import_errors.items()):
            problems.append(f"--- {path}\n{str(error).rstrip()}")
        if guard.attempts and not problems:
            problems.append(
                "--- dbt was imported (and the error caught) while loading the DAG files:\n"
                + "\n".join(f"  {a}" for a in guard.attempts)
            )
        if problems:
            raise AssertionError(
                f"{len(bag.import_errors)} of the DAG files under {folder} failed to import:\n\n"
                + "\n\n".join(problems)
            )
    return bag


# =============================================================================================
# Assertions on a built DAG


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
    limit: int = 25,
) -> None:
    """Check ``dag`` against the manifest and the selection it should render.

    - every selected model, seed and snapshot (ephemeral models aside) has its group or task,
      and nothing else has one;
    - "X finishes before Y" holds in the DAG exactly when Y depends on X in the manifest, also
      through nodes without a task (ephemeral models, sources, unselected nodes);
    - every selected test runs once, after every node it tests (skipped when the DAG runs no
      tests at all, unless ``check_tests=True``);
    - each task's own dbt selection (``--select``/``--exclude``/``--selector`` as the operator
      holds them) picks exactly the nodes the task stands for, by the same selector rules as
      ``dbt ls`` (``check_commands``: by default on for DAGs of up to 500 dbt tasks, as each
      task is one selection; templated selections are skipped).

    Fails with an ``AssertionError`` listing the missing and extra groups and the wrong orderings.
    """
    __tracebackhide__ = True  # pytest shows the message, not this function's code
    import networkx as nx

    from manifest_dag.scheduler.graph import EXECUTABLE_TYPES, TEST_TYPES, DbtGraph
    from manifest_dag.scheduler.selection import select_nodes

    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    prefix, plan = _plans(dag, group_id)
    graph = DbtGraph(manifest)
    nodes = manifest.nodes
    selected = select_nodes(
        manifest, select=select, exclude=exclude, selector=selector,
        indirect_selection=indirect_selection, graph=graph,
    )

    def keeps(uid: str) -> bool:
        return include_packages or nodes[uid].package_name == manifest.project_name

    expected = {
        u for u in selected
        if nodes[u].resource_type in EXECUTABLE_TYPES and not nodes[u].is_ephemeral and keeps(u)
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
        return "group" if nodes[uid].resource_type == "model" and (plan.groups or not actual) else "task"

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
    rendered = [u for u in graph.topological_order() if u in actual]
    index = {u: i for i, u in enumerate(rendered)}
    m_bits = _closure(graph.topological_order(), graph.parents, lambda p: 1 << index[p] if p in index else 0)
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
            path = nx.shortest_path(graph.graph, x, y)
            via = f" via {' → '.join(nodes[p].label for p in path[1:-1])}" if len(path) > 2 else ""
            lines.append(f"  - {nodes[x].label} → {nodes[y].label}: {nodes[y].label} depends on {nodes[x].label}{via}, "
                         "but the DAG can start it first")
        lines += _more(needed, limit)
        for x, y in unneeded[:limit]:
            lines.append(f"  + {nodes[x].label} → {nodes[y].label}: the DAG waits, but {nodes[y].label} does not depend "
                         f"on {nodes[x].label} in the manifest")
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


def _check_commands(dag: Any, prefix: str, plan: RenderPlan, manifest: Manifest, graph: Any) -> list[str]:
    from manifest_dag.core.errors import SelectionError
    from manifest_dag.scheduler.graph import TEST_TYPES
    from manifest_dag.scheduler.selection import select_nodes

    nodes = manifest.nodes
    kinds = {"run": {"model"}, "seed": {"seed"}, "snapshot": {"snapshot"}, "source freshness": {"source"},
             "test": set(TEST_TYPES), "build": {"model", "seed", "snapshot", *TEST_TYPES}}
    wrong: list[str] = []
    for spec in plan.tasks:
        task = dag.task_dict.get(prefix + spec.task_id)
        command = getattr(task, "dbt_command", None)
        if task is None or command not in kinds:
            continue
        select, exclude = list(task.select or ()), list(task.exclude or ())
        if any("{{" in str(v) for v in (*select, *exclude, task.selector or "")):
            continue
        try:
            picked = select_nodes(
                manifest, select=select, exclude=exclude, selector=task.selector,
                indirect_selection=task.indirect_selection or "eager", graph=graph,
            )
        except SelectionError as exc:
            wrong.append(f"  ! {prefix + spec.task_id}: dbt {' '.join(task.dbt_args())}: {exc}")
            continue
        runs = {u for u in picked if nodes[u].resource_type in kinds[command]}
        stands = {u for u in spec.node_ids if u in nodes and nodes[u].resource_type in kinds[command]}
        if runs != stands:
            more = sorted(nodes[u].label for u in runs - stands)
            less = sorted(nodes[u].label for u in stands - runs)
            parts = ([f"also runs {', '.join(more)}"] if more else []) + ([f"does not run {', '.join(less)}"] if less else [])
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
    local = tid[len(prefix):]
    return local.split(".", 1)[0] if uid in grouped and "." in local else local


def _selection_text(manifest: Manifest, select: Any, exclude: Any, selector: str | None) -> str:
    parts = []
    if select:
        parts.append(f"select={list([select] if isinstance(select, str) else select)}")
    if exclude:
        parts.append(f"exclude={list([exclude] if isinstance(exclude, str) else exclude)}")
    if selector:
        parts.append(f"selector={selector!r}")
    return ", ".join(parts) or "default selection"


# =============================================================================================
# Golden files


#: Set by the pytest plugin from ``--manifest-dag-update-golden``; the environment variable
#: ``MANIFEST_DAG_UPDATE_GOLDEN=1`` does the same outside pytest.
UPDATE_GOLDEN = False


def dag_shape(dag: Any, *, commands: bool = True) -> str:
    """A stable, sorted text form of ``dag``'s groups, tasks and edges, for golden files.

    Each task shows its operator class and, for manifest-dag operators, its dbt arguments
    (``commands=False`` leaves those out).
    """
    groups = sorted(gid for gid in dag.task_group.get_task_group_dict() if gid)
    lines = [f"dag {dag.dag_id}", f"groups ({len(groups)}):"]
    lines += [f"  {g}" for g in groups]
    task_ids = sorted(dag.task_dict)
    lines.append(f"tasks ({len(task_ids)}):")
    for tid in task_ids:
        task = dag.task_dict[tid]
        text = f"  {tid}: {type(task).__name__}"
        if commands and callable(getattr(task, "dbt_args", None)):
            text += " dbt " + " ".join(str(a) for a in task.dbt_args())
        lines.append(text)
    edges = sorted((up, tid) for tid in task_ids for up in dag.task_dict[tid].upstream_task_ids)
    lines.append(f"edges ({len(edges)}):")
    lines += [f"  {a} >> {b}" for a, b in edges]
    return "\n".join(lines) + "\n"


def assert_matches_golden(text: str, path: str | Path, *, update: bool | None = None) -> None:
    """Compare ``text`` with the golden file ``path``; fail with a unified diff.

    With ``update`` (default: pytest's ``--manifest-dag-update-golden`` or the environment
    variable ``MANIFEST_DAG_UPDATE_GOLDEN=1``) the file is (re)written instead.
    """
    __tracebackhide__ = True
    path = Path(path)
    if update is None:
        update = UPDATE_GOLDEN or os.environ.get("MANIFEST_DAG_UPDATE_GOLDEN", "") not in ("", "0", "false")
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(
            f"golden file {path} does not exist; run pytest with --manifest-dag-update-golden to write it"
        )
    golden = path.read_text(encoding="utf-8")
    if golden == text:
        return
    diff = "".join(
        difflib.unified_diff(
            golden.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"{path} (golden)", tofile="actual",
        )
    )
    raise AssertionError(
        f"does not match golden file {path}:\n{diff}\n"
        "If the change is intended, run pytest with --manifest-dag-update-golden and commit the file."
    )


# =============================================================================================
# Dry run of one task

MASK = "***"
_SECRET_NAME = re.compile(r"password|passwd|secret|token|private_key|passphrase|credential|api_key|apikey", re.I)
_YAML_SECRET = re.compile(
    r"^(?P<key>\s*[\"']?[A-Za-z0-9_-]*(?:password|passwd|secret|token|private_key|passphrase|credential|api_key)"
    r"[A-Za-z0-9_-]*[\"']?\s*:\s*)(?P<value>.+)$",
    re.I | re.M,
)
#: placeholders for paths that exist only while the task runs
VENV_DIR = "<venv>"
WORKSPACE_DIR = "<workspace>"
PROFILES_DIR = "<profiles-dir>"


@dataclass(frozen=True)
class TaskPlan:
    """What a task would run on a worker; ``str()`` prints it."""

    task_id: str
    command: str
    #: the dbt arguments after ``dbt`` (command, selection, flags), templates rendered
    dbt_args: tuple[str, ...]
    #: the full argv run_dbt starts, with the worker-side paths as placeholders
    argv: tuple[str, ...]
    venv_key: str
    requirements: tuple[str, ...]
    python: str | None
    #: environment dbt gets on top of the venv's (``PATH``...): name → value, secrets ``***``
    env: Mapping[str, str]
    profile_source: str
    #: the ``profiles.yml`` the task would use, secrets masked (None: dbt's own lookup)
    profiles_yml: str | None
    #: ``vars`` after rendering (secrets masked), and the ``--vars`` JSON
    vars: Any
    vars_json: str | None
    project_dir: str
    logical_date: Any
    install_deps: bool = False
    rendered: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.env))

    def __str__(self) -> str:
        lines = [
            f"task {self.task_id} (logical date {self.logical_date})",
            f"  venv {self.venv_key}: {' '.join(self.requirements)}" + (f" (python {self.python})" if self.python else ""),
            f"  dbt {' '.join(self.dbt_args)}",
            f"  argv: {' '.join(self.argv)}",
            f"  project_dir: {self.project_dir}" + ("  (dbt deps when needed)" if self.install_deps else ""),
            f"  vars: {self.vars_json or '-'}",
            "  env: " + (", ".join(f"{k}={v}" for k, v in sorted(self.env.items())) or "-"),
            f"  profile: {self.profile_source}",
        ]
        if self.profiles_yml:
            lines += ["    " + line for line in self.profiles_yml.rstrip().splitlines()]
        return "\n".join(lines)


def _mask_yaml(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, MASK)

    def sub(m: re.Match[str]) -> str:
        value = m.group("value").strip()
        if "env_var(" in value or value in ("", "null", "~", "'***'", MASK):
            return m.group(0)
        return f"{m.group('key')}'{MASK}'"

    return _YAML_SECRET.sub(sub, text)


def _mask_value(key: str, value: Any, secrets: Iterable[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_value(str(k), v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(key, v, secrets) for v in value]
    if isinstance(value, str):
        if _SECRET_NAME.search(key) and value:
            return MASK
        for secret in secrets:
            if secret and len(secret) >= 3 and secret in value:
                value = value.replace(secret, MASK)
    return value


def _context(task: Any, logical_date: Any, params: Mapping[str, Any] | None, data_interval: Any, run_id: str | None) -> dict[str, Any]:
    from airflow.sdk.definitions.param import process_params
    from airflow.sdk.execution_time.context import ConnectionAccessor, MacrosAccessor, VariableAccessor
    from airflow.sdk.timezone import coerce_datetime

    logical_date = coerce_datetime(logical_date)
    start, end = data_interval if data_interval is not None else (logical_date, logical_date)
    ds = logical_date.strftime("%Y-%m-%d")
    ts = logical_date.isoformat()
    run_id = run_id or f"manual__{ts}"
    return {
        "dag": task.dag,
        "task": task,
        "run_id": run_id,
        # copies: Airflow sets a run's conf into the Param objects, which the DAG's tasks share
        "params": process_params(
            SimpleNamespace(params=copy.deepcopy(getattr(task.dag, "params", None) or {})),
            SimpleNamespace(params=copy.deepcopy(task.params)),
            dict(params or {}),
            suppress_exception=False,
        ),
        "macros": MacrosAccessor(),
        "var": {"json": VariableAccessor(deserialize_json=True), "value": VariableAccessor(deserialize_json=False)},
        "conn": ConnectionAccessor(),
        "logical_date": logical_date,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "data_interval_start": coerce_datetime(start),
        "data_interval_end": coerce_datetime(end),
        "task_instance_key_str": f"{task.dag_id}__{task.task_id}__{ds.replace('-', '')}",
        "inlets": task.inlets,
        "outlets": task.outlets,
    }


def plan_task(
    task: Any,
    *,
    logical_date: Any = None,
    params: Mapping[str, Any] | None = None,
    data_interval: tuple[Any, Any] | None = None,
    run_id: str | None = None,
    connections: Mapping[str, Any] | None = None,
) -> TaskPlan:
    """A dry run of a manifest-dag task: what it would run on a worker, with nothing run.

    Templated fields (``select``, ``vars``, ``env``, flags ...) are rendered by Airflow's own
    templating for ``logical_date`` (default: the DAG's start date) and the run's ``params``
    (as a triggered run's conf). No venv is built and dbt is not started; the profile is made
    from ``connections[conn_id]`` when given (a Connection or a dict of its fields), else fetched
    the way a worker would (``AIRFLOW_CONN_<ID>`` environment variables in tests).
    """
    from manifest_dag.operators import DbtVenvOperator
    from manifest_dag.worker.profiles import RenderedProfile, profile_from_connection, resolve_profile
    from manifest_dag.worker.runner import build_dbt_argv, invocation_for, profile_flags
    from manifest_dag.worker.venv import normalise_requirements, venv_key
    from manifest_dag.worker.workspace import canonical_vars

    if not isinstance(task, DbtVenvOperator):
        raise TypeError(f"plan_task takes a manifest-dag operator, got {type(task).__name__}")
    if logical_date is None:
        logical_date = getattr(task.dag, "start_date", None) or getattr(task, "start_date", None)
        if logical_date is None:
            raise ValueError("plan_task: give logical_date= (the DAG has no start_date)")
    rendered_task = task.prepare_for_execution()
    context = _context(rendered_task, logical_date, params, data_interval, run_id)
    rendered_task.render_template_fields(context)
    inv = invocation_for(rendered_task)
    spec = inv.venv_spec
    pc = inv.profile_config
    profile: Any = None
    if pc is not None and pc.conn_id and connections and pc.conn_id in connections:
        conn = connections[pc.conn_id]
        if isinstance(conn, Mapping):
            conn = SimpleNamespace(conn_id=pc.conn_id, **{k: conn.get(k) for k in
                                   ("conn_type", "host", "port", "login", "password", "schema", "extra")})
        profile = profile_from_connection(conn, pc.profile_name, pc.target_name, pc.profile_args)
    elif pc is not None:
        profile = resolve_profile(pc, inv.project_dir)
    secrets = set(profile.secrets) if isinstance(profile, RenderedProfile) else set()
    profiles_yml: str | None = None
    if isinstance(profile, RenderedProfile):
        profiles_yml = _mask_yaml(profile.profiles_yml, secrets)
        source = f"from Airflow connection {pc.conn_id!r} (written to {PROFILES_DIR}/profiles.yml, mode 0600)"
    elif isinstance(profile, Path):
        try:
            profiles_yml = _mask_yaml(profile.read_text(encoding="utf-8"), secrets)
        except OSError:
            profiles_yml = None
        source = f"file {profile} (copied to {PROFILES_DIR}/profiles.yml)"
    else:
        source = "none: dbt looks for profiles.yml itself"
    env: dict[str, str] = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for name, value in inv.env.items():
        env[name] = _mask_value(name, value, secrets)
    if isinstance(profile, RenderedProfile):
        env.update({name: MASK for name in profile.env})
    vars_json = canonical_vars(inv.dbt_vars)
    shown_vars = _mask_value("vars", inv.dbt_vars, secrets)
    shown_vars_json = canonical_vars(shown_vars) if isinstance(shown_vars, Mapping) else (
        _mask_value("vars", vars_json, secrets) if vars_json else None
    )
    # the argv run_dbt builds (runner.run_dbt's dbt_argv), paths as placeholders
    args = list(inv.command_args)
    project = f"{WORKSPACE_DIR}/project"
    profile_args: list[str] = []
    if isinstance(profile, (RenderedProfile, Path)):
        profile_args = ["--profiles-dir", PROFILES_DIR]
    if pc is not None:
        profile_args += profile_flags(pc, inv.project_dir, profile)
    argv = build_dbt_argv(
        f"{VENV_DIR}/bin/dbt", args, project, profile_args, f"{project}/target", f"{project}/logs", shown_vars_json
    )
    return TaskPlan(
        task_id=task.task_id,
        command=rendered_task.dbt_command,
        dbt_args=tuple(args),
        argv=tuple(argv),
        venv_key=venv_key(spec),
        requirements=normalise_requirements(spec.requirements),
        python=spec.python,
        env=env,
        profile_source=source,
        profiles_yml=profiles_yml,
        vars=shown_vars,
        vars_json=shown_vars_json,
        project_dir=str(inv.project_dir),
        logical_date=context["logical_date"],
        install_deps=inv.install_deps,
        rendered={name: getattr(rendered_task, name) for name in rendered_task.template_fields},
    )
