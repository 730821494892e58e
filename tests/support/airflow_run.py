"""Run a DAG file through Airflow's `dag.test()` in a child process, as Airflow needs.

Airflow reads its settings (home, dags folder, database) at import time and `dag.test()` wants
the DAG defined in a file of the dags folder, so each run is a fresh process with its own
environment; the Airflow metadata database is created once per test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

E2E_VENV_CACHE = REPO / ".cache" / "e2e-venvs"
VENV_REQUIREMENTS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]

_CHILD = r"""
import json, sys
from manifest_dag.core.airflow_compat import dag_bag_class
DagBag = dag_bag_class()
folder, dag_id, out = sys.argv[1:4]
bag = DagBag(folder)
if bag.import_errors:
    json.dump({"import_errors": {str(k): v for k, v in bag.import_errors.items()}}, open(out, "w"))
    sys.exit(1)
dag = bag.get_dag(dag_id)
run = dag.test()
tasks = {ti.task_id: {"state": str(ti.state), "duration": ti.duration} for ti in run.get_task_instances()}
json.dump({"state": str(run.state), "tasks": tasks}, open(out, "w"))
"""


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        MANIFEST_DAG_VENV_CACHE=str(E2E_VENV_CACHE),
        PYTHONPATH=str(REPO),
    )
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    env.update(extra)
    return env


def migrate(home: Path) -> None:
    if (home / "airflow.db").exists():
        return
    env = airflow_env(home, home / "dags")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)


def run_dag_test(home: Path, dags: Path, dag_id: str, log_file: Path, **env: str) -> dict:
    """Run `dag.test()` for ``dag_id``; return {"state", "tasks": {task_id: {"state", ...}}}."""
    out = log_file.with_suffix(".json")
    with log_file.open("w") as log:
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(dags), dag_id, str(out)],
            env=airflow_env(home, dags, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if not out.exists():
        raise AssertionError(f"dag.test() wrote no result; log tail:\n{log_file.read_text()[-4000:]}")
    result = json.loads(out.read_text())
    if "import_errors" in result:
        raise AssertionError(f"DAG import errors: {result['import_errors']}")
    return result
