"""The shop project with converters: exposures as tasks of their own, seeds loaded only when changed.

``RenderConfig(node_converters=...)`` maps a resource type (or one node's unique id) to a
function ``(node, default) -> task | TaskGroup | None``. Here each dbt exposure (the shop has two
dashboards) gets a task after the models it reads, which would refresh the dashboard; exposures
have no task otherwise. ``skip_unchanged_seeds=True`` makes each seed task skip itself when its
CSV is as at its last successful load; the tasks after it still run. See docs/how-to/converters.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator

from manifest_dag import DbtDag, DbtNodeView, DefaultTask, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))


def refresh_dashboard(name: str, audience: str) -> None:
    """Stands for a call to the BI tool's API."""
    logging.getLogger(__name__).info("refreshing dashboard %s for %s", name, audience)


def exposure_task(node: DbtNodeView, default: DefaultTask) -> PythonOperator:
    """A dbt exposure as a task: its id, group, docs and the node's meta settings come with
    ``default.airflow_kwargs``; what it reads comes from the node (read-only)."""
    return PythonOperator(
        python_callable=refresh_dashboard,
        op_args=[node.name, node.meta.get("audience", "everyone")],
        **default.airflow_kwargs,
    )


dag = DbtDag(
    dag_id="shop_converters",
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
    render_config=RenderConfig(
        node_converters={"exposure": exposure_task},
        skip_unchanged_seeds=True,
    ),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    tags=["dbt", "example"],
)
