"""Teradata from a ``teradata`` Connection: the ``schema`` field is the database dbt builds in.

In Teradata a database plays the part of a schema, so the Connection's ``schema`` (Airflow's
database) is dbt-teradata's ``schema``. Extras ``tmode`` (``ANSI`` by default, as dbt-teradata
wants), ``logmech`` (``TD2``, ``LDAP``, ``JWT``, ...) and the ``ssl*`` options pass through.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "logmech",
    "account",
    "charset",
    "encryptdata",
    "sslmode",
    "sslca",
    "sslcapath",
    "sslcrc",
    "sslcipher",
    "sslprotocol",
    "query_band",
    "retries",
    "retry_timeout",
    "connect_timeout",
    "request_timeout",
    "logon_timeout",
    "https_port",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": "teradata", "host": c.host, "user": c.login}
    if c.password:
        fields["password"] = c.secret("password", c.password)
    if c.port:
        fields["port"] = c.port  # written as text: dbt-teradata's port is a string
    fields["schema"] = c.schema or c.get("schema", "database")
    fields["tmode"] = str(c.get("tmode") or "ANSI").upper()
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "teradata",
    AdapterMapping(
        "teradata",
        build,
        required=required(
            host="the connection's host",
            user="the connection's login",
            schema="the connection's schema field (the Teradata database)",
        ),
        aliases={"server": "host", "username": "user", "database": "schema"},
        text_fields=frozenset({"port"}),
    ),
)
