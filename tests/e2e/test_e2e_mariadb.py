"""A dbt project on a real MariaDB server through Airflow, its profile made from a ``mysql`` Connection (issue 22 item 2).

MariaDB comes from Debian (``mariadb-server``, installed when missing), started by the module
fixture on a free loopback port in a private data folder and stopped after it. The Connection is
what Airflow reads (``AIRFLOW_CONN_MARIADB_WAREHOUSE``, JSON); ``ProfileConfig(conn_id=...,
profile_args={"type": "mariadb"})`` turns it into dbt-mysql's ``mariadb`` target on the worker.

The project is ``fixtures/mariadb_shop``, not the demo shop: the shop needs dbt 1.8+ (``data_tests``,
``unit_tests``) and DuckDB SQL (``group by all``), while dbt-mysql (MySQL and MariaDB) was last
released for dbt 1.7; so the worker venv is ``dbt-core~=1.7.0`` with ``dbt-mysql~=1.7.0``, and its
manifest is made here by that venv's ``dbt parse``. The test checks the rows dbt built, in MariaDB,
and that the password is in no log and no ``profiles.yml`` left on disk.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from manifest_dag.worker.profiles import profile_from_connection, write_profile
from manifest_dag.worker.venv import VenvCache, VenvSpec
from tests.conftest import REPO
from tests.support.airflow_run import E2E_VENV_CACHE, migrate, run_dag_test
from tests.support.apt import apt_install
from tests.support.scheduler_env import free_port

pytestmark = pytest.mark.e2e

PROJECT = REPO / "fixtures" / "mariadb_shop"
REQUIREMENTS = ("dbt-core~=1.7.0", "dbt-mysql~=1.7.0")
CONN_ID = "mariadb_warehouse"
DAG_FILE = '''"""manifest-dag e2e: the MariaDB shop as an Airflow dag (tests/e2e/test_e2e_mariadb.py)."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

dag = DbtDag(
    dag_id="mariadb_shop",
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r}),
    profile_config=ProfileConfig(profile_name="shop", conn_id={conn_id!r}, profile_args={{"type": "mariadb"}}),
    venv_config=VenvConfig(py_requirements={reqs!r}, cache_dir={cache!r}),
    render_config=RenderConfig(test_behavior="after_each"),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''


def _ensure_mariadb() -> None:
    if shutil.which("mariadbd", path="/usr/sbin:/usr/bin") and shutil.which("mariadb-install-db"):
        return
    try:
        apt_install("mariadb-server", "MariaDB")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot install MariaDB: {exc}")


@dataclass
class MariaDB:
    root: Path
    port: int
    password: str
    process: subprocess.Popen

    def sql(self, statement: str, *, user: str = "root") -> str:
        env = {**os.environ, "MYSQL_PWD": self.password if user == "dbt" else ""}
        done = subprocess.run(
            ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", user, "-N", "-B", "-e", statement],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, f"{statement}: {done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    _ensure_mariadb()
    root = tmp_path_factory.mktemp("mariadb")
    data = root / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *user],
        check=True, capture_output=True, timeout=300,
    )
    port = free_port()
    log = (root / "mariadbd.log").open("w")
    process = subprocess.Popen(
        ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={root / 'mysqld.sock'}", f"--pid-file={root / 'mysqld.pid'}", "--skip-name-resolve",
         "--innodb-buffer-pool-size=32M", *user],
        stdout=log, stderr=subprocess.STDOUT,
    )
    server = MariaDB(root, port, "Maria-" + secrets.token_hex(8), process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.sql("select 1")
                break
            except AssertionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"MariaDB did not start: {(root / 'mariadbd.log').read_text()[-2000:]}")
                time.sleep(0.3)
        server.sql(
            "create database shop; create user 'dbt'@'127.0.0.1' identified by '" + server.password + "'; "
            "grant all privileges on shop.* to 'dbt'@'127.0.0.1';"
        )
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _connection_json(server: MariaDB) -> str:
    return json.dumps({
        "conn_type": "mysql", "host": "127.0.0.1", "port": server.port, "login": "dbt",
        "password": server.password, "schema": "shop", "extra": {"ssl_disabled": True},
    })


def test_mariadb_shop_through_airflow_from_a_mysql_connection(mariadb: MariaDB, tmp_path: Path) -> None:
    venv = VenvCache(E2E_VENV_CACHE, log=lambda _: None).ensure(VenvSpec(requirements=REQUIREMENTS))
    project = tmp_path / "mariadb_shop"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))

    # the manifest, as a CI job would make it: dbt parse with the profile our mapping writes
    conn = json.loads(_connection_json(mariadb))
    profile = profile_from_connection(
        SimpleNamespace(conn_id=CONN_ID, extra_dejson=conn.pop("extra"), **conn), "shop", "dev", {"type": "mariadb"}
    )
    profiles_dir = write_profile(profile, tmp_path / "parse-profiles")
    parsed = subprocess.run(
        [str(venv.bin_dir / "dbt"), "parse", "--project-dir", str(project), "--profiles-dir", str(profiles_dir)],
        cwd=project, env={**os.environ, **profile.env}, capture_output=True, text=True, timeout=300,
    )
    assert parsed.returncode == 0, parsed.stdout[-3000:]
    shutil.rmtree(profiles_dir)

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "mariadb_shop_dag.py").write_text(DAG_FILE.format(
        manifest=str(project / "target" / "manifest.json"), project=str(project), conn_id=CONN_ID,
        reqs=list(REQUIREMENTS), cache=str(E2E_VENV_CACHE),
    ))
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    log = tmp_path / "dag_test.log"
    result = run_dag_test(home, dags, "mariadb_shop", log, **{f"AIRFLOW_CONN_{CONN_ID.upper()}": _connection_json(mariadb)})
    failed = {t: r["state"] for t, r in result["tasks"].items() if r["state"] != "success"}
    assert not failed, f"tasks not successful: {failed}; log tail:\n{log.read_text()[-4000:]}"
    assert result["state"] == "success"
    assert len(result["tasks"]) >= 5, result["tasks"]  # 2 seeds, 3 models (their tests after each)

    # what dbt built, read back from MariaDB as the Connection's user
    rows = mariadb.sql(
        "select customer_id, order_count, lifetime_value, first_order_date from shop.customer_orders order by customer_id",
        user="dbt",
    )
    assert [line.split("\t") for line in rows.strip().splitlines()] == [
        ["1", "2", "34.50", "2024-01-03"],
        ["2", "0", "0.00", "NULL"],  # the returned order is filtered out in stg_orders
        ["3", "3", "25.00", "2024-02-01"],
        ["4", "0", "0.00", "NULL"],
    ]
    kinds = mariadb.sql(
        "select table_name, table_type from information_schema.tables where table_schema = 'shop' order by table_name"
    )
    assert dict(line.split("\t") for line in kinds.strip().splitlines()) == {
        "customer_orders": "BASE TABLE", "raw_customers": "BASE TABLE", "raw_orders": "BASE TABLE",
        "stg_customers": "VIEW", "stg_orders": "VIEW",
    }

    # the password reached dbt through its env var only: not in the log, not in a profiles.yml on disk
    assert mariadb.password not in log.read_text()
    text = log.read_text()
    assert "Registered adapter: mariadb" in text or "mariadb" in text
    for path in [*E2E_VENV_CACHE.rglob("profiles.yml"), *tmp_path.rglob("profiles.yml")]:
        assert mariadb.password not in path.read_text(errors="replace"), path
