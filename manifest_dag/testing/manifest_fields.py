"""What dbt writes into a manifest, by schema version: the tables ManifestBuilder fills in from.

A test manifest is only worth something if it looks like one dbt wrote, so the reader meets
every field it meets in production. These are dbt's defaults per manifest schema version
(v9-v12: dbt 1.5 to 1.12), kept apart from the builder's logic so that following a new dbt
release means editing data here, not code in :mod:`manifest_dag.testing.builder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: dbt-core version written for each schema version (the oldest dbt that writes it, except v12).
SCHEMA_DBT_VERSION: Mapping[int, str] = {9: "1.5.0", 10: "1.6.0", 11: "1.7.0", 12: "1.11.0"}

#: The manifest's top-level keys, by schema version.
TOP_LEVEL: dict[int, tuple[str, ...]] = {
    9: (
        "metadata",
        "nodes",
        "sources",
        "macros",
        "docs",
        "exposures",
        "metrics",
        "groups",
        "selectors",
        "disabled",
        "parent_map",
        "child_map",
        "group_map",
    ),
}
TOP_LEVEL[10] = (*TOP_LEVEL[9], "semantic_models")
TOP_LEVEL[11] = (*TOP_LEVEL[10], "saved_queries")
TOP_LEVEL[12] = (*TOP_LEVEL[11], "unit_tests", "functions")

#: A model's, seed's or snapshot's ``config`` as dbt writes it (schema v12; older ones drop keys).
NODE_CONFIG: Mapping[str, Any] = {
    "enabled": True,
    "alias": None,
    "schema": None,
    "database": None,
    "tags": [],
    "meta": {},
    "group": None,
    "static_analysis": None,
    "materialized": "view",
    "incremental_strategy": None,
    "batch_size": None,
    "lookback": 1,
    "begin": None,
    "persist_docs": {},
    "post-hook": [],
    "pre-hook": [],
    "quoting": {},
    "column_types": {},
    "full_refresh": None,
    "unique_key": None,
    "on_schema_change": "ignore",
    "on_configuration_change": "apply",
    "grants": {},
    "packages": [],
    "docs": {"show": True, "node_color": None},
    "contract": {"enforced": False, "alias_types": True},
    "event_time": None,
    "concurrent_batches": None,
}
#: A data test's ``config``.
TEST_CONFIG: Mapping[str, Any] = {
    "enabled": True,
    "alias": None,
    "schema": "dbt_test__audit",
    "database": None,
    "tags": [],
    "meta": {},
    "group": None,
    "static_analysis": None,
    "materialized": "test",
    "severity": "ERROR",
    "store_failures": None,
    "store_failures_as": None,
    "where": None,
    "limit": None,
    "fail_calc": "count(*)",
    "warn_if": "!= 0",
    "error_if": "!= 0",
}
#: What a snapshot's ``config`` adds to :data:`NODE_CONFIG`.
SNAPSHOT_CONFIG: Mapping[str, Any] = {
    "strategy": "timestamp",
    "target_schema": None,
    "target_database": None,
    "updated_at": "updated_at",
    "check_cols": None,
    "snapshot_meta_column_names": {
        "dbt_valid_to": None,
        "dbt_valid_from": None,
        "dbt_scd_id": None,
        "dbt_updated_at": None,
        "dbt_is_deleted": None,
    },
    "dbt_valid_to_current": None,
}
#: The project folder each resource type's files live in, and their suffix.
FOLDER: Mapping[str, str] = {
    "model": "models",
    "seed": "seeds",
    "snapshot": "snapshots",
    "test": "tests",
    "analysis": "analyses",
    "function": "functions",
}
SUFFIX: Mapping[str, str] = {
    "model": ".sql",
    "seed": ".csv",
    "snapshot": ".sql",
    "test": ".sql",
    "analysis": ".sql",
    "function": ".sql",
}
