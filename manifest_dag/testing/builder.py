"""ManifestBuilder: small, valid dbt manifests written by a test, with no dbt project behind them.

A test of a DAG needs a manifest, and a real one takes a dbt install and a parse to make, which
CI on the scheduler side must not need. The builder declares nodes by name, resolves references
when the manifest is built (so nodes may be declared in any order) and writes every field dbt
writes for the chosen schema version (the tables are in :mod:`manifest_dag.testing.manifest_fields`),
so what the reader meets in a test is what it meets in production.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from manifest_dag.scheduler.manifest import Manifest, load_manifest
from manifest_dag.testing.manifest_fields import (
    FOLDER,
    NODE_CONFIG,
    SCHEMA_DBT_VERSION,
    SNAPSHOT_CONFIG,
    SUFFIX,
    TEST_CONFIG,
    TOP_LEVEL,
)

__all__ = ["ManifestBuilder"]


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
        if schema_version not in SCHEMA_DBT_VERSION:
            raise ValueError(f"ManifestBuilder writes manifest schema v9-v12 (dbt 1.5 to 1.12), not v{schema_version}")
        self.project = project
        self.schema_version = schema_version
        self.dbt_version = dbt_version or SCHEMA_DBT_VERSION[schema_version]
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

    def _find(
        self, name: str, *, resource_type: str | None = None, package: str | None = None, version: Any = None
    ) -> str | None:
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
            latest = [
                u
                for u in candidates
                if str(self._nodes[u].raw.get("version")) == str(self._nodes[u].raw.get("latest_version"))
            ]
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
        items: Iterable[tuple[Any, Any]]
        if isinstance(columns, Mapping):
            items = columns.items()
        else:
            items = ((c, {}) for c in columns)
        out: dict[str, Any] = {}
        for name, spec in items:
            spec = {"description": spec} if isinstance(spec, str) else dict(spec or {})
            entry: dict[str, Any] = {
                "name": name,
                "description": spec.pop("description", ""),
                "meta": spec.pop("meta", {}),
                "data_type": spec.pop("data_type", None),
                "constraints": spec.pop("constraints", []),
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
        path = path or f"{file_name}{SUFFIX[resource_type]}"
        folder = FOLDER[resource_type]
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
            "checksum": {
                "name": "sha256",
                "checksum": hashlib.sha256(f"{package}.{name}.{version}".encode()).hexdigest(),
            },
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
                    name,
                    refs=refs,
                    sources=sources,
                    depends_on=depends_on,
                    materialized=materialized,
                    tags=tags,
                    path=path.replace("{version}", str(v)) if path else None,
                    package=package,
                    config=config,
                    meta=meta,
                    description=description,
                    columns=columns,
                    version=v,
                    latest_version=latest,
                    access=access,
                    group=group,
                    language=language,
                    enabled=enabled,
                    **fields,
                )
            return self
        cfg: dict[str, Any] = {"materialized": materialized, "access": access, "group": group, "freshness": None}
        cfg.update(dict(config or {}))
        cfg["enabled"] = enabled
        raw = self._sql_node(
            "model",
            name,
            package=package,
            path=path,
            tags=tags,
            config=cfg,
            meta=meta,
            description=description,
            columns=columns,
            base_config=NODE_CONFIG,
            version=version,
        )
        if self.schema_version < 12:
            for key in (
                "static_analysis",
                "lookback",
                "batch_size",
                "begin",
                "event_time",
                "concurrent_batches",
                "freshness",
            ):
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
        cfg = {
            "materialized": "seed",
            "delimiter": ",",
            "quote_columns": None,
            **dict(config or {}),
            "enabled": enabled,
        }
        raw = self._sql_node(
            "seed",
            name,
            package=package,
            path=path,
            tags=tags,
            config=cfg,
            meta=meta,
            description=description,
            columns=columns,
            base_config=NODE_CONFIG,
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
        cfg = {
            "materialized": "snapshot",
            "unique_key": unique_key,
            **SNAPSHOT_CONFIG,
            **dict(config or {}),
            "enabled": enabled,
        }
        raw = self._sql_node(
            "snapshot",
            name,
            package=package,
            path=path,
            tags=tags,
            config=cfg,
            meta=meta,
            description=description,
            columns=columns,
            base_config=NODE_CONFIG,
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
            "test",
            test_node_name,
            package=package,
            path=None,
            tags=tags,
            config=cfg,
            meta=None,
            description="",
            columns=None,
            base_config=TEST_CONFIG,
            schema=f"{self.schema}_dbt_test__audit",
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
            "test",
            name,
            package=package,
            path=path,
            tags=tags,
            config=cfg,
            meta=None,
            description="",
            columns=None,
            base_config=TEST_CONFIG,
            schema=f"{self.schema}_dbt_test__audit",
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
            fresh = {
                "warn_after": {"count": 12, "period": "hour"},
                "error_after": {"count": 24, "period": "hour"},
                "filter": None,
            }
        elif isinstance(freshness, Mapping):
            fresh = {"filter": None, **dict(freshness)}
        else:
            fresh = {
                "warn_after": {"count": None, "period": None},
                "error_after": {"count": None, "period": None},
                "filter": None,
            }
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
                "enabled": enabled,
                "event_time": None,
                "freshness": fresh,
                "loaded_at_field": loaded_at_field,
                "loaded_at_query": None,
                "meta": dict(meta or {}),
                "tags": list(tags),
                "static_analysis": None,
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
            for key in (
                "event_time",
                "freshness",
                "loaded_at_field",
                "loaded_at_query",
                "meta",
                "tags",
                "static_analysis",
            ):
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
        pending = _Pending(
            raw["unique_id"],
            raw,
            list(refs),
            list(sources),
            list(depends_on) if depends_on is not None else None,
            collection="exposures",
            enabled=enabled,
            overrides=dict(fields),
        )
        return self._add(pending)

    def function(
        self,
        name: str,
        *,
        arguments: Sequence[tuple[str, str]] = (("value", "varchar"),),
        returns: str = "boolean",
        function_type: str = "scalar",
        tags: Sequence[str] = (),
        path: str | None = None,
        package: str | None = None,
        config: Mapping[str, Any] | None = None,
        description: str = "",
        enabled: bool = True,
        **fields: Any,
    ) -> ManifestBuilder:
        """A user-defined function (dbt 1.11+, schema v12), in the manifest's ``functions``.

        Models reach it as ``refs=["<function name>"]`` (dbt records it under ``functions``)."""
        if self.schema_version < 12:
            raise ValueError("functions exist from dbt 1.11 (manifest schema v12)")
        cfg = {
            "materialized": "function",
            "type": function_type,
            "volatility": None,
            "runtime_version": None,
            "entry_point": None,
            **dict(config or {}),
            "enabled": enabled,
        }
        for key in ("access", "freshness"):
            cfg.pop(key, None)
        raw = self._sql_node(
            "function",
            name,
            package=package,
            path=path,
            tags=tags,
            config=cfg,
            meta=None,
            description=description,
            columns=None,
            base_config=NODE_CONFIG,
        )
        raw["relation_name"] = None
        self._code_fields(raw)
        raw["returns"] = {"data_type": returns, "description": None}
        raw["arguments"] = [
            {"name": arg, "data_type": kind, "description": None, "default_value": None} for arg, kind in arguments
        ]
        uid = f"function.{raw['package_name']}.{name}"
        pending = _Pending(uid, raw, collection="functions", enabled=enabled, overrides=dict(fields))
        raw["unique_id"] = uid
        return self._add(pending)

    def unit_test(self, name: str, *, model: Any, **fields: Any) -> ManifestBuilder:
        """A unit test of ``model`` (dbt 1.8+: schema v12 only)."""
        if self.schema_version < 12:
            raise ValueError("unit tests exist from manifest schema v12 (dbt 1.8)")
        model_name = model[0] if isinstance(model, tuple) else model
        raw: dict[str, Any] = {
            "model": model_name,
            "given": [],
            "expect": {"rows": [], "format": "dict", "fixture": None},
            "name": name,
            "resource_type": "unit_test",
            "package_name": self.project,
            "path": "unit_tests.yml",
            "original_file_path": "models/unit_tests.yml",
            "unique_id": f"unit_test.{self.project}.{model_name}.{name}",
            "fqn": [self.project, model_name, name],
            "description": "",
            "overrides": None,
            "depends_on": {"macros": [], "nodes": []},
            "config": {"tags": [], "meta": {}, "enabled": True, "static_analysis": None},
            "checksum": "",
            "schema": self.schema,
            "created_at": self._time(),
            "versions": None,
            "version": None,
        }
        pending = _Pending(raw["unique_id"], raw, [model], collection="unit_tests", overrides=dict(fields))
        return self._add(pending)

    def selector(self, name: str, definition: Any, *, description: str = "", default: bool = False) -> ManifestBuilder:
        """A YAML selector, as dbt stores it from ``selectors.yml`` (``definition`` as written there)."""
        entry: dict[str, Any] = {"name": name, "description": description, "definition": definition}
        if default:
            entry["default"] = True
        self._selectors[name] = entry
        return self

    def group(self, name: str, *, owner: Mapping[str, Any] | None = None) -> ManifestBuilder:
        self._groups[name] = {
            "name": name,
            "resource_type": "group",
            "package_name": self.project,
            "path": "groups.yml",
            "original_file_path": "models/groups.yml",
            "unique_id": f"group.{self.project}.{name}",
            "owner": dict(owner or {"name": name, "email": None}),
            "description": None,
            "config": {"meta": {}},
        }
        return self

    def _pending(self, uid, raw, refs, sources, depends_on, enabled, fields) -> ManifestBuilder:
        raw["unique_id"] = uid
        return self._add(
            _Pending(
                uid,
                raw,
                list(refs),
                list(sources),
                list(depends_on) if depends_on is not None else None,
                enabled=enabled,
                overrides=dict(fields),
            )
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
        data: dict[str, Any] = {key: {} for key in TOP_LEVEL[v]}
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
                        if found.startswith("function.") and "functions" in raw:
                            raw["functions"].append([ref_entry["name"]])  # {{ function('name') }}
                        elif "refs" in raw:
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
