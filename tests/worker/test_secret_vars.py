"""Secret dbt vars (issue 19 item 9): the value reaches dbt's environment, never its command line.

A fake ``Invoker`` stands in for dbt (as in ``test_run``): it records the argv and environment
``run_dbt`` hands over, prints lines and exits as a case needs. The real dbt side (dbt renders the
``env_var()`` reference, cold and warm) is ``tests/e2e/test_e2e_secret_vars.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import orjson
import pytest

from manifest_dag import ConfigError, DbtRunError, ProjectConfig, SecretVar
from manifest_dag.core.config import secret_var_env_name, vars_with_secret_references
from manifest_dag.core.specs import DbtInvocation, VenvSpec
from manifest_dag.operators import DbtRunOperator
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.secret_vars import SecretVarError, resolve_secret_vars
from tests.worker.test_run import FakeCache, _project

SECRET = "sk-live-9f8e7d6c5b4a"
REFERENCE = "{{ env_var('MANIFEST_DAG_SECRET_VAR_API_KEY') }}"


class RecordingDbt:
    """Records argv and env; prints ``lines``; writes one node's result with ``message``."""

    def __init__(self, code: int = 0, lines: Sequence[str] = (), message: str | None = None) -> None:
        self.code, self.lines, self.message = code, lines, message
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Any) -> int:
        self.calls.append((list(argv), dict(env)))
        for line in self.lines:
            on_line(line)
        target = Path(argv[list(argv).index("--target-path") + 1])
        target.mkdir(parents=True, exist_ok=True)
        status = "success" if self.code == 0 else "error"
        result = {"unique_id": "model.shop.orders", "status": status, "message": self.message, "execution_time": 0.1}
        data = {"metadata": {"dbt_version": "1.11.0"}, "elapsed_time": 0.1, "args": {}, "results": [result]}
        (target / "run_results.json").write_bytes(orjson.dumps(data))
        return self.code

    def kill(self) -> None:
        pass


def _run(tmp_path: Path, dbt: RecordingDbt, logged: list[str], **kw: Any) -> Any:
    inv = DbtInvocation(
        command_args=("run", "--select", "shop.orders"),
        project_dir=_project(tmp_path),
        venv_spec=VenvSpec(requirements=("dbt-core",)),
        cache_dir=tmp_path / "cache",
        **kw,
    )
    return run_dbt(inv, log=logged.append, invoker=dbt, venv_cache=FakeCache(tmp_path / "cache"))  # type: ignore[arg-type]


# -- config ------------------------------------------------------------------------------------------
def test_a_secret_var_names_exactly_one_source() -> None:
    assert SecretVar(env_var="SHOP_API_KEY").describe() == "environment variable SHOP_API_KEY of the worker"
    assert SecretVar(conn_id="api", conn_field="extra.auth.token").conn_field == "extra.auth.token"
    with pytest.raises(ConfigError, match="exactly one of conn_id, airflow_variable or env_var"):
        SecretVar()
    with pytest.raises(ConfigError, match="exactly one"):
        SecretVar(env_var="A", airflow_variable="b")
    with pytest.raises(ConfigError, match="conn_field: must be one of password, login"):
        SecretVar(conn_id="api", conn_field="extra.")


def test_secret_vars_refuse_a_value_or_a_template_and_a_clash_with_dbt_vars() -> None:
    with pytest.raises(ConfigError, match=r"secret_vars\['api_key'\] must be a SecretVar.*never the value itself"):
        ProjectConfig(manifest_path="/m.json", secret_vars={"api_key": "{{ var.value.api_key }}"})
    with pytest.raises(ConfigError, match=r"\['api_key'\] are in both dbt_vars and secret_vars"):
        ProjectConfig(
            manifest_path="/m.json", dbt_vars={"api_key": "x"}, secret_vars={"api_key": SecretVar(env_var="K")}
        )
    with pytest.raises(ConfigError, match="would share the env var MANIFEST_DAG_SECRET_VAR_API_KEY"):
        ProjectConfig(
            manifest_path="/m.json",
            secret_vars={"api-key": SecretVar(env_var="K"), "api_key": SecretVar(env_var="L")},
        )


def test_vars_get_references_and_merging_twice_changes_nothing() -> None:
    refs = {"api_key": SecretVar(env_var="K")}
    merged = vars_with_secret_references({"day": "2024-01-01"}, refs)
    assert merged == {"day": "2024-01-01", "api_key": REFERENCE}
    assert vars_with_secret_references(merged, refs) == merged
    assert vars_with_secret_references("{day: '2024-01-01'}", refs) == merged  # --vars YAML text
    assert vars_with_secret_references({"day": 1}, {}) == {"day": 1}
    assert secret_var_env_name("api.key") == "MANIFEST_DAG_SECRET_VAR_API_KEY"


# -- the operator: rendered fields and the invocation hold references only -------------------------------
def test_the_operator_renders_no_secret_and_its_invocation_holds_only_a_reference() -> None:
    op = DbtRunOperator(
        task_id="orders",
        project_dir="/srv/dbt",
        py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
        dbt_vars={"day": "{{ ds }}"},
        secret_vars={"api_key": SecretVar(airflow_variable="shop_api_key")},
    )
    assert "secret_vars" not in op.template_fields
    op.render_template_fields({"ds": "2024-01-01"}, jinja_env=jinja2.Environment())
    rendered = {name: getattr(op, name) for name in op.template_fields}
    assert rendered["dbt_vars"] == {"day": "2024-01-01"}  # what Airflow stores and shows
    inv = op.invocation()
    assert inv.dbt_vars == {"day": "2024-01-01", "api_key": REFERENCE}
    assert inv.secret_vars == {"api_key": SecretVar(airflow_variable="shop_api_key")}


def test_dbt_dag_passes_project_secret_vars_to_every_task(tmp_path: Path) -> None:
    import pendulum

    from manifest_dag import DbtDag, VenvConfig
    from manifest_dag.testing import ManifestBuilder

    manifest = ManifestBuilder("shop").model("orders").write(tmp_path / "manifest.json")
    refs = {"api_key": SecretVar(conn_id="api", conn_field="password")}
    dag = DbtDag(
        dag_id="secret_vars",
        project_config=ProjectConfig(
            manifest_path=manifest, project_dir="/srv/dbt", plan_cache_dir=False, secret_vars=refs
        ),
        venv_config=VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]),
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        schedule=None,
    )
    (task,) = [t for t in dag.tasks if t.task_id.endswith("run")]
    assert task.secret_vars == refs
    assert task.invocation().dbt_vars == {"api_key": "{{ env_var('MANIFEST_DAG_SECRET_VAR_API_KEY') }}"}


# -- run_dbt: dbt's argv never holds the value, its environment does, every text out is masked ----------
def test_the_argv_never_holds_the_secret_and_dbt_gets_it_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_API_KEY", SECRET)
    dbt = RecordingDbt(lines=[f"dbt printed {SECRET}"])
    logged: list[str] = []
    _run(tmp_path, dbt, logged, dbt_vars={"day": "1"}, secret_vars={"api_key": SecretVar(env_var="SHOP_API_KEY")})
    ((argv, env),) = dbt.calls
    assert not [a for a in argv if SECRET in a]
    vars_json = json.loads(argv[argv.index("--vars") + 1])
    assert vars_json == {"api_key": REFERENCE, "day": "1"}
    assert env["MANIFEST_DAG_SECRET_VAR_API_KEY"] == SECRET
    assert logged and not [line for line in logged if SECRET in line]
    assert any("dbt printed ***" in line for line in logged)


def test_a_failure_quoting_the_secret_is_masked_in_the_error_and_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "http", "host": "api.example", "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_API", json.dumps(conn))
    dbt = RecordingDbt(code=1, lines=[f"Database Error: bad key {SECRET}"], message=f"key {SECRET} refused")
    logged: list[str] = []
    with pytest.raises(DbtRunError) as info:
        _run(tmp_path, dbt, logged, secret_vars={"api_key": SecretVar(conn_id="shop_api")})
    assert SECRET not in str(info.value) and "key *** refused" in str(info.value)
    assert SECRET not in repr(info.value.args) and SECRET not in (info.value.command or "")
    assert not [line for line in logged if SECRET in line]
    ((argv, env),) = dbt.calls
    assert SECRET not in " ".join(argv) and env["MANIFEST_DAG_SECRET_VAR_API_KEY"] == SECRET


def test_sources_are_read_on_the_worker_and_a_missing_one_names_the_var_not_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_SHOP_API_KEY", SECRET)
    conn = {"conn_type": "http", "login": "svc", "extra": {"auth": {"token": "tok-123456"}}}
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_API", json.dumps(conn))
    env = resolve_secret_vars(
        {
            "api_key": SecretVar(airflow_variable="shop_api_key"),
            "token": SecretVar(conn_id="shop_api", conn_field="extra.auth.token"),
            "user": SecretVar(conn_id="shop_api", conn_field="login"),
        }
    )
    assert env == {
        "MANIFEST_DAG_SECRET_VAR_API_KEY": SECRET,
        "MANIFEST_DAG_SECRET_VAR_TOKEN": "tok-123456",
        "MANIFEST_DAG_SECRET_VAR_USER": "svc",
    }
    monkeypatch.delenv("NOT_THERE", raising=False)
    with pytest.raises(SecretVarError, match="secret var 'k': environment variable NOT_THERE of the worker is not set"):
        resolve_secret_vars({"k": SecretVar(env_var="NOT_THERE")})
    with pytest.raises(SecretVarError, match="secret var 'k': Airflow connection 'nope' is not defined"):
        resolve_secret_vars({"k": SecretVar(conn_id="nope")})
    with pytest.raises(SecretVarError, match="secret var 'k': Airflow variable 'nope' is not set"):
        resolve_secret_vars({"k": SecretVar(airflow_variable="nope")})
