"""The DAG runs what ``dbt build`` runs, in dbt's order (issue 23): functions, test gating, seeds
read as sources.

Each rule is checked on manifests from ``ManifestBuilder`` (and the real ones in
``../shared/manifests``), through ``plan_tasks`` and, where the wiring matters, through a real
``DbtDag`` checked with ``assert_dag_matches_manifest``.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from manifest_dag import DbtDag, ProjectConfig, RenderConfig, VenvConfig, load_manifest, select_nodes
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.plan import RenderPlan, plan_tasks, unrunnable_nodes
from manifest_dag.testing import ManifestBuilder, assert_dag_matches_manifest
from tests.conftest import JAFFLE, LARGE_MANIFESTS, OWN_MANIFESTS, VERSION_MANIFESTS

BEHAVIORS = ("after_each", "build", "after_all", "none")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


def plan(tmp_path: Path, builder: ManifestBuilder, **render) -> RenderPlan:
    manifest = builder.load(tmp_path)
    return plan_tasks(DbtGraph(manifest), set(manifest.nodes), RenderConfig(**render))


def upstream(p: RenderPlan) -> dict[str, set[str]]:
    return {t.task_id: set(t.upstream) for t in p.tasks}


def waits_for(p: RenderPlan, task_id: str) -> set[str]:
    """Every task ``task_id`` waits for, directly or not."""
    seen: set[str] = set()
    todo = list(p.task(task_id).upstream)
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo.extend(p.task(t).upstream)
    return seen


def make_dag(manifest: Path, **render) -> DbtDag:
    return DbtDag(
        dag_id="rules",
        project_config=ProjectConfig(manifest_path=manifest, project_dir="/srv/dbt", plan_cache_dir=False),
        venv_config=VENV,
        render_config=RenderConfig(**render),
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    )


# -- 1. functions ----------------------------------------------------------------------------------
def udf_project() -> ManifestBuilder:
    """raw (seed) → checked ← is_positive_int (function); checked → report."""
    return (
        ManifestBuilder("udf")
        .function("is_positive_int", arguments=[("a_string", "varchar")])
        .seed("raw")
        .model("checked", refs=["raw", "is_positive_int"])
        .model("report", refs=["checked"])
        .test("not_null", on="checked", column="id")
    )


@pytest.mark.parametrize("behavior", BEHAVIORS)
def test_a_function_is_built_by_dbt_build_before_the_models_that_call_it(tmp_path: Path, behavior: str) -> None:
    p = plan(tmp_path, udf_project(), test_behavior=behavior)
    fn = p.task("is_positive_int_build")
    assert fn.command == "build" and fn.node_ids == ("function.udf.is_positive_int",)
    # only `dbt build` creates functions (dbt 1.11: `dbt run` selects models only); no test rides along
    assert fn.dbt_args() == [
        "build",
        "--select",
        "udf.is_positive_int,resource_type:function",
        "--indirect-selection",
        "empty",
    ]
    checked = next(t for t in p.tasks if t.node_ids[:1] == ("model.udf.checked",))
    assert "is_positive_int_build" in checked.upstream
    report = next(t for t in p.tasks if t.node_ids[:1] == ("model.udf.report",))
    assert "is_positive_int_build" in waits_for(p, report.task_id)


def test_the_function_task_selects_the_function_alone(tmp_path: Path) -> None:
    """A model (and a folder of models) may share a function's fully qualified name; the task's
    `dbt build` must not build them."""
    builder = (
        ManifestBuilder("udf")
        .function("twice")
        .model("twice", path="twice.sql")
        .model("inner", path="twice/inner.sql")
        .model("uses", refs=["twice"])
    )
    manifest = builder.load(tmp_path)
    p = plan_tasks(DbtGraph(manifest), set(manifest.nodes), RenderConfig(test_behavior="none"))
    (fn,) = [t for t in p.tasks if t.node_ids == ("function.udf.twice",)]
    bare = select_nodes(manifest, select=["udf.twice"])
    assert {"model.udf.twice", "model.udf.inner", "function.udf.twice"} <= bare  # what plain fqn would build
    assert select_nodes(manifest, select=list(fn.select), indirect_selection="empty") == {"function.udf.twice"}


def test_a_dag_with_a_function_matches_its_manifest(tmp_path: Path) -> None:
    path = udf_project().write(tmp_path)
    for behavior in BEHAVIORS:
        dag = make_dag(path, test_behavior=behavior)
        assert "is_positive_int_build" in dag.task_dict
        assert_dag_matches_manifest(dag, path)


def test_a_function_left_out_of_the_selection_gets_no_task(tmp_path: Path) -> None:
    manifest = udf_project().load(tmp_path)
    graph = DbtGraph(manifest)
    selected = select_nodes(manifest, select=["report"], graph=graph)
    p = plan_tasks(graph, selected, RenderConfig())
    assert [t.task_id for t in p.tasks] == ["report.run"]  # as `dbt build --select report`
    with_parents = select_nodes(manifest, select=["+report"], graph=graph)
    assert "is_positive_int_build" in plan_tasks(graph, with_parents, RenderConfig())


def test_every_resource_type_dbt_writes_is_runnable_and_an_unknown_one_is_not(tmp_path: Path) -> None:
    for path in [JAFFLE, *VERSION_MANIFESTS, *OWN_MANIFESTS, LARGE_MANIFESTS[-1]]:  # dbt 1.5-1.12; Tuva: hooks
        manifest = load_manifest(path)
        assert unrunnable_nodes(DbtGraph(manifest), set(manifest.nodes)) == [], path.name
    builder = (
        ManifestBuilder("new")
        .model("a")
        .model("b", depends_on=["widget.new.w"])
        .model("c")
        .exposure("dash", refs=["c"])
    )
    data = builder.build()
    data["nodes"]["widget.new.w"] = {
        "resource_type": "widget",
        "name": "w",
        "package_name": "new",
        "unique_id": "widget.new.w",
        "fqn": ["new", "w"],
        "depends_on": {"nodes": ["model.new.a"]},
        "config": {"enabled": True},
    }
    import orjson

    (tmp_path / "manifest.json").write_bytes(orjson.dumps(data))
    manifest = load_manifest(tmp_path / "manifest.json")
    graph = DbtGraph(manifest)
    assert [n.unique_id for n in unrunnable_nodes(graph, {"model.new.b"})] == ["widget.new.w"]
    assert [n.unique_id for n in unrunnable_nodes(graph, {"widget.new.w"})] == ["widget.new.w"]
    assert unrunnable_nodes(graph, {"model.new.a", "model.new.c", "exposure.new.dash"}) == []
