"""Warm dbt processes with real dbt: reuse, parallel slots, isolation, crashes, DuckDB locks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvCache, VenvSpec
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS
from tests.e2e.test_e2e_worker import copy_shop

pytestmark = pytest.mark.e2e
PID = re.compile(r"running in warm process (\d+)")


def run(project: Path, args: tuple[str, ...], db: Path, callback=None, **env: str) -> list[str]:
    lines: list[str] = []
    run_dbt(
        DbtInvocation(
            command_args=args,
            project_dir=project,
            venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
            profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=project / "profiles.yml"),
            cache_dir=E2E_VENV_CACHE,
            env={"SHOP_DUCKDB_PATH": str(db), **env},
            install_deps=True,
            warm_processes=2,
        ),
        log=lines.append,
        artifacts_callback=callback,
    )
    return lines


def _exited(pgid: int) -> bool:
    """Every process of group ``pgid`` has exited and closed its files: gone, or a zombie
    (``/proc/<pid>/stat`` state Z/X). A child the process forked holds its sockets too."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state not in ("Z", "X"):
            return False
    return True


def pid_of(lines: list[str]) -> int:
    for line in lines:
        if (m := PID.search(line)) is not None:
            return int(m.group(1))
    raise AssertionError("no warm process in:\n" + "\n".join(lines[-20:]))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = copy_shop(tmp_path / "shop")
    (project / "macros" / "print_env.sql").write_text(
        "{% macro print_env() %}{{ log('SECRET_X=' ~ env_var('SECRET_X', 'absent'), info=True) }}{% endmacro %}\n"
    )
    return project


def test_later_invocations_reuse_the_warm_process(project: Path, tmp_path: Path) -> None:
    first = run(project, ("seed", "--select", "raw_products"), tmp_path / "a.duckdb")
    second = run(project, ("run", "--select", "stg_products"), tmp_path / "a.duckdb")
    assert pid_of(first) == pid_of(second)
    assert not any("starting a warm dbt process" in line for line in second)
    assert any("1 of 1 OK created sql view model main.stg_products" in line for line in second), second[-15:]


def test_warm_runs_write_run_results_and_manifest_json_only_when_wanted(project: Path, tmp_path: Path) -> None:
    """The warm process skips dbt's manifest.json writes and writes run_results.json itself (the
    summary below is read from it); an artifacts_callback gets every artifact dbt writes."""
    import json

    db = tmp_path / "art.duckdb"
    run(project, ("seed", "--select", "raw_products"), db)
    lean = run(project, ("run", "--select", "stg_products"), db)
    assert pid_of(lean)
    assert any(line.startswith("dbt run: 1 nodes") and "PASS=1" in line for line in lean), lean[-10:]
    seen: dict[str, bytes] = {}

    def keep(target: Path) -> None:
        seen.update({p.name: p.read_bytes() for p in target.iterdir() if p.suffix == ".json"})

    full = run(project, ("run", "--select", "stg_products"), db, callback=keep)
    assert pid_of(full) == pid_of(lean)
    assert {"run_results.json", "manifest.json"} <= set(seen), sorted(seen)
    results = json.loads(seen["run_results.json"])
    assert [(r["unique_id"], r["status"]) for r in results["results"]] == [("model.shop.stg_products", "success")]


def test_environment_of_one_invocation_is_gone_in_the_next(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "env.duckdb"
    with_secret = run(project, ("run-operation", "print_env"), db, SECRET_X="hunter2")
    without = run(project, ("run-operation", "print_env"), db)
    assert pid_of(with_secret) == pid_of(without)
    assert any("SECRET_X=hunter2" in line for line in with_secret)
    assert any("SECRET_X=absent" in line for line in without), without[-10:]


def test_two_invocations_at_once_get_two_processes(project: Path, tmp_path: Path) -> None:
    logs: dict[str, list[str]] = {}

    def go(name: str) -> None:
        logs[name] = run(project, ("seed", "--select", name), tmp_path / f"{name}.duckdb")

    threads = [threading.Thread(target=go, args=(n,)) for n in ("raw_orders", "raw_customers")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert len(logs) == 2
    assert pid_of(logs["raw_orders"]) != pid_of(logs["raw_customers"])


def test_a_killed_warm_process_fails_only_that_invocation_which_falls_back(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    run(project, ("parse",), db)  # a warm process exists and the project is parsed
    lines: list[str] = []
    done: dict[str, object] = {}
    killed: list[int] = []

    def watch(line: str) -> None:
        lines.append(line)
        m = PID.search(line)
        if m and not killed:
            killed.append(int(m.group(1)))
            os.killpg(killed[0], signal.SIGKILL)

    def go() -> None:
        try:
            run_dbt(
                DbtInvocation(
                    command_args=("seed", "--select", "raw_order_items"),
                    project_dir=project,
                    venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
                    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=project / "profiles.yml"),
                    cache_dir=E2E_VENV_CACHE,
                    env={"SHOP_DUCKDB_PATH": str(db)},
                    install_deps=True,
                    warm_processes=1,
                ),
                log=watch,
            )
            done["ok"] = True
        except Exception as exc:  # noqa: BLE001
            done["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    t.join(timeout=600)
    assert killed and done.get("ok"), (done, lines[-20:])
    assert any("running dbt as a fresh process instead" in line for line in lines)
    assert any("PASS=1" in line for line in lines)
    # the next invocation starts a replacement process
    after = run(project, ("seed", "--select", "raw_products"), db)
    assert pid_of(after) != killed[0]


def test_stale_socket_is_detected_and_replaced(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    first = pid_of(run(project, ("seed", "--select", "raw_products"), db))
    os.killpg(first, signal.SIGKILL)
    time.sleep(0.5)
    lines = run(project, ("seed", "--select", "raw_products"), db)
    assert any("stale socket" in line for line in lines) or any("starting a warm dbt process" in line for line in lines)
    assert pid_of(lines) != first


def test_duckdb_file_is_released_for_a_cold_dbt_from_another_process(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    warm = run(project, ("seed", "--select", "raw_products"), db)
    assert pid_of(warm)
    venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS)))
    env = {**venv.environ(), "SHOP_DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    deps = [str(venv.executable("dbt")), "deps", "--project-dir", str(project), "--profiles-dir", str(project)]
    subprocess.run(deps, env=env, cwd=project, capture_output=True, check=True, timeout=300)
    done = subprocess.run(
        [
            str(venv.executable("dbt")),
            "seed",
            "--select",
            "raw_customers",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(tmp_path / "t"),
            "--log-path",
            str(tmp_path / "l"),
        ],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Could not set lock" not in done.stdout


def test_processes_are_recycled_above_the_memory_ceiling_and_reported(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from manifest_dag.worker.invokers import warm_pool_dir
    from manifest_dag.worker.warm import pool_status, stop_pools

    stop_pools(E2E_VENV_CACHE / ".state")  # processes keep the limits they were started with
    db = tmp_path / "m.duckdb"
    first = pid_of(run(project, ("seed", "--select", "raw_products"), db))
    venv_key = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS))).key
    pool = warm_pool_dir(E2E_VENV_CACHE, venv_key, project)
    status = [s for s in pool_status(pool) if s["state"] == "idle"]
    assert status and all(0 < s["rss_mb"] < 2000 for s in status)  # under the default ceiling
    assert sum(s["rss_mb"] for s in status) < 2000 * len(status)
    monkeypatch.setenv("MANIFEST_DAG_WARM_MAX_RSS_MB", "1")  # every process is above 1 MB
    os.killpg(first, signal.SIGKILL)
    # until it has exited, files closed: a process SIGKILLed but not yet gone still takes
    # connections into its backlog, so the next task could reach it, be dropped and run cold under
    # its pid (seen in CI). Its command line empties before its files close (the kernel releases
    # its memory first), so wait for the zombies of its whole process group (killed with it).
    deadline = time.monotonic() + 30
    while not _exited(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    second_lines = run(project, ("seed", "--select", "raw_products"), db)
    time.sleep(1.0)
    third_lines = run(project, ("seed", "--select", "raw_products"), db)
    second, third = pid_of(second_lines), pid_of(third_lines)
    said = "\n".join(line for line in second_lines + ["--- third:"] + third_lines if "warm" in line or "---" in line)
    assert second != first and third != second, said  # each retired after one invocation


# -- issue 19 item 5: one project's code cannot observe another project's invocation ----------------------
#: a dbt Python model (dbt-duckdb runs it inside the dbt process) that patches dbt for every later
#: invocation of its process and records each one's environment: what a hostile project could do
_RECORDER = """
import importlib, json, os

def model(dbt, session):
    dbt.config(materialized="table")
    runner = importlib.import_module("dbt.cli.main").dbtRunner
    if not getattr(runner, "_recorder", False):
        original = runner.invoke

        def spy(self, args, **kwargs):
            with open({log!r}, "a") as fh:
                fh.write(json.dumps({{"pid": os.getpid(), "env": dict(os.environ)}}) + "\\n")
            return original(self, args, **kwargs)

        runner.invoke = spy
        runner._recorder = True
    with open({log!r}, "a") as fh:
        fh.write(json.dumps({{"pid": os.getpid(), "installed": True}}) + "\\n")
    return session.sql("select 1 as x")
"""


def _tiny_project(root: Path, recorder_log: Path | None = None) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        f"name: {root.name}\nversion: '1.0'\nconfig-version: 2\nprofile: tiny\nmodel-paths: [models]\n"
    )
    (root / "profiles.yml").write_text(
        "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('TINY_DB') }}\"\n      threads: 1\n"
    )
    (root / "models" / "plain.sql").write_text("select 1 as x\n")
    if recorder_log is not None:
        (root / "models" / "recorder.py").write_text(_RECORDER.format(log=str(recorder_log)))
    return root


def _private_cache(tmp_path: Path) -> Path:
    """A venv cache of this test's own, its venv a link to the shared e2e one: its state tree
    (warm pools) is out of reach of other test sessions, which stop every pool of the shared cache
    when they end, and a patched warm process here can serve no other test."""
    venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS)))
    cache = tmp_path / "venvs"
    cache.mkdir()
    (cache / venv.key).symlink_to(venv.path)
    return cache


def _run_tiny(project: Path, args: tuple[str, ...], db: Path, cache: Path, **env: str) -> list[str]:
    lines: list[str] = []
    run_dbt(
        DbtInvocation(
            command_args=args,
            project_dir=project,
            venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
            profile_config=ProfileConfig(profile_name="tiny", profiles_yml_path=project / "profiles.yml"),
            cache_dir=cache,
            env={"TINY_DB": str(db), **env},
            warm_processes=1,
        ),
        log=lines.append,
    )
    return lines


def _stop(pids: dict[str, int]) -> None:
    """Stop the warm processes these tests started (a patched one must serve no later test)."""
    from manifest_dag.worker.warm import _kill

    for pid in set(pids.values()):
        _kill(pid)


def _observe(tmp_path: Path, pids: dict[str, int]) -> list[dict]:
    """Project A installs its recorder in its warm process; project B runs with a secret; A runs
    again with a marker of its own. Returns what A's recorder saw; ``pids`` gets each run's."""
    log = tmp_path / "recorded.jsonl"
    a = _tiny_project(tmp_path / "project_a", recorder_log=log)
    b = _tiny_project(tmp_path / "project_b")
    cache = _private_cache(tmp_path)
    runs = {
        "a1": (a, "recorder", {}),
        "b": (b, "plain", {"B_TOKEN": "b-s3cret-Vk7q"}),
        "a2": (a, "plain", {"A_MARK": "a-second-run"}),
    }
    for name, (project, model, env) in runs.items():
        lines = _run_tiny(project, ("run", "--select", model), tmp_path / f"{project.name}.duckdb", cache, **env)
        pids[name] = pid_of(lines)
        assert not any("running dbt as a fresh process" in line for line in lines), lines[-20:]
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_one_projects_code_cannot_observe_another_projects_invocation(tmp_path: Path) -> None:
    pids: dict[str, int] = {}
    try:
        records = _observe(tmp_path, pids)
    finally:
        _stop(pids)
    assert any(r.get("installed") and r["pid"] == pids["a1"] for r in records), records
    seen = [r["env"] for r in records if "env" in r]
    # the recorder works: it saw A's own later invocation in A's process
    assert any(env.get("A_MARK") == "a-second-run" for env in seen), seen
    assert pids["a1"] == pids["a2"] != pids["b"]
    assert not any("b-s3cret-Vk7q" in json.dumps(env) for env in seen)
    assert not any("b-s3cret-Vk7q" in json.dumps(r) for r in records)


def test_the_observation_test_sees_the_leak_when_pools_ignore_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same steps with one warm pool for both projects (the boundary before item 5): A's
    recorder sees B's secret. So the test above fails on a build that shares warm processes."""
    from manifest_dag.worker import invokers

    shared = f"shared-{tmp_path.name}"[-40:]
    monkeypatch.setattr(
        invokers,
        "warm_pool_dir",
        lambda cache_root, venv_key, project_dir, scope=None, *, state_dir=None: (
            (state_dir or cache_root / ".state") / "warm" / f"{venv_key}-{shared}"
        ),
    )
    pids: dict[str, int] = {}
    try:
        records = _observe(tmp_path, pids)
    finally:
        _stop(pids)
    assert pids["a1"] == pids["b"] == pids["a2"]
    assert any(r.get("env", {}).get("B_TOKEN") == "b-s3cret-Vk7q" for r in records), records
