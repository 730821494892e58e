"""Databricks from a ``databricks`` Connection: a personal access token, or OAuth as a service principal.

Airflow's provider keeps the workspace URL in ``host`` and the token in ``password`` (or extra
``token``); with extra ``service_principal_oauth`` the login and password are a Databricks service
principal's client id and secret, and with extra ``azure_tenant_id`` an Azure one's. dbt needs the
SQL warehouse's or cluster's ``http_path`` too, which the provider takes as a hook argument, so
here it is extra ``http_path`` (or ``profile_args``).
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "session_properties",
    "connection_parameters",
    "connect_retries",
    "connect_timeout",
    "retry_all",
    "compute",
    "oauth_scopes",
)


def build(c: ConnectionView) -> dict[str, Any]:
    host = c.host or c.get("host")
    if host:
        host = str(host).removeprefix("https://").removeprefix("http://").rstrip("/")
    fields: dict[str, Any] = {"type": "databricks", "host": host, "http_path": c.get("http_path")}
    catalog = c.get("catalog")
    if catalog:
        fields["catalog"] = catalog
    fields["schema"] = c.schema or c.get("schema")
    if c.flag("service_principal_oauth") or c.get("azure_tenant_id"):
        # OAuth machine-to-machine: the login is the client id, the password its secret
        azure = bool(c.get("azure_tenant_id")) and not c.flag("service_principal_oauth")
        fields["auth_type"] = "oauth"
        fields["azure_client_id" if azure else "client_id"] = c.login
        if c.password:
            name = "azure_client_secret" if azure else "client_secret"
            fields[name] = c.secret(name, c.password)
    else:
        token = c.get("token") or c.password
        if token:
            fields["token"] = c.secret("token", token)
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "databricks",
    AdapterMapping(
        "databricks",
        build,
        required=required(
            host="the connection's host (the workspace URL)",
            http_path="extra 'http_path' (the SQL warehouse's or cluster's HTTP path)",
            schema="the connection's schema or extra 'schema'",
        ),
        aliases={"database": "catalog"},
        secret_fields=frozenset({"token", "client_secret", "azure_client_secret"}),
    ),
)
