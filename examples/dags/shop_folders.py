"""The shop dbt project with TaskGroups nested as its folders, and names for the UI.

``RenderConfig(folder_groups=True)`` puts each model, seed and snapshot in the TaskGroup of its
folder (``marts`` → ``marts.finance``); a model with tests of its own is a group of its own inside
(``run``, then ``test``), one without is a plain ``<model>_run`` task. ``ShopNaming`` keeps the ids
and gives the UI readable names (Airflow 3's ``task_display_name`` and ``group_display_name``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum

from manifest_dag import DbtDag, DbtNaming, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))


class ShopNaming(DbtNaming):
    """Ids as by default; the UI shows ``orders (run)`` and folders as paths (``marts/finance``)."""

    def task_display_name(self, node, command, in_group):
        return None if in_group else f"{node.label} ({command})"

    def folder_display_name(self, folders):
        return "/".join(folders)


dag = DbtDag(
    dag_id="shop_folders",
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
    render_config=RenderConfig(folder_groups=True, naming=ShopNaming()),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["dbt", "example"],
)
