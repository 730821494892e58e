"""``run_dbt``: what it makes of dbt's exit code and run_results.json, and what it lets out.

dbt itself is run by the e2e tests; here a small fake ``Invoker`` stands in for it and writes the
``run_results.json`` a case needs into the task's real workspace (real files, real profile).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from manifest_dag import DbtRunError, ProfileConfig
from manifest_dag.core.specs import DbtInvocation, VenvSpec
from manifest_dag.worker.run import MINIMAL_ENV, run_dbt
from manifest_dag.worker.venv import venv_environ

SECRET = "pg-s3cr3t-Zq9/x"


class FakeVenv:
    key = "fake"
    external = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def executable(self, name: str) -> Path:
        return self.path / "bin" / name

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return {} if base is None else venv_environ(self.path, base)


class FakeCache:
    state_note = None
    prepared_dir = None

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / ".state"

    def ensure(self, spec: Any) -> FakeVenv:
        return FakeVenv(self.root / "venv")


class FakeDbt:
    """Prints ``lines``, writes ``results`` (None: no file) as run_results.json, exits ``code``."""

    def __init__(
        self,
        results: list[dict[str, Any]] | None,
        code: int = 0,
        lines: Sequence[str] = (),
        artifact: str = "run_results.json",
    ) -> None:
        self.results, self.code, self.lines, self.artifact = results, code, lines, artifact

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Any) -> int:
        self.env = dict(env)
        for line in self.lines:
            on_line(line)
        if self.results is not None:
            target = Path(argv[list(argv).index("--target-path") + 1])
            target.mkdir(parents=True, exist_ok=True)
            data = {"metadata": {"dbt_version": "1.11.0"}, "elapsed_time": 0.1, "args": {"which": argv[1]}}
            (target / self.artifact).write_bytes(orjson.dumps({**data, "results": self.results}))
        return self.code

    def kill(self) -> None:
        pass


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    return project


def _run(
    tmp_path: Path, args: Sequence[str], dbt: FakeDbt, logged: list[str] | None = None, **kw: Any
) -> tuple[Any, list[str]]:
    logged = [] if logged is None else logged
    inv = DbtInvocation(
        command_args=tuple(args),
        project_dir=_project(tmp_path),
        venv_spec=VenvSpec(requirements=("dbt-core",)),
        cache_dir=tmp_path / "cache",
        **kw,
    )
    outcome = run_dbt(inv, log=logged.append, invoker=dbt, venv_cache=FakeCache(tmp_path / "cache"))  # type: ignore[arg-type]
    return outcome, logged


def _node(uid: str, status: str = "success", message: str | None = None) -> dict[str, Any]:
    return {"unique_id": uid, "status": status, "message": message, "execution_time": 0.01}


# -- item 2: a task that ran no node does not succeed -------------------------------------------------
@pytest.mark.parametrize("command", ["run", "seed", "snapshot", "build", "test"])
def test_a_node_command_that_ran_no_node_fails_naming_its_selection(tmp_path: Path, command: str) -> None:
    with pytest.raises(DbtRunError) as info:
        _run(tmp_path, [command, "--select", "shop.orders"], FakeDbt(results=[]))
    err = info.value
    assert "ran no node" in str(err) and "--select shop.orders" in str(err)
    assert err.exit_code == 0 and err.command == f"{command} --select shop.orders"


def test_exit_0_without_run_results_is_no_success_for_a_node_command(tmp_path: Path) -> None:
    with pytest.raises(DbtRunError, match=r"wrote no run_results.json.*--select shop\.orders"):
        _run(tmp_path, ["run", "--select", "shop.orders"], FakeDbt(results=None))


def test_no_run_results_is_fine_when_the_user_turned_dbt_artifacts_off(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, ["run", "--select", "shop.orders", "--no-write-json"], FakeDbt(results=None))
    assert outcome.exit_code == 0 and outcome.summary is None


def test_a_node_that_ran_succeeds(tmp_path: Path) -> None:
    outcome, logged = _run(tmp_path, ["run", "--select", "shop.orders"], FakeDbt([_node("model.shop.orders")]))
    assert outcome.summary.counts()["PASS"] == 1
    assert any("1 nodes" in line for line in logged)


def test_source_freshness_writes_no_run_results_and_still_succeeds(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, ["source", "freshness", "--select", "source:shop.raw.orders"], FakeDbt(results=None))
    assert outcome.exit_code == 0 and outcome.summary is None


def _source(uid: str, status: str, age: float = 90000.0) -> dict[str, Any]:
    criteria = {"warn_after": {"count": 1, "period": "day"}, "error_after": {"count": 2, "period": "day"}}
    return {"unique_id": uid, "status": status, "max_loaded_at": "2020-01-02T00:00:00+00:00",
            "max_loaded_at_time_ago_in_s": age, "criteria": criteria, "execution_time": 0.01}  # fmt: skip


def test_source_freshness_results_come_from_sources_json(tmp_path: Path) -> None:
    dbt = FakeDbt(
        [_source("source.shop.raw.orders", "warn"), _source("source.shop.raw.items", "pass")], artifact="sources.json"
    )
    outcome, logged = _run(tmp_path, ["source", "freshness", "--select", "source:shop.raw.*"], dbt)
    assert outcome.summary.command == "source freshness"
    assert outcome.summary.counts()["WARN"] == 1 and outcome.summary.counts()["PASS"] == 1
    assert outcome.summary.warned()[0]["unique_id"] == "source.shop.raw.orders"
    assert any(
        line.startswith("warning: source.shop.raw.orders [WARN]: newest row loaded 90000 s ago") for line in logged
    )


def test_a_stale_source_fails_naming_it_and_quoting_dbts_last_lines(tmp_path: Path) -> None:
    """sources.json leaves out a source whose query failed: the error quotes dbt's lines too."""
    dbt = FakeDbt(
        [_source("source.shop.raw.orders", "error", 200000.0)],
        code=1,
        lines=["Runtime Error in source gone (models/sources.yml)", "Catalog Error: no_such_table"],
        artifact="sources.json",
    )
    with pytest.raises(DbtRunError) as info:
        _run(tmp_path, ["source", "freshness"], dbt)
    text = str(info.value)
    assert "source.shop.raw.orders [ERROR]: newest row loaded 200000 s ago" in text and "error after 2 day" in text
    assert "Catalog Error: no_such_table" in text
    assert info.value.failed_nodes == ("source.shop.raw.orders",)


# -- item 7: dbt's text is masked on every path out of a task -------------------------------------------
def test_dbt_messages_in_run_results_are_masked_in_the_log_and_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "postgres", "host": "db.example", "login": "dbt", "password": SECRET, "schema": "shop"}
    monkeypatch.setenv("AIRFLOW_CONN_RUN_PG", json.dumps(conn))
    message = f'connection to server failed: password authentication failed ("{SECRET}")'
    dbt = FakeDbt(
        [_node("model.shop.orders", "error", message), _node("model.shop.items", "skipped")],
        code=1,
        lines=[f"console: {SECRET}"],
    )
    logged: list[str] = []
    with pytest.raises(DbtRunError) as info:
        _run(
            tmp_path,
            ["run", "--select", "shop.orders"],
            dbt,
            logged,
            profile_config=ProfileConfig(
                profile_name="shop", target_name="dev", conn_id="run_pg", profile_args={"schema": "analytics"}
            ),
        )
    assert SECRET not in str(info.value) and "password authentication failed" in str(info.value)
    assert info.value.failed_nodes == ("model.shop.orders", "model.shop.items")
    assert logged and not [line for line in logged if SECRET in line]
    assert any("model.shop.orders [ERROR]" in line and "***" in line for line in logged)


# -- issue 21 item 9: append_env=False, run-operation ---------------------------------------------------
def test_append_env_false_gives_dbt_only_what_it_needs_of_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_ONLY_SETTING", "leaks")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TZ", "Europe/Paris")
    dbt = FakeDbt([_node("model.shop.orders")])
    _run(tmp_path / "a", ["run", "--select", "shop.orders"], dbt, env={"RUN_MARK": "m1"}, append_env=False)
    worker_keys = set(dbt.env) - {"RUN_MARK", "VIRTUAL_ENV", "DBT_SEND_ANONYMOUS_USAGE_STATS"}
    assert worker_keys <= set(MINIMAL_ENV), worker_keys - set(MINIMAL_ENV)
    assert "WORKER_ONLY_SETTING" not in dbt.env
    assert dbt.env["RUN_MARK"] == "m1" and dbt.env["HOME"] == str(tmp_path / "home") and dbt.env["TZ"] == "Europe/Paris"
    assert dbt.env["PATH"].split(os.pathsep)[0].endswith("bin")  # the venv's first
    assert dbt.env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    # the profile's and secret vars' variables still reach dbt
    monkeypatch.setenv("AIRFLOW_VAR_RUN_KEY", "k-123")
    from manifest_dag import SecretVar

    dbt = FakeDbt([_node("model.shop.orders")])
    _run(tmp_path / "b", ["run"], dbt, append_env=False, secret_vars={"key": SecretVar(airflow_variable="run_key")})
    assert dbt.env["MANIFEST_DAG_SECRET_VAR_KEY"] == "k-123" and "AIRFLOW_VAR_RUN_KEY" not in dbt.env


def test_run_operation_results_are_read(tmp_path: Path) -> None:
    dbt = FakeDbt([_node("macro.shop.grant_select")])
    outcome, logged = _run(tmp_path, ["run-operation", "grant_select", "--args", "{role: r}"], dbt)
    assert outcome.summary.counts()["PASS"] == 1 and any(
        "running: dbt run-operation grant_select" in line for line in logged
    )
