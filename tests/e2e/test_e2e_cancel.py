"""Stopping a task stops its query, with real dbt and a real Postgres (issue 21 item 7).

A model runs ``select ... from pg_sleep(60)``. A task process (a Python child, as Airflow's task
runner is) runs the real ``DbtRunOperator.execute`` in its main thread, with the SIGTERM handler
Airflow's task runner installs (it calls ``on_kill``). Once the query shows in
``pg_stat_activity``, the test stops the task one of two ways:

- ``on_kill``: SIGTERM, then SIGKILL 5 s later if the task is still there, as Airflow's supervisor
  does when a task is marked failed or times out;
- ``sigkill``: SIGKILL at once, as a lost worker or the OOM killer does (no ``on_kill``).

Either way the query must be gone from ``pg_stat_activity`` within a few seconds, on the cold path
(a fresh dbt process) and on the warm path (a long-lived dbt process that outlives the task).
Without the cancel, Postgres runs the query to its end: a backend whose client died notices only
when it next writes to it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifest_dag.worker.venv import VenvCache, VenvSpec
from manifest_dag.worker.warm import stop_pools
from tests.conftest import REPO
from tests.support.airflow_run import E2E_VENV_CACHE
from tests.support.scheduler_env import WAREHOUSE_DB, Postgres, ensure_postgres_installed, make_root

pytestmark = pytest.mark.e2e

REQUIREMENTS = ["dbt-core~=1.11.0", "dbt-postgres~=1.10.0"]
ROLE = "cancel_dbt"
SLEEP = 60
#: how long after the stop the query may still show (dbt's cancel takes a fraction of a second)
GONE_WITHIN = 8.0

TASK = r"""
import json, signal, sys
from manifest_dag import DbtRunOperator, ProfileConfig, VenvConfig
project, cache, warm, reqs = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
op = DbtRunOperator(
    task_id="slow", project_dir=project, select=["slow"],
    venv_config=VenvConfig(py_requirements=reqs, cache_dir=cache, warm_processes=warm),
    profile_config=ProfileConfig(profile_name="cancel", target_name="dev", conn_id="cancel_pg",
                                 profile_args={"schema": "cancel", "threads": 1}),
)
# Airflow's task runner (airflow/sdk/execution_time/task_runner.py) installs just this
signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())


class Log:
    def info(self, msg, *args):
        print(msg % args if args else msg, flush=True)
    warning = error = debug = exception = info


type(op).log = property(lambda self: Log())
try:
    op.execute({})
    print("TASK-SUCCEEDED", flush=True)
except BaseException as exc:
    print(f"TASK-FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
"""


@pytest.fixture(scope="module")
def postgres():
    root = make_root("md-cancel-")
    pg = Postgres(root / "pg", ensure_postgres_installed())
    try:
        pg.start()
        password = "pw-cancel-" + os.urandom(6).hex()
        pg.create_role(ROLE, password)
        yield pg, password
    finally:
        pg.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv cache of this module's own, its venv a link to the shared e2e one: its warm pools are
    out of reach of other test sessions, which stop every pool of the shared cache when they end."""
    venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(REQUIREMENTS)))
    root = tmp_path_factory.mktemp("cancel-venvs")
    (root / venv.key).symlink_to(venv.path)
    yield root
    stop_pools(root / ".state")


def _project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: cancelproj\nversion: '1.0'\nconfig-version: 2\nprofile: cancel\nmodel-paths: [models]\n"
    )
    (root / "models" / "slow.sql").write_text(
        f"{{{{ config(materialized='table') }}}}\nselect 1 as id from pg_sleep({SLEEP})\n"
    )
    return root


def _running(pg: Postgres) -> list[list[str]]:
    return pg.rows(
        "select pid, extract(epoch from now() - query_start) from pg_stat_activity "
        f"where usename = '{ROLE}' and state = 'active' and strpos(query, 'pg_sleep') > 0"
    )


@pytest.mark.parametrize("how", ["on_kill", "sigkill"])
@pytest.mark.parametrize("warm", [0, 1], ids=["cold", "warm"])
def test_a_stopped_tasks_query_is_cancelled(postgres, cache: Path, tmp_path: Path, warm: int, how: str) -> None:
    pg, password = postgres
    # a query an earlier case left running (it failed) must not pass for this case's
    pg.rows(f"select pg_terminate_backend(pid) from pg_stat_activity where usename = '{ROLE}'")
    pg.rows("drop schema if exists cancel cascade")
    project = _project(tmp_path / "project")
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": pg.port, "login": ROLE, "password": password,
            "schema": WAREHOUSE_DB}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW_CONN_CANCEL_PG": json.dumps(conn)}
    log = tmp_path / "task.log"
    with log.open("w") as out:
        task = subprocess.Popen(
            [sys.executable, "-c", TASK, str(project), str(cache), str(warm), json.dumps(REQUIREMENTS)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not _running(pg):
            assert task.poll() is None, f"the task ended before its query ran:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the query never started:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        time.sleep(1.0)  # the query is well under way
        stopped = time.monotonic()
        if how == "on_kill":
            task.send_signal(signal.SIGTERM)
            try:
                task.wait(timeout=5)
            except subprocess.TimeoutExpired:
                task.kill()  # Airflow's supervisor escalates after 5 s
        else:
            task.kill()
        while _running(pg) and time.monotonic() - stopped < GONE_WITHIN:
            time.sleep(0.1)
        gone_after = time.monotonic() - stopped
        text = log.read_text()
        assert not _running(pg), f"the query still runs {gone_after:.1f} s after the stop ({how}):\n{text[-3000:]}"
        assert ("running in warm process" in text) is bool(warm), text[-3000:]
        if how == "on_kill":
            task.wait(timeout=10)
            assert "TASK-FAILED" in text or task.returncode == -signal.SIGKILL, text[-2000:]
            assert "TASK-SUCCEEDED" not in text
        assert not pg.rows("select 1 from pg_tables where tablename = 'slow'"), "the model was built after all"
    finally:
        if task.poll() is None:
            task.kill()
        task.wait(timeout=10)
