"""Redshift from a ``redshift`` Connection: password or IAM auth, as Airflow's provider reads it.

With extra ``iam`` true the cluster and AWS profile come from the extras and no password is
written; the database is Airflow's ``schema`` field, as for Postgres.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.adapters.postgres import REQUIRED
from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "sslmode",
    "ra3_node",
    "autocommit",
    "connect_timeout",
    "retries",
    "role",
    "region",
    "autocreate",
    "db_groups",
    "iam_profile",
    "cluster_id",
    "access_key_id",
    "is_serverless",
    "serverless_work_group",
    "serverless_acct_id",
)


def build(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": "redshift", "host": c.host, "port": c.port or 5439, "user": c.login}
    iam = c.get("iam")
    if iam is True or str(iam).lower() == "true":
        fields["method"] = "iam"
        cluster = c.get("cluster_identifier", "cluster-identifier", "cluster_id")
        if cluster:
            fields["cluster_id"] = cluster
        profile = c.get("profile", "iam_profile")
        if profile:
            fields["iam_profile"] = profile
        user = c.get("db_user")
        if user:
            fields["user"] = user  # the provider's IAM user for temporary credentials
    elif c.password:
        fields["password"] = c.secret("password", c.password)
    fields["dbname"] = c.schema or c.get("dbname", "database")
    schema = c.get("schema")
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _EXTRA)
    secret_key = c.get("secret_access_key")
    if secret_key:
        fields["secret_access_key"] = c.secret("secret_access_key", secret_key)
    return fields


register_adapter(
    "redshift",
    AdapterMapping(
        "redshift",
        build,
        required=REQUIRED,
        aliases={"database": "dbname"},
        secret_fields=frozenset({"password", "secret_access_key"}),
    ),
)
