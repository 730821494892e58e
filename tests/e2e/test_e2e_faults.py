"""Faults a worker must survive, with real dbt: a task killed mid-run, the venv cache deleted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.airflow_run import VENV_REQUIREMENTS
from tests.conftest import REPO
from tests.e2e.test_e2e_worker import copy_shop

pytestmark = pytest.mark.e2e

RUN = r"""
import sys
from pathlib import Path
from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvSpec
project, cache, db, reqs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
run_dbt(
    DbtInvocation(
        command_args=tuple(sys.argv[5:]),
        project_dir=project,
        venv_spec=VenvSpec(requirements=tuple(reqs)),
        profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=project / "profiles.yml"),
        cache_dir=cache,
        env={"SHOP_DUCKDB_PATH": db},
        install_deps=True,
    ),
    log=lambda line: print(line, flush=True),
)
print("TASK-OK", flush=True)
"""


def task(project: Path, cache: Path, db: Path, *args: str) -> subprocess.Popen[str]:
    """One task's dbt invocation, as a worker process of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(project), str(cache), str(db), ",".join(VENV_REQUIREMENTS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=900)
    return out


def stop_warm(cache: Path) -> None:
    from manifest_dag.worker.warm import stop_pools

    stop_pools(cache / ".state")


def test_a_task_killed_mid_run_is_retried_successfully(tmp_path: Path) -> None:
    project, cache, db = copy_shop(tmp_path / "shop"), tmp_path / "cache", tmp_path / "k.duckdb"
    try:
        assert "TASK-OK" in finish(task(project, cache, db, "seed"))
        proc = task(project, cache, db, "run", "--select", "stg_orders")
        assert proc.stdout is not None
        for line in proc.stdout:  # kill the worker process once dbt is running
            if line.startswith("running: dbt run"):
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        retry = finish(task(project, cache, db, "run", "--select", "stg_orders"))
        assert "TASK-OK" in retry, retry[-3000:]
        assert "PASS=1" in retry
    finally:
        stop_warm(cache)


def test_the_venv_cache_deleted_between_tasks_is_rebuilt(tmp_path: Path) -> None:
    project, cache, db = copy_shop(tmp_path / "shop"), tmp_path / "cache", tmp_path / "d.duckdb"
    try:
        first = finish(task(project, cache, db, "seed", "--select", "raw_products"))
        assert "TASK-OK" in first, first[-3000:]
        stop_warm(cache)
        shutil.rmtree(cache)
        time.sleep(0.2)
        second = finish(task(project, cache, db, "seed", "--select", "raw_products"))
        assert "TASK-OK" in second, second[-3000:]
        assert "creating venv" in second  # built again, from nothing
    finally:
        stop_warm(cache)
