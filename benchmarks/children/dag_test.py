"""One whole-DAG run through ``dag.test()``, in a fresh process; prints one JSON line last.

Run by path by ``python -m benchmarks.worker`` with the repo's ``.venv`` Python (manifest-dag) or
with ``.bench/cosmos-venv``'s Python (astronomer-cosmos); imports neither tool itself (nor anything
from ``benchmarks``), only Airflow:

    python benchmarks/children/dag_test.py <dags_folder> <dag_id>

Airflow reads its settings (home, dags folder) from the environment at import time, so the
parent sets them. ``dag_s`` is the wall time of ``dag.test()`` alone (after imports and the
DagBag load); each task's ``duration`` is Airflow's own (``end_date - start_date``), its ``start``
the epoch seconds of ``start_date`` (the order the tasks ran in).
"""

from __future__ import annotations

import json
import sys
import time

MARK = "BENCH_RESULT "


def main() -> int:
    folder, dag_id = sys.argv[1:3]
    t0 = time.perf_counter()
    from manifest_dag.core.airflow_compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(folder, safe_mode=False)
    if bag.import_errors:
        print(MARK + json.dumps({"import_errors": {str(k): v for k, v in bag.import_errors.items()}}))
        return 1
    dag = bag.get_dag(dag_id)
    load_s = time.perf_counter() - t0
    t = time.perf_counter()
    run = dag.test()
    dag_s = time.perf_counter() - t
    tasks = {
        ti.task_id: {"state": str(ti.state), "duration": ti.duration,
                     "start": ti.start_date.timestamp() if ti.start_date else None}
        for ti in run.get_task_instances()
    }
    print(MARK + json.dumps({"state": str(run.state), "dag_s": dag_s, "load_s": load_s, "tasks": tasks,
                             "xcom": return_values(dag_id, run.run_id)}), flush=True)
    return 0


def return_values(dag_id: str, run_id: str) -> dict:
    """Every task's XCom return value in the run (manifest-dag's says its nodes' seconds)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = {}
    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value",
                XComModel.map_index == -1,
            )
        ).all()
    for task_id, value in rows:
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                continue
        out[task_id] = value
    return out


if __name__ == "__main__":
    sys.exit(main())
