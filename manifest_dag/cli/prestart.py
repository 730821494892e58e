"""``manifest-dag prestart -- COMMAND``: a pod's dbt process starts while Airflow does.

In a pod per task (KubernetesExecutor) nothing is warm: the task process imports Airflow, parses
its DAG file and only then, in ``execute``, starts dbt, which spends seconds importing itself and
writing its (de)serialisers before it runs a single node. Those two start-ups do not depend on each
other. Put in front of the executor's command (the pod template's ``command:``; the executor
fills ``args:``), this starts the task's warm dbt process from the image ``manifest-dag prepare``
made, warmed up on the prepared msgpack, then runs the command: by the time the operator
runs, dbt is ready and the task uses it as a warm worker's task would (its log says "running in
warm process" with no "starting"). dbt's parse still happens per task; only its start-up is
hidden, and it needs a second core to hide behind.

The launcher never stands in the task's way: whatever it cannot do (no prepared image, a task
it does not know, warm processes off, a venv missing) it says in one line on stderr and runs the
command anyway; the task then starts dbt itself, as without it. It imports no Airflow before dbt's
process has started, never dbt, and gives the dbt process no secret: a warm process gets each
task's environment with its request (see ``worker/warm.py``).

The command runs with ``exec``, but for one case: Airflow 3's workload module on this very
interpreter (``python -m airflow.sdk.execution_time.execute_workload ...``, the KubernetesExecutor's
args), which runs in this process after a short list of imports its task process would otherwise
make after the fork, inside the task's span (``cli/workload_in_process.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

#: the index ``manifest-dag prepare`` writes beside the prepared state
INDEX_NAME = "prestart.json"
INDEX_FORMAT = 1


def _say(line: str) -> None:
    print(f"manifest-dag prestart: {line}", file=sys.stderr, flush=True)


def task_of(command: list[str]) -> tuple[str, str] | None:
    """The (dag_id, task_id) a task command runs: Airflow 3's ``execute_workload --json-string``
    (what the KubernetesExecutor puts in a pod's args), ``--json-path``, or ``airflow tasks run
    DAG TASK``; None when it is none of those."""
    workload: Any = None
    for i, arg in enumerate(command):
        for flag in ("--json-string", "--json-path"):
            value = None
            if arg == flag and i + 1 < len(command):
                value = command[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is None:
                continue
            try:
                text = Path(value).read_text() if flag == "--json-path" else value
                workload = json.loads(text)
            except (OSError, ValueError):
                return None
    if isinstance(workload, dict):
        ti = workload.get("ti")
        if isinstance(ti, dict) and isinstance(ti.get("dag_id"), str) and isinstance(ti.get("task_id"), str):
            return ti["dag_id"], ti["task_id"]
        return None
    for i in range(len(command) - 3):
        if command[i] == "tasks" and command[i + 1] == "run":
            rest = [a for a in command[i + 2 :] if not a.startswith("-")]
            if len(rest) >= 2:
                return rest[0], rest[1]
    return None


def read_index(cache_root: Path) -> dict[str, Any] | None:
    from manifest_dag.worker.venv import PREPARED_DIR

    try:
        index = json.loads((cache_root / PREPARED_DIR / INDEX_NAME).read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) and index.get("format") == INDEX_FORMAT else None


def start(cache_root: Path, dag_id: str, task_id: str) -> str:
    """Start the task's warm dbt process; what happened, in a line for the pod's log."""
    from manifest_dag.core import settings
    from manifest_dag.core.specs import VenvSpec
    from manifest_dag.worker.invokers import default_invoker
    from manifest_dag.worker.venv import PREPARED_DIR, VenvCache
    from manifest_dag.worker.warm import FallbackInvoker

    processes = int(settings.number(settings.WARM_PROCESSES, 1))
    if processes <= 0:
        return f"warm processes are off ({settings.WARM_PROCESSES}=0 here): nothing to start"
    index = read_index(cache_root)
    if index is None:
        return f"no prepared image at {cache_root} (run `manifest-dag prepare` at image build time)"
    n = index.get("tasks", {}).get(dag_id, {}).get(task_id)
    if not isinstance(n, int):
        return f"{dag_id}.{task_id} is not a dbt task prepared in {cache_root}"
    pool = index["pools"][n]
    if pool.get("warm_off"):
        return f"{dag_id}.{task_id} runs dbt as a fresh process (its VenvConfig turns warm processes off)"
    lines: list[str] = []
    cache = VenvCache(cache_root, log=lines.append)
    wanted = pool["venv"]
    if "key" in wanted:
        venv = cache.prepared_venv(wanted["key"])
        if venv is None:
            return f"venv {wanted['key']} is not in {cache_root}: the task will build or find it itself"
    else:
        venv = cache.ensure(VenvSpec(requirements=(), **wanted))
    invoker = default_invoker(
        venv,
        cache,
        processes,
        lines.append,
        project_dir=Path(pool["project_dir"]),
        warm_scope=pool.get("warm_scope"),
    )
    if not isinstance(invoker, FallbackInvoker):
        return f"no warm process for venv {venv.key}: " + ("; ".join(lines) or "its dbt runs as a fresh process")
    msgpack = pool.get("msgpack")
    invoker.warm.warm_up = str(cache_root / PREPARED_DIR / msgpack) if msgpack else ""
    if msgpack:  # a fresh pod's task takes slot 0: the warm-up decodes the msgpack as placed there
        from manifest_dag.core.dbt_project import project_field
        from manifest_dag.worker.workspace import slot_project

        project_dir = Path(pool["project_dir"])
        invoker.warm.warm_up_root = str(slot_project(cache.state_dir, project_dir, 0))
        invoker.warm.warm_up_project = project_field(project_dir, "name")
    pid = invoker.warm.prestart(0)
    if pid is None:
        return f"slot 0 of {invoker.warm.pool_dir} is busy or already has a process: nothing to start"
    return f"started warm dbt process {pid} for {dag_id}.{task_id} (venv {venv.key}, pool {invoker.warm.pool_dir})"


def run(args: argparse.Namespace) -> int:
    from manifest_dag.core import settings

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        from manifest_dag.core.errors import CliError

        raise CliError("prestart: give the task's command after --, e.g. manifest-dag prestart -- airflow ...")
    started = time.monotonic()
    try:
        found = (args.dag_id, args.task_id) if args.dag_id and args.task_id else task_of(command)
        if found is None:
            said = "cannot tell which task the command runs (no --json-string workload, no `tasks run DAG TASK`)"
        else:
            root = Path(os.path.abspath(args.cache_dir)) if args.cache_dir else settings.venv_cache_dir()
            said = start(root, *found)
    except Exception as exc:  # noqa: BLE001 - never in the task's way: say it, run the command
        said = f"could not start dbt ahead ({type(exc).__name__}: {exc}); the task starts it itself"
    _say(f"{said} ({time.monotonic() - started:.2f} s)")
    from manifest_dag.cli.workload_in_process import hand_over

    code = hand_over(command, _say)
    if code is not None:
        return code
    try:
        os.execvp(command[0], command)  # the pod's own command, as given
    except OSError as exc:
        from manifest_dag.core.errors import CliError

        raise CliError(f"prestart: cannot run {command[0]!r}: {exc.strerror}") from None
    return 127  # pragma: no cover - execvp does not return
