"""Warm dbt processes on a worker: per-task dbt start-up from seconds to a fraction of one.

A fresh ``dbt`` process spends seconds importing dbt and its adapter before it does anything; a
process that stays up pays that once. Each venv key gets a small pool of such processes
(``in_venv/dbt_server.py``, run with the venv's Python) on each worker:

- slot ``i`` of a pool is a file lock, a Unix socket and a pid file under
  ``<venv cache>/.state/warm/<key>/``; a task takes the first free slot's lock (never waits for
  a busy one), so parallel tasks each get their own process and never queue behind each other;
- the first task to use a slot starts its process, in a new session, so it outlives the task and
  Airflow's clean-up of the task's processes; the process exits by itself when idle, after N
  invocations, or above a memory ceiling;
- a process that is gone, refuses connections, or leaves a stale socket is killed by its pid
  (after checking the pid is really ours) and replaced;
- a task that is stopped (Airflow's on_kill, its execution timeout) cancels its invocation the way
  the cold path does: SIGINT to the process, whose dbt then cancels its open queries, replies and
  retires (a process interrupted mid-invocation is not trusted with the next one); SIGTERM and
  SIGKILL follow if it has not exited after short waits (``processes.INTERRUPT_GRACE``,
  ``TERM_GRACE``). A task process that dies without a word (SIGKILL) closes its connection, and
  the process interrupts itself the same way (see ``in_venv/dbt_server.py``).

Never worse than the cold path: ``FallbackInvoker`` runs dbt as a fresh subprocess, saying so in
the task log, whenever the warm path fails for any reason other than dbt's own result (no free
slot, server that will not start, socket or protocol error, crash mid-run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from manifest_dag.core import settings
from manifest_dag.core.errors import DbtRunError
from manifest_dag.core.files import create_private, make_private_dir
from manifest_dag.worker import Log
from manifest_dag.worker.processes import INTERRUPT_GRACE, TERM_GRACE
from manifest_dag.worker.slots import take_free_slot

if TYPE_CHECKING:
    from manifest_dag.worker.invokers import Invoker

SERVER = Path(__file__).resolve().parent / "in_venv" / "dbt_server.py"


class WarmUnavailable(Exception):
    """The warm path cannot serve this invocation; run dbt cold instead."""


@dataclass(frozen=True)
class WarmSettings:
    """How many warm processes per venv, and when they retire."""

    processes: int = 2
    idle_seconds: float = 600.0
    max_invocations: int = 500
    max_rss_mb: float = 2000.0
    start_timeout: float = 120.0
    #: keep the parsed project between invocations (``in_venv/manifest_reuse.py``)
    keep_project: bool = True

    @classmethod
    def from_env(cls, processes: int | None = None) -> WarmSettings:
        """Settings from ``MANIFEST_DAG_WARM_*`` environment variables, with defaults.

        ``PROCESSES`` (0 = off; default: how many tasks the worker runs at once, see
        ``worker_task_parallelism``, else its cores, at least 2) unless given,
        ``IDLE_SECONDS``, ``MAX_INVOCATIONS``, ``MAX_RSS_MB`` and ``KEEP_PROJECT``.
        """

        if processes is None:
            default = worker_task_parallelism() or max(2, os.cpu_count() or 2)
            processes = int(settings.number(settings.WARM_PROCESSES, default))
        return cls(
            processes=processes,
            idle_seconds=settings.number(settings.WARM_IDLE_SECONDS, cls.idle_seconds),
            max_invocations=int(settings.number(settings.WARM_MAX_INVOCATIONS, cls.max_invocations)),
            max_rss_mb=settings.number(settings.WARM_MAX_RSS_MB, cls.max_rss_mb),
            keep_project=not settings.is_off(settings.WARM_KEEP_PROJECT),
        )


#: executor class name -> the Airflow option that bounds how many tasks one worker runs at once
_WORKER_SLOTS = {
    "LocalExecutor": ("core", "parallelism"),
    "CeleryExecutor": ("celery", "worker_concurrency"),
    "CeleryKubernetesExecutor": ("celery", "worker_concurrency"),
    "EdgeExecutor": ("edge", "worker_concurrency"),
}


def worker_task_parallelism() -> int | None:
    """How many tasks this worker may run at once, from Airflow's configuration; None if unknown.

    A pool that size lets every task running at once have its own warm process, so none falls back
    to a cold start because the pool is full. It costs no memory up front: a slot's process starts
    only when a task finds every other one busy, and retires when idle. A KubernetesExecutor pod
    runs one task. With several executors configured, the largest figure wins. A Celery worker
    started with ``--concurrency`` overrides its config where we cannot see it: set
    ``MANIFEST_DAG_WARM_PROCESSES`` there.
    """
    try:
        from airflow.configuration import conf
    except Exception:  # noqa: BLE001 - no Airflow (a plain script calling run_dbt): unknown
        return None
    found: list[int] = []
    try:
        executors = str(conf.get("core", "executor", fallback="") or "")
        for entry in executors.split(","):
            name = entry.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1]
            if name == "KubernetesExecutor":
                found.append(1)
            elif name in _WORKER_SLOTS:
                value = conf.getint(*_WORKER_SLOTS[name], fallback=0)
                if value > 0:  # core.parallelism = 0 means unbounded: no figure to size a pool by
                    found.append(value)
    except Exception:  # noqa: BLE001 - a malformed option must not fail the task: use the default
        return None
    return max(found) if found else None


def _is_our_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"dbt_server.py" in cmdline


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # its own session: the group id is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _kill(pid: int) -> None:
    if pid > 0 and _is_our_server(pid):
        _signal(pid, signal.SIGKILL)


def _stop(pid: int, interrupt_grace: float = INTERRUPT_GRACE, term_grace: float = TERM_GRACE) -> None:
    """Cancel the invocation process ``pid`` runs, as the cold path stops dbt: SIGINT (dbt cancels
    its open queries; the process replies and exits), SIGTERM after ``interrupt_grace`` seconds,
    SIGKILL after ``term_grace`` more. Gone means no longer our server (a zombie has no cmdline)."""
    for sig, grace in ((signal.SIGINT, interrupt_grace), (signal.SIGTERM, term_grace)):
        if pid <= 0 or not _is_our_server(pid):
            return
        _signal(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _is_our_server(pid):
                return
            time.sleep(0.05)
    _kill(pid)


#: bytes a Unix socket path may hold on Linux (``sun_path`` is 108 with its closing NUL)
SOCKET_PATH_MAX = 107


def socket_path(pool_dir: Path, slot: int | str) -> Path:
    """Slot ``slot``'s socket: in the pool dir, or, when that path would be too long for a Unix
    socket, in a private folder under the temp dir named for the pool (the same for every task).

    A deep venv cache would otherwise make every warm start fail after dbt's import, and every
    task run cold, slowly, without a word.
    """
    own = pool_dir / f"{slot}.sock"
    if len(os.fsencode(own)) <= SOCKET_PATH_MAX:
        return own
    digest = hashlib.sha256(os.fsencode(pool_dir.resolve())).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"manifest-dag-{os.getuid()}" / digest
    if len(os.fsencode(short / f"{slot}.sock")) > SOCKET_PATH_MAX:  # a deep TMPDIR too
        short = Path("/tmp") / f"manifest-dag-{os.getuid()}" / digest  # a private 0700 folder
    make_private_dir(short)
    return short / f"{slot}.sock"


class WarmInvoker:
    """An ``Invoker`` that sends dbt command lines to a warm process of the venv's pool."""

    def __init__(self, python: Path, env: Mapping[str, str], pool_dir: Path, settings: WarmSettings, log: Log) -> None:
        self.python = python
        self.server_env = dict(env)
        self.pool_dir = pool_dir
        self.settings = settings
        self.log = log
        self._current_pid: int | None = None
        self._said_short = False
        self.affinity: int | None = None
        self.synced: Mapping[str, Any] | None = None  # see trust_sync
        #: a prepared msgpack to warm a new process up on before it serves (``prestart``); "" = none
        self.warm_up: str | None = None
        #: the folder the task's workspace copy will be in, and the project's name: the warm-up
        #: decodes the msgpack rewritten for it, byte for byte what the workspace will place
        self.warm_up_root: str | None = None
        self.warm_up_project: str | None = None

    # -- slots -------------------------------------------------------------------------------
    def _paths(self, i: int) -> tuple[Path, Path, Path]:
        sock = socket_path(self.pool_dir, i)
        if sock.parent != self.pool_dir and not self._said_short:
            self._said_short = True
            self.log(
                f"warm dbt: {self.pool_dir / f'{i}.sock'} is longer than a Unix socket path may be "
                f"({SOCKET_PATH_MAX} bytes); this pool's sockets live under {sock.parent} instead"
            )
        return self.pool_dir / f"{i}.lock", sock, self.pool_dir / f"{i}.pid"

    def trust_sync(self, synced: Mapping[str, Any] | None) -> None:
        """The workspace sync's record of the project copy (``Workspace.synced_files``) for the
        next request: the server compares its fingerprint instead of walking the copy's files
        again (see ``in_venv/project_state.py``). None: it walks them."""
        self.synced = synced

    def prefer_slot(self, slot: int) -> None:
        """Try slot ``slot`` first: the task's workspace slot, whose project the process that
        served it last still holds parsed (see ``in_venv/manifest_reuse.py``)."""
        self.affinity = slot

    def _take_slot(self) -> tuple[int, FileLock]:
        prefer = self.affinity
        taken = take_free_slot(
            self.pool_dir, self.settings.processes, within=self.pool_dir.parent, prefer=prefer
        )  # warm/<key>: 0700
        if taken is None:
            raise WarmUnavailable(f"all {self.settings.processes} warm dbt processes of this venv are busy")
        return taken

    def _pid(self, i: int) -> int:
        try:
            return int(self._paths(i)[2].read_text().strip())
        except (OSError, ValueError):
            return 0

    def _connect(self, sock_path: Path) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(sock_path))
        except OSError:
            sock.close()
            raise
        return sock

    def _start(self, i: int) -> None:
        _, sock_path, pid_path = self._paths(i)
        _kill(self._pid(i))
        sock_path.unlink(missing_ok=True)
        log_path = self.pool_dir / f"{i}.log"  # the process's stderr: why it died, if it did
        with create_private(log_path) as err:  # may quote dbt errors: 0600
            proc = subprocess.Popen(  # noqa: S603 - argv list
                [
                    str(self.python),
                    str(SERVER),
                    str(sock_path),
                    "--idle",
                    str(self.settings.idle_seconds),
                    "--max-invocations",
                    str(self.settings.max_invocations),
                    "--max-rss-mb",
                    str(self.settings.max_rss_mb),
                    *([] if self.settings.keep_project else ["--no-keep-project"]),
                    *([] if self.warm_up is None else ["--warm-up", self.warm_up]),
                    *([] if not self.warm_up_root else ["--warm-up-root", self.warm_up_root]),
                    *([] if not self.warm_up_project else ["--warm-up-project", self.warm_up_project]),
                ],
                env=self.server_env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # dbt's console copy; tasks get the lines over the socket
                stderr=err,
                start_new_session=True,
            )
        with create_private(pid_path) as fh:
            fh.write(str(proc.pid).encode())
        deadline = time.monotonic() + self.settings.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise WarmUnavailable(f"warm dbt process exited at start (code {proc.returncode}); see {log_path}")
            if sock_path.exists():
                return
            time.sleep(0.05)
        _kill(proc.pid)
        raise WarmUnavailable(f"warm dbt process did not start within {self.settings.start_timeout:.0f} s")

    def _session(self, i: int) -> socket.socket:
        """A connection to slot ``i``'s process, starting (or replacing) it when needed."""
        sock_path = self._paths(i)[1]
        if sock_path.exists():
            try:
                return self._connect(sock_path)
            except OSError as exc:
                self.log(f"warm dbt: slot {i} has a stale socket ({exc.strerror}); replacing its process")
        self.log(f"warm dbt: starting a warm dbt process for this venv (slot {i} of {self.settings.processes})")
        self._start(i)
        try:
            return self._connect(sock_path)
        except OSError as exc:
            raise WarmUnavailable(f"cannot connect to the new warm dbt process: {exc}") from None

    def prestart(self, slot: int = 0) -> int | None:
        """Start slot ``slot``'s process ahead of the task that will use it; its pid, or None
        when the slot is busy or already has a process listening.

        For a pod that runs one task (``manifest-dag prestart``): dbt's import and warm-up then
        overlap Airflow's own start-up instead of following it. The process listens at once (see
        ``in_venv/dbt_server.py``), so the task connects and waits for it rather than starting
        another; the slot's lock is held only while the process starts.
        """
        taken = take_free_slot(self.pool_dir, slot + 1, within=self.pool_dir.parent, prefer=slot)
        if taken is None:
            return None
        i, lock = taken
        try:
            if i != slot:
                return None
            sock_path = self._paths(i)[1]
            if sock_path.exists():
                with contextlib.suppress(OSError), self._connect(sock_path):
                    return None  # a live process already listens there
            self._start(i)
            return self._pid(i)
        finally:
            lock.release()

    # -- Invoker -------------------------------------------------------------------------------
    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Log) -> int:
        i, lock = self._take_slot()
        try:
            started = time.monotonic()
            sock = self._session(i)
            self._current_pid = self._pid(i)
            self.log(f"warm dbt: running in warm process {self._current_pid} (slot {i} of {self.settings.processes})")
            with sock:
                request: dict = {"args": list(argv[1:]), "cwd": str(cwd), "env": dict(env)}
                if self.synced is not None:
                    request["synced"] = dict(self.synced)
                try:
                    sock.sendall(json.dumps(request).encode() + b"\n")
                    reader = sock.makefile("rb")
                    for raw in reader:
                        msg = json.loads(raw)
                        if "log" in msg:
                            on_line(str(msg["log"]))
                        elif "note" in msg:
                            self.log(str(msg["note"]))
                        elif "exit" in msg:
                            if msg.get("error"):
                                on_line(f"dbt: {msg['error']}")
                            self.log(f"warm dbt: invocation took {time.monotonic() - started:.2f} s")
                            return int(msg["exit"])
                except (OSError, ValueError) as exc:
                    _kill(self._pid(i))
                    raise WarmUnavailable(f"warm dbt process failed mid-run: {exc}") from None
                except BaseException:
                    # the task is stopped mid-run (its execution timeout raises here): cancel the
                    # invocation, so its queries do not outlive the task
                    _stop(self._pid(i))
                    raise
            _kill(self._pid(i))
            raise WarmUnavailable("warm dbt process closed the connection before dbt finished")
        finally:
            self._current_pid = None
            lock.release()

    def kill(self) -> None:
        """Airflow stops the task: cancel its dbt invocation (SIGINT, then SIGTERM and SIGKILL if
        the process is still there; it retires either way, and the slot frees)."""
        if self._current_pid:
            _stop(self._current_pid)


def pool_status(pool_dir: Path, timeout: float = 0.5) -> list[dict]:
    """Each slot's process: pid, invocations served and RSS (MB), or ``busy``/``down``."""
    out: list[dict] = []
    for pid_path in sorted(pool_dir.glob("*.pid")):
        slot = pid_path.stem
        sock_path = socket_path(pool_dir, slot)
        entry: dict = {"slot": slot}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(sock_path))
                sock.sendall(b'{"ping": true}\n')
                reply = json.loads(sock.makefile("rb").readline())
            entry.update(pid=reply["pong"], invocations=reply["invocations"], rss_mb=reply["rss_mb"], state="idle")
        except TimeoutError:  # socket.timeout
            entry["state"] = "busy"
        except (OSError, ValueError, KeyError):
            entry["state"] = "down"
        out.append(entry)
    return out


def stop_pool(pool_dir: Path) -> int:
    """Stop the warm dbt processes of one pool (by their pid files); returns how many."""
    stopped = 0
    for pid_file in pool_dir.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if _is_our_server(pid):
            _kill(pid)
            stopped += 1
        pid_file.unlink(missing_ok=True)
    return stopped


def stop_pools(state_dir: Path) -> int:
    """Stop every warm dbt process under ``<state>/warm`` (tests, ``venv prune``); returns how many."""
    return sum(stop_pool(pool) for pool in (state_dir / "warm").glob("*/") if pool.is_dir())


#: dbt's console line when it starts a node (``12:00:01  1 of 5 START sql view model ...``)
_NODE_STARTED = re.compile(r"\b\d+ of \d+ START\b")


class FallbackInvoker:
    """Warm first; a cold subprocess when the warm path fails before dbt started any node."""

    def __init__(self, warm: WarmInvoker, cold: Invoker, log: Log) -> None:
        self.warm = warm
        self.cold = cold
        self.log = log
        self.killed = False

    def prefer_slot(self, slot: int) -> None:
        self.warm.prefer_slot(slot)

    def trust_sync(self, synced: Mapping[str, Any] | None) -> None:
        self.warm.trust_sync(synced)

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Log) -> int:
        if argv[1:2] == ["deps"]:
            return self.cold.invoke(argv, cwd=cwd, env=env, on_line=on_line)
        started: list[str] = []

        def watch(line: str) -> None:
            if not started and _NODE_STARTED.search(line):
                started.append(line)
            on_line(line)

        try:
            return self.warm.invoke(argv, cwd=cwd, env=env, on_line=watch)
        except Exception as exc:
            if self.killed:  # Airflow stopped the task: do not start dbt again
                return -int(signal.SIGTERM)
            why = str(exc) if isinstance(exc, WarmUnavailable) else f"{type(exc).__name__}: {exc}"
            if started:
                # dbt had begun running nodes (hooks, non-transactional SQL): running them again in
                # this try could do work twice; this try fails, and Airflow's retries decide
                raise DbtRunError(
                    f"the warm dbt process failed after dbt had started running nodes ({why}); not running "
                    f"`dbt {' '.join(argv[1:])}` a second time in this try: the task fails, and Airflow's "
                    f"retries decide. First node started: {started[0].strip()}",
                    command=" ".join(argv[1:]),
                ) from exc
            self.log(f"warm dbt unavailable ({why}); running dbt as a fresh process instead")
        return self.cold.invoke(argv, cwd=cwd, env=env, on_line=on_line)

    def kill(self) -> None:
        self.killed = True
        self.warm.kill()
        self.cold.kill()
