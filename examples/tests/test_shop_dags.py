"""Offline tests of the shop DAG (``examples/dags/shop_dag.py``): no dbt, no warehouse, no network.

Run them with ``pytest examples/tests``. Everything used here comes with manifest-dag: its pytest
plugin registers itself when the package is installed (fixtures ``dag_bag``, ``no_dbt``,
``manifest_builder``, ``golden``) and ``manifest_dag.testing`` holds the assertions.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from manifest_dag import DbtDag, DbtRunOperator, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.testing import assert_dag_matches_manifest, dag_shape, plan_task

REPO = Path(__file__).resolve().parents[2]
SHOP_MANIFEST = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


# -- the real DAG folder ---------------------------------------------------------------------------
def test_dag_files_import_without_dbt(dag_bag) -> None:
    """Every DAG file parses as on Airflow's DAG processor, where dbt is not installed.

    ``dag_bag()`` loads the folder named by ``manifest_dag_dags_folder`` (see pytest.ini) with
    ``import dbt`` blocked, and fails listing each broken file's traceback in full.
    """
    bag = dag_bag()
    assert "shop" in bag.dag_ids


def test_shop_dag_matches_its_manifest(dag_bag) -> None:
    """The models the DAG file selects, and only those, have tasks, wired in dbt's order."""
    dag = dag_bag().dags["shop"]
    # the same selection as the DAG file's RenderConfig (here: everything); with
    # RenderConfig(select=["tag:nightly"]) it would be assert_dag_matches_manifest(..., select=["tag:nightly"])
    assert_dag_matches_manifest(dag, SHOP_MANIFEST)


def test_shop_task_dry_run(dag_bag) -> None:
    """What one task would run on a worker: venv, dbt argv, environment and profile, nothing run."""
    dag = dag_bag().dags["shop"]
    task = next(t for t in sorted(dag.tasks, key=lambda t: t.task_id) if isinstance(t, DbtRunOperator))
    plan = plan_task(task, logical_date=pendulum.datetime(2024, 6, 1, tz="UTC"))
    assert plan.dbt_args[:2] == ("run", "--select")
    assert "dbt-core~=1.11.0" in plan.requirements
    assert "SHOP_DUCKDB_PATH" in plan.env_names
    assert "--profiles-dir" in plan.argv  # the profile file is copied into the task's workspace
    print(plan)  # readable: shown with pytest -s, or when the test fails


# -- a small project made in the test ------------------------------------------------------------------
def nightly_dag(manifest: Path) -> DbtDag:
    return DbtDag(
        dag_id="nightly",
        project_config=ProjectConfig(
            manifest_path=manifest,
            project_dir="/opt/dbt/shop",
            dbt_vars={"run_day": "{{ ds }}", "region": "{{ params.region }}"},
        ),
        profile_config=ProfileConfig(profile_name="shop", target_name="prod", conn_id="warehouse"),
        venv_config=VENV,
        render_config=RenderConfig(select=["tag:nightly"]),
        schedule="@daily",
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        params={"region": "eu"},
    )


@pytest.fixture
def shop_manifest(manifest_builder) -> Path:
    """A few nodes in a manifest.json written to tmp_path: no dbt project, no `dbt parse`."""
    return (
        manifest_builder("shop")
        .seed("raw_orders")
        .source("shop_raw", "payments", freshness=True)
        .model("stg_orders", refs=["raw_orders"], path="staging/stg_orders.sql")
        .model("stg_payments", sources=["shop_raw.payments"], path="staging/stg_payments.sql", materialized="ephemeral")
        .model("orders", refs=["stg_orders", "stg_payments"], tags=["nightly"], materialized="table")
        .model("revenue", refs=["orders"], tags=["nightly"])
        .model("customers", refs=["stg_orders"], tags=["hourly"])
        .test("not_null", on="orders", column="order_id")
        .test("relationships", on=["revenue", "customers"], column="customer_id")
        .write()
    )


@pytest.mark.no_dbt
def test_nightly_selection(shop_manifest: Path) -> None:
    """Building the DAG needs no dbt (the marker blocks `import dbt`), and it selects what it should."""
    assert_dag_matches_manifest(nightly_dag(shop_manifest), shop_manifest, select=["tag:nightly"])


def test_nightly_shape(shop_manifest: Path, golden) -> None:
    """Groups, tasks and edges as text, compared with golden/nightly.txt.

    After an intended change, run ``pytest --manifest-dag-update-golden`` and review the diff.
    """
    golden(dag_shape(nightly_dag(shop_manifest)), "nightly.txt")


def test_nightly_templating(shop_manifest: Path) -> None:
    """Templated vars render for a given logical date and run conf; the secret never shows."""
    connections = {"warehouse": {"conn_type": "postgres", "host": "db", "login": "dbt", "password": "pw-123",
                                 "schema": "analytics", "extra": {"schema": "marts"}}}
    plan = plan_task(
        nightly_dag(shop_manifest).task_dict["orders.run"],
        logical_date=pendulum.datetime(2024, 6, 1, tz="UTC"),
        params={"region": "us"},
        connections=connections,
    )
    assert plan.vars == {"run_day": "2024-06-01", "region": "us"}
    assert plan.argv[plan.argv.index("--vars") + 1] == '{"region":"us","run_day":"2024-06-01"}'
    assert plan.env["MANIFEST_DAG_WAREHOUSE_PASSWORD"] == "***"
    assert "pw-123" not in str(plan)


# -- the folder-grouped DAG (examples/dags/shop_folders.py) ----------------------------------------------
def test_shop_folders_dag(dag_bag) -> None:
    """TaskGroups nested as the project's folders; the UI names come from the DAG file's naming."""
    dag = dag_bag().dags["shop_folders"]
    groups = dag.task_group.get_task_group_dict()
    assert groups["marts.finance"].parent_group.group_id == "marts"
    assert groups["marts.finance"].label == "marts/finance"
    orders = dag.task_dict["marts.finance.fct_orders.run"]  # a model with tests: a group of its own
    assert orders.task_group.group_id == "marts.finance.fct_orders"
    seed = dag.task_dict["raw_orders_seed"]  # seeds/raw_orders.csv: at the top
    assert seed.task_display_name == "raw_orders (seed)"
    assert_dag_matches_manifest(dag, SHOP_MANIFEST)


# -- cosmos's Asset URIs (examples/dags/shop_assets.py) --------------------------------------------------
def test_shop_assets_dag_triggers_its_downstream_dag(dag_bag) -> None:
    """The dbt task's outlet is the very Asset the downstream DAG is scheduled on (cosmos's URI)."""
    bag = dag_bag()
    dbt_dag, report = bag.dags["shop_assets"], bag.dags["shop_revenue_report"]
    task = next(t for t in dbt_dag.tasks if t.task_id.startswith("fct_revenue_monthly"))
    (outlet,) = task.outlets
    assert outlet.uri.endswith("/shop.duckdb/shop/main/fct_revenue_monthly")
    assert outlet.uri.startswith("duckdb:")
    (scheduled_on,) = report.timetable.asset_condition.objects
    assert scheduled_on.uri == outlet.uri
    assert task.openlineage_namespace.startswith("duckdb://")  # its OpenLineage datasets' namespace


def test_shop_run_options_dags(dag_bag) -> None:
    """Per-run full refresh, the warnings callback, dbt's own environment, a macro task that may
    be skipped, and a DAG on the image's own dbt (examples/dags/shop_run_options.py)."""
    bag = dag_bag()
    dag = bag.dags["shop_run_options"]
    run = next(t for t in dag.tasks if isinstance(t, DbtRunOperator))
    assert run.full_refresh == "{{ params.full_refresh }}" and "full_refresh" in run.template_fields
    assert run.on_warning_callback is not None and run.append_env is False
    macro = dag.get_task("currency_check")
    assert macro.macro_name == "shop_currency" and macro.skip_exit_code == 1
    plan = plan_task(run, logical_date=pendulum.datetime(2024, 6, 1, tz="UTC"), params={"full_refresh": True})
    assert "--full-refresh" in plan.dbt_args  # the run's conf decides
    own = bag.dags["shop_own_dbt"]
    assert {str(t.venv_config.existing_venv) for t in own.tasks} == {"/opt/dbt-venv"}
