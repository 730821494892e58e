"""worker/profiles/: golden pairs (tests/worker/profiles/<case>.json → <case>.yml), secrets, files, Airflow lookup."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from manifest_dag.core.config import ProfileConfig
from manifest_dag.core.errors import ProfileError
from manifest_dag.core.secrets import Masker
from manifest_dag.worker.profiles import (
    ADAPTERS,
    RenderedProfile,
    profile_from_connection,
    resolve_profile,
    write_profile,
)

PROFILES = Path(__file__).resolve().parent / "profiles"
CASES = sorted(PROFILES.glob("*.json"))
CONN_FIELDS = ("conn_type", "host", "port", "login", "password", "schema", "extra")


def _case(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _stand_in(case: dict[str, Any]) -> SimpleNamespace:
    """Any object with a Connection's attributes will do."""
    return SimpleNamespace(
        conn_id=case["conn_id"],
        conn_type=case["conn_type"],
        host=case.get("host"),
        port=case.get("port"),
        login=case.get("login"),
        password=case.get("password"),
        schema=case.get("schema"),
        extra_dejson=case.get("extra", {}),
    )


def _render(case: dict[str, Any], conn: Any = None) -> RenderedProfile:
    return profile_from_connection(
        conn if conn is not None else _stand_in(case),
        case.get("profile_name", "shop"),
        case.get("target_name", "dev"),
        case.get("profile_args", {}),
    )


def _secret_values(case: dict[str, Any]) -> list[str]:
    """The clear-text secrets a case holds: the password and secret-looking extras."""
    values = [case["password"]] if case.get("password") else []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):  # DuckDB's secrets, filesystems and attach are lists of dicts
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and not key.endswith(("_file", "_path")) and (  # a key file's path is no secret
            any(w in key.lower() for w in ("secret", "private_key", "token", "keyfile", "password"))
            or key in ("connection_string", "encryption_key", "api_key", "dsn")
            or "password=" in node  # a libpq connection string (DuckDB attach of a postgres database)
        ):
            values.append(node)

    walk(case.get("extra", {}))
    return values


def _inside_json(value: str, text: str) -> bool:
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and value in parsed.values()


def _same_json(a: str, b: str) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def test_golden_cases_cover_every_adapter() -> None:
    """Every registered conn_type has a golden pair (a new mapping without one fails here)."""
    covered = {_case(p)["conn_type"] for p in CASES}
    assert set(ADAPTERS) - covered <= {"postgresql", "gcpbigquery", "bigquery"}, set(ADAPTERS) - covered
    dbt_types = {ADAPTERS[_case(p)["conn_type"]].dbt_type for p in CASES}
    assert dbt_types >= {
        "duckdb", "postgres", "redshift", "snowflake", "bigquery", "trino", "databricks", "spark", "athena",
        "clickhouse", "sqlserver", "mysql", "oracle", "exasol", "vertica", "teradata",
    }
    for path in CASES:
        assert path.with_suffix(".yml").is_file(), f"{path.name} has no golden .yml beside it"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_pair(path: Path) -> None:
    case = _case(path)
    profile = _render(case)
    assert profile.profiles_yml == path.with_suffix(".yml").read_text()
    parsed = yaml.safe_load(profile.profiles_yml)
    target = parsed[case.get("profile_name", "shop")]["outputs"][case.get("target_name", "dev")]
    assert parsed[case.get("profile_name", "shop")]["target"] == case.get("target_name", "dev")
    if "port" in target:  # dbt-teradata alone wants its port as text
        assert type(target["port"]) is (str if target["type"] == "teradata" else int)
    if "threads" in target:
        assert type(target["threads"]) is int


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_secrets_only_in_env(path: Path) -> None:
    case = _case(path)
    profile = _render(case)
    secrets = _secret_values(case)
    for secret in secrets:
        assert secret not in profile.profiles_yml
        for line in secret.splitlines():  # nor any line of a multi-line key
            if len(line) > 8:
                assert line not in profile.profiles_yml
    # every env var is referenced by the YAML, named after the conn_id, and marked secret
    for name, value in profile.env.items():
        assert name.startswith("MANIFEST_DAG_")
        assert f"env_var('{name}')" in profile.profiles_yml
        assert value in profile.secrets
    # every clear-text secret is carried by the env (as is, or inside the key-file JSON)
    for secret in secrets:  # a key file given as a mapping: its private_key inside the JSON, masked on its own
        assert any(secret == v or _same_json(secret, v) or _inside_json(secret, v) for v in profile.env.values())
        assert secret in profile.secrets or any(_same_json(secret, s) for s in profile.secrets)
    assert not profile.env or "env_var" in repr(profile)  # the repr shows the YAML...
    for secret in profile.secrets:
        assert secret not in repr(profile)  # ...but no secret


def test_password_goes_through_env_var() -> None:
    profile = _render(_case(PROFILES / "postgres.json"))
    assert "password: \"{{ env_var('MANIFEST_DAG_WAREHOUSE_PG_PASSWORD') }}\"" in profile.profiles_yml
    assert profile.env == {"MANIFEST_DAG_WAREHOUSE_PG_PASSWORD": "pg-s3cr3t/with:odd'chars\""}
    assert profile.secrets == frozenset({"pg-s3cr3t/with:odd'chars\""})


def test_bigquery_keyfile_is_json_in_env() -> None:
    profile = _render(_case(PROFILES / "bigquery.json"))
    keyfile = json.loads(profile.env["MANIFEST_DAG_GOOGLE_CLOUD_DEFAULT_KEYFILE_JSON"])
    assert keyfile["project_id"] == "shop-prod"
    assert keyfile["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert keyfile["private_key"] in profile.secrets  # masked on its own too


def test_write_profile_creates_0600_file(tmp_path: Path) -> None:
    profile = _render(_case(PROFILES / "postgres.json"))
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        directory = write_profile(profile, tmp_path / "ws" / "profiles")
    finally:
        os.umask(old_umask)
    assert directory == tmp_path / "ws" / "profiles"
    path = directory / "profiles.yml"
    assert path.read_text() == profile.profiles_yml
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_profile_replaces_a_looser_file(tmp_path: Path) -> None:
    old = tmp_path / "profiles.yml"
    old.write_text("old: {}\n")
    old.chmod(0o644)
    profile = _render(_case(PROFILES / "duckdb.json"))
    write_profile(profile, tmp_path)
    assert old.read_text() == profile.profiles_yml
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def _pg(**changes: Any) -> SimpleNamespace:
    conn = _stand_in(_case(PROFILES / "postgres.json"))
    for key, value in changes.items():
        setattr(conn, key, value)
    return conn


def test_postgres_schema_is_required() -> None:
    with pytest.raises(ProfileError, match=r"warehouse_pg.*schema.*profile_args=\{'schema'"):
        profile_from_connection(_pg(), "shop", "dev", {})


def test_postgres_defaults_and_aliases() -> None:
    profile = profile_from_connection(
        _pg(port=None, schema=None, extra_dejson={"dbname": "from_extra", "schema": "s"}), "shop", "dev", {}
    )
    target = yaml.safe_load(profile.profiles_yml)["shop"]["outputs"]["dev"]
    assert target["port"] == 5432 and target["dbname"] == "from_extra" and target["schema"] == "s"
    # profile_args override, alias, remove (None), and coerce to int
    profile = profile_from_connection(
        _pg(), "shop", "dev", {"schema": "x", "database": "other", "sslmode": None, "port": "6543"}
    )
    target = yaml.safe_load(profile.profiles_yml)["shop"]["outputs"]["dev"]
    assert target["dbname"] == "other" and "database" not in target
    assert "sslmode" not in target
    assert target["port"] == 6543


def test_profile_args_secret_goes_through_env() -> None:
    profile = profile_from_connection(_pg(password=None), "shop", "dev", {"schema": "x", "password": "args-pass-123"})
    assert "args-pass-123" not in profile.profiles_yml
    assert profile.env == {"MANIFEST_DAG_WAREHOUSE_PG_PASSWORD": "args-pass-123"}


def test_bad_port_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match="port must be"):
        profile_from_connection(_pg(), "shop", "dev", {"schema": "x", "port": "fivefour"})


@pytest.mark.parametrize("host", [None, ":memory:"])
def test_duckdb_needs_a_database_file(host: str | None) -> None:
    conn = SimpleNamespace(
        conn_id="duck", conn_type="duckdb", host=host, port=None, login=None, password=None, schema=None, extra_dejson={}
    )
    with pytest.raises(ProfileError, match=r"'duck'.*profile_args=\{'path'"):
        profile_from_connection(conn, "shop", "dev", {})
    profile = profile_from_connection(conn, "shop", "dev", {"path": "/data/x.duckdb"})
    assert yaml.safe_load(profile.profiles_yml)["shop"]["outputs"]["dev"]["path"] == "/data/x.duckdb"


def test_unsupported_conn_type_lists_the_supported_ones() -> None:
    conn = SimpleNamespace(conn_id="m", conn_type="sqlite", host="h", port=None, login=None, password=None, schema=None, extra_dejson={})
    with pytest.raises(ProfileError, match=r"'m'.*'sqlite'.*duckdb.*postgres.*snowflake") as info:
        profile_from_connection(conn, "shop", "dev", {})
    assert "google_cloud_platform" in str(info.value) and "trino" in str(info.value)


def test_extra_as_json_string_when_no_extra_dejson() -> None:
    conn = SimpleNamespace(
        conn_id="pg", conn_type="postgres", host="h", port=None, login="u", password="pw-12345", schema="db",
        extra='{"schema": "s"}',
    )
    target = yaml.safe_load(profile_from_connection(conn, "p", "t", {}).profiles_yml)["p"]["outputs"]["t"]
    assert target["schema"] == "s"


# --- resolve_profile ---------------------------------------------------------------------------


def _env_conn(case: dict[str, Any]) -> str:
    """The Airflow JSON form of a connection, as AIRFLOW_CONN_<ID> holds it."""
    return json.dumps({k: case[k] for k in CONN_FIELDS if k in case})


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_resolve_profile_from_airflow_env_connection(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A real Airflow Connection defined by AIRFLOW_CONN_<ID> (JSON), fetched through airflow.sdk."""
    case = _case(path)
    monkeypatch.setenv(f"AIRFLOW_CONN_{case['conn_id'].upper()}", _env_conn(case))
    config = ProfileConfig(
        profile_name=case.get("profile_name", "shop"),
        target_name=case.get("target_name", "dev"),
        conn_id=case["conn_id"],
        profile_args=case.get("profile_args", {}),
    )
    profile = resolve_profile(config, tmp_path)
    assert isinstance(profile, RenderedProfile)
    assert profile.profiles_yml == path.with_suffix(".yml").read_text()
    assert profile.env == _render(case).env


def test_resolve_profile_missing_conn_id_names_it_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_WAREHOUSE", raising=False)
    config = ProfileConfig(profile_name="shop", conn_id="no_such_warehouse")
    with pytest.raises(ProfileError, match="'no_such_warehouse'") as info:
        resolve_profile(config, Path("."))
    assert "AIRFLOW_CONN_NO_SUCH_WAREHOUSE" in str(info.value)
    assert "airflow connections add no_such_warehouse" in str(info.value)


def test_resolve_profile_neither_is_none() -> None:
    assert resolve_profile(ProfileConfig(profile_name="shop"), Path(".")) is None


def test_resolve_profile_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    file = tmp_path / "conf" / "profiles.yml"
    file.write_text("shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: x.duckdb}\n    prod: {type: duckdb, path: y.duckdb}\n")
    assert resolve_profile(ProfileConfig(profile_name="shop", profiles_yml_path=file), tmp_path) == file
    # relative to the project dir, and a directory means the profiles.yml in it
    assert resolve_profile(ProfileConfig(profile_name="shop", target_name="prod", profiles_yml_path="conf/profiles.yml"), tmp_path) == file
    assert resolve_profile(ProfileConfig(profile_name="shop", profiles_yml_path=tmp_path / "conf"), tmp_path) == file

    with pytest.raises(ProfileError, match=rf"{file}.*no profile 'other'.*shop"):
        resolve_profile(ProfileConfig(profile_name="other", profiles_yml_path=file), tmp_path)
    with pytest.raises(ProfileError, match=rf"{file}.*profile 'shop' has no target 'ci'.*dev, prod"):
        resolve_profile(ProfileConfig(profile_name="shop", target_name="ci", profiles_yml_path=file), tmp_path)
    missing = tmp_path / "nope.yml"
    with pytest.raises(ProfileError, match=rf"{missing}: no such profiles file"):
        resolve_profile(ProfileConfig(profile_name="shop", profiles_yml_path=missing), tmp_path)
    bad = tmp_path / "bad.yml"
    bad.write_text("shop: [unclosed\n")
    with pytest.raises(ProfileError, match=rf"{bad}: is not valid YAML"):
        resolve_profile(ProfileConfig(profile_name="shop", profiles_yml_path=bad), tmp_path)


def test_no_airflow_or_dbt_import_at_module_level() -> None:
    code = (
        "import sys, manifest_dag.worker.profiles; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'dbt')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_secrets_are_registered_with_airflows_masker() -> None:
    pytest.importorskip("airflow.sdk")
    from airflow.sdk._shared.secrets_masker import redact

    fresh = "never-seen-before-" + os.urandom(6).hex()
    assert redact(f"the password is {fresh}") != "the password is ***"
    profile = profile_from_connection(_pg(password=fresh), "shop", "dev", {"schema": "x"})
    assert profile.secrets == frozenset({fresh})
    assert redact(f"the password is {fresh}") == "the password is ***"


def test_profile_args_jinja_is_kept_for_dbt_to_render() -> None:
    profile = profile_from_connection(
        _pg(password=None), "shop", "dev", {"schema": "{{ env_var('SCHEMA', 'dev') }}", "password": "{{ env_var('MY_PW') }}"}
    )
    assert "password: \"{{ env_var('MY_PW') }}\"" in profile.profiles_yml
    assert "schema: \"{{ env_var('SCHEMA', 'dev') }}\"" in profile.profiles_yml
    assert profile.env == {} and profile.secrets == frozenset()


def test_snowflake_base64_private_key_content_is_decoded_to_pem() -> None:
    import base64

    pem = "-----BEGIN PRIVATE KEY-----\nMIIFakeSnowflakeKeyForTests\n-----END PRIVATE KEY-----\n"
    case = _case(PROFILES / "snowflake_keypair.json")
    case["extra"]["private_key_content"] = base64.b64encode(pem.encode()).decode()
    profile = _render(case)
    assert profile.env["MANIFEST_DAG_SNOWFLAKE_KEYPAIR_PRIVATE_KEY"] == pem
    assert profile.profiles_yml == (PROFILES / "snowflake_keypair.yml").read_text()


def test_nested_secrets_in_profile_args_go_through_env_and_the_masker() -> None:
    """Issue 19 item 6: DuckDB's secrets/attach given as profile_args are hidden like the extras;
    the user's own Jinja under a secret name is kept for dbt to render."""
    case = {"conn_id": "lake", "conn_type": "duckdb", "host": "/data/lake.duckdb", "extra": {}}
    args = {
        "secrets": [{"type": "s3", "key_id": "AKIAX", "secret": "args-s3-secret-1"}],
        "attach": [{"path": "postgres://reader:args-pg-pass-2@pg/crm", "alias": "crm", "type": "postgres"}],
        "settings": {"s3_secret_access_key": "{{ env_var('MY_S3_KEY') }}"},
    }
    profile = profile_from_connection(_stand_in(case), "shop", "dev", args)
    assert "args-s3-secret-1" not in profile.profiles_yml and "args-pg-pass-2" not in profile.profiles_yml
    assert profile.env["MANIFEST_DAG_LAKE_SECRETS_0_SECRET"] == "args-s3-secret-1"
    assert "{{ env_var('MY_S3_KEY') }}" in profile.profiles_yml
    masked = Masker(profile.secrets)("connecting with args-s3-secret-1 to postgres://reader:args-pg-pass-2@pg/crm")
    assert "args-s3-secret-1" not in masked and "args-pg-pass-2" not in masked


# --- the mappings added for issue 22 --------------------------------------------------------------


def _conn(conn_type: str, conn_id: str = "c", **fields: Any) -> SimpleNamespace:
    base = {"host": "h.example", "port": None, "login": "u", "password": None, "schema": "s", "extra_dejson": {}}
    base.update(fields)
    return SimpleNamespace(conn_id=conn_id, conn_type=conn_type, **base)


def _target(profile: RenderedProfile) -> dict[str, Any]:
    return yaml.safe_load(profile.profiles_yml)["shop"]["outputs"]["dev"]


def test_spark_http_needs_a_cluster_and_thrift_a_user() -> None:
    with pytest.raises(ProfileError, match=r"'c'.*method http.*extra 'cluster'"):
        profile_from_connection(_conn("spark", password="tok-123456", extra_dejson={"method": "http"}), "shop", "dev")
    with pytest.raises(ProfileError, match=r"'c'.*method thrift.*no login"):
        profile_from_connection(_conn("hiveserver2", login=None), "shop", "dev")
    with pytest.raises(ProfileError, match=r"extra 'method' is 'odbc'"):
        profile_from_connection(_conn("spark", extra_dejson={"method": "odbc"}), "shop", "dev")
    # no password: no auth; a password alone means LDAP (PyHive sends a password only then)
    assert "auth" not in _target(profile_from_connection(_conn("hiveserver2"), "shop", "dev"))
    assert _target(profile_from_connection(_conn("hiveserver2", password="pw-123456"), "shop", "dev"))["auth"] == "LDAP"


def test_bigquery_impersonation_chain_of_several_accounts_is_refused() -> None:
    conn = _conn("google_cloud_platform", extra_dejson={"project": "p", "impersonation_chain": ["a@x", "b@x"]})
    with pytest.raises(ProfileError, match=r"'c'.*impersonation_chain.*2 accounts"):
        profile_from_connection(conn, "shop", "dev")


def test_snowflake_needs_a_user_but_with_oauth() -> None:
    extra = {"account": "acct", "database": "DB"}
    with pytest.raises(ProfileError, match=r"'c' \(snowflake\).*user"):
        profile_from_connection(_conn("snowflake", login=None, password="pw-123456", extra_dejson=extra), "shop", "dev")
    token_only = _conn("snowflake", login=None, extra_dejson={**extra, "authenticator": "oauth", "token": "access-tok-1"})
    profile = profile_from_connection(token_only, "shop", "dev")
    target = _target(profile)
    assert target["authenticator"] == "oauth" and "user" not in target and "oauth_client_id" not in target
    assert profile.env == {"MANIFEST_DAG_C_TOKEN": "access-tok-1"}


def test_teradata_port_is_text_and_mysql_type_variants() -> None:
    assert _target(profile_from_connection(_conn("teradata", port=1025), "shop", "dev"))["port"] == "1025"
    assert _target(profile_from_connection(_conn("teradata", port=None), "shop", "dev", {"port": 1025}))["port"] == "1025"
    mysql = _conn("mysql")
    assert _target(profile_from_connection(mysql, "shop", "dev", {"type": "mariadb"}))["type"] == "mariadb"
    assert _target(profile_from_connection(mysql, "shop", "dev", {"type": "postgres"}))["type"] == "mysql"


def test_athena_and_databricks_name_what_is_missing() -> None:
    with pytest.raises(ProfileError, match=r"'c' \(aws\).*region_name, s3_staging_dir.*extra 'region_name'"):
        profile_from_connection(_conn("aws", schema=None, extra_dejson={"schema": "x"}), "shop", "dev")
    with pytest.raises(ProfileError, match=r"'c' \(databricks\).*http_path.*extra 'http_path'"):
        profile_from_connection(_conn("databricks", password="dapi-123456"), "shop", "dev")


def test_oracle_sid_becomes_a_connection_string_in_env() -> None:
    profile = profile_from_connection(_conn("oracle", password="pw-123456", port=1522, extra_dejson={"sid": "ORCL"}), "shop", "dev")
    target = _target(profile)
    assert "host" not in target and target["database"] == "ORCL"
    assert profile.env["MANIFEST_DAG_C_CONNECTION_STRING"] == (
        "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=h.example)(PORT=1522))(CONNECT_DATA=(SID=ORCL)))"
    )


def test_register_adapter_adds_a_users_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user teaches manifest-dag a conn_type from their DAG file, without forking."""
    from manifest_dag import AdapterMapping, ConnectionView, register_adapter
    from manifest_dag.worker.profiles import registry

    monkeypatch.setattr(registry, "ADAPTERS", dict(ADAPTERS))  # the test's own table

    def build(c: ConnectionView) -> dict[str, Any]:
        return {"host": c.host, "user": c.login, "password": c.secret("password", c.password), "schema": c.schema}

    register_adapter(("sqlite_http", "my_warehouse"), AdapterMapping("mywh", build, required={"schema": "the connection's schema"}))
    profile = profile_from_connection(_conn("my_warehouse", password="custom-pw-9"), "shop", "dev")
    assert _target(profile) == {
        "host": "h.example", "user": "u", "password": "{{ env_var('MANIFEST_DAG_C_PASSWORD') }}", "schema": "s", "type": "mywh"
    }
    assert profile.env == {"MANIFEST_DAG_C_PASSWORD": "custom-pw-9"} and "custom-pw-9" not in profile.profiles_yml
    with pytest.raises(ProfileError, match="lacks what a dbt mywh target needs: schema"):
        profile_from_connection(_conn("my_warehouse", schema=None), "shop", "dev")


ENTRY_POINT_MODULE = """
from manifest_dag import AdapterMapping

def build(c):
    return {"host": c.host, "user": c.login, "password": c.secret("password", c.password), "schema": c.schema}

MAPPING = AdapterMapping("acme", build, required={"host": "the connection's host"})
NOT_A_MAPPING = object()
"""


def test_mapping_from_an_installed_packages_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package on the workers names its mapping in entry point group manifest_dag.profile_mappings;
    no DAG file imports it. A registered mapping would win; a broken entry point names itself."""
    from manifest_dag.worker.profiles import registry, supported_conn_types

    (tmp_path / "acme_mappings.py").write_text(ENTRY_POINT_MODULE)
    dist = tmp_path / "acme_mappings-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-mappings\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[manifest_dag.profile_mappings]\nacme_db = acme_mappings:MAPPING\n"
        "acme_bad = acme_mappings:NOT_A_MAPPING\nacme_gone = no_such_module_xyz:MAPPING\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "ADAPTERS", dict(ADAPTERS))
    assert {"acme_db", "acme_bad"} <= set(supported_conn_types())
    profile = profile_from_connection(_conn("acme_db", password="acme-pw-77"), "shop", "dev")
    assert _target(profile)["type"] == "acme" and profile.env == {"MANIFEST_DAG_C_PASSWORD": "acme-pw-77"}
    assert registry.ADAPTERS["acme_db"].dbt_type == "acme"  # loaded once, then kept
    with pytest.raises(ProfileError, match=r"entry point 'acme_bad' = 'acme_mappings:NOT_A_MAPPING' is a object"):
        profile_from_connection(_conn("acme_bad"), "shop", "dev")
    with pytest.raises(ProfileError, match=r"entry point 'acme_gone'.*failed to load: ModuleNotFoundError"):
        profile_from_connection(_conn("acme_gone"), "shop", "dev")
    # a mapping registered in the DAG file wins over the installed package's
    from manifest_dag import AdapterMapping, register_adapter

    register_adapter("acme_db", AdapterMapping("acme_override", lambda c: {"host": c.host}))
    assert _target(profile_from_connection(_conn("acme_db"), "shop", "dev"))["type"] == "acme_override"
