"""Part of the shop dbt project, chosen by a YAML selector stored in the manifest.

``nightly_finance`` is defined in ``fixtures/shop/selectors.yml`` (models tagged ``nightly`` under
``models/marts/finance``); ``dbt parse`` writes it into the manifest, so the scheduler needs no
YAML file. Models outside the selection get no task, but the order they imply is kept. Each node
runs as one ``dbt build`` (the node, then its tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum

from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, TestBehavior, VenvConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))

dag = DbtDag(
    dag_id="shop_nightly_finance",
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
    render_config=RenderConfig(selector="nightly_finance", test_behavior=TestBehavior.BUILD),
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["dbt", "example"],
)
