"""The operators: checks at construction, the dbt call they describe, and their part of a run."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import jinja2.nativetypes
import pytest

from manifest_dag import ConfigError, ProfileConfig, VenvConfig, WorkspaceError
from manifest_dag.core import settings
from manifest_dag.core.dbt import COMMAND_FOR_TYPE, FULL_REFRESH_COMMANDS
from manifest_dag.operators import (
    OPERATOR_FOR_COMMAND,
    DbtBuildOperator,
    DbtRunOperationOperator,
    DbtRunOperator,
    DbtSeedOperator,
    DbtSourceFreshnessOperator,
    DbtTestOperator,
    DbtVenvOperator,
)

REQS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]


def run_op(**kwargs: Any) -> DbtRunOperator:
    kwargs.setdefault("task_id", "orders_run")
    kwargs.setdefault("project_dir", "/srv/dbt")
    if "venv_config" not in kwargs:
        kwargs.setdefault("py_requirements", REQS)
    return DbtRunOperator(**kwargs)


# -- construction ----------------------------------------------------------------------------------
def test_venv_config_queue_routes_the_task_unless_the_task_names_one() -> None:
    """VenvConfig.queue sends the task to the workers that carry its venv; a queue the task names
    itself wins; it wins over the DAG's default_args; without it, Airflow's default queue."""
    import pendulum
    from airflow.sdk import DAG

    routed = VenvConfig(py_requirements=["dbt-core~=1.10.0", "dbt-postgres~=1.10.0"], queue="dbt110")
    default_queue = run_op().queue
    assert run_op(venv_config=routed).queue == "dbt110"
    assert run_op(venv_config=routed, queue="gpu").queue == "gpu"
    assert run_op(venv_config=VenvConfig(py_requirements=REQS)).queue == default_queue
    with DAG("q", schedule=None, start_date=pendulum.datetime(2024, 1, 1), default_args={"queue": "dag-wide"}):
        assert run_op(task_id="a", venv_config=routed).queue == "dbt110"
        assert run_op(task_id="b", venv_config=VenvConfig(py_requirements=REQS)).queue == "dag-wide"
    # routing is not part of the venv's key: the same venv serves any queue
    assert routed.to_spec() == VenvConfig(py_requirements=routed.py_requirements).to_spec()


@pytest.mark.parametrize("queue", ["", "a,b", "a b", 7, "-x"])
def test_a_bad_queue_name_is_refused_naming_the_field(queue: Any) -> None:
    with pytest.raises(ConfigError, match=r"VenvConfig\.queue: must be a queue name"):
        VenvConfig(py_requirements=REQS, queue=queue)


def test_the_dbt_to_run_is_required_once() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("DbtRunOperator(task_id='t'): give venv_config or py_requirements")
    ):
        DbtRunOperator(task_id="t", project_dir="/x")
    with pytest.raises(ConfigError, match="not both"):
        DbtRunOperator(
            task_id="t", project_dir="/x", py_requirements=REQS, venv_config=VenvConfig(py_requirements=REQS)
        )
    assert run_op().venv_config == VenvConfig(py_requirements=REQS)
    venv = VenvConfig(py_requirements=REQS, warm_processes=0)
    assert run_op(venv_config=venv).venv_config is venv


@pytest.mark.parametrize("value", ["yes", 1, None, "params.full_refresh"])
def test_full_refresh_must_be_a_bool_or_a_template(value: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"full_refresh must be True, False or a template such as '{{{{ params.full_refresh }}}}', got {value!r}"
        ),
    ):
        run_op(full_refresh=value)


def test_dbt_flags_are_checked_naming_the_task() -> None:
    with pytest.raises(ConfigError, match=re.escape("DbtTestOperator(task_id='checks'): dbt flag --select")):
        DbtTestOperator(task_id="checks", project_dir="/x", py_requirements=REQS, dbt_flags=["--select", "x"])
    with pytest.raises(ConfigError, match="unknown dbt flag --nope"):
        run_op(dbt_flags=["--nope"])


def test_the_generic_operator_needs_a_command() -> None:
    with pytest.raises(ConfigError, match="dbt_command is required"):
        DbtVenvOperator(task_id="t", project_dir="/x", py_requirements=REQS)
    op = DbtVenvOperator(task_id="t", project_dir="/x", py_requirements=REQS, dbt_command="ls", select=["a"])
    assert op.dbt_args() == ["ls", "--select", "a"]


def test_every_planned_command_has_its_operator() -> None:
    for command in {*COMMAND_FOR_TYPE.values(), "test", "build"}:
        assert OPERATOR_FOR_COMMAND[command].dbt_command == command


# -- the dbt call ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls", [DbtRunOperator, DbtTestOperator, DbtSeedOperator, DbtBuildOperator, DbtSourceFreshnessOperator]
)
def test_full_refresh_only_where_dbt_takes_it(cls: type[DbtVenvOperator]) -> None:
    op = cls(
        task_id="t", project_dir="/x", py_requirements=REQS, select="a", full_refresh=True, dbt_flags=["--threads", "2"]
    )
    expected = [*cls.dbt_command.split(), "--select", "a"]
    if cls.dbt_command in FULL_REFRESH_COMMANDS:
        expected.append("--full-refresh")
    assert op.dbt_args() == [*expected, "--threads", "2"]
    assert ("--full-refresh" in op.dbt_args()) is (cls.dbt_command in {"run", "build", "seed"})


def test_dbt_args_carry_the_selection() -> None:
    op = run_op(select=["a", "b"], exclude="c", selector="nightly", indirect_selection="cautious")
    assert op.dbt_args() == [
        "run", "--select", "a", "b", "--exclude", "c", "--selector", "nightly", "--indirect-selection", "cautious",
    ]  # fmt: skip
    assert run_op(full_refresh=False).dbt_args() == ["run"]


def test_invocation_describes_the_whole_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(settings.VENV_CACHE, raising=False)
    monkeypatch.delenv(settings.AIRFLOW_VENV_CACHE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    profile = ProfileConfig(profile_name="shop", profiles_yml_path="/etc/dbt/profiles.yml")
    venv = VenvConfig(py_requirements=REQS, warm_processes=3)
    op = run_op(
        select=["orders"],
        venv_config=venv,
        profile_config=profile,
        manifest_path="/srv/dbt/target/manifest.json",
        partial_parse_path="/srv/dbt/target/partial_parse.msgpack",
        dbt_vars={"day": "2024-01-01"},
        env={"RETRIES": 3, "MODE": "full"},
        install_deps=True,
    )
    inv = op.invocation()
    assert inv.command_args == ("run", "--select", "orders")
    assert inv.project_dir == Path("/srv/dbt")
    assert inv.venv_spec == venv.to_spec()
    assert inv.profile_config is profile
    assert inv.manifest_path == Path("/srv/dbt/target/manifest.json")
    assert inv.partial_parse_path == Path("/srv/dbt/target/partial_parse.msgpack")
    assert inv.dbt_vars == {"day": "2024-01-01"}
    assert inv.env == {"RETRIES": "3", "MODE": "full"}  # stringified for the child's environment
    assert inv.install_deps is True and inv.warm_processes == 3
    assert inv.cache_dir == tmp_path / "xdg" / "manifest-dag" / "venvs"
    bare = run_op().invocation()
    assert bare.manifest_path is None and bare.partial_parse_path is None and bare.env == {}


def test_invocation_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.AIRFLOW_VENV_CACHE, str(tmp_path / "airflow"))
    monkeypatch.delenv(settings.VENV_CACHE, raising=False)
    assert run_op().invocation().cache_dir == tmp_path / "airflow"
    monkeypatch.setenv(settings.VENV_CACHE, str(tmp_path / "env"))
    assert run_op().invocation().cache_dir == tmp_path / "env"
    configured = VenvConfig(py_requirements=REQS, cache_dir=tmp_path / "configured")
    assert run_op(venv_config=configured).invocation().cache_dir == tmp_path / "configured"


def test_templated_fields_are_rendered() -> None:
    assert set(DbtVenvOperator.template_fields) == {
        "select", "exclude", "dbt_vars", "env", "dbt_flags", "project_dir", "full_refresh", "install_deps",
        "compiled_sql",
    }  # fmt: skip
    op = run_op(
        project_dir="/srv/{{ params.env }}/dbt",
        select=["tag:{{ params.tag }}"],
        exclude="{{ params.skip }}",
        dbt_vars={"day": "{{ ds }}"},
        env={"RUN_DAY": "{{ ds }}"},
        dbt_flags=["--threads", "{{ params.threads }}"],
    )
    context = {"ds": "2024-01-01", "params": {"env": "prod", "tag": "nightly", "skip": "slow", "threads": 4}}
    op.render_template_fields(context, jinja_env=jinja2.Environment())
    inv = op.invocation()
    assert inv.project_dir == Path("/srv/prod/dbt")
    assert inv.command_args == ("run", "--select", "tag:nightly", "--exclude", "slow", "--threads", "4")
    assert inv.dbt_vars == {"day": "2024-01-01"} and inv.env == {"RUN_DAY": "2024-01-01"}


def test_a_literal_select_is_not_rendered_and_the_rest_still_is() -> None:
    """Airflow's LiteralValue (how the renderer passes manifest selectors) keeps its text as is."""
    from airflow.sdk.definitions._internal.templater import LiteralValue

    op = run_op(
        select=LiteralValue(("shop.x{{ conn.db.password }}.m1",)),
        exclude=LiteralValue(()),
        dbt_vars={"day": "{{ ds }}"},
        dbt_flags=["--threads", "{{ params.threads }}"],
    )
    assert op.select == ["shop.x{{ conn.db.password }}.m1"] and op.exclude == []
    assert "select" not in op.template_fields and "exclude" not in op.template_fields
    assert "select" in DbtVenvOperator.template_fields  # other operators are untouched
    op.render_template_fields({"ds": "2024-01-01", "params": {"threads": 4}}, jinja_env=jinja2.Environment())
    inv = op.invocation()
    assert inv.command_args == ("run", "--select", "shop.x{{ conn.db.password }}.m1", "--threads", "4")
    assert inv.dbt_vars == {"day": "2024-01-01"}


def rendered(op: DbtVenvOperator, **params: Any) -> DbtVenvOperator:
    op.render_template_fields({"ds": "2024-01-01", "params": params}, jinja_env=jinja2.Environment())
    return op


@pytest.mark.parametrize(
    ("value", "wanted"), [(True, True), (False, False), ("True", True), ("false", False), ("", False), (1, True)]
)
def test_a_templated_full_refresh_is_decided_per_run(value: Any, wanted: bool) -> None:
    op = run_op(select=["orders"], full_refresh="{{ params.full_refresh }}")
    assert "full_refresh" in op.template_fields
    assert op.dbt_args() == ["run", "--select", "orders"]  # not rendered (golden files, inspect): nothing yet
    inv = rendered(op, full_refresh=value).invocation()
    assert ("--full-refresh" in inv.command_args) is wanted
    from airflow.sdk import DAG

    with DAG("native", schedule=None, render_template_as_native_obj=True):  # the DAG's flag: Airflow 3.0 has no other
        native = run_op(full_refresh="{{ params.full_refresh }}")
    native.render_template_fields({"params": {"full_refresh": value}}, jinja_env=jinja2.nativetypes.NativeEnvironment())
    assert ("--full-refresh" in native.invocation().command_args) is wanted


def test_a_full_refresh_template_that_says_neither_fails_naming_the_task() -> None:
    op = rendered(run_op(task_id="orders_run", full_refresh="{{ params.full_refresh }}"), full_refresh="maybe")
    with pytest.raises(
        ConfigError, match=re.escape("DbtRunOperator(task_id='orders_run'): full_refresh rendered to 'maybe'")
    ):
        op.invocation()
    unrendered = run_op(full_refresh="{{ params.full_refresh }}")
    with pytest.raises(ConfigError, match="full_refresh is a template not rendered yet"):
        unrendered.invocation()


def test_a_templated_full_refresh_on_a_command_without_it_adds_nothing() -> None:
    op = DbtTestOperator(task_id="t", project_dir="/x", py_requirements=REQS, full_refresh="{{ params.fr }}")
    assert "--full-refresh" not in rendered(op, fr=True).invocation().command_args


def test_full_refresh_in_dbt_flags_only_for_the_commands_that_take_it() -> None:
    for flag in ("--full-refresh", "-f"):
        assert run_op(dbt_flags=[flag]).dbt_args() == ["run", flag]
        assert run_op(dbt_flags=[flag], full_refresh=True).dbt_args() == ["run", flag]  # once
    with pytest.raises(ConfigError, match=re.escape("DbtTestOperator(task_id='t'): dbt test takes no --full-refresh")):
        DbtTestOperator(task_id="t", project_dir="/x", py_requirements=REQS, dbt_flags=["--full-refresh"])
    with pytest.raises(ConfigError, match="dbt source freshness takes no --full-refresh"):
        DbtSourceFreshnessOperator(task_id="t", project_dir="/x", py_requirements=REQS, dbt_flags=["--full-refresh"])


def test_per_run_flags_from_templates_are_checked_once_rendered() -> None:
    chosen = "{{ '--full-refresh' if params.fr else '' }}"
    assert rendered(run_op(dbt_flags=[chosen, "--threads", "2"]), fr=True).dbt_args() == [
        "run", "--full-refresh", "--threads", "2",
    ]  # fmt: skip
    assert rendered(run_op(dbt_flags=[chosen, "--threads", "2"]), fr=False).dbt_args() == ["run", "--threads", "2"]
    sneaky = rendered(run_op(task_id="t", dbt_flags=["{{ params.flag }}", "prod"]), flag="--target")
    with pytest.raises(
        ConfigError, match=re.escape("DbtRunOperator(task_id='t') (rendered): dbt flag --target is not allowed")
    ):
        sneaky.invocation()
    test_op = DbtTestOperator(task_id="t", project_dir="/x", py_requirements=REQS, dbt_flags=[chosen])
    with pytest.raises(ConfigError, match="dbt test takes no --full-refresh"):
        rendered(test_op, fr=True).invocation()


def test_templated_vars_and_env_reach_the_invocation_per_run() -> None:
    op = run_op(dbt_vars={"batch": "{{ params.batch }}", "day": "{{ ds }}"}, env={"MARK": "m{{ params.batch }}"})
    inv = rendered(op, batch=7).invocation()
    assert inv.dbt_vars == {"batch": "7", "day": "2024-01-01"} and inv.env == {"MARK": "m7"}


# -- the run -------------------------------------------------------------------------------------------
class FakeInvoker:
    def __init__(self) -> None:
        self.kills = 0

    def kill(self) -> None:
        self.kills += 1


def test_on_kill_stops_the_kept_invoker() -> None:
    op = run_op()
    op.on_kill()  # nothing running: nothing to stop, no error
    invoker = FakeInvoker()
    op._keep_invoker(invoker)
    op.on_kill()
    assert invoker.kills == 1


def test_execute_without_a_project_dir_names_the_task() -> None:
    op = run_op(task_id="orders_run", project_dir="")
    with pytest.raises(
        WorkspaceError, match=r"task orders_run: no project_dir; set ProjectConfig\(project_dir=\.\.\.\)"
    ):
        op.execute({})


def test_execute_hands_the_invocation_over_and_forgets_the_invoker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker side is replaced here: what is checked is the operator's side of the contract."""
    import manifest_dag.worker.run as worker_run

    seen: dict[str, Any] = {}
    invoker = FakeInvoker()

    def fake_run_dbt(inv, *, log, artifacts_callback, on_invoker, on_results, on_mask=None):
        seen["inv"] = inv
        on_invoker(invoker)
        seen["kept"] = op._invoker
        op.on_kill()
        artifacts_callback(Path("/work/target"))
        summary = SimpleNamespace(counts=lambda: {"success": 2}, node_seconds=1.23456, warned=lambda: [])
        return SimpleNamespace(summary=summary, exit_code=0, duration=4.56789, reparsed=None)

    calls: list[tuple[Path, Any]] = []
    monkeypatch.setattr(worker_run, "run_dbt", fake_run_dbt)
    op = run_op(select=["orders"], artifacts_callback=lambda target, context: calls.append((target, context)))
    context = {"ds": "2024-01-01"}
    result = op.execute(context)
    assert seen["inv"] == op.invocation()
    assert seen["kept"] is invoker and invoker.kills == 1
    assert op._invoker is None  # a finished task keeps nothing to kill
    assert calls == [(Path("/work/target"), context)]
    assert result == {
        "command": "run",
        "exit_code": 0,
        "seconds": 4.568,
        "partial_parse_reused": True,
        "statuses": {"success": 2},
        "node_seconds": 1.235,
        "warnings": [],
    }


def test_execute_forgets_the_invoker_when_dbt_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import manifest_dag.worker.run as worker_run

    def failing(inv, *, log, artifacts_callback, on_invoker, on_results, on_mask=None):
        on_invoker(FakeInvoker())
        raise RuntimeError("dbt failed")

    monkeypatch.setattr(worker_run, "run_dbt", failing)
    op = run_op()
    with pytest.raises(RuntimeError, match="dbt failed"):
        op.execute({})
    assert op._invoker is None


# -- operator_args: what the docs say is refused is what the code refuses -----------------------------
def _documented_refused_keys() -> set[str]:
    """The first column of the refused-keys table under ``### operator_args`` in configuration.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = text.split("### `operator_args`", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_the_docs_name_exactly_the_operator_args_the_code_refuses() -> None:
    from manifest_dag.scheduler.dag import _RESERVED

    assert _documented_refused_keys() == set(_RESERVED)


@pytest.mark.parametrize("key", ["env", "dbt_vars", "project_dir", "install_deps", "doc_md", "outlets"])
def test_operator_args_refuses_config_keys_with_config_error(key: str) -> None:
    from manifest_dag import DbtDag, ProjectConfig

    manifest = Path(__file__).resolve().parent.parent / "fixtures" / "manifests" / "shop" / "manifest.json"
    with pytest.raises(ConfigError, match=rf"operator_args may not set \['{key}'\]"):
        DbtDag(
            dag_id="refused",
            project_config=ProjectConfig(manifest_path=manifest),
            venv_config=VenvConfig(py_requirements=REQS),
            operator_args={key: None},
            schedule=None,
        )


# -- warnings as a signal -------------------------------------------------------------------------------
def _fake_run_with(monkeypatch: pytest.MonkeyPatch, summary: Any) -> None:
    import manifest_dag.worker.run as worker_run

    def fake_run_dbt(inv, *, log, artifacts_callback, on_invoker, on_results, on_mask=None):
        return SimpleNamespace(summary=summary, exit_code=0, duration=1.0, reparsed=None)

    monkeypatch.setattr(worker_run, "run_dbt", fake_run_dbt)


def _warn_summary() -> Any:
    from manifest_dag.worker.results import read_run_results

    return read_run_results(Path(__file__).resolve().parent / "worker" / "run_results" / "test_warn.json")


def test_warned_tests_call_the_callback_and_reach_xcom(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    _fake_run_with(monkeypatch, _warn_summary())
    op = DbtTestOperator(
        task_id="t", project_dir="/x", py_requirements=REQS, on_warning_callback=lambda ctx, w: calls.append((ctx, w))
    )
    context = {"ds": "2024-01-01"}
    result = op.execute(context)
    expected = [
        {
            "unique_id": "test.rr.accepted_values_stg_payments_amount__False__10__7.3f0be05df6",
            "message": "Got 1 result, configured to warn if != 0",
            "failures": 1,
        }
    ]
    assert calls == [(context, expected)] and calls[0][0] is context
    assert result["warnings"] == expected and result["statuses"]["WARN"] == 1


def test_no_warning_no_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    from manifest_dag.worker.results import read_run_results

    clean = read_run_results(Path(__file__).resolve().parent / "worker" / "run_results" / "test_warn.json")
    clean = type(clean)(clean.command, True, clean.elapsed, tuple(r for r in clean.results if r.status != "warn"))
    calls: list[Any] = []
    for summary in (clean, None):  # None: a command that wrote no results
        _fake_run_with(monkeypatch, summary)
        op = run_op(on_warning_callback=lambda ctx, w: calls.append(w))
        assert op.execute({})["warnings"] == []
    assert calls == []


def test_a_raising_warning_callback_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run_with(monkeypatch, _warn_summary())

    def strict(context: Any, warnings: Any) -> None:
        raise RuntimeError(f"{len(warnings)} warning(s)")

    op = DbtTestOperator(task_id="t", project_dir="/x", py_requirements=REQS, on_warning_callback=strict)
    with pytest.raises(RuntimeError, match="1 warning"):
        op.execute({})


def test_the_warning_callback_must_be_callable() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("DbtRunOperator(task_id='orders_run'): on_warning_callback must be a callable")
    ):
        run_op(on_warning_callback="notify")


# -- issue 21 item 9: the smaller cosmos knobs ----------------------------------------------------------
RESULTS = Path(__file__).resolve().parent / "worker" / "run_results"


def _failing_run(monkeypatch: pytest.MonkeyPatch, code: int | None, summary: Any = None) -> None:
    import manifest_dag.worker.run as worker_run
    from manifest_dag import DbtRunError

    def fake_run_dbt(inv, *, log, artifacts_callback, on_invoker, on_results, on_mask=None):
        if summary is not None:
            on_results(summary)
        raise DbtRunError(f"`dbt {' '.join(inv.command_args)}` failed (exit code {code}).", command="x", exit_code=code)

    monkeypatch.setattr(worker_run, "run_dbt", fake_run_dbt)


def test_skip_exit_code_makes_the_task_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from manifest_dag import DbtRunError
    from manifest_dag.core.airflow_compat import skip_exception

    AirflowSkipException = skip_exception()

    _failing_run(monkeypatch, 1)
    with pytest.raises(AirflowSkipException, match="dbt exited with 1, this task's skip_exit_code: skipped"):
        DbtSourceFreshnessOperator(task_id="t", project_dir="/x", py_requirements=REQS, skip_exit_code=1).execute({})
    with pytest.raises(DbtRunError):  # another code fails as before
        DbtSourceFreshnessOperator(task_id="t", project_dir="/x", py_requirements=REQS, skip_exit_code=2).execute({})
    with pytest.raises(DbtRunError):
        run_op().execute({})


@pytest.mark.parametrize("value", [0, -1, True, "1", 1.0])
def test_skip_exit_code_must_be_a_positive_exit_code(value: Any) -> None:
    with pytest.raises(ConfigError, match="skip_exit_code must be a dbt exit code above 0"):
        run_op(skip_exit_code=value)


def test_append_env_reaches_the_invocation() -> None:
    assert run_op().invocation().append_env is True
    assert run_op(append_env=False).invocation().append_env is False
    with pytest.raises(ConfigError, match="append_env must be True or False"):
        run_op(append_env="no")


def test_install_deps_may_be_a_template_decided_per_run() -> None:
    op = run_op(install_deps="{{ params.deps }}")
    assert "install_deps" in op.template_fields
    assert rendered(op, deps=True).invocation().install_deps is True
    assert rendered(run_op(install_deps="{{ params.deps }}"), deps=False).invocation().install_deps is False
    with pytest.raises(
        ConfigError,
        match=re.escape("install_deps must be True, False or a template such as '{{ params.install_deps }}'"),
    ):
        run_op(install_deps="yes")
    with pytest.raises(ConfigError, match="install_deps is a template not rendered yet"):
        run_op(install_deps="{{ params.deps }}").invocation()


def test_a_dags_templated_install_deps_reaches_its_operators() -> None:
    from manifest_dag import DbtDag, ProjectConfig

    manifest = Path(__file__).resolve().parent.parent / "fixtures" / "manifests" / "shop" / "manifest.json"
    dag = DbtDag(
        dag_id="deps",
        project_config=ProjectConfig(manifest_path=manifest, project_dir="/srv/shop", install_deps="{{ params.deps }}"),
        venv_config=VenvConfig(py_requirements=REQS),
        params={"deps": False},
        schedule=None,
    )
    task = next(t for t in dag.tasks if isinstance(t, DbtVenvOperator))
    assert task.install_deps == "{{ params.deps }}"
    assert rendered(task, deps=True).invocation().install_deps is True


def test_compiled_sql_is_a_rendered_field_written_again_after_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3's task runner sends the rendered fields again in ``finalize`` when
    ``overwrite_rtif_after_execution`` is set (checked with real Airflow in test_e2e_run_flags)."""
    from manifest_dag.worker.results import read_run_results

    op = run_op()
    assert op.overwrite_rtif_after_execution is True and "compiled_sql" in op.template_fields
    assert op.template_fields_renderers["compiled_sql"] == "sql" and op.compiled_sql == ""
    summary = read_run_results(RESULTS / "run_error_skip.json")
    _failing_run(monkeypatch, 1, summary)
    from manifest_dag import DbtRunError

    with pytest.raises(DbtRunError):
        op.execute({})
    assert op.compiled_sql == summary.compiled_sql() and "-- model.rr.broken" in op.compiled_sql  # failed too


def test_compiled_sql_of_one_node_and_of_several() -> None:
    from manifest_dag.worker.results import NodeResult, RunSummary

    def node(uid: str, code: str | None) -> NodeResult:
        return NodeResult(uid, "success", None, 0.1, None, compiled_code=code)

    one = RunSummary("run", True, 1.0, (node("model.p.a", "select 1"), node("seed.p.s", None)))
    assert one.compiled_sql() == "select 1"
    two = RunSummary("build", True, 1.0, (node("model.p.a", "select 1"), node("test.p.t", "select 2")))
    assert two.compiled_sql() == "-- model.p.a\nselect 1\n\n-- test.p.t\nselect 2"
    assert RunSummary("seed", True, 1.0, (node("seed.p.s", None),)).compiled_sql() == ""
    secret = RunSummary("run", True, 1.0, (node("model.p.a", "select 'hunter2'"),)).masked(
        lambda s: s.replace("hunter2", "***")
    )
    assert secret.compiled_sql() == "select '***'"


def test_real_run_results_carry_the_compiled_sql() -> None:
    from manifest_dag.worker.results import read_run_results

    summary = read_run_results(RESULTS / "run_error_skip.json")
    compiled = [r for r in summary.results if r.compiled_code]
    assert compiled and all(r.unique_id.startswith("model.") for r in compiled)


def run_operation(**kwargs: Any) -> DbtRunOperationOperator:
    kwargs.setdefault("task_id", "grant")
    kwargs.setdefault("project_dir", "/srv/dbt")
    kwargs.setdefault("py_requirements", REQS)
    return DbtRunOperationOperator(**kwargs)


def test_run_operation_runs_a_macro_with_templated_args() -> None:
    assert OPERATOR_FOR_COMMAND["run-operation"] is DbtRunOperationOperator
    assert run_operation(macro_name="vacuum").dbt_args() == ["run-operation", "vacuum"]
    op = run_operation(
        macro_name="grant_{{ params.what }}",
        macro_args={"role": "{{ params.role }}", "n": 2},
        dbt_flags=["--threads", "1"],
    )
    assert {"macro_name", "macro_args"} <= set(op.template_fields)
    inv = rendered(op, what="select", role="reporter").invocation()
    assert inv.command_args == (
        "run-operation",
        "grant_select",
        "--args",
        '{"n": 2, "role": "reporter"}',
        "--threads",
        "1",
    )
    yaml_args = run_operation(macro_name="grant", macro_args="{role: reporter}")
    assert yaml_args.dbt_args() == ["run-operation", "grant", "--args", "{role: reporter}"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"macro_name": ""}, "macro_name must name a macro"),
        ({"macro_name": "m", "macro_args": ["a"]}, "macro_args must be a dict or a YAML string"),
        ({"macro_name": "m", "select": ["orders"]}, "dbt run-operation runs one macro and takes no select"),
        ({"macro_name": "m", "dbt_command": "run"}, "dbt_command is run-operation here"),
        (
            {"macro_name": "m", "dbt_flags": ["--args", "{}"]},
            "dbt flag --args is not allowed in dbt_flags: use DbtRunOperationOperator",
        ),
        ({"macro_name": "m", "dbt_flags": ["--full-refresh"]}, "dbt run-operation takes no --full-refresh"),
    ],
)
def test_run_operation_refuses_what_it_cannot_do(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        run_operation(**kwargs)


def test_args_in_the_generic_operators_flags_point_to_the_run_operation_operator() -> None:
    with pytest.raises(ConfigError, match="use DbtRunOperationOperator"):
        DbtVenvOperator(
            task_id="t",
            project_dir="/x",
            py_requirements=REQS,
            dbt_command="run-operation",
            dbt_flags=["m", "--args", "{}"],
        )
