"""BigQuery from a Google Cloud Connection: a key file's JSON, a key file's path, or the worker's own credentials.

The key file (extra ``keyfile_dict``, as JSON text or as a mapping) travels whole as JSON in one
env var (dbt reads it back with ``fromjson``); its ``project_id`` is the target's project when the
Connection names none. Extra ``impersonation_chain`` (one service account, or a list whose last is
the one to act as) becomes dbt-bigquery's ``impersonate_service_account``; the provider's
comma-separated ``scope`` becomes ``scopes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "location",
    "priority",
    "job_execution_timeout_seconds",
    "job_retries",
    "job_retry_deadline_seconds",
    "maximum_bytes_billed",
    "impersonate_service_account",
    "execution_project",
    "scopes",
)


def build(c: ConnectionView) -> dict[str, Any]:
    keyfile = c.get("keyfile_dict", "keyfile_json")
    key_path = c.get("key_path", "keyfile")
    fields: dict[str, Any] = {"type": "bigquery"}
    if keyfile:
        fields["method"] = "service-account-json"
    elif key_path:
        fields["method"] = "service-account"
    else:
        fields["method"] = "oauth"  # application default credentials of the worker
    project = c.get("project", "project_id")
    if not project and keyfile:
        parsed = keyfile if isinstance(keyfile, Mapping) else _json_or_none(keyfile)
        project = parsed.get("project_id") if isinstance(parsed, Mapping) else None
    fields["project"] = project
    dataset = c.schema or c.get("dataset", "schema")
    if dataset:
        fields["dataset"] = dataset
    if keyfile:
        fields["keyfile_json"] = c.secret("keyfile_json", keyfile, json_value=True)
    elif key_path:
        fields["keyfile"] = key_path
    c.passthrough(fields, _EXTRA)
    chain = c.get("impersonation_chain")
    if chain and "impersonate_service_account" not in fields:
        fields["impersonate_service_account"] = _impersonated(c, chain)
    scope = c.get("scope")
    if scope and "scopes" not in fields:
        fields["scopes"] = [s.strip() for s in str(scope).split(",") if s.strip()]
    return fields


def _impersonated(c: ConnectionView, chain: Any) -> str:
    """The account to act as: dbt-bigquery impersonates one account directly, without delegates."""
    accounts = [s.strip() for s in chain.split(",")] if isinstance(chain, str) else [str(s) for s in chain]
    accounts = [a for a in accounts if a]
    if len(accounts) > 1:
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} (google_cloud_platform): extra 'impersonation_chain' names "
            f"{len(accounts)} accounts, but dbt-bigquery impersonates one account directly (no delegation "
            "chain). Give the worker's credentials the Token Creator role on the last account and set "
            "only it, or ProfileConfig(profile_args={'impersonate_service_account': ...})"
        )
    return accounts[0]


def _json_or_none(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


register_adapter(
    ("google_cloud_platform", "gcpbigquery", "bigquery"),
    AdapterMapping(
        "bigquery",
        build,
        required=required(
            project="extra 'project' (or the key file's project_id)",
            dataset="the connection's schema or extra 'dataset'",
        ),
        aliases={"schema": "dataset", "database": "project"},
        secret_fields=frozenset({"keyfile_json"}),
    ),
)
