"""Snowflake from a ``snowflake`` Connection: password, key-pair or OAuth token auth.

Airflow's provider stores a private key base64-encoded and uses the Connection's password as its
passphrase; dbt-snowflake wants the PEM, so the key is decoded here before it goes to the env.
"""

from __future__ import annotations

import base64
from typing import Any

from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "role",
    "warehouse",
    "database",
    "authenticator",
    "threads",
    "query_tag",
    "client_session_keep_alive",
    "connect_retries",
    "connect_timeout",
    "retry_on_database_errors",
    "retry_all",
    "reuse_connections",
    "insecure_mode",
)


def build(c: ConnectionView) -> dict[str, Any]:
    account = c.get("account")
    region = c.get("region")
    if account and region and "." not in str(account):
        account = f"{account}.{region}"  # the Airflow hook adds the region the same way
    fields: dict[str, Any] = {"type": "snowflake", "account": account, "user": c.login}
    key_content = c.get("private_key_content")
    key_file = c.get("private_key_file")
    if key_content or key_file:
        # Key-pair auth: the Connection's password is the key's passphrase (as in Airflow's hook).
        if key_content:
            fields["private_key"] = c.secret("private_key", _pem_text(str(key_content)))
        else:
            fields["private_key_path"] = key_file
        if c.password:
            fields["private_key_passphrase"] = c.secret("private_key_passphrase", c.password)
    elif c.password:
        fields["password"] = c.secret("password", c.password)
    token = c.get("token")
    if token:
        fields["token"] = c.secret("token", token)
    schema = c.schema or c.get("schema")
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _EXTRA)
    return fields


def _pem_text(content: str) -> str:
    """The key as PEM text: Airflow's snowflake provider stores ``private_key_content`` base64-encoded
    (older versions: the PEM itself); dbt-snowflake wants the PEM (or a base64 DER key, kept as is)."""
    if content.lstrip().startswith("-----BEGIN"):
        return content
    try:
        decoded = base64.b64decode(content, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return content
    return decoded if decoded.lstrip().startswith("-----BEGIN") else content


register_adapter(
    "snowflake",
    AdapterMapping(
        "snowflake",
        build,
        required=required(
            account="extra 'account'",
            user="the connection's login",
            database="extra 'database'",
            schema="the connection's schema",
        ),
        secret_fields=frozenset({"password", "private_key", "private_key_passphrase", "token"}),
    ),
)
