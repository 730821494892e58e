"""``DbtNaming``: safe Airflow ids from dbt nodes, and one overridable place that decides them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from manifest_dag import DbtDag, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.core.naming import MAX_ID, DbtNaming, sanitize
from manifest_dag.scheduler.manifest import Manifest
from manifest_dag.testing import ManifestBuilder

VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("orders", "orders"),
        ("stg-orders_v2", "stg-orders_v2"),
        ("my model.sql", "my_model_sql"),
        ("a..b//c", "a_b_c"),
        ("__x__", "x"),
        ("über", "ber"),
        ("", "node"),
        ("...", "node"),
    ],
)
def test_sanitize_keeps_what_airflow_allows(raw: str, safe: str) -> None:
    assert sanitize(raw) == safe


def test_sanitize_shortens_long_ids_with_a_hash() -> None:
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    short_a, short_b = sanitize(long_a), sanitize(long_b)
    assert len(short_a) == len(short_b) == MAX_ID
    assert short_a != short_b  # same prefix, different ids
    assert short_a.endswith("_" + hashlib.sha1(long_a.encode()).hexdigest()[:10])
    assert sanitize("x" * MAX_ID) == "x" * MAX_ID  # exactly at the limit: untouched
    assert len(sanitize("x" * (MAX_ID + 1))) == MAX_ID


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return (
        ManifestBuilder("shop", database="wh", schema="analytics")
        .source("raw", "orders")
        .model("orders", sources=["raw.orders"], description="  One row per order.  ")
        .model("dim", versions=[1, 2])
        .model("plain", description="")
        .test("relationships", on=["orders", "plain"], column="x")
        .load(tmp_path_factory.mktemp("shop"))
    )


def test_names_of_each_kind_of_node(shop: Manifest) -> None:
    naming = DbtNaming()
    source, orders = shop.nodes["source.shop.raw.orders"], shop.nodes["model.shop.orders"]
    assert naming.base_name(source) == "raw_orders"
    assert naming.base_name(orders) == naming.group_id(orders) == "orders"
    assert naming.base_name(shop.nodes["model.shop.dim.v2"]) == "dim_v2"
    assert naming.qualified_name(orders) == "shop__orders"
    assert naming.dbt_selector(source) == "source:shop.raw.orders"
    assert naming.dbt_selector(orders) == "shop.orders"


def test_task_ids_in_and_out_of_groups() -> None:
    naming = DbtNaming()
    assert naming.task_id("orders", "run", True) == "run"
    assert naming.task_id("orders", "test", True) == "test"
    assert naming.task_id("raw", "seed", False) == "raw_seed"
    assert naming.task_id("raw_orders", "source freshness", False) == "raw_orders_freshness"
    assert naming.task_id("orders", "build", False) == "orders_build"


def test_tests_task_ids(shop: Manifest) -> None:
    naming = DbtNaming()
    test = next(n for n in shop.nodes.values() if n.resource_type == "test")
    parents = [shop.nodes["model.shop.orders"], shop.nodes["model.shop.plain"]]
    assert naming.tests_task_id(parents, [test]) == sanitize(f"test_{test.name}")
    assert naming.tests_task_id(parents, [test, test]) == "test_orders__plain"
    assert naming.tests_task_id([], [test, test]) == "tests"


def test_docs_and_asset_uris(shop: Manifest) -> None:
    naming = DbtNaming()
    orders, plain = shop.nodes["model.shop.orders"], shop.nodes["model.shop.plain"]
    doc = naming.doc_md(orders)
    assert doc.startswith("One row per order.\n\n**dbt model** `model.shop.orders`")
    assert naming.doc_md(plain).startswith("**dbt model** `model.shop.plain`")
    assert naming.asset_uri(orders, "DuckDB") == "duckdb://wh/analytics/orders"
    assert naming.asset_uri(orders, None) is None


class Upper(DbtNaming):
    """Names in capitals, seeds as ``load_<NAME>``, tasks in a group as ``dbt_<command>``."""

    def group_id(self, node):
        return super().group_id(node).upper()

    def task_id(self, name: str, command: str, in_group: bool) -> str:
        if in_group:
            return f"dbt_{command}"
        return f"load_{name}" if command == "seed" else super().task_id(name, command, in_group)


def test_an_overridden_naming_names_the_dags_tasks(tmp_path: Path) -> None:
    manifest = (
        ManifestBuilder("shop")
        .seed("raw")
        .model("stg", refs=["raw"])
        .model("orders", refs=["stg"])
        .test("not_null", on="orders", column="id")
        .write(tmp_path)
    )
    dag = DbtDag(
        dag_id="named",
        schedule=None,
        project_config=ProjectConfig(manifest_path=manifest, plan_cache_dir=False),
        venv_config=VENV,
        render_config=RenderConfig(naming=Upper()),
    )
    # a node's name is its group_id (seeds too: the planner names every rendered node so)
    assert set(dag.task_dict) == {"load_RAW", "STG_run", "ORDERS.dbt_run", "ORDERS.dbt_test"}
    assert dag.task_dict["STG_run"].upstream_task_ids == {"load_RAW"}
    assert dag.task_dict["ORDERS.dbt_run"].upstream_task_ids == {"STG_run"}
    assert dag.task_dict["ORDERS.dbt_test"].upstream_task_ids == {"ORDERS.dbt_run"}
    assert dag.task_dict["ORDERS.dbt_run"].dbt_args() == ["run", "--select", "shop.orders"]


def test_fit_id_keeps_short_ids_and_shortens_long_ones_deterministically() -> None:
    from manifest_dag.core.naming import fit_id

    assert fit_id("orders", 20) == "orders"
    a, b = fit_id("x" * 300 + "a", 129), fit_id("x" * 300 + "b", 129)
    assert len(a) == len(b) == 129 and a != b
    assert fit_id("x" * 300 + "a", 129) == a
    with pytest.raises(ValueError, match="no room"):
        fit_id("x" * 30, 5)
