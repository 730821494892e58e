"""``manifest-dag prestart``'s hand-over to Airflow's workload runner in its own process.

A pod's task pays, inside its own span, for what a fresh process has not loaded yet. Airflow's task
supervisor (``python -m airflow.sdk.execution_time.execute_workload``, what the KubernetesExecutor
and the other container executors of Airflow 3 put in a pod's ``args``) forks the task process and
at once tells the api-server the task started (the TaskInstance's ``start_date``); only then does
the task process import what it needs to parse its DAG file. Measured in a pod on Airflow 3.3, the
task runner's ``parse()`` imports ``airflow.dag_processing.dagbag`` (``BundleDagBag``: Airflow's
serialization, the DAG and DagRun models, ``tabulate``; about 130 modules) after the fork: 0.23-0.38
s of the task's duration that a Celery worker's task does not pay, as it forks from a process that
has them. Its listener manager (plugins) and DAG bundle configuration cost a few milliseconds.

So, when the pod's command is that module run by this very interpreter, ``prestart`` does not
``exec`` it: after starting dbt it imports a short, named list of modules (``PRELOAD``) and runs the
module here (``runpy``, ``sys.argv`` and ``sys.path[0]`` as ``python -m`` sets them). The process
that gets the pod's signals and whose exit code ends the pod is the same supervisor as before, now
without a second interpreter start; its task process inherits the modules as a Celery worker's
does. The list holds imports only: no configuration read, no plugin loaded, no connection, no
thread (checked: a thread found after the imports means exec instead, as a fork must not copy a
running thread's locks).

Whatever is not exactly that command (another interpreter, interpreter options, another module)
and any failure while importing runs the command with ``exec`` as before, saying why;
``MANIFEST_DAG_PRESTART_IN_PROCESS=off`` always does.
"""

from __future__ import annotations

import importlib
import os
import runpy
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence

#: the module Airflow 3's container executors run in a pod: reads the workload, supervises the task
WORKLOAD_MODULE = "airflow.sdk.execution_time.execute_workload"

#: What a pod's task process would import after the supervisor's fork (inside the task's span), and
#: why; each is imported before the workload runs instead. Module imports only: nothing here reads
#: a setting, opens a connection or starts a thread when imported.
PRELOAD: tuple[tuple[str, str], ...] = (
    ("pydantic", "execute_workload decodes the workload with it"),
    ("airflow.executors.workloads", "the workload's types"),
    ("airflow.executors.base_executor", "BaseExecutor.run_workload, which calls the supervisor"),
    ("airflow.sdk.execution_time.supervisor", "forks the task process"),
    ("airflow.sdk.execution_time.task_runner", "the task process's entry point"),
    (
        "airflow.dag_processing.dagbag",
        "task_runner.parse() imports BundleDagBag after the fork: Airflow's serialization and models, "
        "0.23-0.38 s of the task's span in a fresh process",
    ),
    ("manifest_dag.operators", "the DAG file's operators"),
    ("manifest_dag.worker.run", "what DbtVenvOperator.execute imports on the worker"),
)


def _is_this_python(program: str) -> bool:
    """Whether ``program`` (as the command names it: a path or a name on PATH) runs this
    interpreter in this environment: the same executable, from the same folder (a venv is known by
    the folder its ``python`` is in, so a symlink to the same binary elsewhere is another one)."""
    found = shutil.which(program) if os.sep not in program else program
    if not found or not sys.executable:
        return False
    found = os.path.abspath(found)
    ours = os.path.abspath(sys.executable)
    return os.path.dirname(found) == os.path.dirname(ours) and os.path.realpath(found) == os.path.realpath(ours)


def _runs_workload_module(command: Sequence[str]) -> bool:
    """``command`` is ``SOME_PYTHON -m airflow.sdk.execution_time.execute_workload ...``."""
    return len(command) >= 3 and command[1] == "-m" and command[2] == WORKLOAD_MODULE


def workload_args(command: Sequence[str]) -> list[str] | None:
    """The workload module's own arguments when ``command`` is exactly ``PYTHON -m
    airflow.sdk.execution_time.execute_workload ARGS`` with this interpreter as ``PYTHON``; None for
    anything else (interpreter options, another module or program), which then runs with ``exec``."""
    if not _runs_workload_module(command) or not _is_this_python(command[0]):
        return None
    return list(command[3:])


def preload(modules: Sequence[tuple[str, str]] | None = None) -> str | None:
    """Import ``modules`` (default ``PRELOAD``); None when all went well, else why not (the command then runs with
    ``exec``, which leaves these imports behind)."""
    for name, _why in PRELOAD if modules is None else modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure: exec the command instead
            return f"importing {name} failed ({type(exc).__name__}: {exc})"
    if threading.active_count() != 1:
        names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        return f"a thread runs after the imports ({', '.join(names)}): the task process must not fork with it"
    return None


def run_workload(args: Sequence[str]) -> int:
    """Run the workload module here as ``python -m`` would: its exit code (a ``SystemExit`` it
    raises passes through; an exception it lets out is printed as the interpreter would and
    gives 1)."""
    sys.argv = [WORKLOAD_MODULE, *args]  # runpy sets [0] to the module's file, as -m does
    if not getattr(sys.flags, "safe_path", False):  # -P (3.11+) keeps it out
        sys.path[0:1] = [os.getcwd()]  # -m puts the working folder first, where a script has its own folder
    try:
        runpy.run_module(WORKLOAD_MODULE, run_name="__main__", alter_sys=True)
    except Exception:  # noqa: BLE001 - as the interpreter reports an uncaught exception
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def hand_over(command: Sequence[str], say: Callable[[str], None]) -> int | None:
    """Run ``command`` in this process when it is the workload module on this interpreter and the
    preload works: its exit code; None when the caller must ``exec`` it (said why, unless the
    command is simply something else)."""
    from manifest_dag.core import settings

    args = workload_args(command)
    if args is None:
        if _runs_workload_module(command):
            say(
                f"{command[0]} is not the Python manifest-dag runs on ({sys.executable}): running the command with exec"
            )
        return None
    if settings.is_off(settings.PRESTART_IN_PROCESS):
        say(f"{settings.PRESTART_IN_PROCESS} is off: running the command with exec")
        return None
    started = time.monotonic()
    failed = preload()
    if failed is not None:
        say(f"{failed}; running the command with exec")
        return None
    say(
        f"running {WORKLOAD_MODULE} in this process ({len(PRELOAD)} modules preloaded in "
        f"{time.monotonic() - started:.2f} s)"
    )
    return run_workload(args)
