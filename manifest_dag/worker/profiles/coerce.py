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
        "num_retries",
        "num_boto3_retries",
        "num_iceberg_retries",
        "send_receive_timeout",
        "sync_request_timeout",
        "login_timeout",
        "query_timeout",
        "query_retries",
        "retry_count",
        "retry_delay",
        "connection_timeout",
        "socket_timeout",
        "assume_role_duration_seconds",
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
        "secure",
        "verify",
        "encrypt",
        "trust_cert",
        "windows_login",
        "use_ssl",
        "ssl_disabled",
        "encryption",
        "validate_server_certificate",
        "connection_load_balance",
        "is_serverless",
        "skip_workgroup_check",
        "debug_query_state",
        "use_lw_deletes",
        "check_exchange",
        "compression",
    }
)


def coerce_fields(conn_id: str, fields: dict[str, Any], text_fields: frozenset[str] = frozenset()) -> None:
    """Turn the number and boolean fields of ``fields`` into ints and bools, in place; ``text_fields``
    (an adapter's fields that others hold as numbers, such as dbt-teradata's ``port``) into strings."""
    for name in text_fields.intersection(fields):
        if not isinstance(fields[name], (EnvRef, str)):
            fields[name] = str(fields[name])
    for name in (INT_FIELDS - text_fields).intersection(fields):
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
