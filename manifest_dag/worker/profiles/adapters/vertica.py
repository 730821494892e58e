"""Vertica from a ``vertica`` Connection: Airflow's ``schema`` field is the database, as its hook reads it.

dbt's ``schema`` has no field of its own, so it comes from extra ``schema`` or ``profile_args``.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "autocommit",
    "backup_server_node",
    "connection_load_balance",
    "connection_timeout",
    "retries",
    "ssl",
    "ssl_env_cafile",
    "ssl_uri",
    "session_label",
    "kerberos_service_name",
    "kerberos_host_name",
    "workload",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "vertica",
        "host": c.host,
        "port": c.port or 5433,
        "username": c.login,
    }
    if c.password:
        fields["password"] = c.secret("password", c.password)
    token = c.get("oauth_access_token")
    if token:
        fields["oauth_access_token"] = c.secret("oauth_access_token", token)
    fields["database"] = c.schema or c.get("database")
    fields["schema"] = c.get("schema")
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "vertica",
    AdapterMapping(
        "vertica",
        build,
        required=required(
            host="the connection's host",
            username="the connection's login",
            database="the connection's schema field (Airflow's name for the database)",
            schema="extra 'schema'",
        ),
        aliases={"user": "username", "dbname": "database"},
        secret_fields=frozenset({"password", "oauth_access_token"}),
    ),
)
