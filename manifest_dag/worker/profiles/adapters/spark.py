"""Apache Spark from a ``spark`` or ``hiveserver2`` Connection: dbt-spark's thrift and http methods.

A Spark Thrift server speaks HiveServer2's protocol, so Airflow's ``hiveserver2`` Connection (host,
port 10000, login, password, schema, extra ``auth_mechanism``) is the natural one for ``method:
thrift``. A ``spark`` Connection picks the method with extra ``method`` (``thrift``, the default,
or ``http``: a Databricks-style cluster endpoint with a token, extras ``cluster`` and
``organization``).
"""

from __future__ import annotations

from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.worker.profiles.registry import AdapterMapping, register_adapter, required
from manifest_dag.worker.profiles.view import ConnectionView

_EXTRA = (
    "threads",
    "connect_retries",
    "connect_timeout",
    "retry_all",
    "server_side_parameters",
    "poll_interval",
    "query_timeout",
    "query_retries",
)

#: HiveServer2's ``auth_mechanism`` names (Airflow's hive provider) → PyHive's ``auth``; PyHive sends
#: a password only with LDAP or CUSTOM (SASL PLAIN either way), so PLAIN with a password is LDAP.
_AUTH = {
    "NONE": "NONE",
    "NOSASL": "NOSASL",
    "LDAP": "LDAP",
    "KERBEROS": "KERBEROS",
    "GSSAPI": "KERBEROS",
    "CUSTOM": "CUSTOM",
}


def build(c: ConnectionView) -> dict[str, Any]:
    method = str(c.get("method") or "thrift").lower()
    if method not in ("thrift", "http"):
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} ({c.conn_type}): extra 'method' is {method!r}; manifest-dag maps "
            "dbt-spark's 'thrift' and 'http' methods (for odbc or session write a profiles.yml)"
        )
    fields: dict[str, Any] = {"type": "spark", "method": method, "host": c.host}
    if method == "http":
        fields["port"] = c.port or 443
        token = c.get("token") or c.password
        if token:
            fields["token"] = c.secret("token", token)
        for name in ("cluster", "organization", "endpoint"):
            value = c.get(name)
            if value is not None and value != "":
                fields[name] = str(value)
        if c.login:
            fields["user"] = c.login
    else:
        fields["port"] = c.port or 10000
        fields["user"] = c.login
        auth = str(c.get("auth", "auth_mechanism") or "").upper()
        if auth == "PLAIN" or (not auth and c.password):
            auth = "LDAP" if c.password else "NONE"
        if auth:
            fields["auth"] = _AUTH.get(auth, auth)
        if c.password:
            fields["password"] = c.secret("password", c.password)
        service = c.get("kerberos_service_name")
        if service:
            fields["kerberos_service_name"] = service
        if c.flag("use_ssl", "ssl"):
            fields["use_ssl"] = True
    fields["schema"] = c.schema or c.get("schema")
    c.passthrough(fields, _EXTRA)
    return fields


def check_method(c: ConnectionView, fields: dict[str, Any]) -> None:
    if fields.get("method") == "thrift" and not fields.get("user"):
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} ({c.conn_type}, method thrift) has no login: dbt-spark's thrift "
            "method needs a user. Set the connection's login, or ProfileConfig(profile_args={'user': ...})"
        )
    if fields.get("method") == "http" and not (fields.get("cluster") or fields.get("endpoint")):
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} ({c.conn_type}, method http) names no cluster: set extra "
            "'cluster' (or 'endpoint'), or ProfileConfig(profile_args={'cluster': ...})"
        )


register_adapter(
    ("spark", "hiveserver2"),
    AdapterMapping(
        "spark",
        build,
        required=required(host="the connection's host", schema="the connection's schema or extra 'schema'"),
        secret_fields=frozenset({"password", "token"}),
        check=check_method,
    ),
)
