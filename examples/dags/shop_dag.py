"""The demo shop dbt project as an Airflow DAG, built by manifest-dag (`make demo` runs it).

The scheduler needs only the manifest; the workers need the dbt project folder. dbt itself is
installed by manifest-dag into a cached worker virtualenv from `py_requirements`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum

from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))

dag = DbtDag(
    dag_id="shop",
    project_config=ProjectConfig(
        manifest_path=REPO / "fixtures" / "manifests" / "shop" / "manifest.json",
        project_dir=PROJECT,
        # the shop's profile reads its DuckDB file from this variable
        env_vars={"SHOP_DUCKDB_PATH": str(STATE / "shop.duckdb")},
        install_deps=True,  # the project uses a local dbt package: `dbt deps` once per worker
    ),
    profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=PROJECT / "profiles.yml"),
    venv_config=VenvConfig(
        py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
        cache_dir=os.environ.get("MANIFEST_DAG_VENV_CACHE") or STATE / "venvs",
    ),
    render_config=RenderConfig(),  # everything: seeds, snapshot, models with their tests
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    tags=["dbt", "demo"],
)
