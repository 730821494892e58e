"""A real, throwaway Airflow 3 deployment for end-to-end tests (issue 7, point 1).

``SchedulerEnv`` starts, in a private temporary directory:

- a PostgreSQL cluster from the system's packages (``apt-get install postgresql`` when missing),
  run as the ``postgres`` user when we are root, listening on 127.0.0.1 on a free port, with a
  password (scram-sha-256) for TCP; it holds two databases: Airflow's metadata DB and the dbt
  warehouse, which dbt reaches as a role of its own (``dbt_warehouse``, another random password:
  the one in the Airflow Connection, kept apart from the metadata DB's);
- an ``AIRFLOW_HOME`` configured by environment variables only: LocalExecutor, parallelism 4, a
  dags folder of the test's own, the metadata DB on that Postgres, an execution API URL and a
  JWT secret (Airflow 3 workers talk to the api-server), the worker venv cache of the test's own;
- ``airflow db migrate``, then ``airflow scheduler``, ``airflow dag-processor`` and
  ``airflow api-server``, each in its own process group.

``executor`` is ``[core] executor``: one executor or several (Airflow 3's multiple executors, e.g.
``"CeleryExecutor,pod:tests.support.pod_executor.PodPerTaskExecutor"``; tasks pick one with
``executor=``). When the CeleryExecutor is among them (issue 20) it also starts a Redis server (Debian's
``redis-server``, installed like Postgres when missing; 127.0.0.1, a free port, a password) as the
broker, and one ``airflow celery worker`` per ``CeleryWorker``: each with its own AIRFLOW_HOME,
HOME, TMPDIR, venv cache, plan cache and log folder, as separate machines would have (the DAG
files and dbt projects are read-only sources both see, as an image would give them), its own
queues and ``[celery] worker_concurrency``.

Every wait is for readiness, not a fixed time: a step fails at once when a process it waits for
has died, and otherwise waits as long as the machine needs (a loaded 2-core machine takes minutes
to start Airflow); ``MANIFEST_DAG_SCHEDULER_READY_TIMEOUT`` (default 1200 s) only guards against a
hang.

``stop()`` ends everything it started, always: the three Airflow process groups (SIGTERM, then
SIGKILL), the Celery workers, the warm dbt processes that tasks left in the venv caches (by their
pid files), Redis and the Postgres cluster (``pg_ctl stop``); then it deletes the directory. It reads task state straight
from the metadata database (cheaper than polling the CLI on two cores).

Usable outside pytest too: ``scripts/scheduler_env.sh [DAGS_DIR]`` starts one and waits for
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.apt import apt_install

REPO = Path(__file__).resolve().parents[2]
PG_USER = "postgres"
META_DB = "airflow_meta"
WAREHOUSE_DB = "warehouse"
PARALLELISM = 4
#: a guard against a hang only: every wait below ends as soon as what it waits for is ready, and
#: fails at once when a process it waits for died (a loaded CI machine may need minutes)
READY_TIMEOUT = float(os.environ.get("MANIFEST_DAG_SCHEDULER_READY_TIMEOUT", "1200"))
CELERY = "CeleryExecutor"


def executor_classes(executor: str) -> list[str]:
    """The class names ``[core] executor`` lists: ``"CeleryExecutor,pod:tests.support.x.PodExec"``
    gives ``["CeleryExecutor", "PodExec"]`` (an entry may be ``alias:module.Class``)."""
    return [item.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for item in executor.split(",") if item.strip()]


class EnvError(RuntimeError):
    """The deployment could not be set up; the message says which step and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_postgres_installed() -> Path:
    """The PostgreSQL server's bin dir, installing Debian's ``postgresql`` package when missing."""
    bindir = pg_bin_dir()
    if bindir:
        return bindir
    apt_install("postgresql", "PostgreSQL (no /usr/lib/postgresql/*/bin/initdb)", EnvError)
    # Debian's package creates and starts a default cluster: we do not use it, so stop it again.
    for conf in glob.glob("/etc/postgresql/*/main"):
        with contextlib.suppress(OSError):
            subprocess.run(["pg_ctlcluster", conf.split("/")[3], "main", "stop"], capture_output=True)
    bindir = pg_bin_dir()
    if not bindir:
        raise EnvError("apt-get installed postgresql but no initdb is under /usr/lib/postgresql/*/bin")
    return bindir


def ensure_apt_package(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` when it is missing."""
    found = shutil.which(binary) or (f"/usr/bin/{binary}" if os.path.exists(f"/usr/bin/{binary}") else None)
    if found:
        return found
    apt_install(package, binary, EnvError)
    found = shutil.which(binary) or (f"/usr/bin/{binary}" if os.path.exists(f"/usr/bin/{binary}") else None)
    if not found:
        raise EnvError(f"apt-get installed {package} but there is no {binary}")
    return found


@dataclass
class Redis:
    """A throwaway Redis (Debian's ``redis-server``) on 127.0.0.1: the Celery broker. Its password
    reaches it on stdin (``redis-server -``), never a file or its command line; no persistence."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "rd-" + secrets.token_hex(16))
    proc: subprocess.Popen | None = None

    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = ensure_apt_package("redis-server", "redis-server")
        self.root.mkdir(parents=True, exist_ok=True)
        config = (
            f"bind 127.0.0.1\nport {self.port}\ndir {self.root}\nsave \"\"\nappendonly no\n"
            f"requirepass {self.password}\nprotected-mode yes\nlogfile {self.root / 'redis.log'}\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.root, text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(config)
        self.proc.stdin.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None:
                log = self.root / "redis.log"
                raise EnvError(f"redis-server exited ({self.proc.returncode}): "
                               f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")
            if time.monotonic() > deadline:
                raise EnvError(f"redis-server not answering on port {self.port} after {READY_TIMEOUT:.0f} s")
            time.sleep(0.2)

    def ping(self) -> bool:
        """AUTH and PING over the wire protocol: ready when it answers ``+PONG``."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                got = b""
                while b"PONG" not in got and b"-" not in got[:1]:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    got += chunk
                return b"+PONG" in got
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class CeleryWorker:
    """One ``airflow celery worker``, standing for a machine of its own: everything it writes is
    under ``root`` (its AIRFLOW_HOME, HOME, TMPDIR, venv cache with its workspaces and warm pools,
    plan cache and task logs)."""

    name: str
    root: Path
    queues: tuple[str, ...] = ("default",)
    concurrency: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    #: the test killed this machine on purpose (its death is not a setup failure)
    killed: bool = False

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def user_home(self) -> Path:
        return self.root / "home"

    @property
    def venv_cache(self) -> Path:
        return self.root / "venvs"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.root / "celery-worker.log"

    def overlay(self) -> dict[str, str]:
        """What differs from the scheduler's environment on this machine."""
        return dict(
            AIRFLOW_HOME=str(self.home),
            HOME=str(self.user_home),
            TMPDIR=str(self.tmp),
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.logs),
            AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR=str(self.venv_cache),
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(self.concurrency),
            MANIFEST_DAG_PLAN_CACHE=str(self.root / "plans"),
            **self.extra_env,
        )


@dataclass
class Postgres:
    """A throwaway cluster in ``root``; ``start()``/``stop()``."""

    root: Path
    bindir: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(12))
    started: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            return ["runuser", "-u", PG_USER, "--", *argv]
        return argv

    def _run(self, argv: list[str], what: str) -> str:
        done = subprocess.run(self._as_owner(argv), capture_output=True, text=True, cwd="/")
        if done.returncode:
            raise EnvError(f"postgres: {what} failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done.stdout

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER, PG_USER)
            shutil.chown(pwfile, PG_USER, PG_USER)
        pwfile.chmod(0o600)
        self._run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth-local=trust",
             "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
            "initdb",
        )
        pwfile.unlink()
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            "-c shared_buffers=64MB"
        )
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
             "-o", opts, "-w", "-t", "60", "start"],
            "pg_ctl start",
        )
        self.started = True
        for db in (META_DB, WAREHOUSE_DB):
            self.sql(f"create database {db}", db="postgres")

    def sql(self, statement: str, db: str = WAREHOUSE_DB) -> str:
        """Run one statement through psql over TCP with the password; tab-separated rows."""
        psql = shutil.which("psql") or str(self.bindir / "psql")
        env = dict(os.environ, PGPASSWORD=self.password)
        done = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "-d", db, "-XAtq", "-F", "\t",
             "-v", "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True, text=True, env=env,
        )
        if done.returncode:
            raise EnvError(f"psql {statement[:80]!r}: {done.stderr.strip()}")
        return done.stdout

    def rows(self, statement: str, db: str = WAREHOUSE_DB) -> list[list[str]]:
        return [line.split("\t") for line in self.sql(statement, db).splitlines() if line]

    def create_role(self, name: str, password: str, db: str = WAREHOUSE_DB) -> None:
        """A login role with ``password`` that may create schemas in ``db``."""
        self.sql(f"create role {name} login password '{password}'", db="postgres")
        self.sql(f"grant connect, create on database {db} to {name}", db="postgres")

    def dump(self, db: str) -> str:
        """``pg_dump --data-only`` of ``db`` as text (every row of every table)."""
        pg_dump = str(self.bindir / "pg_dump")
        env = dict(os.environ, PGPASSWORD=self.password)
        done = subprocess.run(
            [pg_dump, "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "--data-only", "--no-owner", db],
            capture_output=True, text=True, errors="replace", env=env,
        )
        if done.returncode:
            raise EnvError(f"pg_dump {db}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def url(self, db: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if not self.started and not (self.data / "postmaster.pid").exists():
            return
        with contextlib.suppress(EnvError):
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop"],
                      "pg_ctl stop")
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():  # pg_ctl failed: kill the postmaster we started, by its pid
            with contextlib.suppress(Exception):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        self.started = False


@dataclass
class SchedulerEnv:
    """Postgres + Airflow scheduler, dag-processor and api-server; see the module docstring."""

    root: Path
    dags: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    pg: Postgres | None = None
    #: the role dbt uses in the warehouse DB, and its password (the Airflow Connection's)
    warehouse_user: str = "dbt_warehouse"
    warehouse_password: str = field(default_factory=lambda: "wh-" + secrets.token_hex(16))
    api_port: int = field(default_factory=free_port)
    #: one secret shared by the api-server (which checks task tokens) and the scheduler (which signs them)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: the Python whose Airflow runs the deployment (the benchmark runs cosmos's from its own venv)
    python: str = sys.executable
    #: seconds between the DAG processor's looks at the dags folder and re-parses of a file: the
    #: tests write their DAG files first, so once is enough (and saves CPU on small machines)
    reparse_seconds: int = 3600
    #: ``[core] executor``: ``LocalExecutor`` (tasks run under the scheduler), ``CeleryExecutor``
    #: (on ``workers``), or several, comma-separated, the first the default (Airflow 3's multiple
    #: executors; an entry may be ``alias:module.Class``, e.g. the pod-per-task executor of
    #: ``tests/support/pod_executor.py``): tasks pick theirs with ``executor=``
    executor: str = "LocalExecutor"
    #: the Celery workers (``executor="CeleryExecutor"``): see ``add_worker``
    workers: list[CeleryWorker] = field(default_factory=list)
    redis: Redis | None = None
    #: ``[scheduler] task_instance_heartbeat_timeout``: how long a task whose worker vanished stays
    #: "running" before the scheduler fails it (and retries it, when retries are left)
    heartbeat_timeout: int = 300

    def add_worker(self, name: str, queues: tuple[str, ...] = ("default",), concurrency: int = 2) -> CeleryWorker:
        worker = CeleryWorker(name, self.root / "workers" / name, tuple(queues), concurrency)
        self.workers.append(worker)
        return worker

    @property
    def uses_celery(self) -> bool:
        """The CeleryExecutor is one of the executors: Redis and the Celery settings are needed."""
        return CELERY in executor_classes(self.executor)

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def venv_cache(self) -> Path:
        return self.root / "venvs"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def tmp(self) -> Path:
        """The deployment's ``TMPDIR``: what its processes leave in a temp dir is told apart from
        the files other users of a shared machine create in ``/tmp`` meanwhile."""
        return self.root / "tmp"

    def env(self) -> dict[str, str]:
        assert self.pg is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and not k.startswith("MANIFEST_DAG_")}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__EXECUTOR=self.executor,
            AIRFLOW__CORE__PARALLELISM=str(PARALLELISM),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.api_port}/execution/",
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{self.api_port}",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API_AUTH__JWT_SECRET=self.jwt_secret,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.pg.url(META_DB),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=self.pg.url(META_DB, "postgresql+asyncpg"),
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.logs),
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=str(self.reparse_seconds),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=str(self.reparse_seconds),
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
            AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR=str(self.venv_cache),
            MANIFEST_DAG_PLAN_CACHE=str(self.root / "plans"),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            PYTHONUNBUFFERED="1",
            TMPDIR=str(self.tmp),
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(self.heartbeat_timeout),
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
        )
        if self.uses_celery:
            assert self.redis is not None
            env.update(
                AIRFLOW__CELERY__BROKER_URL=self.redis.url(),
                AIRFLOW__CELERY__RESULT_BACKEND="db+" + self.pg.url(META_DB),
                # one process sends tasks to the broker (the default: a core less than the machine)
                AIRFLOW__CELERY__SYNC_PARALLELISM="1",
                # seconds to send a task to Redis; the default 1 s fails sends on a loaded machine
                AIRFLOW__CELERY__OPERATION_TIMEOUT="30",
            )
        if any(item.split(":")[-1].strip().startswith("tests.") for item in self.executor.split(",")):
            # an executor class from this repo's tests/: the scheduler (which loads it), the DAG
            # processor (which checks the tasks' executor= against the list) and the tasks import it
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.update(self.extra_env)
        return env

    def worker_env(self, worker: CeleryWorker) -> dict[str, str]:
        env = self.env()
        env.update(worker.overlay())
        return env

    # -------------------------------------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT) -> None:
        self.start_postgres()
        self.start_airflow(timeout)

    def start_postgres(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.home, self.dags, self.venv_cache, self.logs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        for worker in self.workers:
            for d in (worker.home, worker.user_home, worker.venv_cache, worker.tmp, worker.logs):
                d.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(self.root / "pg", ensure_postgres_installed())
        self.pg.start()
        self.pg.create_role(self.warehouse_user, self.warehouse_password)
        if self.uses_celery:
            self.redis = Redis(self.root / "redis")
            self.redis.start()

    def connection_json(self) -> str:
        """An Airflow Connection (type postgres) to the warehouse DB as the warehouse role, for
        ``AIRFLOW_CONN_<ID>``."""
        assert self.pg is not None
        return json.dumps({
            "conn_type": "postgres", "host": "127.0.0.1", "port": self.pg.port, "login": self.warehouse_user,
            "password": self.warehouse_password, "schema": WAREHOUSE_DB,
        })

    def start_airflow(self, timeout: float = READY_TIMEOUT) -> None:
        self.airflow(["db", "migrate"], timeout=READY_TIMEOUT)
        for name in ("api-server", "scheduler", "dag-processor"):
            argv = [self.python, "-m", "airflow", name]
            if name == "api-server":
                argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
            log = (self.root / f"{name}.log").open("w")
            self.procs[name] = subprocess.Popen(
                argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root
            )
        for worker in self.workers:
            self.start_worker(worker)
        self.wait_healthy(timeout)
        self.wait_workers_ready(timeout)

    def start_worker(self, worker: CeleryWorker) -> None:
        argv = [self.python, "-m", "airflow", "celery", "worker", "--queues", ",".join(worker.queues),
                "--celery-hostname", f"{worker.name}@e2e", "--skip-serve-logs", "--without-mingle",
                "--without-gossip"]
        log = worker.log_file.open("w")
        worker.proc = subprocess.Popen(
            argv, env=self.worker_env(worker), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=worker.root,
        )

    def wait_workers_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every Celery worker says ``ready`` (it consumes its queues from then on)."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            while " ready." not in (worker.log_file.read_text(errors="replace") if worker.log_file.exists() else ""):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise EnvError(f"celery worker {worker.name} not ready after {timeout:.0f} s:\n"
                                   f"{worker.log_file.read_text(errors='replace')[-3000:]}")
                time.sleep(1)

    def airflow(self, args: list[str], timeout: float = READY_TIMEOUT, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [self.python, "-m", "airflow", *args], env=env or self.env(), capture_output=True, text=True,
            timeout=timeout, cwd=self.root,
        )
        if done.returncode:
            raise EnvError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise EnvError(f"airflow {name} exited ({proc.returncode}); log tail:\n{self.log_tail(name)}")
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is not None and not worker.killed:
                raise EnvError(f"celery worker {worker.name} exited ({worker.proc.returncode}):\n"
                               f"{worker.log_file.read_text(errors='replace')[-3000:]}")

    def log_tail(self, name: str, n: int = 4000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        while True:
            self._check_alive()
            with contextlib.suppress(Exception):
                with urllib.request.urlopen(url, timeout=5) as resp:
                    health = json.load(resp)
                if health.get("metadatabase", {}).get("status") == "healthy" and (
                    health.get("scheduler", {}).get("status") == "healthy"
                ) and health.get("dag_processor", {}).get("status") == "healthy":
                    return
            if time.monotonic() > deadline:
                raise EnvError(f"Airflow not healthy after {timeout:.0f} s; api-server log:\n{self.log_tail('api-server')}")
            time.sleep(2)

    # -------------------------------------------------------------------------------------------
    def meta(self, statement: str) -> list[list[str]]:
        assert self.pg is not None
        return self.pg.rows(statement, db=META_DB)

    def wait_dags_parsed(self, dag_ids: list[str], timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        wanted = ",".join(f"'{d}'" for d in dag_ids)
        while True:
            self._check_alive()
            found = {r[0] for r in self.meta(f"select dag_id from dag where dag_id in ({wanted}) and not is_stale")}
            if found == set(dag_ids):
                return
            errors = self.meta("select filename, stacktrace from import_error")
            if errors:
                raise EnvError(f"DAG import errors: {errors}")
            if time.monotonic() > deadline:
                raise EnvError(f"DAGs not parsed after {timeout:.0f} s: missing {set(dag_ids) - found};\n"
                               f"{self.log_tail('dag-processor')}")
            time.sleep(3)

    def trigger(self, dag_id: str) -> str:
        return self.trigger_many([dag_id])[dag_id]

    def trigger_many(self, dag_ids: list[str] | tuple[str, ...]) -> dict[str, str]:
        """Trigger each DAG once, all from one process (what ``airflow dags trigger`` calls): one
        Airflow import instead of one per DAG, which on a loaded 2-core machine took minutes when
        four ran at once. {dag_id: run_id}."""
        runs = {dag_id: f"e2e__{dag_id}__{int(time.time())}" for dag_id in dag_ids}
        script = (
            "import json, sys\n"
            "from airflow.api.client import get_current_api_client\n"
            "client = get_current_api_client()\n"
            "for dag_id, run_id in json.loads(sys.argv[1]).items():\n"
            "    client.trigger_dag(dag_id=dag_id, run_id=run_id, conf=None, logical_date=None,\n"
            "                       triggering_user_name='e2e', replace_microseconds=True)\n"
        )
        proc = subprocess.Popen(
            [self.python, "-c", script, json.dumps(runs)], env=self.env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=self.root,
        )
        try:
            out, err = proc.communicate(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise EnvError(f"triggering {list(runs)} did not finish in {READY_TIMEOUT:.0f} s") from None
        if proc.returncode:
            raise EnvError(f"triggering {list(runs)} failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
        return runs

    def wait_runs(self, runs: dict[str, str], timeout: float) -> dict[str, str]:
        """Wait until every (dag_id → run_id) run is finished; {dag_id: state}."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            states = {}
            for dag_id, run_id in runs.items():
                rows = self.meta(f"select state from dag_run where dag_id='{dag_id}' and run_id='{run_id}'")
                states[dag_id] = rows[0][0] if rows else "missing"
            if all(s in ("success", "failed") for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise EnvError(f"runs not finished after {timeout:.0f} s: {states}; "
                               f"task states: {self.task_states_summary(runs)}")
            time.sleep(5)

    def task_states_summary(self, runs: dict[str, str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for dag_id, run_id in runs.items():
            rows = self.meta(f"select coalesce(state, 'none'), count(*) from task_instance "
                             f"where dag_id='{dag_id}' and run_id='{run_id}' group by 1")
            out[dag_id] = {s: int(n) for s, n in rows}
        return out

    def task_instances(self, runs: dict[str, str], table: str = "task_instance") -> list[dict]:
        """Every task instance of the runs: dag_id, task_id, state, try_number, start and end (epoch s).

        ``table="task_instance_history"``: the earlier tries of retried tasks instead.
        """
        out = []
        for dag_id, run_id in runs.items():
            for row in self.meta(
                "select dag_id, task_id, coalesce(state, 'none'), try_number, "
                f"extract(epoch from start_date), extract(epoch from end_date) from {table} "
                f"where dag_id='{dag_id}' and run_id='{run_id}' and map_index=-1"
            ):
                out.append(dict(dag_id=row[0], task_id=row[1], state=row[2], try_number=int(row[3] or 0),
                                start=float(row[4]) if row[4] else None, end=float(row[5]) if row[5] else None))
        return out

    def task_logs(self) -> list[Path]:
        """Every task log: under AIRFLOW_HOME, and each Celery worker's own."""
        folders = [self.logs, *(w.logs for w in self.workers)]
        return sorted(p for f in folders for p in f.glob("dag_id=*/run_id=*/task_id=*/**/attempt=*.log"))

    # -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything started here, whatever state it is in; never raises."""
        for name, proc in self.procs.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():  # the group may outlive its leader: SIGKILL it regardless
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for worker in self.workers:
            if worker.proc is None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.proc.pid, signal.SIGTERM)
        for worker in self.workers:
            if worker.proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=10)
        # warm dbt processes run in their own sessions (they outlive tasks by design)
        with contextlib.suppress(Exception):
            from manifest_dag.worker.warm import stop_pools

            for cache in (self.venv_cache, *(w.venv_cache for w in self.workers)):
                stop_pools(cache / ".state")
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()


def parse_ms_figures(logs: list[Path]) -> list[float]:
    """``dag_file_parse_ms`` of every task log (Airflow's task runner logs one per attempt)."""
    figures = []
    for path in logs:
        for m in re.finditer(r'dag_file_parse_ms"?\s*[:=]\s*"?([0-9.]+)', path.read_text(errors="replace")):
            figures.append(float(m.group(1)))
    return figures


def peak_concurrency(tis: list[dict]) -> int:
    events = []
    for ti in tis:
        if ti["start"] is not None and ti["end"] is not None:
            events += [(ti["start"], 1), (ti["end"], -1)]
    peak = cur = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        cur += delta
        peak = max(peak, cur)
    return peak


def make_root(prefix: str = "md-sched-") -> Path:
    """A temp dir the ``postgres`` user can enter (pytest's tmp dirs are 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


if __name__ == "__main__":  # pragma: no cover - manual use: scripts/scheduler_env.sh [DAGS_DIR]
    root = make_root()
    dags = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else root / "dags"
    env = SchedulerEnv(root, dags, reparse_seconds=30)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        env.start_postgres()
        env.extra_env["AIRFLOW_CONN_WAREHOUSE"] = env.connection_json()
        env.start_airflow()
        assert env.pg is not None
        print(json.dumps({"root": str(root), "api": f"http://127.0.0.1:{env.api_port}", "dags": str(dags),
                          "postgres": env.pg.url(WAREHOUSE_DB, "postgresql")}, indent=2), flush=True)
        print("running; Ctrl-C stops everything", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        env.stop()
        shutil.rmtree(root, ignore_errors=True)
