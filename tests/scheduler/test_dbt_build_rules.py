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
    assert [t.task_id for t in p.tasks] == ["report_run"]  # as `dbt build --select report`
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


# -- 2. a failing test stops what dbt build would stop ------------------------------------------------
def orphan_project() -> ManifestBuilder:
    """raw_customers → customers; raw_orders, customers → orders; a relationships test on
    (customers, orders); customers, orders → summary → report; customers → only_customers;
    orders → eph (ephemeral, tested) → from_eph."""
    return (
        ManifestBuilder("shop")
        .seed("raw_customers")
        .seed("raw_orders")
        .model("customers", refs=["raw_customers"])
        .model("orders", refs=["raw_orders", "customers"])
        .model("summary", refs=["customers", "orders"])
        .model("report", refs=["summary"])
        .model("only_customers", refs=["customers"])
        .model("eph", refs=["orders"], materialized="ephemeral")
        .model("from_eph", refs=["eph"])
        .test("relationships", on=["customers", "orders"], column="customer_id")
        .test("not_null", on="eph", column="id")
    )


def task_of(p: RenderPlan, uid: str) -> str:
    """The first task of a node (its entry)."""
    return next(t.task_id for t in p.tasks if t.node_ids[:1] == (uid,))


@pytest.mark.parametrize("behavior", ["after_each", "build"])
def test_a_test_holds_back_the_nodes_downstream_of_all_its_parents(tmp_path: Path, behavior: str) -> None:
    p = plan(tmp_path, orphan_project(), test_behavior=behavior)
    rel = "test_relationships_customers_customer_id_orders"
    eph_test = "test_not_null_eph_id"
    summary, report = task_of(p, "model.shop.summary"), task_of(p, "model.shop.report")
    assert rel in p.task(summary).upstream  # `dbt build` skips summary when the test fails
    assert rel in waits_for(p, report) and rel not in p.task(report).upstream  # through summary
    assert eph_test in p.task(task_of(p, "model.shop.from_eph")).upstream  # a test of a node without a task
    for free in ("model.shop.orders", "model.shop.customers", "model.shop.only_customers"):
        assert rel not in waits_for(p, task_of(p, free)), free  # a parent, or below one parent only
    assert eph_test not in waits_for(p, summary)


@pytest.mark.parametrize("behavior", ["after_each", "build"])
def test_tests_gate_downstream_false_keeps_the_looser_wiring(tmp_path: Path, behavior: str) -> None:
    p = plan(tmp_path, orphan_project(), test_behavior=behavior, tests_gate_downstream=False)
    loose = {t.task_id for t in p.tasks if t.task_id.startswith("test_")}
    assert loose == {"test_relationships_customers_customer_id_orders", "test_not_null_eph_id"}
    assert not any(loose & set(t.upstream) for t in p.tasks)  # nothing waits for them
    gated = plan(tmp_path / "gated", orphan_project(), test_behavior=behavior)
    assert {t.task_id for t in p.tasks} == {t.task_id for t in gated.tasks}  # the same tasks either way


@pytest.mark.parametrize("behavior", ["after_all", "none"])
def test_behaviours_without_test_tasks_of_their_own_are_unchanged(tmp_path: Path, behavior: str) -> None:
    assert plan(tmp_path, orphan_project(), test_behavior=behavior) == plan(
        tmp_path / "loose", orphan_project(), test_behavior=behavior, tests_gate_downstream=False
    )


def dbt_gates(graph: DbtGraph, test: str, ancestors: dict[str, set[str]]) -> set[str]:
    """dbt-core's rule, the plain way (``add_test_edges_1``): a test T is made a parent of every
    non-test node whose ancestors include all of T's parents (``ancestors``: per model, seed and
    snapshot, every node above it)."""
    parents = set(graph.test_parents(test))
    return {uid for uid, above in ancestors.items() if parents and parents <= above}


@pytest.mark.parametrize(
    ("path", "select", "gates"),
    [
        (JAFFLE, (), False),  # its one relationships test has nothing below both parents
        (LARGE_MANIFESTS[-1], (), True),  # Tuva: 53 tests with several parents
        (LARGE_MANIFESTS[-1], ("the_tuva_project.input_layer", "the_tuva_project.core"), True),  # with gaps
        (OWN_MANIFESTS[0], (), True),  # the bundled shop project
    ],
    ids=lambda v: v.parent.name if isinstance(v, Path) else ",".join(v) if isinstance(v, tuple) else str(v),
)
def test_the_wiring_follows_dbts_add_test_edges(path: Path, select: tuple[str, ...], gates: bool) -> None:
    """Differential: on real manifests, a node's task waits for a test task of its own exactly when
    dbt's rule (reimplemented naively above) makes dbt build skip that node when the test fails."""
    manifest = load_manifest(path)
    graph = DbtGraph(manifest)
    selected = select_nodes(manifest, select=select, graph=graph)
    p = plan_tasks(graph, selected, RenderConfig())
    rendered = {u: t.task_id for t in p.tasks for u in t.node_ids[:1] if graph.nodes[u].resource_type != "test"}
    loose = [t for t in p.tasks if t.group_id is None and t.command == "test" and t.task_id != "dbt_test"]
    loose = [t for t in loose if not t.task_id.endswith("_test")]  # a seed's or a source's own tests
    assert loose, "the manifest has no test task of its own to check"
    below: dict[str, set[str]] = {t.task_id: set() for t in p.tasks}
    for t in p.tasks:
        for up in waits_for(p, t.task_id):
            below[up].add(t.task_id)
    ancestors = {
        u: graph.ancestors(u) for u, n in graph.nodes.items() if n.resource_type in ("model", "seed", "snapshot")
    }
    checked = 0
    for task in loose:
        want = set()
        for test in task.node_ids:
            want |= {rendered[u] for u in dbt_gates(graph, test, ancestors) if u in rendered}
        have = {rendered[u] for u in rendered if rendered[u] in below[task.task_id]}
        have = {t for t in have if graph.nodes[p.task(t).node_ids[0]].resource_type in ("model", "seed", "snapshot")}
        assert have == want, task.task_id
        checked += len(want)
    assert bool(checked) is gates


# -- 5. a source that names a seed's table is read after the seed -------------------------------------
def seeded_sources() -> ManifestBuilder:
    """Seed raw_people (warehouse.main.raw_people) read back as source raw.people (identifier in
    other case) by people → report; source raw.other names another table; a tested source too."""
    return (
        ManifestBuilder("alt")
        .seed("raw_people")
        .seed("raw_pets")
        .source("raw", "people", identifier="RAW_People", schema="Main")
        .source("raw", "pets", identifier="raw_pets", schema="main")
        .source("raw", "other", identifier="raw_people", schema="elsewhere")
        .model("people", sources=["raw.people"])
        .model("report", refs=["people"])
        .model("pets", sources=["raw.pets"])
        .model("other", sources=["raw.other"])
        .test("not_null", on="source:raw.pets", column="id")
    )


@pytest.mark.parametrize("behavior", BEHAVIORS)
def test_readers_of_a_source_naming_a_seeds_table_wait_for_the_seed(
    tmp_path: Path, behavior: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="manifest_dag.scheduler.plan"):
        p = plan(tmp_path, seeded_sources(), test_behavior=behavior)
    seed = task_of(p, "seed.alt.raw_people")
    people = task_of(p, "model.alt.people")
    assert seed in p.task(people).upstream  # matched whatever the case, as DuckDB does
    assert seed in waits_for(p, task_of(p, "model.alt.report"))
    assert not waits_for(p, task_of(p, "model.alt.other"))  # another schema: another table
    pets_seed = task_of(p, "seed.alt.raw_pets")
    if behavior in ("after_each", "build"):  # the source's own test task reads it after the seed too
        (source_test,) = [t.task_id for t in p.tasks if t.node_ids[0].startswith("test.alt.not_null_raw_pets")]
        assert pets_seed in waits_for(p, source_test)
    assert pets_seed in waits_for(p, task_of(p, "model.alt.pets"))
    said = [r.getMessage() for r in caplog.records if "names the table of seed" in r.getMessage()]
    assert (
        len(said) == 2 and "source raw.people names the table of seed raw_people (warehouse.Main.RAW_People)" in said[0]
    )


def test_order_sources_after_seeds_false_leaves_them_unordered(tmp_path: Path) -> None:
    p = plan(tmp_path, seeded_sources(), test_behavior="none", order_sources_after_seeds=False)
    assert not p.task(task_of(p, "model.alt.people")).upstream  # as dbt: nothing orders them


def test_an_unselected_seed_orders_nothing(tmp_path: Path) -> None:
    manifest = seeded_sources().load(tmp_path)
    graph = DbtGraph(manifest)
    p = plan_tasks(graph, select_nodes(manifest, select=["people+"], graph=graph), RenderConfig())
    assert {t.task_id for t in p.tasks} == {"people_run", "report_run"}
    assert not p.task("people_run").upstream


def test_a_dag_reading_seeds_as_sources_matches_its_manifest(tmp_path: Path) -> None:
    path = seeded_sources().write(tmp_path)
    for behavior in BEHAVIORS:
        assert_dag_matches_manifest(make_dag(path, test_behavior=behavior), path)
    loose = make_dag(path, order_sources_after_seeds=False)
    assert_dag_matches_manifest(loose, path, order_sources_after_seeds=False)
    with pytest.raises(AssertionError, match="raw_people → people: people depends on raw_people via a source"):
        assert_dag_matches_manifest(loose, path)
