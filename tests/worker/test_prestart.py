"""Issue 20 item 3: ``manifest-dag prestart`` starts a pod's dbt process while Airflow starts.

The warm server listens before its slow import, so a task that connects while dbt is still
importing waits for that process instead of starting another; the launcher finds its task in
Airflow 3's workload, never stands in the command's way, and writes nothing but its pool. Here the
real ``in_venv/dbt_server.py`` serves a fake ``dbt`` whose import takes seconds; the real dbt path
(prepared image, read-only, real dbt) is tests/e2e/test_e2e_pod_per_task.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifest_dag.cli.prestart import INDEX_FORMAT, INDEX_NAME, read_index, start, task_of
from manifest_dag.worker.venv import PREPARED_DIR
from manifest_dag.worker.warm import WarmInvoker, WarmSettings, stop_pool
from tests.conftest import REPO
from tests.worker.test_stop_cancels import FAKE_RUNNER, _gone

#: the fake dbt's import: slow, and it says when it is done
SLOW_IMPORT = """
import os, time
time.sleep(float(os.environ.get("FAKE_DBT_IMPORT_SECONDS", "3")))
with open(os.environ["FAKE_DBT_IMPORTED"], "a") as fh:
    fh.write(f"imported {os.getpid()}\\n")
"""


def _slow_dbt(root: Path) -> Path:
    pkg = root / "fake_site" / "dbt" / "cli"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(SLOW_IMPORT + FAKE_RUNNER)
    return root / "fake_site"


def _invoker(tmp_path: Path, lines: list[str]) -> WarmInvoker:
    pool = tmp_path / "pool"
    pool.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(_slow_dbt(tmp_path))
        if not (tmp_path / "fake_site").exists()
        else str(tmp_path / "fake_site"),
        "FAKE_DBT_IMPORTED": str(tmp_path / "imported.txt"),
    }
    settings = WarmSettings(processes=1, keep_project=False, start_timeout=60, idle_seconds=60)
    return WarmInvoker(Path(sys.executable), env, pool, settings, lines.append)


def test_a_task_uses_the_process_started_ahead_even_while_dbt_still_imports(tmp_path: Path) -> None:
    lines: list[str] = []
    ahead = _invoker(tmp_path, lines)
    pid = ahead.prestart(0)
    assert pid is not None
    try:
        imported = tmp_path / "imported.txt"
        assert ahead._paths(0)[1].exists()  # listening already...
        assert not imported.exists()  # ...while dbt's import has seconds to go
        assert ahead.prestart(0) is None  # a second launcher finds it and starts nothing

        task_lines: list[str] = []
        task = _invoker(tmp_path, task_lines)  # the task, a new process in a pod
        marker = tmp_path / "dbt.txt"
        env = {"FAKE_DBT_MARKER": str(marker), "FAKE_DBT_SECONDS": "0"}
        assert task.invoke(["dbt", "run"], cwd=tmp_path, env=env, on_line=lambda line: None) == 0
        assert imported.read_text().split() == ["imported", str(pid)]  # one import, the early one
        assert marker.read_text().split() == ["started", str(pid)]  # served by the early process
        assert not any("starting a warm dbt process" in line for line in task_lines), task_lines
        assert any(f"running in warm process {pid}" in line for line in task_lines), task_lines
    finally:
        stop_pool(tmp_path / "pool")
    assert _gone(pid)


def test_a_process_that_dies_importing_dbt_leaves_the_task_to_run_cold(tmp_path: Path) -> None:
    """Listening before the import must not turn a broken venv into a hung or failed task: the
    connection closes, the task is told the warm path failed (and runs cold, see FallbackInvoker)."""
    from manifest_dag.worker.warm import WarmUnavailable

    site = tmp_path / "fake_site" / "dbt" / "cli"
    site.mkdir(parents=True)
    (site.parent / "__init__.py").write_text("")
    (site / "__init__.py").write_text("")
    (site / "main.py").write_text("import time; time.sleep(1); raise ImportError('no adapter here')\n")
    lines: list[str] = []
    warm = _invoker(tmp_path, lines)
    pid = warm.prestart(0)
    assert pid is not None
    with pytest.raises(WarmUnavailable):
        warm.invoke(["dbt", "run"], cwd=tmp_path, env={}, on_line=lambda line: None)
    assert _gone(pid)
    assert "no adapter here" in (tmp_path / "pool" / "0.log").read_text()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string",
          json.dumps({"type": "ExecuteTask", "ti": {"dag_id": "shop", "task_id": "orders.run", "map_index": -1}})],
         ("shop", "orders.run")),
        (["python", "-m", "x", '--json-string={"ti": {"dag_id": "d", "task_id": "t"}}'], ("d", "t")),
        (["airflow", "tasks", "run", "shop", "orders.run", "manual__1", "--local"], ("shop", "orders.run")),
        (["airflow", "tasks", "run", "--local", "shop", "orders.run"], ("shop", "orders.run")),
        (["python", "-m", "x", "--json-string", "not json"], None),
        (["python", "-m", "x", "--json-string", '{"ti": {"dag_id": 1}}'], None),
        (["sh", "-c", "echo"], None),
    ],
)  # fmt: skip
def test_the_task_is_read_from_the_executors_command(command: list[str], expected: tuple[str, str] | None) -> None:
    assert task_of(command) == expected


def test_the_task_is_read_from_a_workload_file(tmp_path: Path) -> None:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps({"ti": {"dag_id": "shop", "task_id": "orders.test"}}))
    assert task_of(["python", "-m", "x", "--json-path", str(path)]) == ("shop", "orders.test")


def _prestart(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "manifest_dag.cli", "prestart", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        ("none", "no prepared image at"),
        ("index", "shop.nope is not a dbt task prepared in"),
        ("off", "warm processes are off"),
        ("no-venv", "venv 0123456789abcdef is not in"),
        ("warm-off", "shop.orders.run runs dbt as a fresh process (its VenvConfig turns warm processes off)"),
    ],
)
def test_the_command_runs_whatever_prestart_cannot_do(tmp_path: Path, setup: str, said: str) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    if setup != "none":
        (cache / PREPARED_DIR).mkdir()
        index = {
            "format": INDEX_FORMAT,
            "pools": [{"venv": {"key": "0123456789abcdef"}, "project_dir": str(tmp_path), "warm_scope": None,
                       "msgpack": None, "warm_off": setup == "warm-off"}],
            "tasks": {"shop": {"orders.run": 0}},
        }  # fmt: skip
        (cache / PREPARED_DIR / INDEX_NAME).write_text(json.dumps(index))
        assert read_index(cache) == index
    task = "nope" if setup == "index" else "orders.run"
    env = {"MANIFEST_DAG_WARM_PROCESSES": "0"} if setup == "off" else {}
    out = tmp_path / "ran.txt"
    done = _prestart(
        tmp_path, "--cache-dir", str(cache), "--dag-id", "shop", "--task-id", task,
        "--", sys.executable, "-c", f"import sys; open({str(out)!r}, 'w').write(' '.join(sys.argv[1:])); sys.exit(3)",
        "a b", "c", env=env,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # the command's own exit code: it replaced the launcher
    assert out.read_text() == "a b c"  # its argv as given
    assert f"manifest-dag prestart: {said}" in done.stderr, done.stderr
    assert not (cache / ".state").exists() and not list(cache.rglob("*.lock"))  # nothing written


def test_prestart_needs_a_command(tmp_path: Path) -> None:
    done = _prestart(tmp_path, "--dag-id", "d", "--task-id", "t")
    assert done.returncode == 2
    assert "give the task's command after --" in done.stderr


def test_start_with_a_prepared_index_and_venv_starts_the_pool_the_task_will_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool ``start`` picks is the one ``default_invoker`` gives the task (same venv key,
    project, scope, state dir), so the task finds the process there."""
    from manifest_dag.worker import venv as venv_module
    from manifest_dag.worker.invokers import default_invoker
    from manifest_dag.worker.venv import VenvCache
    from manifest_dag.worker.workspace import slot_project

    cache_root = tmp_path / "cache"
    key = "0123456789abcdef"
    (cache_root / PREPARED_DIR).mkdir(parents=True)
    index = {
        "format": INDEX_FORMAT,
        "pools": [{"venv": {"key": key}, "project_dir": str(tmp_path / "shop"), "warm_scope": "team-a",
                   "msgpack": "partial_parse/k/partial_parse.msgpack"}],
        "tasks": {"shop": {"orders.run": 0}},
    }  # fmt: skip
    (cache_root / PREPARED_DIR / INDEX_NAME).write_text(json.dumps(index))
    prepared = cache_root / PREPARED_DIR / "partial_parse" / "k" / "partial_parse.msgpack"
    prepared.parent.mkdir(parents=True)
    prepared.write_bytes(b"\x80")
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    site = _slow_dbt(tmp_path)
    python = tmp_path / "bin" / "python"  # the venv's Python: a venv's server gets no PYTHONPATH
    python.parent.mkdir()
    python.write_text(
        f"#!/bin/sh\nexport PYTHONPATH={site} FAKE_DBT_IMPORT_SECONDS=0 FAKE_DBT_IMPORTED={tmp_path / 'imported.txt'}\n"
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    fake_venv = venv_module.Venv(key=key, path=tmp_path, python=python, bin_dir=python.parent, built=False)
    monkeypatch.setattr(VenvCache, "prepared_venv", lambda self, k: fake_venv if k == key else None)
    monkeypatch.setenv("MANIFEST_DAG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MANIFEST_DAG_WARM_PROCESSES", "1")
    task = default_invoker(
        fake_venv, VenvCache(cache_root), None, lambda line: None, project_dir=tmp_path / "shop", warm_scope="team-a"
    )
    pool = task.warm.pool_dir  # type: ignore[attr-defined]
    said = start(cache_root, "shop", "orders.run")
    assert said.startswith("started warm dbt process "), said
    pid = int(said.split()[4])
    try:
        assert f"pool {pool})" in said
        assert int((pool / "0.pid").read_text()) == pid
        # warmed up on the prepared msgpack as the task's workspace (slot 0, this state dir) will hold it
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        root = slot_project(tmp_path / "state", tmp_path / "shop", 0)
        for flag, value in (("--warm-up", str(prepared)), ("--warm-up-root", str(root)), ("--warm-up-project", "shop")):
            assert argv[argv.index(flag.encode()) + 1].decode() == value, argv
        deadline = time.monotonic() + 30
        while not (tmp_path / "imported.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "imported.txt").read_text().split() == ["imported", str(pid)]
    finally:
        stop_pool(pool)
    assert _gone(pid)
