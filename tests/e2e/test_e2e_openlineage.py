"""Assets a migrated project's downstream DAGs keep using, and OpenLineage lineage, for real.

A small DuckDB project runs as a ``DbtDag`` through ``dag.test()`` (real Airflow 3, real dbt 1.11)
with ``RenderConfig(emit_assets=True, asset_uri_style="openlineage", asset_namespace=...)`` and
Airflow's OpenLineage provider writing its events with the real client's file transport
(``AIRFLOW__OPENLINEAGE__TRANSPORT``). A second DAG in the folder is scheduled on the Asset URI
cosmos writes for the final model (``duckdb://<file>/<database>/<schema>/<table>``): the run must
queue it, and each task's COMPLETE event must name what dbt read and wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_e2e_build_parity import dbt, write_project
from tests.support.airflow_run import VENV_REQUIREMENTS, airflow_env, migrate

pytestmark = pytest.mark.e2e

FILES = {
    "seeds/raw_orders.csv": "id,amount\n1,5\n2,7\n3,9\n",
    "models/stg_orders.sql": "select id, amount from {{ ref('raw_orders') }}\n",
    "models/big_orders.sql": "{{ config(materialized='ephemeral') }}\nselect * from {{ ref('stg_orders') }} where amount > 6\n",
    "models/orders.sql": "{{ config(materialized='table') }}\nselect * from {{ ref('big_orders') }}\n",
    "models/schema.yml": (
        "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: id\n        data_tests: [not_null]\n"
    ),
}

PRODUCER = '''
"""Airflow DAG: the producer, a DbtDag with cosmos-compatible Asset URIs."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="lineage",
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r},
                                 env_vars={{"E2E_DB": {db!r}}}, plan_cache_dir={plans!r}),
    profile_config=ProfileConfig(profile_name="lineage", profiles_yml_path={profiles!r}),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(emit_assets=True, asset_uri_style="openlineage", asset_namespace={namespace!r}),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''

CONSUMER = '''
"""Airflow DAG: downstream of the dbt project, scheduled on the Asset URI cosmos wrote for orders."""
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset
with DAG("consumer", schedule=[Asset({uri!r})], start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EmptyOperator(task_id="report")
'''

CHILD = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
from airflow.utils.session import create_session
folder, out = sys.argv[1:3]
bag = DagBag(folder)
assert not bag.import_errors, bag.import_errors
run = bag.get_dag("lineage").test()  # Airflow 3.3 syncs the folder's DAGs first: the consumer's schedule is known
with create_session() as session:
    events = [(e.asset.uri, e.source_task_id) for e in session.query(AssetEvent).all()]
    queued = [(q.target_dag_id, session.get(AssetModel, q.asset_id).uri) for q in session.query(AssetDagRunQueue).all()]
tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
json.dump({"state": str(run.state), "tasks": tasks, "events": events, "queued": queued}, open(out, "w"))
"""


def test_assets_trigger_the_downstream_dag_and_tasks_report_lineage(tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = write_project(tmp_path / "lineage", "lineage", FILES)
    db = tmp_path / "lineage.duckdb"
    done = dbt(project, db, "parse")  # the same file as the run: dbt-duckdb names the database after it
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = project / "target" / "manifest.json"
    namespace = f"duckdb://{db}"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "lineage_dag.py").write_text(
        PRODUCER.format(
            manifest=str(manifest),
            project=str(project),
            db=str(db),
            plans=str(tmp_path / "plans"),
            profiles=str(project / "profiles.yml"),
            reqs=VENV_REQUIREMENTS,
            namespace=namespace,
        )
    )
    orders_uri = f"duckdb://{db}/lineage/main/orders"  # what cosmos emits on Airflow 3 for this model
    (dags / "consumer_dag.py").write_text(CONSUMER.format(uri=orders_uri))
    events_file = tmp_path / "openlineage.jsonl"
    transport = json.dumps({"type": "file", "log_file_path": str(events_file), "append": True})
    out = tmp_path / "result.json"
    log = tmp_path / "dag_test.log"
    with log.open("w") as fh:
        subprocess.run(
            [sys.executable, "-c", CHILD, str(dags), str(out)],
            env=airflow_env(
                home,
                dags,
                AIRFLOW__OPENLINEAGE__TRANSPORT=transport,
                AIRFLOW__OPENLINEAGE__NAMESPACE="e2e",
                AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",  # a paused DAG is not queued
            ),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1200,
        )
    assert out.exists(), log.read_text()[-4000:]
    result = json.loads(out.read_text())
    assert result["state"] == "success" and set(result["tasks"].values()) == {"success"}, (
        result,
        log.read_text()[-4000:],
    )
    assert set(result["tasks"]) == {"raw_orders_seed", "stg_orders_run", "orders.run", "orders.test"}

    # the Asset events carry cosmos's URIs (Airflow normalises duckdb:///x to duckdb:/x on both sides)
    from airflow.sdk import Asset

    events = {uri: task for uri, task in result["events"]}
    expected = {
        Asset(f"duckdb://{db}/lineage/main/{table}").uri: task
        for table, task in (("raw_orders", "raw_orders_seed"), ("stg_orders", "stg_orders_run"), ("orders", "orders.run"))
    }
    assert events == expected, result["events"]
    # ... and the DAG scheduled on the orders table is queued to run
    assert result["queued"] == [["consumer", Asset(orders_uri).uri]], result["queued"]

    # OpenLineage: each task's COMPLETE event names what dbt read and wrote
    complete = {}
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].startswith("lineage."):
            complete[event["job"]["name"].split(".", 1)[1]] = event

    def names(event: dict, side: str) -> set[tuple[str, str]]:
        return {(d["namespace"], d["name"]) for d in event.get(side, [])}

    assert set(complete) >= set(result["tasks"]), sorted(complete)
    assert names(complete["raw_orders_seed"], "outputs") == {(namespace, "lineage.main.raw_orders")}
    assert names(complete["raw_orders_seed"], "inputs") == set()
    assert names(complete["stg_orders_run"], "inputs") == {(namespace, "lineage.main.raw_orders")}
    assert names(complete["stg_orders_run"], "outputs") == {(namespace, "lineage.main.stg_orders")}
    # through the ephemeral model to the table it reads
    assert names(complete["orders.run"], "inputs") == {(namespace, "lineage.main.stg_orders")}
    assert names(complete["orders.run"], "outputs") == {(namespace, "lineage.main.orders")}
    # the rows dbt's adapter reported: dbt-duckdb counts a seed's rows, not a table model's
    assert complete["raw_orders_seed"]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert "outputStatistics" not in complete["orders.run"]["outputs"][0].get("outputFacets", {})
    assert names(complete["orders.test"], "inputs") == {(namespace, "lineage.main.orders")}
    assert names(complete["orders.test"], "outputs") == set()
