"""A pod-per-task Airflow 3 executor without the containers (issue 20): what the KubernetesExecutor
does, run on this machine.

Every ``ExecuteTask`` workload becomes a brand-new process running the command the
KubernetesExecutor puts in a pod's ``args`` (Airflow 3.3: ``python -m
airflow.sdk.execution_time.execute_workload --json-string <workload>``), in a "pod" of its own: a
new, empty HOME, TMPDIR and AIRFLOW_HOME under ``MD_POD_ROOT``, so nothing manifest-dag keeps
between tasks on a worker (venvs, workspaces, kept parses, plan cache, warm processes) carries over
from one task to the next unless it comes from the read-only "image" the pods' environment points
at. At most ``parallelism`` pods run at once; a pod's exit code is reported back as the task's
executor state (0: success), as the KubernetesExecutor reports a pod's phase. Task logs go to the
deployment's log folder (``[logging] base_log_folder``, inherited: the shared log volume), the
pod's own output (``execute_workload``'s JSON lines, what ``kubectl logs`` shows) to
``<pod>/pod.log``.

Each pod's command runs under ``tests/support/pod_init.py``, the pod's init process: it takes down
whatever the command left running when it exits (a task's warm dbt process), as the end of a
container does.

Configured from the scheduler's environment (the executor is built by Airflow without arguments):

- ``MD_POD_ROOT``: the folder the pods' folders go in (default: a new temp dir);
- ``MD_POD_COMMAND_PREFIX``: put in front of the command (``shlex``-split), as a pod template's
  ``command:`` wraps the executor's ``args:``, e.g. ``manifest-dag prestart --``;
- ``MD_POD_ENV``: a JSON object of extra environment variables for the pods (the image's ``ENV``,
  e.g. ``MANIFEST_DAG_VENV_CACHE``);
- ``MD_POD_PARALLELISM``: pods at once (default ``[core] parallelism``).

Every pod appends one JSON line to ``<MD_POD_ROOT>/pods.jsonl`` when it ends: its name, the task's
key, the command's first words (never the workload: it carries the task's token), its exit code,
and its start, end and wall time as this executor saw them (a waiter thread per pod notes the exit
the moment it happens, not at the scheduler's next heartbeat).

Use it in ``[core] executor`` beside another executor, with an alias:
``AIRFLOW__CORE__EXECUTOR="CeleryExecutor,pod:tests.support.pod_executor.PodPerTaskExecutor"``,
and ``executor="pod"`` on the tasks (a DbtDag's ``default_args``); ``tests/`` must be importable
by the scheduler (``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.executors.base_executor import BaseExecutor
from airflow.executors.workloads import ExecuteTask

POD_INIT = Path(__file__).with_name("pod_init.py")
#: the module the KubernetesExecutor (and the ECS, Lambda and Batch executors) of Airflow 3 run in a
#: fresh container: it reads the workload, then supervises the task as a worker would
WORKLOAD_MODULE = "airflow.sdk.execution_time.execute_workload"
#: this executor's own settings: not passed on to the pods
SETTINGS_PREFIX = "MD_POD_"
#: seconds a pod gets between SIGTERM and SIGKILL when the executor ends
STOP_GRACE = 20.0


@dataclass
class Pod:
    name: str
    key: Any
    root: Path
    proc: subprocess.Popen
    started: float
    ended: float | None = None
    exit_code: int | None = None
    log: Any = None
    #: the command up to ``--json-string`` (the workload after it carries the task's token)
    argv_head: list[str] = field(default_factory=list)
    waiter: threading.Thread | None = None


def pod_name(key: Any) -> str:
    """A pod name from the task's key, as the KubernetesExecutor makes one (plus a random suffix)."""
    base = f"{key.dag_id}-{key.task_id}-{key.try_number}"
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", base)[:80] + "-" + uuid.uuid4().hex[:6]


class PodPerTaskExecutor(BaseExecutor):
    """Each task in a brand-new process with its own empty HOME and TMPDIR: see the module docstring."""

    is_local: bool = True
    serve_logs: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wanted = os.environ.get(f"{SETTINGS_PREFIX}PARALLELISM")
        if wanted:
            self.parallelism = int(wanted)
        self.pods: dict[Any, Pod] = {}
        self._exited: queue.SimpleQueue[Pod] = queue.SimpleQueue()
        self._lock = threading.Lock()
        root = os.environ.get(f"{SETTINGS_PREFIX}ROOT")
        self.pod_root = Path(root) if root else Path(tempfile.mkdtemp(prefix="md-pods-"))
        self.prefix = shlex.split(os.environ.get(f"{SETTINGS_PREFIX}COMMAND_PREFIX", ""))
        self.extra_env: dict[str, str] = json.loads(os.environ.get(f"{SETTINGS_PREFIX}ENV") or "{}")

    # -- Airflow's executor interface -----------------------------------------------------------
    def start(self) -> None:
        self.pod_root.mkdir(parents=True, exist_ok=True)
        self.log.info("PodPerTaskExecutor: pods under %s, %d at once, command prefix %s",
                      self.pod_root, self.parallelism, self.prefix or "none")

    def _process_workloads(self, workloads: Sequence[Any]) -> None:
        for workload in workloads:
            if not isinstance(workload, ExecuteTask):
                raise ValueError(f"PodPerTaskExecutor runs tasks only, not {type(workload).__name__}")
            key = workload.ti.key
            self.queued_tasks.pop(key, None)
            self.running.add(key)
            try:
                self._launch(key, workload)
            except Exception as exc:  # the pod could not start: the task fails, the scheduler goes on
                self.log.exception("PodPerTaskExecutor: could not start a pod for %s", key)
                self.fail(key, info=str(exc))

    def sync(self) -> None:
        while True:
            try:
                pod = self._exited.get_nowait()
            except queue.Empty:
                return
            self.pods.pop(pod.key, None)
            if pod.exit_code == 0:
                self.success(pod.key)
            else:
                self.fail(pod.key, info=f"pod {pod.name} exited with {pod.exit_code}")

    def end(self) -> None:
        """The scheduler is stopping: stop the pods still running (a test deployment must not leave
        processes behind), then report what ended."""
        self._stop_pods()
        self.sync()

    def terminate(self) -> None:
        self._stop_pods()

    def revoke_task(self, *, ti: Any) -> None:
        pod = self.pods.get(ti.key)
        if pod is not None:
            self._signal(pod, signal.SIGTERM)
        self.queued_tasks.pop(ti.key, None)
        self.running.discard(ti.key)

    # -- the pods -------------------------------------------------------------------------------
    def pod_env(self, root: Path, name: str) -> dict[str, str]:
        """The scheduler's environment (the image's), with the pod's own empty folders."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)}
        for sub in ("home", "tmp", "airflow"):
            (root / sub).mkdir(parents=True)
        env.update(HOME=str(root / "home"), TMPDIR=str(root / "tmp"), AIRFLOW_HOME=str(root / "airflow"),
                   MD_POD_NAME=name)
        env.update(self.extra_env)
        return env

    def command(self, workload: ExecuteTask) -> list[str]:
        return [*self.prefix, sys.executable, "-m", WORKLOAD_MODULE, "--json-string", workload.model_dump_json()]

    def _launch(self, key: Any, workload: ExecuteTask) -> None:
        name = pod_name(key)
        root = self.pod_root / name
        root.mkdir(parents=True)
        env = self.pod_env(root, name)
        command = self.command(workload)
        log = (root / "pod.log").open("wb")
        started = time.time()
        # not a session of its own: the pods stay in the scheduler's process group, so whoever
        # stops the scheduler's group stops them too
        proc = subprocess.Popen([sys.executable, str(POD_INIT), "--", *command], env=env, cwd=root,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        pod = Pod(name, key, root, proc, started, log=log, argv_head=command[: len(self.prefix) + 4])
        with self._lock:
            self.pods[key] = pod
        pod.waiter = threading.Thread(target=self._wait, args=(pod,), name=f"pod-{name}", daemon=True)
        pod.waiter.start()
        self.log.info("PodPerTaskExecutor: started pod %s (pid %d) for %s", name, proc.pid, key)

    def _wait(self, pod: Pod) -> None:
        code = pod.proc.wait()
        pod.ended = time.time()
        pod.exit_code = code
        pod.log.close()
        record = {
            "pod": pod.name, "dag_id": pod.key.dag_id, "task_id": pod.key.task_id, "run_id": pod.key.run_id,
            "try_number": pod.key.try_number, "map_index": pod.key.map_index, "command": pod.argv_head,
            "exit_code": code, "started": pod.started, "ended": pod.ended,
            "wall_seconds": round(pod.ended - pod.started, 3), "root": str(pod.root),
        }
        with self._lock, (self.pod_root / "pods.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        self._exited.put(pod)

    def _signal(self, pod: Pod, sig: int) -> None:
        try:
            pod.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def _stop_pods(self) -> None:
        with self._lock:
            pods = list(self.pods.values())
        for pod in pods:
            if pod.proc.poll() is None:
                self._signal(pod, signal.SIGTERM)  # pod_init passes it on, then sweeps the pod
        deadline = time.monotonic() + STOP_GRACE
        for pod in pods:
            try:
                pod.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(pod, signal.SIGKILL)
                pod.proc.wait()
            if pod.waiter is not None:  # its record written and its exit queued for sync()
                pod.waiter.join(timeout=10)
