"""One task as a pod-per-task executor runs it: a brand-new Python process that parses the DAG
file inside the task's parsing context (as Airflow's task runner does) and calls the operator's
``execute``. Prints one JSON line: the XCom summary, the phase timings and whether the manifest
was read (it must not be: the plan comes from the prepared plan cache).

    python -m tests.support.pod_task DAG_FILE DAG_ID TASK_ID     # one task
    python -m tests.support.pod_task DAG_FILE DAG_ID --list      # the task ids and dbt args, in order
"""

from __future__ import annotations

import time

STARTED = time.monotonic()

import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def main() -> None:
    dag_file, dag_id, task_id = sys.argv[1:4]
    if task_id != "--list":
        # what Airflow's task runner sets while it parses the DAG file for one task
        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
        os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = task_id
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    import manifest_dag.scheduler.manifest as manifest_module

    reads: list[str] = []
    real_load = manifest_module.load_manifest

    def counting_load(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(str(path))
        return real_load(path, *args, **kwargs)

    manifest_module.load_manifest = counting_load  # type: ignore[assignment]
    imported = time.monotonic()
    spec = importlib.util.spec_from_file_location("pod_task_dag", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    parsed = time.monotonic()
    if task_id == "--list":
        ordered = dag.topological_sort()
        print(json.dumps({"tasks": [t.task_id for t in ordered], "commands": [t.dbt_args() for t in ordered]}))
        return
    task = dag.get_task(task_id)
    import manifest_dag.worker.run as run_module

    real_run = run_module.run_dbt

    def teed_run(inv, *, log, **kwargs):  # type: ignore[no-untyped-def]
        """The task log's lines on stderr too (Airflow's logging setup owns the task logger)."""

        def both(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
            log(line)

        return real_run(inv, log=both, **kwargs)

    run_module.run_dbt = teed_run  # type: ignore[assignment]
    summary = task.execute(context={})
    done = time.monotonic()
    print(
        json.dumps(
            {
                "summary": summary,
                "manifest_reads": reads,
                "tasks_built": len(dag.tasks),
                "import_s": imported - STARTED,
                "parse_s": parsed - imported,
                "execute_s": done - parsed,
                "process_s": done - STARTED,
            }
        )
    )


if __name__ == "__main__":
    main()
