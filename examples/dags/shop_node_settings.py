"""Per-model Airflow settings that live in the dbt project, next to the models (manifest-dag).

A model's ``meta`` sets its task's arguments; the DAG file only holds what a manifest cannot:
code (callbacks, by name) and the defaults. In the dbt project::

    models:
      - name: fct_orders
        config:
          meta:
            owner: finance-team               # the task's owner
            manifest_dag:
              pool: warehouse_heavy
              retries: 3
              retry_delay: 5m
              execution_timeout: 1h
              on_failure_callback: page_finance   # a name from RenderConfig.callbacks
            # cosmos's form is read too: cosmos: {operator_kwargs: {pool: ..., retries: ...}}

The shop's marts set ``meta.owner``; every test task here runs once (no retries), whatever
the model it tests sets. See docs/how-to/node-settings.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pendulum

from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))


def page_finance(context: Any) -> None:
    """What a model naming ``on_failure_callback: page_finance`` in its meta calls."""
    logging.getLogger(__name__).error("dbt task %s failed: paging finance", context["ti"].task_id)


dag = DbtDag(
    dag_id="shop_node_settings",
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
        select=["+fct_orders"],
        # every test task: no retries, and a short leash (a test's own meta may still say otherwise)
        test_task_args={"retries": 0, "execution_timeout": "15m"},
        # the callbacks a model's meta may name
        callbacks={"page_finance": page_finance},
    ),
    default_args={"retries": 2, "owner": "data-platform"},  # what a model's meta does not set
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    tags=["dbt", "example"],
)
