"""The built-in adapters, one module per warehouse; importing this package registers them all.

Each module builds one dbt target type from its Airflow ``conn_type`` and registers itself in
``registry.ADAPTERS`` when imported. They are imported here by name, not discovered, so the
table is the same in every process and a stray module cannot join it.
"""

from __future__ import annotations

from manifest_dag.worker.profiles.adapters import bigquery, duckdb, postgres, redshift, snowflake, trino

__all__ = ["bigquery", "duckdb", "postgres", "redshift", "snowflake", "trino"]
