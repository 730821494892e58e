"""Secret dbt vars: their values read on the worker, as the task runs, into dbt's environment.

A var in ``dbt_vars`` travels on dbt's command line (``--vars``: world-readable in
``/proc/<pid>/cmdline``, copied by dbt into ``run_results.json`` and its debug log) and, being a
template field, in Airflow's rendered fields. A ``SecretVar`` only names where the value lives
(a Connection field, a Variable, the worker's environment); the invocation's ``--vars`` holds
``{{ env_var('MANIFEST_DAG_SECRET_VAR_<NAME>') }}`` for it (``core.config``), which dbt renders
when the project calls ``var()``. Here each value is fetched and returned as that environment
variable, for dbt's process alone (the cold path's child environment, or the warm request sent
over the owner-only socket), and for the masker: ``run_dbt`` hides the values in every line,
summary and error, and registers them with Airflow's masker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from manifest_dag.core.config import SecretVar, secret_var_env_name
from manifest_dag.core.errors import ProfileError
from manifest_dag.core.secrets import register_with_airflow


class SecretVarError(ProfileError):
    """A secret var's value could not be read (names the var and its source, never a value)."""


def _from_connection(name: str, ref: SecretVar) -> Any:
    from manifest_dag.worker.profiles.fetch import fetch_connection  # the profiles package is heavy

    assert ref.conn_id is not None
    try:
        conn = fetch_connection(ref.conn_id)
    except ProfileError as exc:  # its text names ProfileConfig.conn_id, which this is not
        raise SecretVarError(f"secret var {name!r}: {str(exc).replace(' (ProfileConfig.conn_id)', '')}") from None
    if not ref.conn_field.startswith("extra."):
        return getattr(conn, ref.conn_field, None)
    extra: Any = getattr(conn, "extra_dejson", None)
    if extra is None:
        raw = getattr(conn, "extra", None) or "{}"
        try:
            extra = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise SecretVarError(f"secret var {name!r}: the extra of {ref.describe()} is not JSON") from None
    value: Any = extra
    for key in ref.conn_field.split(".")[1:]:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _from_variable(name: str, ref: SecretVar) -> Any:
    assert ref.airflow_variable is not None
    try:
        from airflow.sdk import Variable
    except ImportError as exc:  # pragma: no cover - Airflow 3 always has it
        raise SecretVarError(f"secret var {name!r}: airflow.sdk is not importable ({exc})") from exc
    try:
        return Variable.get(ref.airflow_variable, default=None)  # None: not defined
    except Exception as exc:  # noqa: BLE001 - Airflow's lookup errors differ by version and backend
        raise SecretVarError(f"secret var {name!r}: cannot read {ref.describe()}: {type(exc).__name__}") from None


def resolve_secret_vars(secret_vars: Mapping[str, SecretVar]) -> dict[str, str]:
    """Each secret var's value as the environment variable dbt reads it from (name -> value).

    A missing or empty value fails the task before dbt starts, naming the var and where it was
    looked for: dbt would otherwise fail later on an unset env var, or run with an empty secret.
    """
    env: dict[str, str] = {}
    for name, ref in secret_vars.items():
        if ref.conn_id is not None:
            value = _from_connection(name, ref)
        elif ref.airflow_variable is not None:
            value = _from_variable(name, ref)
        else:
            assert ref.env_var is not None
            value = os.environ.get(ref.env_var)
        if value is None or value == "":
            raise SecretVarError(f"secret var {name!r}: {ref.describe()} is not set or empty")
        env[secret_var_env_name(name)] = value if isinstance(value, str) else json.dumps(value)
    register_with_airflow(env.values())
    return env
