"""Trino from a ``trino`` Connection: JWT, LDAP (password), client certificate, or no auth.

The auth method follows from which of those the Connection holds, in that order; the catalog
(extra ``catalog``) is dbt's ``database``.
"""

from __future__ import annotations

from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = ("threads", "session_properties", "roles", "client_tags", "timezone", "prepared_statements_enabled")


def build(c: ConnectionView) -> dict[str, Any]:
    scheme = c.get("protocol", "http_scheme") or ("https" if c.password else "http")
    fields: dict[str, Any] = {"type": "trino"}
    jwt = c.get("jwt__token", "jwt_token")
    cert = c.get("certs__client_cert_path")
    if jwt:
        fields["method"] = "jwt"
    elif c.password:
        fields["method"] = "ldap"
    elif cert:
        fields["method"] = "certificate"
    else:
        fields["method"] = "none"
    fields["host"] = c.host
    fields["port"] = c.port or (443 if scheme == "https" else 8080)
    fields["user"] = c.login
    if jwt:
        fields["jwt_token"] = c.secret("jwt_token", jwt)
    elif c.password:
        fields["password"] = c.secret("password", c.password)
    elif cert:
        fields["client_certificate"] = cert
        key = c.get("certs__client_key_path")
        if key:
            fields["client_private_key"] = key
    fields["http_scheme"] = scheme
    catalog = c.get("catalog")
    if catalog:
        fields["database"] = catalog
    schema = c.schema or c.get("schema")
    if schema:
        fields["schema"] = schema
    verify = c.get("verify")
    if isinstance(verify, str) and verify.lower() not in ("true", "false"):
        fields["cert"] = verify  # a CA bundle path
    c.passthrough(fields, _EXTRA)
    return fields


register_adapter(
    "trino",
    AdapterMapping(
        "trino",
        build,
        required=required(
            host="the connection's host",
            user="the connection's login",
            database="extra 'catalog'",
            schema="the connection's schema",
        ),
        aliases={"catalog": "database"},
        secret_fields=frozenset({"password", "jwt_token"}),
    ),
)
