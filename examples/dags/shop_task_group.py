"""The shop dbt project as a ``DbtTaskGroup`` between two plain tasks of your own DAG.

``extract`` stands for whatever loads the raw data; ``publish`` for whatever reads the marts.
Every dbt task waits for ``extract``, and ``publish`` waits for every dbt task. Tests run once, at
the end of the group (``after_all``), in a single ``dbt test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from manifest_dag import DbtTaskGroup, ProfileConfig, ProjectConfig, RenderConfig, TestBehavior, VenvConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))

with DAG(
    dag_id="shop_in_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    tags=["dbt", "example"],
) as dag:
    extract = EmptyOperator(task_id="extract")
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            manifest_path=REPO / "fixtures" / "manifests" / "shop" / "manifest.json",
            project_dir=PROJECT,
            env_vars={"SHOP_DUCKDB_PATH": str(STATE / "shop.duckdb")},
            install_deps=True,
        ),
        profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=PROJECT / "profiles.yml"),
        venv_config=VenvConfig(
            py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
            cache_dir=os.environ.get("MANIFEST_DAG_VENV_CACHE") or STATE / "venvs",
        ),
        render_config=RenderConfig(exclude=["source:*"], test_behavior=TestBehavior.AFTER_ALL),
    )
    publish = EmptyOperator(task_id="publish")

    extract >> dbt >> publish
