"""Grouping and display: a TaskGroup only where a model has tests (or the user wants every model
alike), folder groups nested as the project's folders, and display names apart from ids."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

from manifest_dag import DbtDag, DbtNaming, DbtTaskGroup, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.core.naming import AIRFLOW_MAX_ID
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.plan import RenderPlan, plan_tasks
from manifest_dag.scheduler.plan_cache import cached_plan, clear_memory, render_key
from manifest_dag.testing import ManifestBuilder, assert_dag_matches_manifest
from tests.conftest import REPO
from tests.scheduler.test_task_scope import build, in_context, same_task

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
SHOP = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"


def project() -> ManifestBuilder:
    return (
        ManifestBuilder("shop")
        .seed("raw_orders", path="raw/raw_orders.csv")
        .source("raw", "payments")
        .model("stg_orders", refs=["raw_orders"], path="staging/stg_orders.sql")
        .model("stg_payments", sources=["raw.payments"], path="staging/stg_payments.sql")
        .model("orders", refs=["stg_orders", "stg_payments"], path="marts/finance/orders.sql")
        .model("revenue", refs=["orders"], path="marts/finance/revenue.sql")
        .model("dim", versions=[1, 2], refs=["orders"], path="marts/dim.sql")
        .model("calendar", package="utils", path="calendar/calendar.sql")
        .test("not_null", on="stg_orders", column="id")
        .test("unique", on="revenue", column="day")
        .test("relationships", on=["orders", "stg_payments"], column="payment_id")
    )


def plan(tmp_path: Path, builder: ManifestBuilder | None = None, **render) -> RenderPlan:
    manifest = (builder or project()).load(tmp_path)
    return plan_tasks(DbtGraph(manifest), set(manifest.nodes), RenderConfig(**render))


def dag_of(path: Path, dag_id: str = "groups", **render) -> DbtDag:
    return DbtDag(
        dag_id=dag_id,
        project_config=ProjectConfig(manifest_path=path, plan_cache_dir=False),
        venv_config=VENV,
        render_config=RenderConfig(**render),
        schedule=None,
        start_date=START,
    )


# -- a group only where a model has tests -----------------------------------------------------------
def test_a_model_without_tests_is_a_plain_task(tmp_path: Path) -> None:
    p = plan(tmp_path)
    ids = {t.task_id for t in p.tasks}
    # tested models: a group holding run then test; the rest a plain <name>_run, as cosmos names it
    assert {"stg_orders.run", "stg_orders.test", "revenue.run", "revenue.test"} <= ids
    assert {"stg_payments_run", "orders_run", "dim_v1_run", "dim_v2_run", "calendar_run"} <= ids
    assert {g.group_id for g in p.groups} == {"stg_orders", "revenue"}
    orders = p.task("orders_run")
    assert orders.group_id is None and orders.local_id == "orders_run" and orders.upstream == (
        "stg_orders.test",
        "stg_payments_run",
    )
    # a test of several models still waits for them all
    assert set(p.task("test_relationships_orders_payment_id_stg_payments").upstream) == {
        "orders_run",
        "stg_payments_run",
    }


def test_group_every_model_gives_every_model_its_group(tmp_path: Path) -> None:
    p = plan(tmp_path, group_every_model=True)
    models = {"stg_orders", "stg_payments", "orders", "revenue", "dim_v1", "dim_v2", "calendar"}
    assert {g.group_id for g in p.groups} == models
    assert p.task("orders.run").group_id == "orders" and "orders.test" not in p
    # the option shapes the plan: another cache entry
    assert render_key(RenderConfig(group_every_model=True)) != render_key(RenderConfig())


@pytest.mark.parametrize("behavior", ["after_each", "after_all", "build", "none"])
@pytest.mark.parametrize("every", [False, True])
def test_the_dag_matches_its_manifest_in_every_shape(tmp_path: Path, behavior: str, every: bool) -> None:
    path = project().write(tmp_path)
    for folders in (False, True):
        dag = dag_of(path, f"g_{folders}", test_behavior=behavior, group_every_model=every, folder_groups=folders)
        assert_dag_matches_manifest(dag, path)


# -- folder groups ----------------------------------------------------------------------------------------
def test_folder_groups_nest_as_the_folders(tmp_path: Path) -> None:
    p = plan(tmp_path, folder_groups=True)
    groups = {g.group_id: g for g in p.groups}
    assert {gid: (g.parent_id, g.node_id, g.tooltip) for gid, g in groups.items()} == {
        "raw": (None, "", "raw"),
        "staging": (None, "", "staging"),
        "staging.stg_orders": ("staging", "model.shop.stg_orders", ""),
        "marts": (None, "", "marts"),
        "marts.finance": ("marts", "", "marts/finance"),
        "marts.finance.revenue": ("marts.finance", "model.shop.revenue", ""),
        "utils": (None, "", "utils"),  # an installed package's nodes: under its name
        "utils.calendar": ("utils", "", "utils/calendar"),
    }
    assert groups["marts.finance.revenue"].local_id == "revenue"
    # every group's parent is listed before it (the renderer creates them in this order)
    order = [g.group_id for g in p.groups]
    assert all(order.index(g.parent_id) < order.index(g.group_id) for g in p.groups if g.parent_id)
    ids = {t.task_id for t in p.tasks}
    assert {
        "raw.raw_orders_seed",
        "staging.stg_orders.run",
        "staging.stg_orders.test",
        "staging.stg_payments_run",
        "marts.finance.orders_run",
        "marts.finance.revenue.run",
        "marts.finance.revenue.test",
        "marts.dim_v1_run",  # a versioned model's fqn ends with its version: still in marts/
        "marts.dim_v2_run",
        "utils.calendar.calendar_run",
        "test_relationships_orders_payment_id_stg_payments",  # a test of several nodes: at the top
    } == ids
    revenue_test = p.task("marts.finance.revenue.test")
    assert (revenue_test.group_id, revenue_test.local_id) == ("marts.finance.revenue", "test")
    assert [g.group_id for g in p.groups_of("marts.finance.revenue.test")] == [
        "marts",
        "marts.finance",
        "marts.finance.revenue",
    ]
    assert [g.group_id for g in p.groups_of("marts.finance.orders_run")] == ["marts", "marts.finance"]
    assert p.groups_of("test_relationships_orders_payment_id_stg_payments") == ()
    assert render_key(RenderConfig(folder_groups=True)) != render_key(RenderConfig())


def test_folder_groups_render_as_nested_task_groups(tmp_path: Path) -> None:
    path = project().write(tmp_path)
    dag = dag_of(path, folder_groups=True)
    groups = dag.task_group.get_task_group_dict()
    assert groups["marts.finance"].parent_group.group_id == "marts"
    assert groups["marts.finance.revenue"].parent_group.group_id == "marts.finance"
    assert dag.task_dict["marts.finance.revenue.run"].task_group.group_id == "marts.finance.revenue"
    assert dag.task_dict["marts.finance.orders_run"].task_group.group_id == "marts.finance"
    assert groups["marts.finance"].tooltip == "marts/finance"
    assert dag.task_dict["marts.finance.orders_run"].upstream_task_ids == {
        "staging.stg_orders.test",
        "staging.stg_payments_run",
    }
    assert_dag_matches_manifest(dag, path)


def test_folder_groups_of_the_shop_project(tmp_path: Path) -> None:
    """The real shop manifest (dbt 1.11): a YAML snapshot's path names its file, its fqn does not."""
    dag = dag_of(SHOP, folder_groups=True)
    assert "products_snapshot_snapshot" in dag.task_dict  # snapshots/products_snapshot.yml: top level
    assert "marts.marketing.dim_customers_v2.run" in dag.task_dict
    assert "shop_utils.utils_calendar.run" in dag.task_dict  # the installed package shop_utils
    assert_dag_matches_manifest(dag, SHOP)


def test_folder_groups_inside_a_dbt_task_group(tmp_path: Path) -> None:
    path = project().write(tmp_path)
    with DAG("host", schedule=None, start_date=START) as dag:
        DbtTaskGroup(
            group_id="dbt",
            project_config=ProjectConfig(manifest_path=path, plan_cache_dir=False),
            venv_config=VENV,
            render_config=RenderConfig(folder_groups=True),
        )
    assert "dbt.marts.finance.revenue.test" in dag.task_dict
    assert dag.task_group.get_task_group_dict()["dbt.marts.finance"].parent_group.group_id == "dbt.marts"
    assert_dag_matches_manifest(dag, path, group_id="dbt")


def test_deep_folders_keep_ids_within_airflows_limit(tmp_path: Path) -> None:
    deep = "/".join(f"layer_{i}_" + "x" * 30 for i in range(12)) + "/leaf.sql"
    builder = (
        ManifestBuilder("p")
        .model("leaf", path=deep)
        .model("tail", refs=["leaf"], path=deep.replace("leaf.sql", "tail.sql"))
        .test("not_null", on="leaf", column="id")
    )
    for prefix in (0, 40):
        manifest = builder.load(tmp_path / str(prefix))
        p = plan_tasks(DbtGraph(manifest), set(manifest.nodes), RenderConfig(folder_groups=True), id_prefix=prefix)
        for t in p.tasks:
            assert len(t.task_id) + prefix <= AIRFLOW_MAX_ID, t.task_id
        folders = [g for g in p.groups if not g.node_id]
        assert 1 < len(folders) < 12  # nested as deep as fits, the rest in the deepest that fit
        leaf = next(t for t in p.tasks if t.command == "run" and t.node_ids == ("model.p.leaf",))
        tail = next(t for t in p.tasks if t.node_ids == ("model.p.tail",))
        assert leaf.task_id.endswith("leaf.run") and tail.task_id.endswith("tail_run")
        assert tail.group_id == folders[-1].group_id  # both in the deepest folder group
        assert p.group_of(leaf.task_id).parent_id == folders[-1].group_id


def test_a_task_parse_builds_its_folder_groups_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a task's parsing context only that task (and its chain of groups) is built, read
    from the plan cache record, equal to the same task in the full DAG."""
    path = project().write(tmp_path / "p")
    monkeypatch.setenv("MANIFEST_DAG_PLAN_CACHE", str(tmp_path / "cache"))
    clear_memory()
    in_context(monkeypatch, None, None)
    full = build(path, folder_groups=True)
    for task_id in ("marts.finance.revenue.test", "marts.finance.orders_run", "raw.raw_orders_seed"):
        clear_memory()  # a fresh process: the record is read from disk
        in_context(monkeypatch, "scoped", task_id)
        scoped = build(path, folder_groups=True)
        assert list(scoped.task_dict) == [task_id]
        same_task(scoped.task_dict[task_id], full.task_dict[task_id])
        chain = [g.group_id for g in scoped.task_group.get_task_group_dict().values() if g.group_id]
        assert chain == [g for g in full.task_group.get_task_group_dict() if g and task_id.startswith(g + ".")]


def test_folder_groups_file_cache_entries_carry_group_chains(tmp_path: Path) -> None:
    path = project().write(tmp_path / "p")
    config = RenderConfig(folder_groups=True)
    clear_memory()
    built, _ = cached_plan(path, config, lambda: _plan_with_manifest(path, config), cache_dir=tmp_path / "cache")
    clear_memory()
    planned, source = cached_plan(path, config, lambda: pytest.fail("rebuilt"), cache_dir=tmp_path / "cache")
    assert source == "disk"
    spec, groups = planned.task("marts.finance.revenue.run")
    assert spec == built.plan.task("marts.finance.revenue.run")
    assert [g.local_id for g in groups] == ["marts", "finance", "revenue"]


def _plan_with_manifest(path: Path, config: RenderConfig):
    from manifest_dag.scheduler.project import plan_project

    planned = plan_project(path, config)
    return planned.manifest, planned.plan


# -- display names ---------------------------------------------------------------------------------------
class Readable(DbtNaming):
    """Ids stay; the UI shows "orders (run)" and folders in capitals."""

    def task_display_name(self, node, command, in_group):
        return None if in_group else f"{node.label} ({command})"

    def group_display_name(self, node):
        return f"model {node.label}"

    def folder_display_name(self, folders):
        return folders[-1].upper()


def test_display_names_come_from_the_naming(tmp_path: Path) -> None:
    path = project().write(tmp_path)
    dag = dag_of(path, naming=Readable(), folder_groups=True)
    groups = dag.task_group.get_task_group_dict()
    orders = dag.task_dict["marts.finance.orders_run"]
    assert orders.task_display_name == "orders (run)"  # the id is unchanged
    assert dag.task_dict["raw.raw_orders_seed"].task_display_name == "raw_orders (seed)"
    assert dag.task_dict["staging.stg_orders.run"].task_display_name == "staging.stg_orders.run"  # None: the id
    assert groups["staging.stg_orders"].label == "model stg_orders"
    assert groups["marts.finance"].label == "FINANCE"
    assert_dag_matches_manifest(dag, path)


def test_by_default_the_ui_shows_ids_but_where_the_id_had_to_change_a_name(tmp_path: Path) -> None:
    builder = (
        ManifestBuilder("p")
        .model("plain")
        .model("kunden_übersicht", path="märkte/kunden_übersicht.sql")
        .model("umsätze")
        .test("not_null", on="umsätze", column="id")
    )
    path = builder.write(tmp_path)
    dag = dag_of(path, folder_groups=True)
    assert dag.task_dict["plain_run"].task_display_name == "plain_run"  # nothing set: the id
    assert dag.dbt_plan.task("plain_run").display_name is None
    task = dag.task_dict["m_rkte.kunden__bersicht_run"]
    assert task.task_display_name == "kunden_übersicht run"
    groups = dag.task_group.get_task_group_dict()
    assert groups["m_rkte"].label == "märkte"
    assert groups["ums_tze"].label == "umsätze"  # the model's group
    assert dag.task_dict["ums_tze.run"].task_display_name == "ums_tze.run"  # inside its group: "run" is enough
