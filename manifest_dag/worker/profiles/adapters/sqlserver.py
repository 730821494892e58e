"""SQL Server (and Azure SQL) from an ``mssql`` Connection: Airflow's ``schema`` field is the database.

dbt-sqlserver goes through ODBC, so the worker needs Microsoft's ODBC driver; its name is extra
``driver`` (default ``ODBC Driver 18 for SQL Server``). Entra ID service principals use extras
``authentication``, ``tenant_id`` and ``client_id`` with the secret in the password (or extra
``client_secret``).
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "encrypt",
    "trust_cert",
    "retries",
    "login_timeout",
    "query_timeout",
    "schema_authorization",
    "windows_login",
    "tenant_id",
    "xact_abort",
)

DEFAULT_DRIVER = "ODBC Driver 18 for SQL Server"


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "sqlserver",
        "driver": c.get("driver") or DEFAULT_DRIVER,
        "server": c.host,
        "port": c.port or 1433,
        "database": c.schema or c.get("database"),
        "schema": c.get("schema"),
    }
    authentication = str(c.get("authentication", "auth") or "sql")
    if authentication.lower() != "sql":
        fields["authentication"] = authentication
    if authentication.lower() in ("serviceprincipal", "activedirectoryserviceprincipal"):
        fields["client_id"] = c.get("client_id", "app_id") or c.login
        secret = c.get("client_secret") or c.password
        if secret:
            fields["client_secret"] = c.secret("client_secret", secret)
    else:
        if c.login:
            fields["user"] = c.login
        if c.password:
            fields["password"] = c.secret("password", c.password)
    if "trust_cert" not in c.extra and c.get("TrustServerCertificate") is not None:
        fields["trust_cert"] = c.get("TrustServerCertificate")
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "mssql",
    AdapterMapping(
        "sqlserver",
        build,
        required=required(
            server="the connection's host",
            database="the connection's schema field (Airflow's name for the database) or extra 'database'",
            schema="extra 'schema'",
        ),
        aliases={"host": "server", "dbname": "database"},
        secret_fields=frozenset({"password", "client_secret", "access_token"}),
    ),
)
