"""OpenLineage dataset naming and the Asset URIs cosmos makes of it (``core.openlineage``)."""

from __future__ import annotations

import pytest

from manifest_dag import openlineage_namespace
from manifest_dag.core.errors import ConfigError
from manifest_dag.core.openlineage import asset_uri, check_namespace, dataset_name, default_namespace


@pytest.mark.parametrize(
    ("target", "namespace"),
    [
        ({"type": "postgres", "host": "db.example.com", "port": 5433, "password": "x"}, "postgres://db.example.com:5433"),
        ({"type": "postgres", "host": "db"}, "postgres://db:5432"),  # dbt's default port
        ({"type": "redshift", "host": "c.abc.us-west-2.redshift.amazonaws.com"}, "redshift://c.abc.us-west-2.redshift.amazonaws.com:5439"),
        ({"type": "trino", "host": "trino", "port": 8443}, "trino://trino:8443"),
        ({"type": "sqlserver", "server": "sql", "port": 1433}, "mssql://sql:1433"),
        ({"type": "databricks", "host": "dbc-1.cloud.databricks.com"}, "databricks://dbc-1.cloud.databricks.com"),
        ({"type": "spark", "host": "spark", "method": "thrift"}, "spark://spark:10001"),
        ({"type": "bigquery", "project": "p"}, "bigquery"),
        ({"type": "athena", "region_name": "eu-west-1"}, "awsathena://athena.eu-west-1.amazonaws.com"),
        ({"type": "glue", "region": "eu-west-1", "role_arn": "arn:aws:iam::123456789012:role/dbt"}, "arn:aws:glue:eu-west-1:123456789012"),
        ({"type": "duckdb", "path": "/data/shop.duckdb"}, "duckdb:///data/shop.duckdb"),
        ({"type": "DuckDB", "path": "/data/shop.duckdb"}, "duckdb:///data/shop.duckdb"),
    ],
)
def test_namespaces_as_openlineage_names_them(target: dict, namespace: str) -> None:
    assert openlineage_namespace(target) == namespace


def test_snowflake_accounts() -> None:
    assert openlineage_namespace({"type": "snowflake", "account": "myorg-myaccount"}) == "snowflake://myorg-myaccount"


def test_a_missing_field_or_an_unknown_adapter_is_named() -> None:
    with pytest.raises(ConfigError, match=r"postgres target \(postgres://<host>:<port>\) needs its 'host' field"):
        openlineage_namespace({"type": "postgres", "port": 5432})
    with pytest.raises(ConfigError, match=r"no dataset naming for dbt adapter 'oracle'"):
        openlineage_namespace({"type": "oracle", "host": "o"})


def test_names_and_uris_as_cosmos_writes_them_on_airflow_3() -> None:
    # cosmos's documented example (Airflow 3): postgres://0.0.0.0:5434/postgres/public/orders
    assert asset_uri("postgres://0.0.0.0:5434", "postgres.public.orders") == "postgres://0.0.0.0:5434/postgres/public/orders"
    assert asset_uri("duckdb:///data/shop.duckdb/", "shop.main.orders") == "duckdb:///data/shop.duckdb/shop/main/orders"
    assert asset_uri("bigquery", "proj.ds.t") == "bigquery/proj/ds/t"
    assert asset_uri("postgres://h:1", "db.sch.my table") == "postgres://h:1/db/sch/my%20table"  # quoted as cosmos does
    assert dataset_name("db", "sch", "t") == "db.sch.t"
    assert dataset_name(None, "sch", "t") == "sch.t"
    assert dataset_name("db", None, "t") is None and dataset_name("db", "s", None) is None
    assert default_namespace("bigquery") == "bigquery" and default_namespace("postgres") is None


def test_the_namespace_option_is_checked() -> None:
    assert check_namespace(None, "x") is None
    assert check_namespace(" postgres://db:5432/ ", "x") == "postgres://db:5432"
    for bad in ("", "postgres://db 5432", 5432):
        with pytest.raises(ConfigError, match="RenderConfig.asset_namespace: must be an OpenLineage dataset namespace"):
            check_namespace(bad, "RenderConfig.asset_namespace")
