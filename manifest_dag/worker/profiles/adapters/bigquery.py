"""BigQuery from a Google Cloud Connection: a key file's JSON, a key file's path, or the worker's own credentials.

The key file travels whole as JSON in one env var (dbt reads it back with ``fromjson``); its
``project_id`` is the target's project when the Connection names none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
    return fields


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
