"""Snowflake from a ``snowflake`` Connection: password, key-pair or OAuth auth.

Airflow's provider stores a private key base64-encoded (extra ``private_key_content``) or names a
key file (extra ``private_key_file``), and uses the Connection's password as its passphrase;
dbt-snowflake wants the PEM, so the key is decoded here before it goes to the env. With extra
``authenticator: oauth`` the provider's login and password are the OAuth client's id and secret
and extra ``refresh_token`` the token (dbt-snowflake's ``oauth_client_id``, ``oauth_client_secret``
and ``token``); an access token alone (extra ``token``) is used as is.
"""

from __future__ import annotations

import base64
from typing import Any

from manifest_dag.core.errors import ProfileError
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
    if str(c.get("authenticator") or "").lower() == "oauth":
        _oauth(c, fields)
    else:
        _password_or_key(c, fields)
    schema = c.schema or c.get("schema")
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _EXTRA)
    return fields


def _oauth(c: ConnectionView, fields: dict[str, Any]) -> None:
    client_id = c.get("client_id", "oauth_client_id")
    refresh = c.get("refresh_token")
    if refresh or client_id:
        # the provider's OAuth: login and password are the client's id and secret
        fields["user"] = c.get("user")
        fields["oauth_client_id"] = client_id or c.login
        secret = c.get("client_secret", "oauth_client_secret") or c.password
        if secret:
            fields["oauth_client_secret"] = c.secret("oauth_client_secret", secret)
    token = refresh or c.get("token")
    if token:
        fields["token"] = c.secret("token", token)


def _password_or_key(c: ConnectionView, fields: dict[str, Any]) -> None:
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


def check_user(c: ConnectionView, fields: dict[str, Any]) -> None:
    """A user is needed but with OAuth, whose token names the user."""
    if not fields.get("user") and str(fields.get("authenticator") or "").lower() != "oauth":
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} (snowflake) lacks what a dbt snowflake target needs: user. "
            "user: set the connection's login, or ProfileConfig(profile_args={'user': ...})"
        )


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
            database="extra 'database'",
            schema="the connection's schema",
        ),
        secret_fields=frozenset({"password", "private_key", "private_key_passphrase", "token", "oauth_client_secret"}),
        check=check_user,
    ),
)
