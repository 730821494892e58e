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

``stop()`` ends everything it started, always: the three Airflow process groups (SIGTERM, then
SIGKILL), the warm dbt processes that tasks left in the venv cache (by their pid files), and the
Postgres cluster (``pg_ctl stop``); then it deletes the directory. It reads task state straight
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

REPO = Path(__file__).resolve().parents[2]
PG_USER = "postgres"
META_DB = "airflow_meta"
WAREHOUSE_DB = "warehouse"
PARALLELISM = 4


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
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EnvError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and we cannot apt-get it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode:
            raise EnvError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    # Debian's package creates and starts a default cluster: we do not use it, so stop it again.
    for conf in glob.glob("/etc/postgresql/*/main"):
        with contextlib.suppress(OSError):
            subprocess.run(["pg_ctlcluster", conf.split("/")[3], "main", "stop"], capture_output=True)
    bindir = pg_bin_dir()
    if not bindir:
        raise EnvError("apt-get installed postgresql but no initdb is under /usr/lib/postgresql/*/bin")
    return bindir


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
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
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
        )
        env.update(self.extra_env)
        return env

    # -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        self.start_postgres()
        self.start_airflow(timeout)

    def start_postgres(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.home, self.dags, self.venv_cache, self.logs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(self.root / "pg", ensure_postgres_installed())
        self.pg.start()
        self.pg.create_role(self.warehouse_user, self.warehouse_password)

    def connection_json(self) -> str:
        """An Airflow Connection (type postgres) to the warehouse DB as the warehouse role, for
        ``AIRFLOW_CONN_<ID>``."""
        assert self.pg is not None
        return json.dumps({
            "conn_type": "postgres", "host": "127.0.0.1", "port": self.pg.port, "login": self.warehouse_user,
            "password": self.warehouse_password, "schema": WAREHOUSE_DB,
        })

    def start_airflow(self, timeout: float = 180.0) -> None:
        self.airflow(["db", "migrate"], timeout=600)
        for name in ("api-server", "scheduler", "dag-processor"):
            argv = [self.python, "-m", "airflow", name]
            if name == "api-server":
                argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
            log = (self.root / f"{name}.log").open("w")
            self.procs[name] = subprocess.Popen(
                argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root
            )
        self.wait_healthy(timeout)

    def airflow(self, args: list[str], timeout: float = 120) -> str:
        done = subprocess.run(
            [self.python, "-m", "airflow", *args], env=self.env(), capture_output=True, text=True,
            timeout=timeout, cwd=self.root,
        )
        if done.returncode:
            raise EnvError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise EnvError(f"airflow {name} exited ({proc.returncode}); log tail:\n{self.log_tail(name)}")

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

    def wait_dags_parsed(self, dag_ids: list[str], timeout: float = 300) -> None:
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
        run_id = f"e2e__{dag_id}__{int(time.time())}"
        self.airflow(["dags", "trigger", dag_id, "--run-id", run_id])
        return run_id

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
        return sorted(self.logs.glob("dag_id=*/run_id=*/task_id=*/**/attempt=*.log"))

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
        # warm dbt processes run in their own sessions (they outlive tasks by design)
        with contextlib.suppress(Exception):
            from manifest_dag.worker.warm import stop_pools

            stop_pools(self.venv_cache / ".state")
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
