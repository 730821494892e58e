"""Dataset names as OpenLineage writes them, and the Asset URIs cosmos makes of them.

A table is named by a *namespace*, the data source (``postgres://db.example.com:5432``,
``snowflake://myorg-myaccount``, ``bigquery``, ``duckdb:///data/shop.duckdb``), and a *name*,
``<database>.<schema>.<table>`` (OpenLineage's dataset naming spec; its dbt integration builds
both from the dbt target). cosmos turns the two into an Airflow Asset URI as
``<namespace>/<database>/<schema>/<table>`` on Airflow 3 (dots as slashes: Airflow 3 refuses the
dotted form for some schemes). Emitting the very same URIs keeps the downstream DAGs of a
migrated project scheduled.

The namespace needs the target's host and port (or account, or file), which live in the dbt
profile or an Airflow Connection: the scheduler reads neither (no database hit per parse), so a
DAG gives it (``RenderConfig.asset_namespace``), built with ``openlineage_namespace`` from the
target's fields where that helps. No Airflow import here.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from manifest_dag.core.errors import ConfigError

#: the target fields a namespace is made of; nothing else of a target is read (never a secret)
NAMESPACE_FIELDS = frozenset(
    {
        "type",
        "host",
        "port",
        "account",
        "path",
        "server",
        "software_host",
        "region_name",
        "region",
        "account_id",
        "role_arn",
        "method",
    }
)


def _spark(target: Mapping[str, Any]) -> str:
    port = target.get("port")
    if port is None:
        port = {"http": 443, "odbc": 443, "thrift": 10001}.get(str(target.get("method", "")), 10000)
    return f"spark://{target['host']}:{port}"


def _glue(target: Mapping[str, Any]) -> str:
    account = target.get("account_id")
    if account is None:
        parts = str(target["role_arn"]).split(":")  # arn:aws:iam::<account>:role/<name>
        account = parts[4] if len(parts) > 4 else ""
    return f"arn:aws:glue:{target['region']}:{account}"


def _snowflake(target: Mapping[str, Any]) -> str:
    account = str(target["account"])
    try:  # OpenLineage's own normalisation of legacy account locators, when it is installed
        from openlineage.common.provider.snowflake import fix_account_name

        account = str(fix_account_name(account))
    except ImportError:
        pass
    return f"snowflake://{account}"


#: dbt adapter -> (what the namespace looks like, how it is made from the target's fields), as
#: OpenLineage's dbt integration makes it (a missing port takes the adapter's default)
NAMESPACES: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "postgres": ("postgres://<host>:<port>", lambda t: f"postgres://{t['host']}:{t.get('port', 5432)}"),
    "redshift": ("redshift://<host>:<port>", lambda t: f"redshift://{t['host']}:{t.get('port', 5439)}"),
    "trino": ("trino://<host>:<port>", lambda t: f"trino://{t['host']}:{t.get('port', 8080)}"),
    "clickhouse": ("clickhouse://<host>:<port>", lambda t: f"clickhouse://{t['host']}:{t.get('port', 8123)}"),
    "sqlserver": ("mssql://<server>:<port>", lambda t: f"mssql://{t['server']}:{t.get('port', 1433)}"),
    "dremio": ("dremio://<software_host>:<port>", lambda t: f"dremio://{t['software_host']}:{t.get('port', 443)}"),
    "databricks": ("databricks://<host>", lambda t: f"databricks://{t['host']}"),
    "spark": ("spark://<host>:<port>", _spark),
    "snowflake": ("snowflake://<organization>-<account>", _snowflake),
    "bigquery": ("bigquery", lambda t: "bigquery"),
    "athena": (
        "awsathena://athena.<region_name>.amazonaws.com",
        lambda t: f"awsathena://athena.{t['region_name']}.amazonaws.com",
    ),
    "glue": ("arn:aws:glue:<region>:<account id>", _glue),
    "duckdb": ("duckdb://<path of the database file>", lambda t: f"duckdb://{t['path']}"),
}

#: adapters whose namespace needs nothing of the target
_CONSTANT = {"bigquery": "bigquery"}


def openlineage_namespace(target: Mapping[str, Any]) -> str:
    """The OpenLineage dataset namespace of a dbt target (its ``type`` and connection fields,
    as in ``profiles.yml``): ``openlineage_namespace({"type": "postgres", "host": "db", "port":
    5432})`` is ``"postgres://db:5432"``. A ``ConfigError`` names a missing field or an adapter
    OpenLineage has no naming for."""
    adapter = str(target.get("type", "")).lower()
    if adapter not in NAMESPACES:
        raise ConfigError(
            f"OpenLineage has no dataset naming for dbt adapter {adapter or '(no type)'!r} "
            f"(known: {', '.join(sorted(NAMESPACES))}); give the namespace itself"
        )
    form, make = NAMESPACES[adapter]
    try:
        return make(target)
    except KeyError as exc:
        raise ConfigError(
            f"the OpenLineage namespace of a {adapter} target ({form}) needs its {exc.args[0]!r} field"
        ) from None


def default_namespace(adapter: str | None) -> str | None:
    """The namespace of an adapter that needs no connection details (BigQuery), else None."""
    return _CONSTANT.get((adapter or "").lower())


def namespace_form(adapter: str | None) -> str:
    """What an adapter's namespace looks like, for messages and docs."""
    entry = NAMESPACES.get((adapter or "").lower())
    return entry[0] if entry else "<scheme>://<host>"


def check_namespace(value: Any, where: str) -> str | None:
    """``asset_namespace`` as given: None, or a namespace string (a trailing ``/`` dropped)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise ConfigError(
            f"{where}: must be an OpenLineage dataset namespace such as 'postgres://db.example.com:5432', got {value!r}"
        )
    text = value.strip()
    return text.rstrip("/") if text.rstrip("/") else text


def dataset_name(database: str | None, schema: str | None, table: str | None) -> str | None:
    """OpenLineage's dataset name, ``<database>.<schema>.<table>`` (parts dbt leaves empty are
    left out, as OpenLineage's dbt integration does); None without a table or schema."""
    if not table or not schema:
        return None
    return ".".join(p for p in (database, schema, table) if p)


def asset_uri(namespace: str, name: str) -> str:
    """The Asset URI cosmos makes on Airflow 3 of an OpenLineage dataset: the namespace, ``/``,
    and the name URL-quoted with its dots as slashes (``postgres://db:5432/shop/public/orders``)."""
    return f"{namespace.rstrip('/')}/{urllib.parse.quote(name).replace('.', '/')}"
