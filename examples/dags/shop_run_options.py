"""What a run can decide, and what a task does with dbt's answer (manifest-dag, issue 21).

- ``full_refresh`` is a template: trigger with the conf ``{"full_refresh": true}`` and every run,
  build and seed task rebuilds its incremental models and tables; the default run does not.
- ``on_warning_callback``: tests with ``severity: warn`` that found rows (and stale sources) are
  handed to a callable, and listed in the task's XCom summary, while the task succeeds.
- ``skip_exit_code=1``: the nightly clean-up macro may fail on a fresh warehouse without failing
  the run; its task is skipped instead.
- ``append_env=False``: dbt gets only what it needs of the worker's environment (PATH, HOME,
  locale, TMPDIR, certificates), plus what the DAG gives it.
- ``DbtRunOperationOperator``: one macro as a task, ``dbt run-operation <macro> --args <json>``.

A second DAG in this file runs the same project on a dbt that the worker image already holds
(``VenvConfig(existing_venv=...)``): manifest-dag builds no venv and never writes into that one.
See docs/configuration.md (per-run settings, warnings, dbt's environment, run-operation) and
"Bringing your own dbt".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pendulum

from manifest_dag import (
    DbtDag,
    DbtRunOperationOperator,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    VenvConfig,
)

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "shop"
STATE = Path(os.environ.get("MANIFEST_DAG_DEMO_DIR", REPO / ".demo"))
PROFILE = ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=PROJECT / "profiles.yml")
VENV = VenvConfig(
    py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
    cache_dir=os.environ.get("MANIFEST_DAG_VENV_CACHE") or STATE / "venvs",
)
PROJECT_CONFIG = ProjectConfig(
    manifest_path=REPO / "fixtures" / "manifests" / "shop" / "manifest.json",
    project_dir=PROJECT,
    env_vars={"SHOP_DUCKDB_PATH": str(STATE / "shop.duckdb")},
    install_deps=True,
)


def tell_the_owners(context: Any, warnings: list[dict[str, Any]]) -> None:
    """Called with the task's context and each warned node (unique_id, message, failures)."""
    for warned in warnings:
        logging.getLogger(__name__).warning(
            "%s warned in %s: %s", warned["unique_id"], context["ti"].task_id, warned["message"]
        )


with DbtDag(
    dag_id="shop_run_options",
    project_config=PROJECT_CONFIG,
    profile_config=PROFILE,
    venv_config=VENV,
    render_config=RenderConfig(select=["+fct_orders"]),
    operator_args={
        "full_refresh": "{{ params.full_refresh }}",  # decided per run, from the trigger's conf
        "on_warning_callback": tell_the_owners,
        "append_env": False,
    },
    params={"full_refresh": False},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    tags=["dbt", "example"],
) as dag:
    DbtRunOperationOperator(
        task_id="currency_check",
        macro_name="shop_currency",
        macro_args={"run_day": "{{ ds }}"},
        skip_exit_code=1,  # a failing macro skips this task instead of failing the run
        project_dir=PROJECT,
        env={"SHOP_DUCKDB_PATH": str(STATE / "shop.duckdb")},
        venv_config=VENV,
        profile_config=PROFILE,
    )

own_dbt = DbtDag(
    dag_id="shop_own_dbt",
    project_config=PROJECT_CONFIG,
    profile_config=PROFILE,
    # the image's dbt: a virtualenv with dbt-core and dbt-duckdb, made when the image was built
    venv_config=VenvConfig(existing_venv="/opt/dbt-venv"),
    render_config=RenderConfig(select=["+stg_products"]),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    tags=["dbt", "example"],
)
