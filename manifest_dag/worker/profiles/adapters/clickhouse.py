"""ClickHouse from a ``clickhouse`` Connection (Airflow's ClickHouse provider: the HTTP interface).

The provider talks HTTP(S) on 8123/8443 with ``secure`` and ``verify`` in the extras and the
database in the ``schema`` field; dbt-clickhouse calls that database its ``schema``. Extra
``driver: native`` switches to the native protocol (ports 9000/9440).
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "verify",
    "connect_timeout",
    "send_receive_timeout",
    "sync_request_timeout",
    "compression",
    "compress_block_size",
    "cluster",
    "database_engine",
    "cluster_mode",
    "custom_settings",
    "retries",
    "check_exchange",
    "use_lw_deletes",
    "client_cert",
    "client_cert_key",
)


def build(c: ConnectionView) -> dict[str, Any]:
    driver = str(c.get("driver") or "http").lower()
    secure = c.flag("secure")
    default_port = {("http", False): 8123, ("http", True): 8443, ("native", False): 9000, ("native", True): 9440}
    fields: dict[str, Any] = {
        "type": "clickhouse",
        "driver": driver,
        "host": c.host,
        "port": c.port or default_port.get((driver, secure), 8123),
        "user": c.login or "default",
    }
    if c.password:
        fields["password"] = c.secret("password", c.password)
    fields["schema"] = c.schema or c.get("database", "schema") or "default"
    if secure:
        fields["secure"] = True
    settings = c.get("session_settings", "settings")
    if settings and not c.get("custom_settings"):
        fields["custom_settings"] = c.hide_secrets("custom_settings", settings)
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "clickhouse",
    AdapterMapping(
        "clickhouse",
        build,
        required=required(host="the connection's host"),
        aliases={"database": "schema"},
    ),
)
