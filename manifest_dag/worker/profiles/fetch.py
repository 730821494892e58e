"""Getting an Airflow Connection by id: the one place this package imports Airflow.

The import sits inside :func:`fetch_connection`, so the rest of ``profiles`` (and whatever imports
it outside a task: the CLI, tests) loads without Airflow.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.core.errors import ProfileError


def fetch_connection(conn_id: str) -> Any:
    """Get an Airflow Connection by id, in a running task or in a plain process.

    ``airflow.sdk.Connection.get`` asks the task's supervisor (which reads the metadata DB and any
    secrets backend) inside a task, and environment variables (``AIRFLOW_CONN_<ID>``) plus the
    configured secrets backends elsewhere, e.g. in tests.
    """
    try:
        from airflow.sdk import Connection
    except ImportError as exc:  # pragma: no cover - Airflow 3 always has it
        raise ProfileError(
            f"cannot fetch Airflow connection {conn_id!r}: airflow.sdk is not importable ({exc})"
        ) from exc
    env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
    try:
        conn = Connection.get(conn_id)
    except Exception as exc:
        if type(exc).__name__ == "AirflowNotFoundException":
            raise ProfileError(
                f"Airflow connection {conn_id!r} (ProfileConfig.conn_id) is not defined. Add it in the UI "
                f"(Admin > Connections), with `airflow connections add {conn_id} --conn-json '{{\"conn_type\": ...}}'`, "
                f'or as the environment variable {env_name}=\'{{"conn_type": ..., "host": ...}}\' on the workers'
            ) from None
        raise ProfileError(f"cannot fetch Airflow connection {conn_id!r}: {type(exc).__name__}: {exc}") from exc
    if conn is None:
        raise ProfileError(f"Airflow connection {conn_id!r} (ProfileConfig.conn_id) is not defined")
    return conn
