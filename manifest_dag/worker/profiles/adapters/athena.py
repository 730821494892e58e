"""Amazon Athena from an ``aws`` Connection, as Airflow's Amazon provider reads one.

The access key pair is the login and password, the session token, region, AWS profile and the
role to assume are extras (``aws_session_token``, ``region_name``, ``profile_name``, ``role_arn``
with ``assume_role_kwargs``); what only Athena needs (``s3_staging_dir``, ``work_group``, the
Glue ``database`` and ``schema``) is read from the extras too, or given in ``profile_args``. With
no key pair dbt-athena falls back to boto3's own lookup on the worker (instance role, env, files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "s3_staging_dir",
    "work_group",
    "s3_data_dir",
    "s3_data_naming",
    "s3_tmp_table_dir",
    "spark_work_group",
    "poll_interval",
    "num_retries",
    "num_boto3_retries",
    "num_iceberg_retries",
    "lf_tags_database",
    "debug_query_state",
    "skip_workgroup_check",
    "seed_s3_upload_args",
    "endpoint_url",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "athena",
        "region_name": c.get("region_name", "region"),
        "database": c.get("database", "catalog") or "awsdatacatalog",
        "schema": c.schema or c.get("schema"),
    }
    profile = c.get("aws_profile_name", "profile_name", "profile")
    if profile:
        fields["aws_profile_name"] = profile
    key_id = c.login or c.get("aws_access_key_id")
    if key_id:
        fields["aws_access_key_id"] = key_id
    secret_key = c.password or c.get("aws_secret_access_key")
    if secret_key:
        fields["aws_secret_access_key"] = c.secret("aws_secret_access_key", secret_key)
    session_token = c.get("aws_session_token")
    if session_token:
        fields["aws_session_token"] = c.secret("aws_session_token", session_token)
    role = c.get("role_arn", "assume_role_arn")
    if role:
        fields["assume_role_arn"] = role
        kwargs = c.get("assume_role_kwargs")
        kwargs = kwargs if isinstance(kwargs, Mapping) else {}
        external_id = kwargs.get("ExternalId") or c.get("assume_role_external_id")
        if external_id:
            fields["assume_role_external_id"] = external_id
        session = kwargs.get("RoleSessionName") or c.get("assume_role_session_name")
        if session:
            fields["assume_role_session_name"] = session
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "aws",
    AdapterMapping(
        "athena",
        build,
        required=required(
            region_name="extra 'region_name'",
            s3_staging_dir="extra 's3_staging_dir' (where Athena writes query results)",
            schema="extra 'schema' (the Glue database dbt builds into)",
        ),
        aliases={"catalog": "database"},
        secret_fields=frozenset({"aws_secret_access_key", "aws_session_token"}),
    ),
)
