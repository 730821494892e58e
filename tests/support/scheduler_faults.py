"""Faults injected into a running deployment (``tests/support/scheduler_env.py``): a task's worker process
SIGKILLed while its dbt model runs (issue 7, point 3).

Airflow 3's LocalExecutor runs each task in two processes: a supervisor (a LocalExecutor worker,
titled ``airflow worker -- LocalExecutor: <task>``) and, forked from it, the task runner that
imports the DAG file and calls ``execute`` (titled ``airflow worker -- <task instance id>`` by
``setproctitle``; its pid is also the task instance's ``pid`` in the metadata DB). The task runner
is the task's worker process: killing it is what the OOM killer or a lost node does to a task.
The supervisor survives, sees the runner die, and reports the try failed (up for retry when
retries are left).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support.scheduler_env import EnvError, SchedulerEnv


def proc_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def pids_titled(title: str) -> list[int]:
    """Processes whose command line (after setproctitle) is exactly ``title``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and proc_title(int(entry.name)) == title:
            found.append(int(entry.name))
    return found


def local_pid_of_port(port: int) -> int | None:
    """The local process holding the TCP connection whose local port is ``port`` (the client
    side of a Postgres backend, from ``pg_stat_activity.client_port``)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


@dataclass
class KillReport:
    dag_id: str
    task_id: str
    ti_id: str = ""
    try_number: int = 0
    killed_pid: int = 0
    killed_title: str = ""
    ti_pid_in_db: int | None = None
    supervisor_pid: int | None = None
    supervisor_title: str = ""
    #: the process running dbt's query when the worker was killed (a warm dbt process or a cold dbt)
    dbt_pid: int | None = None
    dbt_title: str = ""
    query_seconds_before_kill: float = 0.0
    #: the dbt query was still running 3 s after the kill (nothing stopped dbt)
    query_survived_kill: bool | None = None
    #: seconds from the kill until that query ended (None: still running after a minute)
    query_ended_after_kill: float | None = None
    killed_at: float = 0.0  # epoch seconds
    #: the killed task's private profile dirs (``$TMPDIR/manifest-dag-profile-<pid>-*``) just after the kill
    profile_dirs_at_kill: list[str] = field(default_factory=list)
    seconds_after_trigger: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "task": f"{self.dag_id}.{self.task_id}",
            "killed": f"pid {self.killed_pid} {self.killed_title!r} (SIGKILL)",
            "task_instance_pid_in_db": self.ti_pid_in_db,
            "supervisor": f"pid {self.supervisor_pid} {self.supervisor_title!r}",
            "dbt_process": f"pid {self.dbt_pid} {self.dbt_title[:120]!r}",
            "try_killed": self.try_number,
            "dbt_query_seconds_before_kill": round(self.query_seconds_before_kill, 1),
            "dbt_query_still_running_3s_after_kill": self.query_survived_kill,
            "dbt_query_ended_seconds_after_kill": self.query_ended_after_kill,
            "profile_dirs_left_at_kill": self.profile_dirs_at_kill,
            "notes": self.notes,
        }


class WorkerKiller(threading.Thread):
    """Waits until ``task_id``'s first try runs a query containing ``marker`` in the warehouse,
    then SIGKILLs the task runner process of that try. ``report`` says what it did; ``error``
    why it did not."""

    def __init__(self, env: SchedulerEnv, dag_id: str, run_id: str, task_id: str, marker: str,
                 timeout: float, min_query_seconds: float = 2.0) -> None:
        super().__init__(daemon=True, name=f"kill-{dag_id}")
        self.env, self.dag_id, self.run_id, self.task_id = env, dag_id, run_id, task_id
        self.marker, self.timeout, self.min_query_seconds = marker, timeout, min_query_seconds
        self.report: KillReport | None = None
        self.error: str | None = None
        self._halt = threading.Event()
        self.started_at = time.monotonic()

    def stop(self) -> None:
        self._halt.set()

    def _query(self) -> tuple[int, int, float] | None:
        """(backend pid, client port, seconds running) of the marked query, if it runs."""
        assert self.env.pg is not None
        rows = self.env.pg.rows(
            "select pid, coalesce(client_port, -1), extract(epoch from now() - query_start) from pg_stat_activity "
            f"where state = 'active' and pid <> pg_backend_pid() and strpos(query, '{self.marker}') > 0"
        )
        return (int(rows[0][0]), int(rows[0][1]), float(rows[0][2])) if rows else None

    def _query_runs(self, backend_pid: int) -> bool:
        """Is that backend still running the marked query?"""
        assert self.env.pg is not None
        return bool(self.env.pg.rows(
            f"select 1 from pg_stat_activity where pid = {backend_pid} and state = 'active' "
            f"and strpos(query, '{self.marker}') > 0"
        ))

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            self.error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        self.error = f"stopped before {self.dag_id}.{self.task_id} ran its query"
        while not self._halt.is_set():
            if time.monotonic() > deadline:
                self.error = f"{self.dag_id}.{self.task_id} never ran its query within {self.timeout:.0f} s"
                return
            rows = self.env.meta(
                "select id, coalesce(state, 'none'), try_number, coalesce(pid, 0) from task_instance "
                f"where dag_id='{self.dag_id}' and run_id='{self.run_id}' and task_id='{self.task_id}'"
            )
            if rows and rows[0][1] not in ("none", "scheduled", "queued", "running"):
                self.error = f"{self.dag_id}.{self.task_id} reached {rows[0][1]} before it could be killed"
                return
            if rows and rows[0][1] == "running":
                query = self._query()
                if query is not None and query[2] >= self.min_query_seconds:
                    self.error = None
                    self._kill(rows[0], query)
                    return
            time.sleep(1.0)

    def _kill(self, row: list[str], query: tuple[int, int, float]) -> None:
        ti_id, _state, try_number, db_pid = row
        title = f"airflow worker -- {ti_id}"
        pids = pids_titled(title)
        if len(pids) != 1:
            raise EnvError(f"expected one process titled {title!r}, found {pids}")
        pid = pids[0]
        report = KillReport(self.dag_id, self.task_id, ti_id=ti_id, try_number=int(try_number), killed_pid=pid,
                            killed_title=title, ti_pid_in_db=int(db_pid) or None,
                            query_seconds_before_kill=query[2],
                            seconds_after_trigger=time.monotonic() - self.started_at)
        with_parent = psutil.Process(pid)
        parent = with_parent.parent()
        if parent is not None:
            report.supervisor_pid, report.supervisor_title = parent.pid, proc_title(parent.pid)
        if query[1] > 0:
            report.dbt_pid = local_pid_of_port(query[1])
            if report.dbt_pid:
                report.dbt_title = proc_title(report.dbt_pid)
                children = {c.pid for c in with_parent.children(recursive=True)}
                report.notes.append(
                    "dbt ran in a child of the killed process" if report.dbt_pid in children
                    else "dbt ran outside the killed process's tree (its own session)"
                )
        os.kill(pid, signal.SIGKILL)
        report.killed_at = time.time()
        report.profile_dirs_at_kill = sorted(str(p) for p in self.env.tmp.glob(f"manifest-dag-profile-{pid}-*"))
        self.report = report
        time.sleep(3)
        report.query_survived_kill = still = self._query_runs(query[0])
        while still and time.time() - report.killed_at < 60:
            time.sleep(0.5)
            still = self._query_runs(query[0])
        if not still:
            report.query_ended_after_kill = round(time.time() - report.killed_at, 1)


def proc_environ(pid: int) -> dict[str, str]:
    """A process's environment (empty when it is gone or not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def pids_of_machine(leader: int, tmpdir: Path) -> list[int]:
    """Every process of one Celery "machine" of the deployment: the worker ``leader`` and all its
    descendants (pool children, task supervisors and runners, dbt), and every process of ours whose
    ``TMPDIR`` is that machine's (the warm dbt processes, in sessions of their own, may have outlived
    the task that started them; no other process has that path). setproctitle may overwrite a
    process's environ, hence both ways."""
    found = set()
    with contextlib.suppress(psutil.Error):
        top = psutil.Process(leader)
        found.add(leader)
        found.update(c.pid for c in top.children(recursive=True))
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me and proc_environ(int(entry.name)).get("TMPDIR") == str(tmpdir):
            found.add(int(entry.name))
    return sorted(found)


class MachineKiller(WorkerKiller):
    """Like ``WorkerKiller``, but what dies is the whole Celery worker machine that runs the task:
    every process of that worker (see ``pids_of_machine``) gets SIGKILL at once, as when a node is
    lost; its disk stays, nothing else does. ``machine`` names the worker; ``processes_killed``
    how many processes died."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.machine: str | None = None
        self.processes_killed: list[str] = []

    def _kill(self, row: list[str], query: tuple[int, int, float]) -> None:
        ti_id, _state, try_number, db_pid = row
        title = f"airflow worker -- {ti_id}"
        pids = pids_titled(title)
        if len(pids) != 1:
            raise EnvError(f"expected one process titled {title!r}, found {pids}")
        ancestors = {p.pid for p in psutil.Process(pids[0]).parents()}
        workers = [w for w in self.env.workers if w.proc is not None and w.proc.pid in ancestors]
        if len(workers) != 1:
            raise EnvError(f"the task runner {pids[0]} runs under no Celery worker of the test (ancestors {ancestors})")
        worker = workers[0]
        assert worker.proc is not None
        report = KillReport(self.dag_id, self.task_id, ti_id=ti_id, try_number=int(try_number), killed_pid=worker.proc.pid,
                            killed_title=f"celery worker {worker.name} (the whole machine)",
                            ti_pid_in_db=int(db_pid) or None, query_seconds_before_kill=query[2],
                            seconds_after_trigger=time.monotonic() - self.started_at)
        if query[1] > 0:
            report.dbt_pid = local_pid_of_port(query[1])
            if report.dbt_pid:
                report.dbt_title = proc_title(report.dbt_pid)
        worker.killed = True
        self.machine = worker.name
        # twice: a process forked while the first round ran is caught by the second
        for _ in range(2):
            for pid in pids_of_machine(worker.proc.pid, worker.tmp):
                title_now = proc_title(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    continue
                self.processes_killed.append(f"{pid} {title_now[:80]}")
            time.sleep(0.2)
        report.killed_at = time.time()
        report.notes.append(f"{len(self.processes_killed)} processes of {worker.name} killed")
        self.report = report
        time.sleep(3)
        report.query_survived_kill = still = self._query_runs(query[0])
        while still and time.time() - report.killed_at < 60:
            time.sleep(0.5)
            still = self._query_runs(query[0])
        if not still:
            report.query_ended_after_kill = round(time.time() - report.killed_at, 1)
