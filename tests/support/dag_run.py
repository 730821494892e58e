"""One ``dag.test()`` run with a conf, in a fresh process, and what Airflow stored for each task.

``airflow_run.run_dag_test`` gives each task's state; the e2e tests of per-run settings, warnings
and rendered fields also need the run's conf, the rendered fields Airflow stored for each task
instance (after its run) and each task's XCom return value, read from the metadata database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.airflow_run import airflow_env

CHILD = r"""
import json, sys
from manifest_dag.core.airflow_compat import dag_bag_class
DagBag = dag_bag_class()
from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
folder, dag_id, out, conf = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
bag = DagBag(folder)
if bag.import_errors:
    json.dump({"import_errors": {str(k): v for k, v in bag.import_errors.items()}}, open(out, "w"))
    sys.exit(1)
run = bag.get_dag(dag_id).test(run_conf=conf or None)
tasks = {}
with create_session() as session:
    for ti in run.get_task_instances():
        key = dict(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index)
        row = session.query(RenderedTaskInstanceFields).filter_by(**key).one_or_none()
        xcom = session.query(XComModel).filter_by(**key, key="return_value").one_or_none()
        value = xcom.value if xcom is not None else None
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        tasks[ti.task_id] = {
            "state": str(ti.state), "rendered": row.rendered_fields if row else None, "xcom": value,
            "try_number": ti.try_number, "max_tries": ti.max_tries, "pool": ti.pool, "queue": ti.queue,
            "priority_weight": ti.priority_weight,
        }
json.dump({"state": str(run.state), "tasks": tasks}, open(out, "w"), default=str)
"""


def dag_test(home: Path, dags: Path, dag_id: str, log: Path, conf: dict[str, Any] | None = None, **env: str) -> dict:
    """Run ``dag_id`` once with ``conf``; {"state", "tasks": {task_id: {"state", "rendered", "xcom",
    "try_number", "max_tries", "pool", "queue", "priority_weight"}}}.

    Airflow's and dbt's log lines go to ``log``.
    """
    out = log.with_suffix(".json")
    with log.open("w") as fh:
        subprocess.run(
            [sys.executable, "-c", CHILD, str(dags), dag_id, str(out), json.dumps(conf or {})],
            env=airflow_env(home, dags, **env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if not out.exists():
        raise AssertionError(f"dag.test() wrote no result; log tail:\n{log.read_text()[-4000:]}")
    result = json.loads(out.read_text())
    if "import_errors" in result:
        raise AssertionError(f"DAG import errors: {result['import_errors']}")
    return result


RUNS_CHILD = r"""
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
folder, dag_id, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
bag = DagBag(folder)
if bag.import_errors:
    json.dump({"import_errors": {str(k): v for k, v in bag.import_errors.items()}}, open(out, "w"))
    sys.exit(1)
dag = bag.get_dag(dag_id)
results = []
for step in steps:
    for path, text in step.get("write", {}).items():
        Path(path).write_text(text)
    print(f"=== manifest-dag e2e: run {len(results) + 1} ===", flush=True)
    run = dag.test(run_conf=step.get("conf") or None)
    results.append({"state": str(run.state), "tasks": {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number}
                                                        for ti in run.get_task_instances()}})
json.dump(results, open(out, "w"), default=str)
"""


def dag_test_runs(
    home: Path, dags: Path, dag_id: str, log: Path, steps: list[dict[str, Any]], **env: str
) -> list[dict]:
    """Several ``dag.test()`` runs of ``dag_id`` in one process: Airflow is imported and the DAG
    file parsed once. Each step: ``{"conf": {...}, "write": {path: text}}`` (files written before
    that run). Returns each run's {"state", "tasks": {task_id: {"state", "try_number"}}}; the log
    marks each run's start with ``=== manifest-dag e2e: run N ===``."""
    out = log.with_suffix(".json")
    with log.open("w") as fh:
        subprocess.run(
            [sys.executable, "-c", RUNS_CHILD, str(dags), dag_id, str(out), json.dumps(steps)],
            env=airflow_env(home, dags, **env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if not out.exists():
        raise AssertionError(f"dag.test() wrote no result; log tail:\n{log.read_text()[-4000:]}")
    result = json.loads(out.read_text())
    if isinstance(result, dict) and "import_errors" in result:
        raise AssertionError(f"DAG import errors: {result['import_errors']}")
    return result
