"""A real CeleryExecutor deployment: two Celery workers that share nothing writable on disk (issue 20,
items 1 and 2).

One module fixture sets it up (``tests/support/scheduler_env.py`` with ``executor="CeleryExecutor"``):
Postgres (metadata DB and warehouse), Redis (Debian's ``redis-server``, with a password: the broker),
a scheduler, a DAG processor, an api-server, and two ``airflow celery worker`` processes, ``A`` on
queues ``default,dbt111`` and ``B`` on ``default,dbt110``, ``[celery] worker_concurrency`` 2 each.
Each worker stands for a machine of its own: its own AIRFLOW_HOME, HOME, TMPDIR, venv cache (with
its workspaces, kept msgpacks and warm pools), plan cache and task-log folder. The DAG files and dbt
projects are read-only sources both see, as an image gives them; the test checks nothing is
written there.

At deploy time, B pre-builds the dbt 1.10 venv with ``manifest-dag venv build --dags DAGS --queue
dbt110`` (the venvs of the tasks routed to its extra queue). Then three DAGs run at once:

- ``shop_pg``: the shop project on Postgres (as in the real-scheduler test: the DuckDB-only models
  excluded), dbt 1.11, default queue;
- ``synth_pg``: the generated synthetic project (``SYNTH_MODELS`` models; what fits the CI budget), dbt
  1.11, default queue, with the second and third secrets of the real-scheduler test (a profile
  password from ``profile_args`` and a secret dbt var printed by one model);
- ``routed_110``: a few synth models with ``VenvConfig(dbt 1.10, queue="dbt110")``: they must run
  on B only, in the venv B pre-built (no task builds it);

and, once ``routed_110`` is done (B's queue must not be stranded), ``kill_pg``: one slow model
(``pg_sleep``), ``retries=1``. While its query runs, the test SIGKILLs every process of the worker
that runs it (``MachineKiller``: a lost node, warm dbt processes included). The scheduler finds the
task's heartbeat gone (``task_instance_heartbeat_timeout`` 45 s here) and retries it on the other
worker. Every DAG has ``retries=1``: the other tasks the dead worker was running are retried on the
survivor too; nothing else runs twice.

After the runs, the task logs of both workers, every file under the test's root, the files new in
``/tmp`` and a dump of the metadata DB are searched for the four secrets (the broker's password is
the fourth).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.test_e2e_scheduler import (
    API_KEY_ENV,
    DAG_FILE,
    KILL_MODEL,
    KILL_SLEEP_SECONDS,
    KILL_SQL,
    KILL_TASK,
    LOUD_LINE,
    LOUD_MODEL,
    REQUIREMENTS,
    SHOP_EXCLUDE,
    SHOP_MANIFEST,
    SYNTH_ROLE,
    TOKEN_ENV,
    _owner_only,
    parse_synth_manifest,
)
from tests.support import secret_scan
from tests.support.scheduler_env import (
    CELERY,
    META_DB,
    PARALLELISM,
    CeleryWorker,
    EnvError,
    SchedulerEnv,
    make_root,
    parse_ms_figures,
    peak_concurrency,
)
from tests.support.scheduler_faults import MachineKiller
from tests.support.synth_project import generate_project

pytestmark = pytest.mark.e2e

#: the synthetic DAG's size: what fits this module's share of the CI budget (9 minutes on 2 cores)
SYNTH_MODELS = int(os.environ.get("MANIFEST_DAG_CELERY_SYNTH_MODELS", "60"))
REQUIREMENTS_110 = ["dbt-core~=1.10.0", "dbt-postgres~=1.10.0"]
ROUTED_MODELS = [f"m{i:04d}" for i in range(4)]
ROUTED_QUEUE = "dbt110"
CONCURRENCY = 2
HEARTBEAT_TIMEOUT = 45
RUN_TIMEOUT = float(os.environ.get("MANIFEST_DAG_SCHEDULER_TIMEOUT", "1200"))
MAIN_DAGS = ("shop_pg", "synth_pg", "routed_110")
DAG_IDS = (*MAIN_DAGS, "kill_pg")
RETRY = '{"retries": 1, "retry_delay": timedelta(seconds=5)}'
SECRET_NAMES = ["broker_password", "profile_token", "secret_var", "warehouse_password"]


def write_dags(env: SchedulerEnv, synth_manifest: Path) -> None:
    synth = str(synth_manifest.parent.parent)
    common = dict(select=[], operator_args=RETRY, secret_vars="{}", reqs=REQUIREMENTS)
    files = {
        "shop_pg": dict(
            doc="The demo shop project on Postgres", manifest=str(SHOP_MANIFEST), project=str(REPO / "fixtures" / "shop"),
            deps=True, profile="shop", profile_args=repr({"schema": "shop", "threads": 1}), exclude=SHOP_EXCLUDE,
            tests="after_each", **common),
        "synth_pg": dict(
            doc=f"A {SYNTH_MODELS}-model synthetic project on Postgres", manifest=str(synth_manifest), project=synth,
            deps=False, profile="synth",
            profile_args=f'{{"schema": "synth", "threads": 1, "user": {SYNTH_ROLE!r}, "password": os.environ[{TOKEN_ENV!r}]}}',
            exclude=[KILL_MODEL], tests="none",
            **{**common, "secret_vars": f'{{"api_key": SecretVar(env_var={API_KEY_ENV!r})}}'}),
        "kill_pg": dict(
            doc="One slow model whose worker machine the test kills mid-run", manifest=str(synth_manifest),
            project=synth, deps=False, profile="synth", profile_args=repr({"schema": "kill", "threads": 1}),
            exclude=[], tests="none", **{**common, "select": [KILL_MODEL]}),
    }
    for dag_id, fmt in files.items():
        (env.dags / f"{dag_id}_dag.py").write_text(DAG_FILE.format(dag_id=dag_id, **fmt))
    routed = DAG_FILE.format(
        doc="A few synth models on dbt 1.10, routed to the workers that carry that venv", dag_id="routed_110",
        manifest=str(synth_manifest), project=synth, deps=False, profile="synth",
        profile_args=repr({"schema": "routed", "threads": 1}), exclude=[], tests="none", reqs=REQUIREMENTS_110,
        select=ROUTED_MODELS, operator_args=RETRY, secret_vars="{}")
    old = f"venv_config=VenvConfig(py_requirements={REQUIREMENTS_110!r})"
    assert routed.count(old) == 1, "DAG_FILE changed: its venv_config line is not there once"
    (env.dags / "routed_110_dag.py").write_text(
        routed.replace(old, f"venv_config=VenvConfig(py_requirements={REQUIREMENTS_110!r}, queue={ROUTED_QUEUE!r})"))


def prebuild(env: SchedulerEnv, worker: CeleryWorker, queue: str) -> subprocess.Popen:
    """``manifest-dag venv build --dags DAGS --queue QUEUE`` on the worker's machine (its env)."""
    log = (worker.root / f"venv-build-{queue}.log").open("w")
    return subprocess.Popen(
        [str(Path(env.python).parent / "manifest-dag"), "venv", "build", "--dags", str(env.dags), "--queue", queue, "-q"],
        env=env.worker_env(worker), stdout=log, stderr=subprocess.STDOUT, cwd=worker.root,
    )


def worker_of(env: SchedulerEnv, path: Path) -> str:
    for w in env.workers:
        if path.is_relative_to(w.logs):
            return w.name
    return "scheduler"


def scan_for_secrets(env: SchedulerEnv, tmp_before: dict, found_secrets: dict[str, str]) -> dict:
    """Every file under the test's root (both workers' machines), every file new in /tmp, and the
    metadata DB (every row, dumped): which secrets are where. Two planted files prove the scan sees
    a leak."""
    root, tmp = env.root, Path(tempfile.gettempdir())
    planted_root = root / "e2e-canary" / "planted.txt"
    planted_root.parent.mkdir()
    planted_root.write_text("\n".join(found_secrets.values()))
    fd, name = tempfile.mkstemp(prefix="md-e2e-canary-", dir=tmp)
    with os.fdopen(fd, "w") as fh:
        fh.write(" ".join(found_secrets.values()))
    planted_tmp = Path(name)
    try:
        root_files = [Path(p) for p in secret_scan.snapshot(root)]
        tmp_new = [p for p in secret_scan.new_or_changed(tmp_before, secret_scan.snapshot(tmp))
                   if not p.is_relative_to(root)]
        files = secret_scan.scan_files(root_files + tmp_new, found_secrets)
    finally:
        planted_root.unlink(missing_ok=True)
        planted_tmp.unlink(missing_ok=True)
    dump = env.pg.dump(META_DB) if env.pg else ""
    planted = {str(planted_root), str(planted_tmp)}
    return dict(
        files=files.files, megabytes=round(files.bytes / 1e6, 1), skipped=files.skipped,
        files_per_worker={w.name: sum(1 for p in root_files if p.is_relative_to(w.root)) for w in env.workers},
        tmp_new_or_changed=len(tmp_new), metadata_db_dump_lines=dump.count("\n"),
        dump_has_every_dag=all(d in dump for d in DAG_IDS),
        planted_found={p: sorted(files.hits.get(p, set())) for p in planted},
        file_hits={p: sorted(h) for p, h in files.hits.items() if p not in planted},
        db_hits=sorted(secret_scan.scan_text("dump", dump, found_secrets)),
        profiles_left=[str(p) for p in secret_scan.files_named(root_files, "profiles.yml")],
    )


@pytest.fixture(scope="module")
def deployment():
    tmp_before = secret_scan.snapshot(Path(tempfile.gettempdir()))
    root = make_root("md-celery-")
    env = SchedulerEnv(root, root / "dags", executor=CELERY, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    a = env.add_worker("A", ("default", "dbt111"), CONCURRENCY)
    b = env.add_worker("B", ("default", ROUTED_QUEUE), CONCURRENCY)
    token = "tok-" + secrets.token_hex(16)
    api_key = "ak-" + secrets.token_hex(16)
    killer: MachineKiller | None = None
    started_all = time.monotonic()
    try:
        synth = root / "synth"
        generate_project(synth, SYNTH_MODELS)
        (synth / "models" / f"{KILL_MODEL}.sql").write_text(KILL_SQL)
        loud = synth / "models" / f"{LOUD_MODEL}.sql"
        loud.write_text(LOUD_LINE + loud.read_text())
        synth_manifest = parse_synth_manifest(synth)
        env.dags.mkdir(parents=True, exist_ok=True)
        write_dags(env, synth_manifest)
        sources = {p: sig for src in (env.dags, synth, REPO / "fixtures" / "shop")
                   for p, sig in secret_scan.snapshot(src).items()}
        env.start_postgres()
        assert env.pg is not None and env.redis is not None
        env.pg.create_role(SYNTH_ROLE, token)
        for schema, owner in (("shop", env.warehouse_user), ("kill", env.warehouse_user),
                              ("routed", env.warehouse_user), ("synth", SYNTH_ROLE)):
            env.pg.sql(f"create schema {schema} authorization {owner}")
        env.extra_env.update(AIRFLOW_CONN_WAREHOUSE=env.connection_json(), **{TOKEN_ENV: token, API_KEY_ENV: api_key})
        build = prebuild(env, b, ROUTED_QUEUE)  # B's deploy step, while Airflow starts
        env.start_airflow()
        if build.wait() != 0:
            raise EnvError(f"manifest-dag venv build on B failed:\n{(b.root / 'venv-build-dbt110.log').read_text()[-3000:]}")
        env.wait_dags_parsed(list(DAG_IDS))
        setup_seconds = time.monotonic() - started_all
        started = time.monotonic()
        runs = env.trigger_many(MAIN_DAGS)
        env.wait_runs({"routed_110": runs["routed_110"]}, timeout=RUN_TIMEOUT)
        runs.update(env.trigger_many(["kill_pg"]))
        killer = MachineKiller(env, "kill_pg", runs["kill_pg"], KILL_TASK, marker="pg_sleep", timeout=RUN_TIMEOUT)
        killer.start()
        states = env.wait_runs(runs, timeout=RUN_TIMEOUT)
        elapsed = time.monotonic() - started
        killer.stop()
        killer.join(timeout=90)
        tis = env.task_instances(runs)
        history = env.task_instances(runs, table="task_instance_history")
        logs = env.task_logs()
        owners = {(s, o) for s, o in env.pg.rows(  # tables and views
            "select n.nspname, pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in ('shop', 'synth', 'kill', 'routed') and c.relkind in ('r', 'v')")}
        kill_rows = env.pg.rows(f"select count(*) from kill.{KILL_MODEL}")
        sources_after = {p: sig for src in (env.dags, synth, REPO / "fixtures" / "shop")
                         for p, sig in secret_scan.snapshot(src).items()}
        scan_started = time.monotonic()
        scan = scan_for_secrets(env, tmp_before, {
            "warehouse_password": env.warehouse_password, "profile_token": token, "secret_var": api_key,
            "broker_password": env.redis.password})
        scan["seconds"] = round(time.monotonic() - scan_started, 1)
        yield dict(env=env, a=a, b=b, runs=runs, states=states, tis=tis, history=history, logs=logs,
                   elapsed=elapsed, setup_seconds=setup_seconds, kill=killer.report, kill_error=killer.error,
                   killed_machine=killer.machine, processes_killed=killer.processes_killed, owners=owners,
                   kill_rows=kill_rows, sources=(sources, sources_after), scan=scan, api_key=api_key,
                   build_log=(b.root / "venv-build-dbt110.log").read_text(errors="replace"))
    except EnvError as exc:
        pytest.fail(f"the Celery deployment failed: {exc}")
    finally:
        if killer is not None:
            killer.stop()
        env.stop()
        if os.environ.get("MANIFEST_DAG_KEEP_SCHEDULER_ENV"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- helpers ----------------------------------------------------------------------------------------
def _lines(logs: list[Path], needle: str) -> list[str]:
    return [line for path in logs for line in path.read_text(errors="replace").splitlines() if needle in line]


def _on(deployment, worker: str, dag_id: str | None = None) -> list[Path]:
    """The task logs written on ``worker`` (of ``dag_id``)."""
    w = deployment[worker.lower()]
    return [p for p in deployment["logs"] if p.is_relative_to(w.logs) and (dag_id is None or f"dag_id={dag_id}/" in str(p))]


def _attempt(path: Path) -> tuple[str, str, int]:
    m = re.search(r"dag_id=([^/]+)/run_id=[^/]+/task_id=([^/]+)/(?:.*/)?attempt=(\d+)\.log$", str(path))
    assert m, path
    return m.group(1), m.group(2), int(m.group(3))


def _killed(deployment) -> tuple[str, str]:
    """(the killed worker's name, the survivor's)."""
    dead = deployment["killed_machine"]
    assert dead in ("A", "B"), f"no worker was killed: {deployment['kill_error']}"
    return dead, "B" if dead == "A" else "A"


def _retried(deployment) -> set[tuple[str, str]]:
    return {(t["dag_id"], t["task_id"]) for t in deployment["history"]}


# -- the tests --------------------------------------------------------------------------------------
def test_every_task_succeeded_and_only_the_dead_workers_tasks_ran_twice(deployment) -> None:
    tis = deployment["tis"]
    not_ok = {(t["dag_id"], t["task_id"]): t["state"] for t in tis if t["state"] != "success"}
    assert not not_ok, f"tasks not successful: {not_ok}"
    assert deployment["states"] == dict.fromkeys(DAG_IDS, "success")
    by_dag = {d: [t for t in tis if t["dag_id"] == d] for d in DAG_IDS}
    assert len(by_dag["synth_pg"]) == SYNTH_MODELS
    assert len(by_dag["shop_pg"]) > 20
    assert sorted(t["task_id"] for t in by_dag["routed_110"]) == sorted(f"{m}_run" for m in ROUTED_MODELS)
    # a second try only for what the dead machine was running: its first try's log is there
    dead, survivor = _killed(deployment)
    retried = _retried(deployment)
    assert ("kill_pg", KILL_TASK) in retried
    first_tries = {(d, t) for d, t, n in map(_attempt, _on(deployment, dead)) if n == 1 and (d, t) in retried}
    assert first_tries == retried, (first_tries, retried)
    for t in tis:
        assert t["try_number"] == (2 if (t["dag_id"], t["task_id"]) in retried else 1), t
    # every task has exactly one log per try, each on one machine: nothing ran twice unseen
    attempts = [(_attempt(p), worker_of(deployment["env"], p)) for p in deployment["logs"]]
    keys = [k for k, _ in attempts]
    assert len(keys) == len(set(keys)), "a try has two logs"
    assert len(keys) == len(tis) + len(retried), (len(keys), len(tis), len(retried))


def test_both_workers_ran_tasks_in_parallel_within_their_concurrency(deployment) -> None:
    env: SchedulerEnv = deployment["env"]
    for w in ("A", "B"):
        assert len(_on(deployment, w)) >= 10, f"worker {w} ran {len(_on(deployment, w))} tasks"
    assert 2 <= peak_concurrency(deployment["tis"]) <= PARALLELISM
    assert {worker_of(env, p) for p in deployment["logs"]} == {"A", "B"}


def test_the_killed_workers_task_was_retried_and_finished_on_the_other_worker(deployment) -> None:
    report = deployment["kill"]
    assert report is not None, f"no worker was killed: {deployment['kill_error']}"
    dead, survivor = _killed(deployment)
    assert report.query_seconds_before_kill < KILL_SLEEP_SECONDS  # killed while dbt's query ran
    assert len(deployment["processes_killed"]) >= 4, deployment["processes_killed"]  # worker, pool, supervisor, runner
    kill_logs = sorted((_attempt(p)[2], worker_of(deployment["env"], p)) for p in _on(deployment, dead, "kill_pg")
                       + _on(deployment, survivor, "kill_pg"))
    assert kill_logs == [(1, dead), (2, survivor)], kill_logs
    first = [t for t in deployment["history"] if t["dag_id"] == "kill_pg"]
    assert [(t["try_number"], t["state"]) for t in first] in ([(1, "failed")], [(1, "up_for_retry")]), first
    final = [t for t in deployment["tis"] if t["dag_id"] == "kill_pg"]
    assert [(t["try_number"], t["state"]) for t in final] == [(2, "success")], final
    # the first try's dbt died with its machine before it committed: one table, one row
    assert deployment["kill_rows"] == [["1"]]
    assert _lines(_on(deployment, survivor, "kill_pg"), "OK created sql table model kill.slow_kill")
    assert not _lines(_on(deployment, dead, "kill_pg"), "OK created sql table model")


def test_routed_tasks_ran_only_on_the_worker_of_their_queue_in_its_prebuilt_venv(deployment) -> None:
    env: SchedulerEnv = deployment["env"]
    routed = [p for p in deployment["logs"] if "dag_id=routed_110/" in str(p)]
    assert routed and {worker_of(env, p) for p in routed} == {"B"}
    assert all(t["dag_id"] != "routed_110" or t["try_number"] == 1 for t in deployment["tis"])
    running = _lines(routed, "running: dbt run")
    assert len(running) == len(ROUTED_MODELS) and all("(dbt 1.10." in line for line in running), running
    assert not _lines(routed, "creating venv"), "a routed task built its venv: the deploy-time build did not match"
    assert "ready at" in deployment["build_log"] and "built in" in deployment["build_log"], deployment["build_log"]
    assert ("routed", env.warehouse_user) in deployment["owners"]
    # A never needed the dbt 1.10 venv: its cache holds the dbt 1.11 one alone
    a, b = deployment["a"], deployment["b"]
    assert len(_venv_keys(a)) == 1 and len(_venv_keys(b)) == 2, (_venv_keys(a), _venv_keys(b))


def _venv_keys(worker: CeleryWorker) -> list[str]:
    return sorted(p.name for p in worker.venv_cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_each_worker_built_each_venv_once(deployment) -> None:
    """A builds the dbt 1.11 venv once (the first task; the others wait for it); so does B, which
    had the dbt 1.10 one from its deploy step. No venv is shared: two machines, two builds."""
    for w in ("A", "B"):
        built = _lines(_on(deployment, w), "creating venv")
        assert len(built) == 1, (w, built)
        assert f" at {deployment[w.lower()].venv_cache}/" in built[0], (w, built)  # in its own cache
    assert _lines(deployment["logs"], "another process is building it"), "no task waited for a build"


def test_each_workers_warm_pool_is_sized_by_its_worker_concurrency(deployment) -> None:
    """``[celery] worker_concurrency`` 2: every warm line says ``of 2``, each worker's tasks used
    slots 0 and 1 only, and most tasks ran in a warm process that an earlier task started."""
    slot = re.compile(r"warm dbt: (starting a warm dbt process for this venv|running in warm process \d+) \(slot (\d+) of (\d+)\)")
    for w in ("A", "B"):
        found = [m for line in _lines(_on(deployment, w), "warm dbt: ") if (m := slot.search(line))]
        assert found, w
        assert {int(m.group(3)) for m in found} == {CONCURRENCY}, (w, {m.group(3) for m in found})
        assert {int(m.group(2)) for m in found} <= set(range(CONCURRENCY)), w
        runs = [m for m in found if m.group(1).startswith("running")]
        starts = [m for m in found if m.group(1).startswith("starting")]
        assert len(runs) >= 10 and len(starts) <= len(runs) // 3, (w, len(runs), len(starts))


def test_partial_parsing_is_reused_on_both_workers(deployment) -> None:
    """dbt parses in full at most once per slot and DAG on each worker (its first task there: the
    msgpack beside the manifest was written for another profile or vars, or by another dbt); every
    other task reuses partial parsing."""
    for w in ("A", "B"):
        logs = _on(deployment, w)
        for dag_id in DAG_IDS:
            not_reused = _lines([p for p in logs if f"dag_id={dag_id}/" in str(p)], "partial parse was not reused")
            assert len(not_reused) <= CONCURRENCY, (w, dag_id, not_reused)
        not_reused = _lines(logs, "partial parse was not reused")
        assert len(logs) - len(not_reused) >= len(logs) * 0.75, (w, len(logs), len(not_reused))


def test_the_read_only_sources_were_not_written(deployment) -> None:
    before, after = deployment["sources"]
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    # Python's own bytecode cache of the DAG files is the one thing a parse may write beside them
    assert not {p for p in changed if "__pycache__" not in p}, sorted(changed)[:20]


def _leaks(deployment) -> tuple[dict[str, list[str]], set[str]]:
    """(files holding a secret where none may be, dbt's own files in a worker's private state tree
    that hold the secret var its project read: a kept msgpack or the slot's dbt.log, as in the
    real-scheduler test)."""
    env: SchedulerEnv = deployment["env"]
    kept = set()
    for p, found in deployment["scan"]["file_hits"].items():
        for w in env.workers:
            state = w.venv_cache / ".state"
            if found == ["secret_var"] and Path(p).is_relative_to(state) and (
                Path(p).name.startswith("partial_parse.msgpack") or Path(p).name == "dbt.log"
            ) and _owner_only(Path(p), state):
                kept.add(p)
    return {p: f for p, f in deployment["scan"]["file_hits"].items() if p not in kept}, kept


def test_no_secret_in_logs_files_or_the_metadata_db(deployment) -> None:
    scan = deployment["scan"]
    assert all(found == SECRET_NAMES for found in scan["planted_found"].values()), scan["planted_found"]
    assert scan["dump_has_every_dag"]
    assert all(n > 100 for n in scan["files_per_worker"].values()), scan["files_per_worker"]
    env: SchedulerEnv = deployment["env"]
    assert not [f for f in scan["skipped"] if f.startswith(str(env.root))], scan["skipped"]
    leaks, _kept = _leaks(deployment)
    assert not leaks, f"secrets in files: {leaks}"
    assert not scan["db_hits"], f"secrets in the metadata DB: {scan['db_hits']}"
    # the one profiles.yml left is the killed task's, on the dead machine's disk, in its private
    # folder (0700; the file holds no secret: the scan above read it): a later task on that machine
    # would sweep it, but none ran there
    dead, _ = _killed(deployment)
    dead_tmp = deployment[dead.lower()].tmp
    for left in map(Path, scan["profiles_left"]):
        assert left.parent.parent == dead_tmp and left.parent.name.startswith("manifest-dag-profile-"), left
        assert left.parent.stat().st_mode & 0o077 == 0 and left.stat().st_mode & 0o077 == 0, left
    # the secret dbt var reached dbt and was masked in the log the worker wrote
    loud = [p for p in deployment["logs"] if f"task_id={LOUD_MODEL}_run/" in str(p) and "dag_id=synth_pg/" in str(p)]
    lines = _lines(loud, "E2E-LOUD api_key=")
    assert lines and all("E2E-LOUD api_key=***" in line for line in lines), lines


def _overheads(deployment) -> dict:
    """Per task of ``shop_pg`` that ran in an already started warm process: its duration in the
    metadata DB, and that minus dbt's own invocation time (what the task costs around dbt)."""
    tis = {(t["dag_id"], t["task_id"]): t for t in deployment["tis"]}
    took = re.compile(r"warm dbt: invocation took ([0-9.]+) s")
    durations, overheads = [], []
    for path in deployment["logs"]:
        dag_id, task_id, attempt = _attempt(path)
        if dag_id != "shop_pg" or attempt != 1:
            continue
        text = path.read_text(errors="replace")
        if "starting a warm dbt process" in text or "creating venv" in text or "dbt deps: installing" in text:
            continue
        m = took.search(text)
        ti = tis.get((dag_id, task_id))
        if not m or not ti or ti["start"] is None or ti["end"] is None:
            continue
        durations.append(ti["end"] - ti["start"])
        overheads.append(ti["end"] - ti["start"] - float(m.group(1)))
    med = (lambda v: round(statistics.median(v), 2) if v else None)
    return {"n": len(durations), "median_task_seconds": med(durations), "median_overhead_seconds": med(overheads)}


def test_report_figures(deployment) -> None:
    logs, tis, scan = deployment["logs"], deployment["tis"], deployment["scan"]
    dead, survivor = _killed(deployment)
    per_worker = {}
    for w in ("A", "B"):
        on = _on(deployment, w)
        per_worker[w] = {
            "queues": ",".join(deployment[w.lower()].queues),
            "task_tries_run": len(on),
            "by_dag": {d: len([p for p in on if f"dag_id={d}/" in str(p)]) for d in DAG_IDS},
            "venv_builds_by_tasks": len(_lines(on, "creating venv")),
            "venvs_in_cache": len(_venv_keys(deployment[w.lower()])),
            "warm_processes_started": len(_lines(on, "starting a warm dbt process")),
            "tasks_in_a_warm_process": len(_lines(on, "running in warm process")),
            "tasks_reusing_partial_parse": len(on) - len(_lines(on, "partial parse was not reused")),
            "tasks_parsing_in_full": len(_lines(on, "partial parse was not reused")),
        }
    kill = deployment["kill"]
    figures = {
        "synth_models": SYNTH_MODELS,
        "tasks": len(tis),
        "per_worker": per_worker,
        "prebuilt_on_B_at_deploy": [line for line in deployment["build_log"].splitlines() if "ready at" in line],
        "kill": {
            "machine_killed": dead, "processes_killed": len(deployment["processes_killed"]),
            "tasks_retried": sorted(f"{d}.{t}" for d, t in _retried(deployment)),
            "retried_on": survivor,
            "retry_started_seconds_after_kill": next(
                (round(t["start"] - kill.killed_at, 1) for t in tis if t["dag_id"] == "kill_pg" and t["start"]), None),
            "dbt_query_ended_seconds_after_kill": kill.query_ended_after_kill,
        },
        "secrets": {"secrets": len(SECRET_NAMES), "files": scan["files"], "megabytes": scan["megabytes"],
                    "metadata_db_dump_lines": scan["metadata_db_dump_lines"],
                    "leaks": len(_leaks(deployment)[0]) + len(scan["db_hits"]),
                    "secret_var_in_dbts_own_private_files": len(_leaks(deployment)[1]),
                    "profiles_yml_left_on_the_dead_machine": len(scan["profiles_left"]), "seconds": scan["seconds"]},
        "warm_celery_task_shop_pg": _overheads(deployment),
        "dag_file_parse_ms_median": statistics.median(parse_ms_figures(logs)) if parse_ms_figures(logs) else None,
        "setup_seconds": round(deployment["setup_seconds"], 1),
        "wall_seconds_trigger_to_done": round(deployment["elapsed"], 1),
    }
    assert figures["warm_celery_task_shop_pg"]["n"] >= 5, figures["warm_celery_task_shop_pg"]
    print("\ncelery e2e figures: " + json.dumps(figures, indent=2, default=str))
