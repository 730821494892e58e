"""The shop dbt project with the Asset URIs cosmos emits, and a DAG scheduled on one of them.

``RenderConfig(asset_uri_style="openlineage")`` names each model's, seed's and snapshot's Asset
after OpenLineage's dataset naming, as cosmos does on Airflow 3:
``duckdb://<database file>/<database>/<schema>/<table>`` here (``postgres://<host>:<port>/...`` on
Postgres). A DAG that a cosmos project's runs used to trigger keeps its ``schedule`` as it was:
``shop_revenue_report`` below runs when ``fct_revenue_monthly`` is rebuilt. The namespace (the
warehouse: here the DuckDB file) is given in the DAG, as the scheduler reads no dbt profile.
With Airflow's OpenLineage provider installed and configured, each task's events also name the
tables dbt read and wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig, openlineage_namespace

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))
DATABASE = STATE / "shop.duckdb"
#: the namespace OpenLineage (and so cosmos) gives this dbt target: duckdb://<path of the file>
NAMESPACE = openlineage_namespace({"type": "duckdb", "path": str(DATABASE)})

dag = DbtDag(
    dag_id="shop_assets",
    project_config=ProjectConfig(
        manifest_path=REPO / "fixtures" / "manifests" / "shop" / "manifest.json",
        project_dir=PROJECT,
        env_vars={"SHOP_DUCKDB_PATH": str(DATABASE)},
        install_deps=True,
    ),
    profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=PROJECT / "profiles.yml"),
    venv_config=VenvConfig(
        py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
        cache_dir=os.environ.get("MANIFEST_DAG_VENV_CACHE") or STATE / "venvs",
    ),
    render_config=RenderConfig(emit_assets=True, asset_uri_style="openlineage", asset_namespace=NAMESPACE),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["dbt", "example"],
)

# downstream of the dbt project, as it was under cosmos: <namespace>/<database>/<schema>/<table>
with DAG(
    dag_id="shop_revenue_report",
    schedule=[Asset(f"{NAMESPACE}/shop/main/fct_revenue_monthly")],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example"],
) as report:
    EmptyOperator(task_id="send_report")
