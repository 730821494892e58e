"""Oracle from an ``oracle`` Connection, as Airflow's Oracle provider reads one.

The provider takes the service from extra ``service_name`` (or a SID from extra ``sid``, or a whole
DSN from extra ``dsn``); dbt-oracle takes ``host``/``port``/``service``, or a ``connection_string``
(which may hold credentials, so it travels through an env var like a password). dbt's ``schema``
is the Connection's ``schema`` field, else the login (Oracle's own default schema).
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "retry_count",
    "retry_delay",
    "session_info",
    "oml_cloud_service_url",
    "https_proxy",
    "https_proxy_port",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": "oracle", "user": c.login}
    if c.password:
        fields["password"] = c.secret("password", c.password)
    dsn = c.get("dsn", "connection_string")
    sid = c.get("sid")
    port = c.port or 1521
    if dsn:
        fields["connection_string"] = c.secret("connection_string", dsn)
    elif c.get("tns_name"):
        fields["tns_name"] = c.get("tns_name")
    elif sid and not c.get("service_name"):
        protocol = str(c.get("protocol") or "tcp").upper()
        fields["connection_string"] = c.secret(
            "connection_string",
            f"(DESCRIPTION=(ADDRESS=(PROTOCOL={protocol})(HOST={c.host})(PORT={port}))(CONNECT_DATA=(SID={sid})))",
        )
    else:
        fields["protocol"] = str(c.get("protocol") or "tcp").lower()
        fields["host"] = c.host
        fields["port"] = port
        fields["service"] = c.get("service_name", "service")
    database = c.get("database") or c.get("service_name", "service", "sid")
    if database:
        fields["database"] = database
    fields["schema"] = c.schema or c.get("schema") or c.login
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "oracle",
    AdapterMapping(
        "oracle",
        build,
        required=required(user="the connection's login", schema="the connection's schema or login"),
        aliases={"pass": "password", "dbname": "database"},
        secret_fields=frozenset({"password", "connection_string"}),
    ),
)
