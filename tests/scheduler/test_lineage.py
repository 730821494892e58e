"""Asset URIs downstream DAGs of a cosmos project keep using, and each task's OpenLineage datasets."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from manifest_dag import AssetUriStyle, DbtDag, DbtRunOperator, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.core.errors import ConfigError
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.lineage import openlineage_facets, relation_name, task_datasets
from manifest_dag.scheduler.plan import RenderPlan, plan_tasks
from manifest_dag.scheduler.plan_cache import render_key
from manifest_dag.testing import ManifestBuilder

VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
NS = "postgres://db.example.com:5432"


def project(adapter: str = "postgres") -> ManifestBuilder:
    return (
        ManifestBuilder("shop", adapter_type=adapter, database="analytics", schema="public")
        .seed("raw_orders")
        .source("crm", "customers", identifier="CUSTOMERS_V2")
        .model("stg_orders", refs=["raw_orders"], materialized="ephemeral")
        .model("orders", refs=["stg_orders"], sources=["crm.customers"], materialized="table", alias="fct_orders")
        .model("revenue", refs=["orders"])
        .snapshot("orders_snapshot", refs=["orders"])
        .test("not_null", on="orders", column="id")
        .test("relationships", on=["revenue", "orders"], column="order_id")
    )


def plan(tmp_path: Path, builder: ManifestBuilder | None = None, **render: Any) -> RenderPlan:
    manifest = (builder or project()).load(tmp_path)
    return plan_tasks(DbtGraph(manifest), set(manifest.nodes), RenderConfig(**render))


# -- Asset URIs ------------------------------------------------------------------------------------------
def test_openlineage_style_asset_uris_are_cosmos_uris(tmp_path: Path) -> None:
    p = plan(tmp_path, emit_assets=True, asset_uri_style="openlineage", asset_namespace=NS)
    outlets = {t.task_id: t.outlet_uri for t in p.tasks}
    assert outlets["raw_orders_seed"] == f"{NS}/analytics/public/raw_orders"
    assert outlets["orders.run"] == f"{NS}/analytics/public/fct_orders"  # the alias is the table
    assert outlets["revenue_run"] == f"{NS}/analytics/public/revenue"
    assert outlets["orders_snapshot_snapshot"] == f"{NS}/analytics/public/orders_snapshot"
    assert outlets["orders.test"] is None  # tests write nothing
    # the default style is unchanged: <adapter>://<database>/<schema>/<alias>
    p = plan(tmp_path / "default", emit_assets=True)
    assert p.task("orders.run").outlet_uri == "postgres://analytics/public/fct_orders"
    keys = {render_key(RenderConfig(asset_uri_style=s, asset_namespace=n)) for s, n in
            (("manifest_dag", None), ("openlineage", NS), ("openlineage", "postgres://other:5432"))}
    assert len(keys) == 3  # both options shape the plan: other cache entries


def test_openlineage_style_without_a_namespace_names_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        plan(tmp_path, emit_assets=True, asset_uri_style="openlineage")
    message = str(err.value)
    assert "RenderConfig.asset_namespace" in message and "postgres://<host>:<port>" in message
    assert "openlineage_namespace" in message
    # BigQuery's namespace needs no connection details
    p = plan(tmp_path / "bq", project("bigquery"), emit_assets=True, asset_uri_style=AssetUriStyle.OPENLINEAGE)
    assert p.task("revenue_run").outlet_uri == "bigquery/analytics/public/revenue"
    # without emit_assets the style asks for nothing
    plan(tmp_path / "off", asset_uri_style="openlineage")


def test_render_config_checks_the_options() -> None:
    with pytest.raises(ConfigError, match="RenderConfig.asset_uri_style: must be one of 'manifest_dag', 'openlineage'"):
        RenderConfig(asset_uri_style="cosmos")
    with pytest.raises(ConfigError, match="RenderConfig.asset_namespace"):
        RenderConfig(asset_namespace="postgres://db 5432")
    assert RenderConfig(asset_namespace="duckdb:///x.duckdb/").asset_namespace == "duckdb:///x.duckdb"


def test_the_dag_gives_operators_the_namespace_and_assets(tmp_path: Path) -> None:
    path = project().write(tmp_path)
    dag = DbtDag(
        dag_id="assets",
        project_config=ProjectConfig(manifest_path=path, project_dir="/srv/dbt", plan_cache_dir=False),
        venv_config=VENV,
        render_config=RenderConfig(emit_assets=True, asset_uri_style="openlineage", asset_namespace=NS),
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    )
    orders = dag.task_dict["orders.run"]
    assert [o.uri for o in orders.outlets] == [f"{NS}/analytics/public/fct_orders"]
    assert orders.openlineage_namespace == NS and dag.task_dict["orders.test"].openlineage_namespace == NS
    with pytest.raises(ConfigError, match=r"operator_args may not set \['openlineage_namespace'\]"):
        DbtDag(
            dag_id="refused",
            project_config=ProjectConfig(manifest_path=path, project_dir="/srv/dbt", plan_cache_dir=False),
            venv_config=VENV,
            operator_args={"openlineage_namespace": NS},
            schedule=None,
        )


# -- what a task read and wrote --------------------------------------------------------------------------
def test_task_datasets_from_the_manifest_and_the_results(tmp_path: Path) -> None:
    manifest = project().load(tmp_path)
    uid = {n.name: n.unique_id for n in manifest.nodes.values()}
    orders = manifest.nodes[uid["orders"]]
    assert relation_name(orders) == "analytics.public.fct_orders"
    assert relation_name(manifest.nodes[uid["stg_orders"]]) is None  # ephemeral: no table
    assert relation_name(manifest.nodes["source.shop.crm.customers"]) == "analytics.crm.CUSTOMERS_V2"

    # a model: through its ephemeral parent to the seed, and its source
    found = task_datasets(manifest, [(uid["orders"], "success", 42)])
    assert found.outputs == ("analytics.public.fct_orders",)
    assert set(found.inputs) == {"analytics.public.raw_orders", "analytics.crm.CUSTOMERS_V2"}
    assert found.rows == {"analytics.public.fct_orders": 42}
    # a failed model wrote nothing, but read what it read
    failed = task_datasets(manifest, [(uid["orders"], "error", None)])
    assert failed.outputs == () and failed.inputs
    # tests read what they test; a test of two models reads both
    tests = [u for u in manifest.nodes if u.startswith("test.")]
    found = task_datasets(manifest, [(t, "pass", None) for t in tests])
    assert set(found.inputs) == {"analytics.public.fct_orders", "analytics.public.revenue"}
    assert found.outputs == ()
    # dbt build of a model and its test: the model's own table is an output, not an input
    not_null = next(t for t in tests if "not_null" in t)
    found = task_datasets(manifest, [(uid["revenue"], "success", None), (not_null, "pass", None)])
    assert found.outputs == ("analytics.public.revenue",) and found.inputs == ("analytics.public.fct_orders",)
    # a seed reads nothing; unknown nodes are ignored
    found = task_datasets(manifest, [(uid["raw_orders"], "success", 3), ("model.gone.x", "success", 1)])
    assert (found.inputs, found.outputs) == ((), ("analytics.public.raw_orders",))


def test_openlineage_facets_are_the_providers_classes(tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    path = project().write(tmp_path)
    uid = "model.shop.orders"
    lineage = openlineage_facets(path, NS, [(uid, "success", 42)], where="t")
    assert type(lineage).__name__ == "OperatorLineage"
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(NS, "analytics.public.fct_orders")]
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == 42
    assert lineage.outputs[0].facets["dataSource"].uri == NS
    assert {d.name for d in lineage.inputs} == {"analytics.public.raw_orders", "analytics.crm.CUSTOMERS_V2"}
    # nothing to say without a namespace, a manifest or results; a broken manifest is no task failure
    assert openlineage_facets(path, None, [(uid, "success", 1)], where="t") is None
    assert openlineage_facets(None, NS, [(uid, "success", 1)], where="t") is None
    assert openlineage_facets(path, NS, [], where="t") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert openlineage_facets(broken, NS, [(uid, "success", 1)], where="t") is None


def test_the_operator_reports_what_dbt_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker side is replaced here; the namespace is the DAG's, else the run's dbt target's."""
    pytest.importorskip("airflow.providers.openlineage")
    import manifest_dag.worker.run as worker_run

    path = project().write(tmp_path)
    results = [SimpleNamespace(unique_id="model.shop.revenue", status="success", adapter_response={"rows_affected": 7})]
    summary = SimpleNamespace(results=results, counts=lambda: {"success": 1}, node_seconds=0.1, warned=lambda: [],
                              compiled_sql=lambda: "")
    target = {"type": "postgres", "host": "runtime-db", "port": 5433}

    def fake_run_dbt(inv, *, log, artifacts_callback, on_invoker, on_results, **hooks):
        on_results(summary)
        return SimpleNamespace(summary=summary, exit_code=0, duration=0.5, reparsed=None, target_fields=target)

    monkeypatch.setattr(worker_run, "run_dbt", fake_run_dbt)

    def run(**kwargs: Any) -> Any:
        op = DbtRunOperator(task_id="revenue", project_dir="/srv/dbt", select=["revenue"], manifest_path=str(path),
                            py_requirements=["dbt-core"], **kwargs)
        assert op.get_openlineage_facets_on_complete(None) is None  # before the run: nothing
        op.execute({})
        return op.get_openlineage_facets_on_complete(None)

    given = run(openlineage_namespace=NS)
    assert [(d.namespace, d.name) for d in given.outputs] == [(NS, "analytics.public.revenue")]
    assert [d.name for d in given.inputs] == ["analytics.public.fct_orders"]
    derived = run()  # no namespace given: the one OpenLineage gives the target dbt ran on
    assert {d.namespace for d in (*derived.inputs, *derived.outputs)} == {"postgres://runtime-db:5433"}
