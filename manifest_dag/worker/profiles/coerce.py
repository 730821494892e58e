"""Numbers and booleans in a dbt target, from the strings Airflow extras often hold.

dbt's adapters validate their targets strictly (``threads: "4"`` fails), while Airflow's UI
stores every extra as text; one table of such fields serves all adapters.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.worker.profiles.yaml_text import EnvRef

# Fields dbt wants as numbers or booleans, which Airflow extras often hold as strings.
INT_FIELDS = frozenset(
    {
        "port",
        "threads",
        "keepalives_idle",
        "connect_timeout",
        "connect_retries",
        "retries",
        "job_execution_timeout_seconds",
        "job_retries",
        "job_retry_deadline_seconds",
        "maximum_bytes_billed",
    }
)
BOOL_FIELDS = frozenset(
    {
        "ra3_node",
        "autocommit",
        "autocreate",
        "client_session_keep_alive",
        "reuse_connections",
        "retry_on_database_errors",
        "retry_all",
        "insecure_mode",
        "disable_transactions",
        "keep_open",
        "prepared_statements_enabled",
        "use_credential_provider",
    }
)


def coerce_fields(conn_id: str, fields: dict[str, Any]) -> None:
    """Turn the number and boolean fields of ``fields`` into ints and bools, in place."""
    for name in INT_FIELDS.intersection(fields):
        value = fields[name]
        if isinstance(value, EnvRef) or (isinstance(value, int) and not isinstance(value, bool)):
            continue
        try:
            fields[name] = int(str(value).strip())
        except ValueError:
            raise ProfileError(
                f"Airflow connection {conn_id!r}: {name} must be a whole number, got {value!r}"
            ) from None
    for name in BOOL_FIELDS.intersection(fields):
        value = fields[name]
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            fields[name] = value.strip().lower() in ("true", "1", "yes")
