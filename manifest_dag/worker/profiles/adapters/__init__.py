"""The built-in adapters, one module per warehouse; importing this package registers them all.

Each module builds one dbt target type from its Airflow ``conn_type`` and registers itself in
``registry.ADAPTERS`` when imported. They are imported here by name, not discovered, so the
table is the same in every process and a stray module cannot join it.
"""

from __future__ import annotations

from manifest_dag.worker.profiles.adapters import (
    athena,
    bigquery,
    clickhouse,
    databricks,
    duckdb,
    exasol,
    mysql,
    oracle,
    postgres,
    redshift,
    snowflake,
    spark,
    sqlserver,
    teradata,
    trino,
    vertica,
)

__all__ = [
    "athena",
    "bigquery",
    "clickhouse",
    "databricks",
    "duckdb",
    "exasol",
    "mysql",
    "oracle",
    "postgres",
    "redshift",
    "snowflake",
    "spark",
    "sqlserver",
    "teradata",
    "trino",
    "vertica",
]
