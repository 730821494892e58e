"""``plan_tasks``: which tasks a selection becomes, in which groups, after which others, running what."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest_dag import RenderConfig
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.plan import RenderPlan, TaskSpec, plan_tasks
from manifest_dag.testing import ManifestBuilder


def shop() -> ManifestBuilder:
    """raw_orders (seed, tested) → stg_orders → eph (ephemeral) → orders ← source raw.payments;
    stg_orders → customers; a not_null on orders; a relationships test on customers and orders."""
    return (
        ManifestBuilder("shop")
        .seed("raw_orders")
        .source("raw", "payments", freshness=True)
        .model("stg_orders", refs=["raw_orders"])
        .model("eph", refs=["stg_orders"], materialized="ephemeral")
        .model("orders", refs=["eph"], sources=["raw.payments"])
        .model("customers", refs=["stg_orders"])
        .test("not_null", on="orders", column="id")
        .test("relationships", on=["customers", "orders"], column="customer_id")
        .test("unique", on="raw_orders", column="id")
    )


def plan(tmp_path: Path, builder: ManifestBuilder | None = None, **render) -> RenderPlan:
    manifest = (builder or shop()).load(tmp_path)
    graph = DbtGraph(manifest)
    return plan_tasks(graph, set(manifest.nodes), RenderConfig(**render))


def upstream(p: RenderPlan) -> dict[str, set[str]]:
    return {t.task_id: set(t.upstream) for t in p.tasks}


def test_after_each_groups_run_then_test(tmp_path: Path) -> None:
    p = plan(tmp_path)
    assert upstream(p) == {
        "raw_orders_seed": set(),
        "raw_orders_test": {"raw_orders_seed"},
        "stg_orders_run": {"raw_orders_test"},  # no tests of its own: a plain task
        "customers_run": {"stg_orders_run"},
        "orders.run": {"stg_orders_run"},  # through the ephemeral model; the source has no task
        "orders.test": {"orders.run"},
        "test_relationships_customers_customer_id_orders": {"customers_run", "orders.test"},
    }
    assert {g.group_id: g.node_id for g in p.groups} == {"orders": "model.shop.orders"}
    run, test = p.task("orders.run"), p.task("orders.test")
    assert (run.group_id, run.local_id, run.command) == ("orders", "run", "run")
    assert (test.group_id, test.local_id, test.command) == ("orders", "test", "test")
    (not_null,) = test.node_ids
    assert not_null.startswith("test.shop.not_null_orders_id.")
    assert p.group_of("orders.test") == p.group_of("orders.run") and p.group_of("raw_orders_seed") is None
    assert "model.shop.eph" not in {u for t in p.tasks for u in t.node_ids}


def test_every_selected_test_runs_exactly_once(tmp_path: Path) -> None:
    manifest = shop().load(tmp_path)
    tests = sorted(u for u, n in manifest.nodes.items() if n.resource_type == "test")
    for behavior in ("after_each", "build"):
        p = plan_tasks(DbtGraph(manifest), set(manifest.nodes), RenderConfig(test_behavior=behavior))
        ran = [u for t in p.tasks for u in t.node_ids if u.startswith("test.")]
        assert sorted(ran) == tests, behavior


def test_after_all_runs_every_test_once_at_the_end(tmp_path: Path) -> None:
    p = plan(tmp_path, test_behavior="after_all")
    assert not p.groups
    assert [t.command for t in p.tasks].count("test") == 1
    final = p.tasks[-1]
    assert final.task_id == "dbt_test" and final.dbt_args() == ["test"]
    assert set(final.upstream) == {"customers_run", "orders_run"}  # the leaves
    assert upstream(p)["orders_run"] == {"stg_orders_run"}


def test_after_all_carries_the_selection_into_the_final_test(tmp_path: Path) -> None:
    manifest = shop().load(tmp_path)
    config = RenderConfig(test_behavior="after_all", select=["+orders"], indirect_selection="cautious")
    selected = {u for u in manifest.nodes if "customers" not in u}
    final = plan_tasks(DbtGraph(manifest), selected, config).task("dbt_test")
    assert final.dbt_args()[:3] == ["test", "--select", "+orders"]
    assert final.indirect_selection == "cautious"


def test_build_is_one_task_per_node(tmp_path: Path) -> None:
    p = plan(tmp_path, test_behavior="build")
    assert not p.groups
    assert upstream(p) == {
        "raw_orders_build": set(),
        "stg_orders_build": {"raw_orders_build"},
        "customers_build": {"stg_orders_build"},
        "orders_build": {"stg_orders_build"},
        "test_relationships_customers_customer_id_orders": {"customers_build", "orders_build"},
    }
    orders = p.task("orders_build")
    assert orders.dbt_args() == ["build", "--select", "shop.orders", "--indirect-selection", "cautious"]
    assert orders.node_ids[0] == "model.shop.orders" and len(orders.node_ids) == 2  # the model and its test


def test_none_renders_no_tests(tmp_path: Path) -> None:
    p = plan(tmp_path, test_behavior="none")
    assert [t.command for t in p.tasks] == ["seed", "run", "run", "run"]
    assert all(not u.startswith("test.") for t in p.tasks for u in t.node_ids)


def test_a_test_on_several_models_waits_for_all_of_them(tmp_path: Path) -> None:
    builder = (
        ManifestBuilder("p")
        .model("a")
        .model("b")
        .model("c", refs=["a"])
        .test("relationships", on=["a", "b"], column="x")
        .test("relationships", on=["c", "b"], column="y")
    )
    p = plan(tmp_path, builder)
    loose = [t for t in p.tasks if t.group_id is None and t.command == "test"]
    assert {t.task_id: set(t.upstream) for t in loose} == {
        "test_relationships_a_x_b": {"a_run", "b_run"},
        "test_relationships_c_y_b": {"c_run", "b_run"},
    }
    assert not p.groups and "c.test" not in p  # neither test is attached to one model's group


def test_source_freshness_tasks_and_their_dependents(tmp_path: Path) -> None:
    p = plan(tmp_path, source_rendering="freshness")
    fresh = p.task("raw_payments_freshness")
    assert fresh.command == "source freshness" and fresh.node_ids == ("source.shop.raw.payments",)
    assert fresh.dbt_args() == ["source", "freshness", "--select", "source:shop.raw.payments"]
    assert "raw_payments_freshness" in p.task("orders.run").upstream
    assert "raw_payments_freshness" not in plan(tmp_path / "again", test_behavior="none")


def test_a_source_without_freshness_gets_no_task(tmp_path: Path) -> None:
    builder = ManifestBuilder("p").source("raw", "t").model("m", sources=["raw.t"])
    p = plan(tmp_path, builder, source_rendering="freshness")
    assert [t.task_id for t in p.tasks] == ["m_run"]


def test_colliding_names_get_unique_ids(tmp_path: Path) -> None:
    builder = (
        ManifestBuilder("main")
        .model("orders")
        .model("orders", package="billing")
        .seed("raw")
        .model("raw_seed")  # a group called like the seed's task
    )
    p = plan(tmp_path, builder, group_every_model=True)
    ids = [t.task_id for t in p.tasks]
    assert len(ids) == len(set(ids)) == 4
    # two models called orders: both qualified by their package
    assert [g.group_id for g in p.groups] == ["main__orders", "billing__orders", "raw_seed_2"]
    # the seed's task took "raw_seed" first; the model's group gets the next free id
    assert ids == ["main__orders.run", "billing__orders.run", "raw_seed", "raw_seed_2.run"]
    # by default models without tests are plain tasks, named by the same unique names
    default = [t.task_id for t in plan(tmp_path / "plain", builder).tasks]
    assert default == ["main__orders_run", "billing__orders_run", "raw_seed", "raw_seed_run"]
    nodes = [u for t in p.tasks for u in t.node_ids]
    assert len(nodes) == len(set(nodes)) == 4


def test_the_plan_is_the_same_every_time(tmp_path: Path) -> None:
    """The worker re-plans the DAG to find its task: ids must not depend on the process."""
    builder = ManifestBuilder("main").model("orders").model("orders", package="billing")
    assert plan(tmp_path / "a", builder) == plan(tmp_path / "b", builder)


def test_tasks_are_in_dependency_order(tmp_path: Path) -> None:
    for behavior in ("after_each", "after_all", "build", "none"):
        p = plan(tmp_path / behavior, test_behavior=behavior, source_rendering="freshness")
        seen: set[str] = set()
        for task in p.tasks:
            assert set(task.upstream) <= seen, (behavior, task.task_id)
            seen.add(task.task_id)
        assert set(p.edges()) == {(u, t.task_id) for t in p.tasks for u in t.upstream}


def test_unselected_tests_are_excluded_from_a_models_test_task(tmp_path: Path) -> None:
    manifest = shop().load(tmp_path)
    not_null = next(u for u in manifest.nodes if u.startswith("test.shop.not_null"))
    selected = set(manifest.nodes) - {not_null}
    p = plan_tasks(DbtGraph(manifest), selected, RenderConfig(test_behavior="build"))
    assert p.task("orders_build").exclude == ("shop.not_null_orders_id",)
    assert "--exclude" in p.task("orders_build").dbt_args()


def test_unselected_nodes_get_no_task_but_keep_the_order(tmp_path: Path) -> None:
    manifest = shop().load(tmp_path)
    selected = set(manifest.nodes) - {"model.shop.stg_orders"}
    p = plan_tasks(DbtGraph(manifest), selected, RenderConfig(test_behavior="none"))
    assert "stg_orders_run" not in p
    assert set(p.task("orders_run").upstream) == {"raw_orders_seed"}


def test_include_packages_false_leaves_package_nodes_out(tmp_path: Path) -> None:
    builder = ManifestBuilder("main").model("pkg_model", package="util").model("mine", refs=["util.pkg_model"])
    p = plan(tmp_path, builder, include_packages=False, test_behavior="none")
    assert [t.task_id for t in p.tasks] == ["mine_run"]


@pytest.mark.parametrize(
    ("spec", "args"),
    [
        (TaskSpec("t", "run", select=("a", "b")), ["run", "--select", "a", "b"]),
        (TaskSpec("t", "test", exclude=("x",), indirect_selection="cautious"),
         ["test", "--exclude", "x", "--indirect-selection", "cautious"]),
        (TaskSpec("t", "build", selector="nightly"), ["build", "--selector", "nightly"]),
        (TaskSpec("t", "source freshness"), ["source", "freshness"]),
    ],
)  # fmt: skip
def test_a_task_specs_dbt_args(spec: TaskSpec, args: list[str]) -> None:
    assert spec.dbt_args() == args


def test_local_id_is_the_id_inside_the_group() -> None:
    assert TaskSpec("orders.run", "run", group_id="orders").local_id == "run"
    assert TaskSpec("orders_seed", "seed").local_id == "orders_seed"


def test_plan_text_lists_tasks_and_their_upstream(tmp_path: Path) -> None:
    text = str(plan(tmp_path, test_behavior="none"))
    assert text.splitlines()[0] == "4 tasks in 0 groups"
    assert "  orders_run: dbt run --select shop.orders  after stg_orders_run" in text.splitlines()


def test_ids_fit_airflows_limit_with_a_long_task_group_prefix(tmp_path: Path) -> None:
    """Issue 19 item 17: a 120-character DbtTaskGroup id over a 200-character model name (tested,
    so it is a group with run and test, plus a seed and loose tests) builds; every dotted task id is
    at most Airflow's 250 characters, and a second build gives the same ids."""
    from datetime import datetime

    from airflow.sdk import DAG

    from manifest_dag import DbtTaskGroup, ProjectConfig, VenvConfig
    from manifest_dag.scheduler.plan_cache import clear_memory

    long = "m" * 200
    builder = (
        ManifestBuilder("shop")
        .seed("s" * 200)
        .model(long, refs=["s" * 200])
        .model(long[:-1] + "x", refs=[long])
        .test("not_null", on=long, column="id")
        .test("relationships", on=[long, long[:-1] + "x"], column="c" * 150)
    )
    path = builder.write(tmp_path)

    def build(cache: Path) -> list[str]:
        clear_memory()
        with DAG("host", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            DbtTaskGroup(
                group_id="g" * 120,
                project_config=ProjectConfig(manifest_path=path, project_dir="/srv/dbt", plan_cache_dir=cache),
                venv_config=VenvConfig(py_requirements=["dbt-duckdb"]),
            )
        return sorted(dag.task_dict)

    first = build(tmp_path / "cache")
    assert len(first) == 5  # the seed, two model groups (run + test, run), the relationships test
    assert all(len(t) <= 250 for t in first), max(first, key=len)
    assert build(tmp_path / "cache") == first  # from the plan cache
    assert build(tmp_path / "other_cache") == first  # planned again
