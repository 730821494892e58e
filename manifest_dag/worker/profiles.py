"""The dbt profile a task uses: a user's ``profiles.yml``, or one made from an Airflow Connection.

A Connection becomes one dbt target. Secrets (passwords, tokens, private keys, key files) never
reach the YAML text: they go into environment variables named ``MANIFEST_DAG_<CONN_ID>_<FIELD>``
that the YAML reads with ``env_var()``, and the operator hands those variables to the dbt
subprocess only. So the ``profiles.yml`` on the worker's disk holds no secret in clear, and the
secret values are registered with Airflow's log masker.

Adapters sit in one table, ``ADAPTERS`` (Airflow ``conn_type`` → :class:`AdapterMapping`); add one
with :func:`register_adapter`. No Airflow import at module level (only :func:`fetch_connection`
imports ``airflow.sdk``), and no dbt import at all.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from manifest_dag.core.config import ProfileConfig
from manifest_dag.core.errors import ProfileError

ENV_PREFIX = "MANIFEST_DAG_"
PROFILES_FILE = "profiles.yml"


@dataclass(frozen=True, slots=True)
class RenderedProfile:
    """A ``profiles.yml`` text and the environment it needs; ``repr`` never shows a secret."""

    #: the YAML to write; secrets appear only as ``{{ env_var('MANIFEST_DAG_...') }}``.
    profiles_yml: str
    #: the environment variables the YAML reads, holding the secrets (give them to dbt only).
    env: Mapping[str, str] = field(repr=False)
    #: the secret values, for masking in logs.
    secrets: frozenset[str] = field(repr=False)
    profile_name: str
    target_name: str


# ---------------------------------------------------------------------------------------------
# What a mapping function sees


class EnvRef(str):
    """A Jinja expression reading an environment variable; dumped double-quoted in the YAML."""

    __slots__ = ()


class _ProfileDumper(yaml.SafeDumper):
    """SafeDumper that writes ``EnvRef`` values as ``"{{ env_var('...') }}"``."""


_ProfileDumper.add_representer(
    EnvRef, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')
)


@dataclass
class ConnectionView:
    """The parts of an Airflow Connection a mapping reads, normalised.

    ``extra`` has legacy ``extra__<conn_type>__`` prefixes removed; ``args`` are the user's
    ``ProfileConfig.profile_args`` (read-only here: they are merged over the result afterwards).
    """

    conn_id: str
    conn_type: str
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None
    extra: Mapping[str, Any]
    args: Mapping[str, Any]
    _env: dict[str, str] = field(default_factory=dict, repr=False)
    _secrets: set[str] = field(default_factory=set, repr=False)

    def env_name(self, name: str) -> str:
        token = re.sub(r"[^A-Z0-9]+", "_", self.conn_id.upper()).strip("_") or "CONN"
        return f"{ENV_PREFIX}{token}_{re.sub(r'[^A-Z0-9]+', '_', name.upper()).strip('_')}"

    def secret(self, name: str, value: Any, *, json_value: bool = False) -> EnvRef:
        """Put ``value`` into an env var and return the YAML reference to it.

        ``json_value``: the value is a mapping (e.g. a key file); it travels as JSON and dbt turns
        it back into a mapping with ``fromjson`` when it renders the profile.
        """
        if json_value:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ProfileError(
                        f"Airflow connection {self.conn_id!r}: {name} is not valid JSON ({exc})"
                    ) from None
            text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        else:
            text = str(value)
        env_name = self.env_name(name)
        self._env[env_name] = text
        self._secrets.add(text)
        if isinstance(value, Mapping):  # mask the key file's own secrets (private_key ...) too
            self._secrets.update(str(v) for k, v in value.items() if _is_secret_name(k) and v)
        if json_value:
            return EnvRef(f"{{{{ fromjson(env_var('{env_name}')) }}}}")
        return EnvRef(f"{{{{ env_var('{env_name}') }}}}")

    def get(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` set (not None or "") in ``extra``."""
        for name in names:
            value = self.extra.get(name)
            if value is not None and value != "":
                return value
        return default

    def passthrough(self, fields: dict[str, Any], names: tuple[str, ...]) -> None:
        """Copy the ``extra`` keys dbt knows for this adapter, unchanged, into ``fields``."""
        for name in names:
            value = self.extra.get(name)
            if value is not None and value != "":
                fields[name] = value


Builder = Callable[[ConnectionView], dict[str, Any]]


@dataclass(frozen=True)
class AdapterMapping:
    """How one Airflow ``conn_type`` becomes a dbt target."""

    dbt_type: str
    build: Builder
    #: target fields that must be set after ``profile_args`` are merged, with how to set them.
    required: Mapping[str, str] = field(default_factory=dict)
    #: ``profile_args`` names that mean another field (``database`` → ``dbname``).
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: target fields holding secrets: given in ``profile_args`` they go through env vars too.
    secret_fields: frozenset[str] = frozenset({"password"})
    #: a last check of the merged target (raise ProfileError), beyond ``required``.
    check: Callable[[ConnectionView, dict[str, Any]], None] | None = None


ADAPTERS: dict[str, AdapterMapping] = {}


def register_adapter(conn_types: str | tuple[str, ...], mapping: AdapterMapping) -> None:
    """Teach ``profile_from_connection`` a new Airflow ``conn_type`` (or replace one)."""
    for conn_type in (conn_types,) if isinstance(conn_types, str) else conn_types:
        ADAPTERS[conn_type] = mapping


_SECRET_WORDS = ("password", "secret", "token", "private_key", "passphrase", "credential")


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


# ---------------------------------------------------------------------------------------------
# The adapters

_DUCKDB_EXTRA = (
    "extensions",
    "settings",
    "attach",
    "filesystems",
    "plugins",
    "secrets",
    "external_root",
    "module_paths",
    "disable_transactions",
    "keep_open",
    "retries",
    "config_options",
    "use_credential_provider",
    "threads",
)


def _duckdb(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": "duckdb"}
    path = c.host or c.get("path", "database")
    if path:
        fields["path"] = path
    schema = c.get("schema") or c.schema
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _DUCKDB_EXTRA)
    settings = fields.get("settings")
    if isinstance(settings, Mapping):
        fields["settings"] = {
            k: (c.secret(f"settings_{k}", v) if _is_secret_name(k) and v not in (None, "") else v)
            for k, v in settings.items()
        }
    token = c.password or c.get("motherduck_token")
    if token:  # MotherDuck: path "md:<db>", the token is the connection's password
        fields.setdefault("settings", {})
        fields["settings"]["motherduck_token"] = c.secret("motherduck_token", token)
    return fields


def _check_duckdb_path(c: ConnectionView, fields: dict[str, Any]) -> None:
    path = fields.get("path")
    if not path or str(path).strip() == ":memory:":
        raise ProfileError(
            f"Airflow connection {c.conn_id!r} (duckdb) gives "
            f"{'an in-memory database' if path else 'no database file'}: each dbt task is its own process, "
            "so models built in memory vanish before the next task reads them. Set the connection's host "
            "(or extra 'path') to a database file every worker can reach, or "
            "ProfileConfig(profile_args={'path': '/data/warehouse.duckdb'})"
        )


_POSTGRES_EXTRA = (
    "threads",
    "keepalives_idle",
    "connect_timeout",
    "retries",
    "search_path",
    "role",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "application_name",
)


def _postgres(c: ConnectionView) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "postgres",
        "host": c.host,
        "port": c.port or 5432,
        "user": c.login,
    }
    if c.password:
        fields["password"] = c.secret("password", c.password)
    fields["dbname"] = c.schema or c.get("dbname", "database")
    schema = c.get("schema")
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _POSTGRES_EXTRA)
    return fields


_REDSHIFT_EXTRA = (
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
)


def _redshift(c: ConnectionView) -> dict[str, Any]:
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
    elif c.password:
        fields["password"] = c.secret("password", c.password)
    fields["dbname"] = c.schema or c.get("dbname", "database")
    schema = c.get("schema")
    if schema:
        fields["schema"] = schema
    c.passthrough(fields, _REDSHIFT_EXTRA)
    secret_key = c.get("secret_access_key")
    if secret_key:
        fields["secret_access_key"] = c.secret("secret_access_key", secret_key)
    return fields


_SNOWFLAKE_EXTRA = (
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


def _snowflake(c: ConnectionView) -> dict[str, Any]:
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
    c.passthrough(fields, _SNOWFLAKE_EXTRA)
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


_BIGQUERY_EXTRA = (
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


def _bigquery(c: ConnectionView) -> dict[str, Any]:
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
    c.passthrough(fields, _BIGQUERY_EXTRA)
    return fields


def _json_or_none(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


_TRINO_EXTRA = ("threads", "session_properties", "roles", "client_tags", "timezone", "prepared_statements_enabled")


def _trino(c: ConnectionView) -> dict[str, Any]:
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
    c.passthrough(fields, _TRINO_EXTRA)
    return fields


def _required(**fields: str) -> dict[str, str]:
    return {name: f"{where}, or ProfileConfig(profile_args={{{name!r}: ...}})" for name, where in fields.items()}


register_adapter(
    "duckdb",
    AdapterMapping(
        "duckdb",
        _duckdb,
        secret_fields=frozenset({"password", "motherduck_token"}),
        check=_check_duckdb_path,
    ),
)
register_adapter(
    ("postgres", "postgresql"),
    AdapterMapping(
        "postgres",
        _postgres,
        required=_required(
            host="the connection's host",
            user="the connection's login",
            dbname="the connection's schema field (Airflow's name for the database) or extra 'dbname'",
            schema="extra 'schema'",
        ),
        aliases={"database": "dbname"},
    ),
)
register_adapter(
    "redshift",
    AdapterMapping(
        "redshift",
        _redshift,
        required=_required(
            host="the connection's host",
            user="the connection's login",
            dbname="the connection's schema field (Airflow's name for the database) or extra 'dbname'",
            schema="extra 'schema'",
        ),
        aliases={"database": "dbname"},
        secret_fields=frozenset({"password", "secret_access_key"}),
    ),
)
register_adapter(
    "snowflake",
    AdapterMapping(
        "snowflake",
        _snowflake,
        required=_required(
            account="extra 'account'",
            user="the connection's login",
            database="extra 'database'",
            schema="the connection's schema",
        ),
        secret_fields=frozenset({"password", "private_key", "private_key_passphrase", "token"}),
    ),
)
register_adapter(
    ("google_cloud_platform", "gcpbigquery", "bigquery"),
    AdapterMapping(
        "bigquery",
        _bigquery,
        required=_required(
            project="extra 'project' (or the key file's project_id)",
            dataset="the connection's schema or extra 'dataset'",
        ),
        aliases={"schema": "dataset", "database": "project"},
        secret_fields=frozenset({"keyfile_json"}),
    ),
)
register_adapter(
    "trino",
    AdapterMapping(
        "trino",
        _trino,
        required=_required(
            host="the connection's host",
            user="the connection's login",
            database="extra 'catalog'",
            schema="the connection's schema",
        ),
        aliases={"catalog": "database"},
        secret_fields=frozenset({"password", "jwt_token"}),
    ),
)

# Fields dbt wants as numbers or booleans, which Airflow extras often hold as strings.
_INT_FIELDS = frozenset(
    {
        "port",
        "threads",
        "keepalives_idle",
        "connect_timeout",
        "connect_retries",
        "retries",
        "job_execution_timeout_seconds",
        "job_retries",
        "job_retry_deadline_seconds",
        "maximum_bytes_billed",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "ra3_node",
        "autocommit",
        "autocreate",
        "client_session_keep_alive",
        "reuse_connections",
        "retry_on_database_errors",
        "retry_all",
        "insecure_mode",
        "disable_transactions",
        "keep_open",
        "prepared_statements_enabled",
        "use_credential_provider",
    }
)


def _coerce(conn_id: str, fields: dict[str, Any]) -> None:
    for name in _INT_FIELDS.intersection(fields):
        value = fields[name]
        if isinstance(value, EnvRef) or (isinstance(value, int) and not isinstance(value, bool)):
            continue
        try:
            fields[name] = int(str(value).strip())
        except ValueError:
            raise ProfileError(f"Airflow connection {conn_id!r}: {name} must be a whole number, got {value!r}") from None
    for name in _BOOL_FIELDS.intersection(fields):
        value = fields[name]
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            fields[name] = value.strip().lower() in ("true", "1", "yes")


# ---------------------------------------------------------------------------------------------
# Public functions


def supported_conn_types() -> list[str]:
    return sorted(ADAPTERS)


def profile_from_connection(
    conn: Any,
    profile_name: str,
    target_name: str,
    profile_args: Mapping[str, Any] | None = None,
) -> RenderedProfile:
    """Turn an Airflow Connection (or any object with its attributes) into a dbt profile.

    ``profile_args`` override or extend the target's fields; a value of ``None`` removes a field.
    """
    conn_id = str(getattr(conn, "conn_id", None) or profile_name)
    conn_type = str(getattr(conn, "conn_type", None) or "").lower()
    mapping = ADAPTERS.get(conn_type)
    if mapping is None:
        raise ProfileError(
            f"Airflow connection {conn_id!r} has conn_type {conn_type or None!r}, which manifest-dag cannot "
            f"turn into a dbt profile; supported conn_types: {', '.join(supported_conn_types())}. "
            "Use ProfileConfig(profiles_yml_path=...) instead, or add a mapping with "
            "manifest_dag.worker.profiles.register_adapter()"
        )
    extra = _extra(conn, conn_id, conn_type)
    args = dict(profile_args or {})
    view = ConnectionView(
        conn_id=conn_id,
        conn_type=conn_type,
        host=getattr(conn, "host", None) or None,
        port=_port(conn_id, getattr(conn, "port", None)),
        login=getattr(conn, "login", None) or None,
        password=getattr(conn, "password", None) or None,
        schema=getattr(conn, "schema", None) or None,
        extra=MappingProxyType(extra),
        args=MappingProxyType(args),
    )
    fields = mapping.build(view)
    for key, value in args.items():
        key = mapping.aliases.get(key, key)
        if value is None:
            fields.pop(key, None)
        elif isinstance(value, str) and "{{" in value:
            fields[key] = EnvRef(value)  # the user's own Jinja (e.g. their env_var()): dbt renders it
        elif key in mapping.secret_fields:
            fields[key] = view.secret(key, value, json_value=key == "keyfile_json")
        else:
            fields[key] = value
    fields = {k: v for k, v in fields.items() if v is not None and v != ""}
    fields["type"] = mapping.dbt_type
    _coerce(conn_id, fields)
    if mapping.check is not None:
        mapping.check(view, fields)
    missing = [name for name in mapping.required if name not in fields]
    if missing:
        hints = "; ".join(f"{name}: set {mapping.required[name]}" for name in missing)
        raise ProfileError(
            f"Airflow connection {conn_id!r} ({conn_type}) lacks what a dbt {mapping.dbt_type} target needs: "
            f"{', '.join(missing)}. {hints}"
        )
    document = {profile_name: {"target": target_name, "outputs": {target_name: fields}}}
    text = (
        f"# Written by manifest-dag from Airflow connection {conn_id!r}; "
        "secrets are read from environment variables.\n"
        + yaml.dump(
            document,
            Dumper=_ProfileDumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=2**31 - 1,
        )
    )
    secrets = frozenset(s for s in view._secrets if s)
    _mask(secrets)
    return RenderedProfile(
        profiles_yml=text,
        env=MappingProxyType(dict(view._env)),
        secrets=secrets,
        profile_name=profile_name,
        target_name=target_name,
    )


def _extra(conn: Any, conn_id: str, conn_type: str) -> dict[str, Any]:
    raw = getattr(conn, "extra_dejson", None)
    if raw is None:
        raw = getattr(conn, "extra", None) or {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ProfileError(f"Airflow connection {conn_id!r}: its extra is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise ProfileError(f"Airflow connection {conn_id!r}: its extra must be a JSON object, got {raw!r}")
    prefix = f"extra__{conn_type}__"
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(prefix):
            extra.setdefault(key[len(prefix) :], value)
        else:
            extra[key] = value
    return extra


def _port(conn_id: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProfileError(f"Airflow connection {conn_id!r}: port must be a number, got {value!r}") from None


def _mask(secrets: frozenset[str]) -> None:
    """Register secrets with Airflow's log masker, when Airflow is already loaded (a task is)."""
    if not secrets or "airflow" not in sys.modules:
        return
    mask: Callable[[str], None] | None = None
    try:
        from airflow.sdk.log import mask_secret as mask  # Airflow 3.1+
    except ImportError:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from airflow.sdk.execution_time.secrets_masker import mask_secret as mask  # Airflow 3.0
        except ImportError:
            return
    for secret in secrets:
        try:
            mask(secret)
        except Exception:  # masking is best effort; never fail a task over it
            pass


def fetch_connection(conn_id: str) -> Any:
    """Get an Airflow Connection by id, in a running task or in a plain process.

    ``airflow.sdk.Connection.get`` asks the task's supervisor (which reads the metadata DB and any
    secrets backend) inside a task, and environment variables (``AIRFLOW_CONN_<ID>``) plus the
    configured secrets backends elsewhere, e.g. in tests.
    """
    try:
        from airflow.sdk import Connection
    except ImportError as exc:  # pragma: no cover - Airflow 3 always has it
        raise ProfileError(f"cannot fetch Airflow connection {conn_id!r}: airflow.sdk is not importable ({exc})") from exc
    env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
    try:
        conn = Connection.get(conn_id)
    except Exception as exc:
        if type(exc).__name__ == "AirflowNotFoundException":
            raise ProfileError(
                f"Airflow connection {conn_id!r} (ProfileConfig.conn_id) is not defined. Add it in the UI "
                f"(Admin > Connections), with `airflow connections add {conn_id} --conn-json '{{\"conn_type\": ...}}'`, "
                f"or as the environment variable {env_name}='{{\"conn_type\": ..., \"host\": ...}}' on the workers"
            ) from None
        raise ProfileError(f"cannot fetch Airflow connection {conn_id!r}: {type(exc).__name__}: {exc}") from exc
    if conn is None:
        raise ProfileError(f"Airflow connection {conn_id!r} (ProfileConfig.conn_id) is not defined")
    return conn


def resolve_profile(config: ProfileConfig, project_dir: Path | str | None = None) -> RenderedProfile | Path | None:
    """The profile a task uses.

    - ``profiles_yml_path``: that file (relative paths are taken from ``project_dir``), after
      checking it defines ``profile_name`` with target ``target_name``;
    - ``conn_id``: a profile made from that Airflow Connection;
    - neither: ``None``, and dbt looks for ``profiles.yml`` itself.
    """
    if config.profiles_yml_path is not None:
        return _check_profiles_file(Path(config.profiles_yml_path), config, project_dir)
    if config.conn_id:
        conn = fetch_connection(config.conn_id)
        return profile_from_connection(conn, config.profile_name, config.target_name, config.profile_args)
    return None


def _check_profiles_file(path: Path, config: ProfileConfig, project_dir: Path | str | None) -> Path:
    if not path.is_absolute() and project_dir is not None:
        path = Path(project_dir) / path
    if path.is_dir():
        path = path / PROFILES_FILE
    where = f"ProfileConfig.profiles_yml_path={str(config.profiles_yml_path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profiles file ({where}); give the path of an existing profiles.yml") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profiles file ({where}): {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get(config.profile_name), Mapping):
        found = sorted(str(k) for k in data if k != "config") if isinstance(data, Mapping) else []
        raise ProfileError(
            f"{path}: defines no profile {config.profile_name!r} (profiles in the file: "
            f"{', '.join(map(str, found)) or 'none'}); fix ProfileConfig.profile_name or the file"
        )
    outputs = data[config.profile_name].get("outputs")
    if not isinstance(outputs, Mapping) or config.target_name not in outputs:
        found = sorted(map(str, outputs)) if isinstance(outputs, Mapping) else []
        raise ProfileError(
            f"{path}: profile {config.profile_name!r} has no target {config.target_name!r} under 'outputs' "
            f"(targets: {', '.join(found) or 'none'}); fix ProfileConfig.target_name or the file"
        )
    return path


def write_profile(profile: RenderedProfile, directory: Path | str) -> Path:
    """Write ``directory/profiles.yml`` readable by its owner only (0600) and return ``directory``.

    The file is created with mode 0600 from the start, never loosened-then-tightened; an
    existing file is replaced.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROFILES_FILE
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot write the profiles file: {exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(profile.profiles_yml)
    return directory
