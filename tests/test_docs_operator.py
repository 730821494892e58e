"""The docs task: DbtDocsOperator's dbt call and destination, and DbtDag's DocsConfig."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from manifest_dag import (
    ConfigError,
    DbtDag,
    DbtDocsOperator,
    DbtTaskGroup,
    DocsConfig,
    ProfileConfig,
    ProjectConfig,
    VenvConfig,
)
from manifest_dag.core import settings
from tests.conftest import JAFFLE

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
PROFILE = ProfileConfig(profile_name="p", profiles_yml_path="/srv/profiles.yml")


def docs_op(**kwargs) -> DbtDocsOperator:
    from airflow.sdk import DAG

    with DAG(dag_id="shop", schedule=None, start_date=START):
        return DbtDocsOperator(task_id="docs", project_dir="/srv/dbt", venv_config=VENV, **kwargs)


def test_the_dbt_call_is_docs_generate_static() -> None:
    assert docs_op().dbt_args() == ["docs", "generate", "--static"]
    assert docs_op(static=False).dbt_args() == ["docs", "generate"]
    assert docs_op(dbt_flags=["--no-compile"]).dbt_args() == ["docs", "generate", "--no-compile", "--static"]


def test_docs_flags_belong_to_docs_generate() -> None:
    from manifest_dag import DbtRunOperator

    with pytest.raises(ConfigError, match="dbt run takes no --static"):
        DbtRunOperator(task_id="r", project_dir="/x", venv_config=VENV, dbt_flags=["--static"])


def test_bad_arguments_name_the_task() -> None:
    with pytest.raises(ConfigError, match=r"DbtDocsOperator\(task_id='docs'\): static"):
        docs_op(static="yes")
    with pytest.raises(ConfigError, match="docs_dir"):
        docs_op(docs_dir="  ")
    with pytest.raises(ConfigError, match="dbt_command is docs generate"):
        docs_op(dbt_command="run")


def test_default_location_is_the_dags_folder_under_the_docs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.DOCS_ROOT, "s3://bucket/dbt-docs/")
    assert docs_op().docs_location() == "s3://bucket/dbt-docs/shop"
    assert docs_op(docs_dir="/srv/site").docs_location() == "/srv/site"


def test_no_location_at_all_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.DOCS_ROOT, raising=False)
    monkeypatch.delenv("AIRFLOW__MANIFEST_DAG__DOCS_ROOT", raising=False)
    with pytest.raises(ConfigError, match=r"nowhere to publish the docs: give docs_dir, or set MANIFEST_DAG_DOCS_ROOT"):
        docs_op().docs_location()


def test_docs_config_checks_its_fields() -> None:
    with pytest.raises(ConfigError, match=r"DocsConfig.static"):
        DocsConfig(static="no")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"DocsConfig.task_id"):
        DocsConfig(task_id="")


def build(docs: DocsConfig | None, **kwargs) -> DbtDag:
    return DbtDag(
        dag_id="jaffle",
        project_config=ProjectConfig(manifest_path=JAFFLE, project_dir="/srv/dbt"),
        profile_config=PROFILE,
        venv_config=VENV,
        docs_config=docs,
        schedule=None,
        start_date=START,
        **kwargs,
    )


def test_dbt_dag_ends_with_the_docs_task() -> None:
    dag = build(DocsConfig(docs_dir="/srv/docs/jaffle"))
    docs = dag.task_dict["dbt_docs"]
    assert isinstance(docs, DbtDocsOperator)
    leaves = {t.task_id for t in dag.tasks if t.task_id != "dbt_docs" and not (t.downstream_task_ids - {"dbt_docs"})}
    assert leaves and docs.upstream_task_ids == leaves
    assert not docs.downstream_task_ids
    assert docs.docs_dir == "/srv/docs/jaffle" and docs.profile_config == PROFILE
    # every dbt task's nodes, by the task's id: the plugin opens a task's model from them
    assert docs.task_nodes["orders.run"] == ["model.jaffle_shop.orders"]
    assert set(docs.task_nodes) == {t for t in dag.task_dict if t != "dbt_docs"}


def test_without_docs_config_there_is_no_docs_task() -> None:
    assert "dbt_docs" not in build(None).task_dict


def test_the_docs_task_id_may_not_be_a_planned_task() -> None:
    with pytest.raises(ConfigError, match=r"DocsConfig.task_id 'orders.run' is a task of the dbt plan"):
        build(DocsConfig(task_id="orders.run"))


def test_the_docs_tasks_own_parse_builds_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    full = build(DocsConfig())
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "jaffle")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "dbt_docs")
    scoped = build(DocsConfig())
    assert list(scoped.task_dict) == ["dbt_docs"]
    a, b = scoped.task_dict["dbt_docs"], full.task_dict["dbt_docs"]
    assert a.dbt_args() == b.dbt_args() and a.task_nodes == b.task_nodes


def test_in_a_task_group_the_ids_carry_its_prefix() -> None:
    from airflow.sdk import DAG

    with DAG(dag_id="outer", schedule=None, start_date=START) as dag:
        DbtTaskGroup(
            group_id="dbt",
            project_config=ProjectConfig(manifest_path=JAFFLE, project_dir="/srv/dbt"),
            profile_config=PROFILE,
            venv_config=VENV,
            docs_config=DocsConfig(),
        )
    docs = dag.task_dict["dbt.dbt_docs"]
    assert "dbt.orders.run" in docs.task_nodes and all(t in dag.task_dict for t in docs.task_nodes)


def test_execute_fails_before_dbt_when_there_is_nowhere_to_publish(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(settings.DOCS_ROOT, raising=False)
    monkeypatch.delenv("AIRFLOW__MANIFEST_DAG__DOCS_ROOT", raising=False)
    with pytest.raises(ConfigError, match="nowhere to publish"):
        docs_op().execute({})
