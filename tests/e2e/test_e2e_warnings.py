"""Warnings as a signal with real Airflow (``dag.test()``), real dbt and DuckDB (issue 21 item 3).

A seed ``loads`` has two ids and an ``accepted_values [1]`` test with ``severity: warn``: the test
fails, so dbt says ``warn`` and exits 0. Its newest ``loaded_at`` is years old, and the source
``raw.stale_warn`` on it warns after a day. Each task's ``on_warning_callback`` appends what it
got to a file: the test tasks (cold and warm) and the freshness task must call it with the warned
node and dbt's message, the others never; each task's XCom holds the same warnings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.airflow_run import VENV_REQUIREMENTS, migrate
from tests.support.dag_run import dag_test

pytestmark = pytest.mark.e2e

WARN_TEST = "test.warnproj.accepted_values_loads_id__1.5e1c17e264"

DAG_FILE = '''
"""An Airflow DAG whose dbt tests and source freshness warn (manifest-dag e2e test)."""
import json
from pathlib import Path

import pendulum
from airflow.sdk import DAG
from manifest_dag import (
    DbtRunOperator, DbtSeedOperator, DbtSourceFreshnessOperator, DbtTestOperator, ProfileConfig, VenvConfig,
)

OUT = Path("{out}")


def on_warning(context, warnings):
    with OUT.open("a") as fh:
        fh.write(json.dumps({{"task_id": context["ti"].task_id, "run_id": context["run_id"], "warnings": warnings}}) + "\\n")


def venv(warm):
    return VenvConfig(py_requirements={reqs!r}, warm_processes=warm)


common = dict(
    project_dir="{project}",
    profile_config=ProfileConfig(profile_name="warnproj", profiles_yml_path="{project}/profiles.yml"),
    env={{"WARN_DB": "{db}"}},
    on_warning_callback=on_warning,
)
with DAG("warnings", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
    seed = DbtSeedOperator(task_id="seed", venv_config=venv(1), **common)
    cold = DbtTestOperator(task_id="tests_cold", select=["loads"], venv_config=venv(0), **common)
    warm = DbtTestOperator(task_id="tests_warm", select=["loads"], venv_config=venv(1), **common)
    recent = DbtRunOperator(task_id="recent", select=["recent_loads"], venv_config=venv(1), **common)
    freshness = DbtSourceFreshnessOperator(
        task_id="freshness", select=["source:raw.stale_warn", "source:raw.fresh"], venv_config=venv(1), **common
    )
    seed >> [cold, warm, recent]
    recent >> freshness
'''


def make_project(root: Path) -> Path:
    (root / "seeds").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: warnproj\nversion: '1.0'\nconfig-version: 2\nprofile: warnproj\nmodel-paths: [models]\nseed-paths: [seeds]\n"
    )
    (root / "profiles.yml").write_text(
        "warnproj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('WARN_DB') }}\"\n      threads: 1\n"
    )
    (root / "seeds" / "loads.csv").write_text("id,loaded_at\n1,2020-01-01 00:00:00\n2,2020-01-02 00:00:00\n")
    (root / "seeds" / "schema.yml").write_text(
        "version: 2\nseeds:\n  - name: loads\n    columns:\n      - name: id\n        data_tests:\n"
        "          - accepted_values:\n              arguments:\n                values: [1]\n"
        "              config:\n                severity: warn\n          - not_null\n"
    )
    (root / "models" / "recent_loads.sql").write_text("select current_timestamp::timestamp as loaded_at\n")
    (root / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: main\n    config:\n      loaded_at_field: loaded_at\n"
        "    tables:\n"
        "      - name: stale_warn\n        identifier: loads\n"
        "        config:\n          freshness: {warn_after: {count: 1, period: day}}\n"
        "      - name: fresh\n        identifier: recent_loads\n"
        "        config:\n          freshness: {warn_after: {count: 1, period: day}}\n"
    )
    return root


def test_warned_tests_and_stale_sources_call_the_callback(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = make_project(tmp_path / "warnproj")
    out = tmp_path / "warnings.jsonl"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "warnings_dag.py").write_text(
        DAG_FILE.format(out=out, project=project, db=tmp_path / "warn.duckdb", reqs=VENV_REQUIREMENTS)
    )
    log = tmp_path / "dag_test.log"
    result = dag_test(home, dags, "warnings", log)
    states = {task: info["state"] for task, info in result["tasks"].items()}
    assert set(states.values()) == {"success"}, f"{states}; log: {log.read_text()[-4000:]}"

    calls = {entry["task_id"]: entry for entry in map(json.loads, out.read_text().splitlines())}
    assert set(calls) == {"tests_cold", "tests_warm", "freshness"}, calls  # never seed or recent
    for task in ("tests_cold", "tests_warm"):
        assert calls[task]["warnings"] == [
            {"unique_id": WARN_TEST, "message": "Got 1 result, configured to warn if != 0", "failures": 1}
        ], calls[task]
        assert result["tasks"][task]["xcom"]["warnings"] == calls[task]["warnings"]
        assert result["tasks"][task]["xcom"]["statuses"]["WARN"] == 1
    [stale] = calls["freshness"]["warnings"]
    assert stale["unique_id"] == "source.warnproj.raw.stale_warn" and stale["failures"] is None
    assert stale["message"].startswith("newest row loaded ") and stale["message"].endswith("warn after 1 day")
    assert result["tasks"]["freshness"]["xcom"]["statuses"] == {
        "PASS": 1, "WARN": 1, "ERROR": 0, "FAIL": 0, "SKIP": 0, "NO-OP": 0, "TOTAL": 2,
    }  # fmt: skip
    assert result["tasks"]["seed"]["xcom"]["warnings"] == [] and result["tasks"]["recent"]["xcom"]["warnings"] == []
    assert all(entry["run_id"] for entry in calls.values())  # the real Airflow context
    text = log.read_text()
    assert "running in warm process" in text  # the warm path served some of them
