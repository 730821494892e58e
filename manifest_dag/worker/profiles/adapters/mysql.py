"""MySQL (and MariaDB) from a ``mysql`` Connection: Airflow's ``schema`` field is the database.

In MySQL a schema is a database, so dbt-mysql's ``schema`` is the Connection's ``schema``.
dbt-mysql serves MariaDB as the dbt type ``mariadb`` and MySQL 5.7 as ``mysql5``: pick one with
``profile_args={"type": "mariadb"}``.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = ("threads", "charset", "collation", "unix_socket", "ssl_disabled")  # ssl_disabled: the mariadb type only


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "mysql",
        "server": c.host,
        "port": c.port or 3306,
        "schema": c.schema or c.get("schema", "database"),
        "username": c.login,
    }
    if c.password:
        fields["password"] = c.secret("password", c.password)
    if "charset" not in c.extra and c.get("charset") is None and c.get("encoding"):
        fields["charset"] = c.get("encoding")
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "mysql",
    AdapterMapping(
        "mysql",
        build,
        required=required(
            server="the connection's host",
            username="the connection's login",
            schema="the connection's schema field (the MySQL database)",
        ),
        aliases={"host": "server", "user": "username", "database": "schema"},
        type_variants=frozenset({"mariadb", "mysql5"}),
    ),
)
