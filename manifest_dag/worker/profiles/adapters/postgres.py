"""Postgres from a ``postgres``/``postgresql`` Connection: Airflow's ``schema`` field is the database.

dbt's ``schema`` has no field of its own in an Airflow Connection, so it comes from extra
``schema`` or ``profile_args``.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "keepalives_idle",
    "connect_timeout",
    "retries",
    "search_path",
    "role",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "application_name",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "postgres",
        "host": c.host,
        "port": c.port or 5432,
        "user": c.login,
    }
    if c.password:
        fields["password"] = c.secret("password", c.password)
    fields["dbname"] = c.schema or c.get("dbname", "database")
    schema = c.get("schema")
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _EXTRA)
    return fields


#: what a profile of the postgres family needs, and where in the Connection each field comes from
#: (Redshift speaks the same protocol and takes the same fields)
REQUIRED = required(
    host="the connection's host",
    user="the connection's login",
    dbname="the connection's schema field (Airflow's name for the database) or extra 'dbname'",
    schema="extra 'schema'",
)

register_adapter(
    ("postgres", "postgresql"),
    AdapterMapping(
        "postgres",
        build,
        required=REQUIRED,
        aliases={"database": "dbname"},
    ),
)
