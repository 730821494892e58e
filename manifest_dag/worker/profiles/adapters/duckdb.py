"""DuckDB (and MotherDuck) from a ``duckdb`` Connection: the database file is the host.

Also the one adapter with a check of its own: an in-memory database is refused, since each dbt
task is its own process and what one builds in memory the next never sees.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "extensions",
    "settings",
    "attach",
    "filesystems",
    "plugins",
    "secrets",
    "external_root",
    "module_paths",
    "disable_transactions",
    "keep_open",
    "retries",
    "config_options",
    "use_credential_provider",
    "threads",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": "duckdb"}
    path = c.host or c.get("path", "database")
    if path:
        fields["path"] = path
    schema = c.get("schema") or c.schema
    if schema:
        fields["schema"] = schema
    # settings, secrets, filesystems, attach (a postgres one's path may hold a password): every
    # nested secret goes through an env var (ConnectionView.hide_secrets)
    c.passthrough(fields, _EXTRA)
    token = c.password or c.get("motherduck_token")
    if token:  # MotherDuck: path "md:<db>", the token is the connection's password
        fields.setdefault("settings", {})
        fields["settings"]["motherduck_token"] = c.secret("motherduck_token", token)
    return fields


def check_path(c: ConnectionView, fields: dict[str, Any]) -> None:
    path = fields.get("path")
    if not path or str(path).strip() == ":memory:":
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} (duckdb) gives "
            f"{'an in-memory database' if path else 'no database file'}: each dbt task is its own process, "
            "so models built in memory vanish before the next task reads them. Set the connection's host "
            "(or extra 'path') to a database file every worker can reach, or "
            "ProfileConfig(profile_args={'path': '/data/warehouse.duckdb'})"
        )


register_adapter(
    "duckdb",
    AdapterMapping(
        "duckdb",
        build,
        secret_fields=frozenset({"password", "motherduck_token"}),
        check=check_path,
    ),
)
