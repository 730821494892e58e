"""Exasol from an ``exasol`` Connection: ``host:port`` becomes dbt-exasol's ``dsn``.

Exasol has one database per cluster, so dbt-exasol's ``dbname`` is only a label (extra ``dbname``,
default ``exa``); dbt's ``schema`` is the Connection's ``schema`` field. An OpenID token in extra
``access_token`` or ``refresh_token`` replaces the password.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "encryption",
    "validate_server_certificate",
    "compression",
    "connection_timeout",
    "socket_timeout",
    "query_timeout",
    "protocol_version",
    "retries",
    "row_separator",
    "timestamp_format",
)


def build(c: ConnectionView) -> dict[str, Any]:
    host = c.host
    dsn = c.get("dsn") or (f"{host}:{c.port or 8563}" if host else None)
    fields: dict[str, Any] = {"type": "exasol", "dsn": dsn, "user": c.login}
    for name in ("access_token", "refresh_token"):
        token = c.get(name)
        if token:
            fields[name] = c.secret(name, token)
    if c.password:
        fields["password"] = c.secret("password", c.password)
    fields["dbname"] = c.get("dbname", "database") or "exa"
    fields["schema"] = c.schema or c.get("schema")
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "exasol",
    AdapterMapping(
        "exasol",
        build,
        required=required(dsn="the connection's host (and port)", schema="the connection's schema"),
        aliases={"database": "dbname", "pass": "password"},
        secret_fields=frozenset({"password", "access_token", "refresh_token"}),
    ),
)
