"""The documentation site builds without a warning, and the example DAGs it shows load and are right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from manifest_dag.testing import assert_dag_matches_manifest, load_dag_bag
from tests.conftest import FIXTURES, REPO

SHOP = FIXTURES / "manifests" / "shop" / "manifest.json"


def test_docs_build_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: broken links and anchors, pages outside the nav, and config fields
    documented nowhere (see docs/_hooks.py) all fail it."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    for page in ("reference/cli", "reference/config-objects", "reference/examples", "migrating-from-cosmos"):
        assert (site / page / "index.html").is_file(), page
    cli_page = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("manifest-dag inspect", "manifest-dag graph", "manifest-dag check", "manifest-dag venv build", "manifest-dag venv prune",
                    "manifest-dag prepare", "manifest-dag prestart"):
        assert command in cli_page
    config_page = (site / "reference" / "config-objects" / "index.html").read_text()
    for field in ("manifest_path", "py_requirements", "test_behavior", "profiles_yml_path"):
        assert f"<code>{field}</code>" in config_page


@pytest.fixture(scope="module")
def example_bag(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MANIFEST_DAG_DEMO_DIR", str(tmp_path_factory.mktemp("demo")))
    try:
        yield load_dag_bag(REPO / "examples" / "dags")  # fails on any import error or dbt import
    finally:
        mp.undo()


def test_examples_are_all_there(example_bag) -> None:
    assert {"shop", "shop_in_pipeline", "shop_nightly_finance", "shop_node_settings", "shop_converters",
            "shop_run_options", "shop_own_dbt"} <= set(
        example_bag.dag_ids
    )


def test_example_dbt_dag(example_bag) -> None:
    assert_dag_matches_manifest(example_bag.dags["shop"], SHOP)


def test_example_task_group_between_two_tasks(example_bag) -> None:
    dag = example_bag.dags["shop_in_pipeline"]
    assert_dag_matches_manifest(dag, SHOP, exclude=["source:*"], group_id="dbt")
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert dbt_tasks and len(dbt_tasks) == len(dag.tasks) - 2
    roots = {t.task_id for t in dbt_tasks if not t.upstream_task_ids & {d.task_id for d in dbt_tasks}}
    leaves = {t.task_id for t in dbt_tasks if not t.downstream_task_ids & {d.task_id for d in dbt_tasks}}
    assert dag.task_dict["extract"].downstream_task_ids == roots
    assert dag.task_dict["publish"].upstream_task_ids == leaves == {"dbt.dbt_test"}


def test_example_selector_dag(example_bag) -> None:
    dag = example_bag.dags["shop_nightly_finance"]
    assert_dag_matches_manifest(dag, SHOP, selector="nightly_finance")
    assert {t.task_id for t in dag.tasks} >= {"fct_orders_build", "fct_revenue_monthly_build"}
    assert all(t.dbt_command in ("build", "test") for t in dag.tasks)


def test_example_node_settings_dag(example_bag) -> None:
    """Owners from the shop's model meta, the DAG's defaults elsewhere, tests without retries."""
    from datetime import timedelta

    dag = example_bag.dags["shop_node_settings"]
    assert_dag_matches_manifest(dag, SHOP, select=["+fct_orders"])
    plan = dag.dbt_plan
    runs = {spec.node_ids[0]: dag.task_dict[spec.task_id] for spec in plan.tasks if spec.command == "run"}
    assert runs["model.shop.fct_orders"].owner == "finance-team"  # meta.owner
    assert runs["model.shop.stg_orders"].owner == "data-platform"  # default_args
    tests = [dag.task_dict[spec.task_id] for spec in plan.tasks if spec.command == "test"]
    assert tests and all(t.retries == 0 and t.execution_timeout == timedelta(minutes=15) for t in tests)
    assert all(t.retries == 2 for t in runs.values())


def test_example_converters_dag(example_bag) -> None:
    """The shop's two exposures become tasks after the models they read; seeds may skip themselves."""
    from airflow.providers.standard.operators.python import PythonOperator

    from manifest_dag import DbtSeedOperator

    dag = example_bag.dags["shop_converters"]
    exposures = [spec for spec in dag.dbt_plan.tasks if spec.kind == "exposure"]
    assert {spec.node_ids[0] for spec in exposures} == {
        "exposure.shop.weekly_finance_dashboard",
        "exposure.shop.customer_newsletter",
    }
    runs = {spec.node_ids[0]: spec for spec in dag.dbt_plan.tasks if spec.command in ("run", "test")}
    for spec in exposures:
        task = dag.task_dict[spec.task_id]
        assert isinstance(task, PythonOperator) and task.upstream_task_ids == set(spec.upstream)
        assert spec.upstream and all(up in dag.task_dict for up in spec.upstream)
        assert task.op_args[0] == spec.node.name
    assert runs  # the dbt tasks are there as usual
    seeds = [t for t in dag.tasks if isinstance(t, DbtSeedOperator)]
    assert len(seeds) == 6 and all(t.skip_unchanged and t.seed_files[0].endswith(".csv") for t in seeds)
    after_seeds = {d for t in seeds for d in t.downstream_task_ids}
    assert after_seeds and all(dag.task_dict[d].trigger_rule == "none_failed" for d in after_seeds)
