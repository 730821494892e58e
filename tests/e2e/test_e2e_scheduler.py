"""A real Airflow 3 deployment: scheduler, dag-processor and api-server with the LocalExecutor and
parallelism 4, Postgres as metadata DB and as dbt warehouse (issue 7, points 1, 3 and 5; issue 12).

One module fixture sets it all up (``tests/support/scheduler_env.py``), triggers four DAGs at once and
waits for them; the tests then read what happened:

- ``shop_pg``: the demo shop project (``fixtures/shop``) with its profile made from an Airflow
  Connection of type postgres. The shop is written for DuckDB: three models use DuckDB-only SQL
  (``group by all`` in ``int_orders_with_totals`` and ``product_performance``, ``interval 1 day``
  in the ``shop_utils`` package's ``utils_calendar``), so those and everything downstream of them
  are excluded here;
- ``synth_pg``: a generated 200-model project (``tests/support/synth_project.py``) whose SQL runs on
  Postgres, its manifest made by ``dbt parse`` in the test. Its profile logs in as a role of its
  own whose password (the second secret) comes from ``ProfileConfig.profile_args``; a secret dbt
  var (the third secret, ``ProjectConfig.secret_vars`` read from a worker env var) is printed by
  one model through dbt's ``log()``, so the real task log must show it masked;
- ``shop_duckdb``: the full demo DAG (``examples/dags/shop_dag.py``, what ``make demo`` runs:
  every seed, snapshot, model and test of the shop on DuckDB, ``dbt-duckdb``), its DuckDB file
  under the test's root; its tasks run in parallel on one DuckDB file;
- ``kill_pg``: one model of the synthetic project (``slow_kill``: ``pg_sleep``) with
  ``retries=1``; while its dbt query runs, the test SIGKILLs the task's worker process (the task
  runner, see ``tests/support/scheduler_faults.py``); the retry must succeed.

The two Postgres DAGs and the kill DAG ask for the same ``py_requirements`` from a venv cache that
starts empty, so the first tasks (up to 4 at once) all want the venv: exactly one must build it
(and one builds the DuckDB DAG's venv). Every generated DAG file ends with a probe that logs what
the parse built inside a task's parsing context (``E2E-PROBE``): the task-scoped build.

After the runs, the task logs, every file under the test's root (AIRFLOW_HOME, the venv cache and
its workspaces, ...), the files created or changed in ``/tmp`` meanwhile, the rendered templates,
XCom and a dump of the whole metadata DB are searched for the three secrets.

``make scheduler-test`` runs just this module; ``make test`` runs it with the other e2e tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import secret_scan
from tests.support.airflow_run import E2E_VENV_CACHE
from tests.conftest import REPO
from tests.support.scheduler_env import (
    META_DB,
    PARALLELISM,
    EnvError,
    SchedulerEnv,
    make_root,
    parse_ms_figures,
    peak_concurrency,
)
from tests.support.scheduler_faults import WorkerKiller
from tests.support.synth_project import generate_project, profiles_yml

pytestmark = pytest.mark.e2e

REQUIREMENTS = ["dbt-core~=1.11.0", "dbt-postgres~=1.10.0"]
DUCKDB_REQUIREMENTS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]
SYNTH_MODELS = 200
#: DuckDB-only SQL in the shop project (see the module docstring): not built on Postgres.
SHOP_EXCLUDE = ["int_orders_with_totals+", "product_performance+", "utils_calendar+"]
RUN_TIMEOUT = float(os.environ.get("MANIFEST_DAG_SCHEDULER_TIMEOUT", "1200"))
SHOP_MANIFEST = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
DAG_IDS = ("kill_pg", "shop_pg", "synth_pg", "shop_duckdb")

#: the model whose task is killed mid-run: long enough to be caught, short enough to retry
KILL_MODEL = "slow_kill"
KILL_TASK = f"{KILL_MODEL}_run"  # test_behavior none: one `dbt run` task per model
KILL_SLEEP_SECONDS = 20
KILL_SQL = f"{{{{ config(materialized='table') }}}}\nselect 1 as id from pg_sleep({KILL_SLEEP_SECONDS})\n"
#: the synthetic DAG's own warehouse role; its password is the second secret
SYNTH_ROLE = "synth_writer"
TOKEN_ENV = "E2E_SYNTH_WAREHOUSE_TOKEN"
#: the third secret: a secret dbt var of the synthetic DAG (ProjectConfig.secret_vars), read from
#: this worker env var, which one model prints through dbt's log(): the task log must mask it
API_KEY_ENV = "E2E_SYNTH_API_KEY"
LOUD_MODEL = "m0000"
LOUD_LINE = "{{ log('E2E-LOUD api_key=' ~ var('api_key', 'unset'), info=True) }}\n"

#: appended to every DAG file: inside a task's parsing context, log what this parse built
PROBE = '''

# --- e2e probe (tests/e2e/test_e2e_scheduler.py): what did this parse build? ---
from airflow.sdk import get_parsing_context as _e2e_parsing_context

if _e2e_parsing_context().task_id is not None:
    import logging as _e2e_logging

    _e2e_logging.getLogger("manifest_dag.e2e").warning(
        "E2E-PROBE dag=%s task=%s built=%d planned=%d",
        dag.dag_id, _e2e_parsing_context().task_id, len(dag.task_dict), len(dag.dbt_plan),
    )
'''

DAG_FILE = '''
"""{doc}: an Airflow DAG generated by tests/e2e/test_e2e_scheduler.py."""
import os
from datetime import timedelta

import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, SecretVar, VenvConfig

dag = DbtDag(
    dag_id={dag_id!r},
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r}, install_deps={deps!r},
                                 secret_vars={secret_vars}),
    profile_config=ProfileConfig(profile_name={profile!r}, target_name="dev", conn_id="warehouse",
                                 profile_args={profile_args}),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(select={select!r}, exclude={exclude!r}, test_behavior={tests!r}),
    operator_args={operator_args},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    max_active_tasks=8,
)
''' + PROBE


def demo_dag_file() -> str:
    """``examples/dags/shop_dag.py`` as is, but for its repo path (the copy lives elsewhere), its
    dag_id and the probe."""
    text = (REPO / "examples" / "dags" / "shop_dag.py").read_text()
    for old, new in (
        ("REPO = Path(__file__).resolve().parents[2]", f"REPO = Path({str(REPO)!r})"),
        ('dag_id="shop",', 'dag_id="shop_duckdb",'),
    ):
        assert text.count(old) == 1, f"examples/dags/shop_dag.py changed: {old!r} is not there once"
        text = text.replace(old, new)
    return text + PROBE


def parse_synth_manifest(project: Path) -> Path:
    """``dbt parse`` the synthetic project with a dbt-postgres venv of the e2e cache (not the
    deployment's: that one must start empty)."""
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(REQUIREMENTS)))
    profiles = project / ".parse-profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(profiles_yml())
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    done = subprocess.run(
        [str(venv.path / "bin" / "dbt"), "parse", "--profiles-dir", str(profiles), "--project-dir", str(project)],
        env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, f"dbt parse failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    shutil.rmtree(profiles)
    return project / "target" / "manifest.json"


def write_dags(env: SchedulerEnv, synth_manifest: Path) -> None:
    synth = synth_manifest.parent.parent
    env.dags.mkdir(parents=True, exist_ok=True)
    common = dict(reqs=REQUIREMENTS, select=[], operator_args="{}", secret_vars="{}")
    (env.dags / "shop_pg_dag.py").write_text(DAG_FILE.format(
        doc="The demo shop project on Postgres", dag_id="shop_pg", manifest=str(SHOP_MANIFEST),
        project=str(REPO / "fixtures" / "shop"), deps=True, profile="shop",
        profile_args=repr({"schema": "shop", "threads": 1}), exclude=SHOP_EXCLUDE, tests="after_each", **common))
    (env.dags / "synth_pg_dag.py").write_text(DAG_FILE.format(
        doc=f"A {SYNTH_MODELS}-model synthetic project on Postgres", dag_id="synth_pg",
        manifest=str(synth_manifest), project=str(synth), deps=False, profile="synth",
        # the second secret: read from the environment at parse time, never written in the file
        profile_args=f'{{"schema": "synth", "threads": 1, "user": {SYNTH_ROLE!r}, "password": os.environ[{TOKEN_ENV!r}]}}',
        exclude=[KILL_MODEL], tests="none", **{**common, "secret_vars": f'{{"api_key": SecretVar(env_var={API_KEY_ENV!r})}}'}))
    (env.dags / "kill_pg_dag.py").write_text(DAG_FILE.format(
        doc="One slow model whose worker the test kills mid-run", dag_id="kill_pg",
        manifest=str(synth_manifest), project=str(synth), deps=False, profile="synth",
        profile_args=repr({"schema": "kill", "threads": 1}), exclude=[], tests="none",
        reqs=REQUIREMENTS, select=[KILL_MODEL], secret_vars="{}",
        operator_args='{"retries": 1, "retry_delay": timedelta(seconds=5)}'))
    (env.dags / "shop_duckdb_dag.py").write_text(demo_dag_file())


def duckdb_relations(env: SchedulerEnv, db: Path) -> set[tuple[str, str]]:
    """(schema, name) of every table and view in the DuckDB file, read with the deployment's
    dbt-duckdb venv (the test's own Python has no duckdb)."""
    pythons = [p for p in env.venv_cache.glob("*/bin/python") if list(p.parent.parent.glob("lib/python*/site-packages/duckdb"))]
    assert len(pythons) == 1, f"dbt-duckdb venvs in the cache: {pythons}"
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps(con.execute('select table_schema, table_name from information_schema.tables').fetchall()))\n"
    )
    done = subprocess.run([str(pythons[0]), "-c", script, str(db)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {(s, t) for s, t in json.loads(done.stdout)}


def scan_for_secrets(env: SchedulerEnv, tmp_before: dict, found_secrets: dict[str, str]) -> dict:
    """Search files and metadata-DB rows for the secrets (see the module docstring).

    Two planted files (one under the root, one new in /tmp), each holding both secrets, must be
    found: the proof that the scan would see a leak. They are removed afterwards.
    """
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
    state = env.venv_cache / ".state"
    areas = {
        "task_logs": len(env.task_logs()),
        "airflow_home": sum(1 for p in root_files if p.is_relative_to(env.home)),
        "venv_cache_state_and_workspaces": sum(1 for p in root_files if p.is_relative_to(state)),
        "workspace_files": sum(1 for p in root_files if p.is_relative_to(state / "workspaces")),
        "deployment_tmpdir": sum(1 for p in root_files if p.is_relative_to(env.tmp)),
        "test_root_all": len(root_files),
        "tmp_new_or_changed": len(tmp_new),
    }
    # the metadata DB: the tables the issue names, row by row, then every row of every table
    rows: dict[str, int] = {}
    db_hits: dict[str, set[str]] = {}
    content_seen: dict[str, bool] = {}
    for table, query in (
        ("rendered_task_instance_fields", "select dag_id, task_id, rendered_fields::text from rendered_task_instance_fields"),
        ("xcom", "select dag_id, task_id, key, value::text from xcom"),
    ):
        got = env.meta(query)
        rows[table] = len(got)
        text = "\n".join("\t".join(r) for r in got)
        content_seen[table] = any(d in text for d in DAG_IDS)
        for r in got:
            hit = secret_scan.scan_text(table, "\t".join(r), found_secrets)
            if hit:
                db_hits[f"{table}: {r[0]}.{r[1]}"] = hit
    dump = env.pg.dump(META_DB) if env.pg else ""
    rows["metadata_db_dump_lines"] = dump.count("\n")
    content_seen["metadata_db_dump"] = all(d in dump for d in DAG_IDS)
    hit = secret_scan.scan_text("dump", dump, found_secrets)
    if hit:
        db_hits["metadata DB dump"] = hit
    planted = {str(planted_root), str(planted_tmp)}
    # profiles.yml files left: ours are under the root (the deployment's TMPDIR is there) or name
    # our Postgres port or root; other users of a shared machine make some in /tmp meanwhile
    profiles_left, profiles_not_ours = {}, []  # ours: path → the schema it names (the kill DAG's: "kill")
    assert env.pg is not None
    for path in secret_scan.files_named(root_files + tmp_new, "profiles.yml"):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        if path.is_relative_to(root) or f"port: {env.pg.port}\n" in text or str(root) in text:
            match = re.search(r"^\s*schema:\s*(\S+)", text, re.M)
            profiles_left[str(path)] = match.group(1) if match else None
        else:
            profiles_not_ours.append(str(path))
    return dict(
        files=files.files, bytes=files.bytes, skipped=files.skipped, areas=areas, rows=rows,
        content_seen=content_seen,
        planted_found={p: sorted(files.hits.get(p, set())) for p in planted},
        file_hits={p: sorted(h) for p, h in files.hits.items() if p not in planted},
        db_hits={k: sorted(v) for k, v in db_hits.items()},
        profiles_left=profiles_left,
        profiles_not_ours=profiles_not_ours,
    )


def trigger_all(env: SchedulerEnv) -> dict[str, str]:
    """Trigger every DAG at once (from one process: see ``SchedulerEnv.trigger_many``)."""
    return env.trigger_many(DAG_IDS)


@pytest.fixture(scope="module")
def deployment():
    tmp_before = secret_scan.snapshot(Path(tempfile.gettempdir()))
    root = make_root()
    env = SchedulerEnv(root, root / "dags")
    token = "tok-" + secrets.token_hex(16)
    api_key = "ak-" + secrets.token_hex(16)
    killer: WorkerKiller | None = None
    try:
        synth = root / "synth"
        generate_project(synth, SYNTH_MODELS)
        (synth / "models" / f"{KILL_MODEL}.sql").write_text(KILL_SQL)
        loud = synth / "models" / f"{LOUD_MODEL}.sql"
        loud.write_text(LOUD_LINE + loud.read_text())
        synth_manifest = parse_synth_manifest(synth)
        write_dags(env, synth_manifest)
        (root / "demo").mkdir()
        env.start_postgres()
        assert env.pg is not None
        env.pg.create_role(SYNTH_ROLE, token)
        # The schemas exist before the first tasks: a DAG's first tasks all run `create schema if not
        # exists` at once, and Postgres lets all but one of them fail on the catalog's unique index
        # (dbt serialises that inside one process; one process per task cannot).
        for schema, owner in (("shop", env.warehouse_user), ("kill", env.warehouse_user), ("synth", SYNTH_ROLE)):
            env.pg.sql(f"create schema {schema} authorization {owner}")
        env.extra_env.update(
            # the workers read the profile's Connection from the environment (AIRFLOW_CONN_<ID> JSON)
            AIRFLOW_CONN_WAREHOUSE=env.connection_json(),
            **{TOKEN_ENV: token, API_KEY_ENV: api_key},
            # the demo DAG's DuckDB file and venv cache (examples/dags/shop_dag.py reads both)
            MANIFEST_DAG_DEMO_DIR=str(root / "demo"),
            MANIFEST_DAG_VENV_CACHE=str(env.venv_cache),
        )
        env.start_airflow()
        env.wait_dags_parsed(list(DAG_IDS))
        started = time.monotonic()
        runs = trigger_all(env)
        killer = WorkerKiller(env, "kill_pg", runs["kill_pg"], KILL_TASK, marker="pg_sleep", timeout=RUN_TIMEOUT)
        killer.start()
        states = env.wait_runs(runs, timeout=RUN_TIMEOUT)
        elapsed = time.monotonic() - started
        killer.stop()
        killer.join(timeout=30)
        tis = env.task_instances(runs)
        history = env.task_instances(runs, table="task_instance_history")
        logs = env.task_logs()
        owners = {(s, o): int(n) for s, o, n in env.pg.rows(
            "select schemaname, tableowner, count(*) from pg_tables where schemaname in ('shop', 'synth', 'kill') "
            "group by 1, 2")}
        duck = duckdb_relations(env, root / "demo" / "shop.duckdb")
        scan_started = time.monotonic()
        scan = scan_for_secrets(
            env, tmp_before, {"warehouse_password": env.warehouse_password, "profile_token": token, "secret_var": api_key}
        )
        scan["seconds"] = round(time.monotonic() - scan_started, 1)
        yield dict(env=env, runs=runs, states=states, tis=tis, history=history, logs=logs, elapsed=elapsed,
                   synth_manifest=synth_manifest, kill=killer.report, kill_error=killer.error, owners=owners,
                   duckdb=duck, scan=scan, api_key=api_key)
    except EnvError as exc:
        pytest.fail(f"the scheduler deployment failed: {exc}")
    finally:
        if killer is not None:
            killer.stop()
        env.stop()
        if os.environ.get("MANIFEST_DAG_KEEP_SCHEDULER_ENV"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _lines(logs: list[Path], needle: str) -> list[str]:
    return [line for path in logs for line in path.read_text(errors="replace").splitlines() if needle in line]


def _dag_logs(logs: list[Path], dag_id: str) -> list[Path]:
    return [p for p in logs if f"dag_id={dag_id}/" in str(p)]


def _shop_plan_size() -> int:
    from manifest_dag.core.config import RenderConfig
    from manifest_dag.scheduler.project import plan_project

    return len(plan_project(SHOP_MANIFEST, RenderConfig()).plan)


def test_every_task_succeeded(deployment) -> None:
    tis = deployment["tis"]
    not_ok = {(t["dag_id"], t["task_id"]): t["state"] for t in tis if t["state"] != "success"}
    failed_logs = [
        f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
        for (dag_id, task_id), state in not_ok.items()
        if state == "failed"
        for p in _dag_logs(deployment["logs"], dag_id)
        if f"task_id={task_id}/" in str(p)
    ]
    assert not not_ok, f"tasks not successful: {not_ok}\n" + "\n".join(failed_logs)
    assert deployment["states"] == dict.fromkeys(DAG_IDS, "success")
    by_dag = {d: [t for t in tis if t["dag_id"] == d] for d in DAG_IDS}
    assert len(by_dag["synth_pg"]) == SYNTH_MODELS
    assert len(by_dag["shop_pg"]) > 20
    assert len(by_dag["shop_duckdb"]) == _shop_plan_size()
    assert [t["task_id"] for t in by_dag["kill_pg"]] == [KILL_TASK]
    # every task but the killed one ran once: no retry hid a failure
    assert {t["try_number"] for t in tis if t["dag_id"] != "kill_pg"} == {1}
    assert not [t for t in deployment["history"] if t["dag_id"] != "kill_pg"]


def test_a_worker_killed_mid_task_is_retried_and_the_run_succeeds(deployment) -> None:
    report = deployment["kill"]
    assert report is not None, f"the worker was not killed: {deployment['kill_error']}"
    assert report.try_number == 1
    assert report.killed_title.startswith("airflow worker -- ")  # the task runner, not the supervisor
    assert report.ti_pid_in_db in (None, report.killed_pid), report.summary()
    assert report.query_seconds_before_kill < KILL_SLEEP_SECONDS  # killed while dbt's query ran
    first = [t for t in deployment["history"] if t["dag_id"] == "kill_pg"]
    assert [(t["try_number"], t["state"]) for t in first] in ([(1, "failed")], [(1, "up_for_retry")]), first
    final = [t for t in deployment["tis"] if t["dag_id"] == "kill_pg"]
    assert [(t["try_number"], t["state"]) for t in final] == [(2, "success")], final
    assert deployment["states"]["kill_pg"] == "success"
    attempts = sorted(p.name for p in _dag_logs(deployment["logs"], "kill_pg"))
    assert attempts == ["attempt=1.log", "attempt=2.log"], attempts
    env: SchedulerEnv = deployment["env"]
    assert env.pg is not None
    assert env.pg.rows(f"select count(*) from kill.{KILL_MODEL}") == [["1"]]


def test_tasks_ran_in_parallel_up_to_the_limit(deployment) -> None:
    peak = peak_concurrency(deployment["tis"])
    assert 2 <= peak <= PARALLELISM, peak


def test_exactly_one_venv_was_built_per_requirement_set(deployment) -> None:
    env: SchedulerEnv = deployment["env"]
    keys = sorted(p.name for p in env.venv_cache.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(keys) == 2, f"venv dirs in the cache (one for dbt-postgres, one for dbt-duckdb): {keys}"
    logs = deployment["logs"]
    built = _lines(logs, "creating venv")
    assert len(built) == 2, built
    for key in keys:
        assert len([line for line in built if key in line]) == 1, (key, built)
    # and other tasks did ask for one while it was being built (or the check would prove nothing)
    waited = _lines(logs, "another process is building it")
    assert waited, "no task waited for a venv build: the first tasks did not overlap"


def test_task_runners_built_only_their_task(deployment) -> None:
    """Every task log shows the probe of a task-scoped parse: one task built of the whole plan."""
    probe = re.compile(r"E2E-PROBE dag=(\S+) task=(\S+) built=(\d+) planned=(\d+)")
    logs = deployment["logs"]
    for dag_id in DAG_IDS:
        dag_logs = _dag_logs(logs, dag_id)
        assert dag_logs, dag_id
        for path in dag_logs:
            found = probe.findall(path.read_text(errors="replace"))
            assert found, f"no E2E-PROBE line in {path}"
            for dag, task, built, planned in found:
                assert dag == dag_id and f"task_id={task}/" in str(path), (path, found)
                assert int(built) == 1, f"{path}: the parse built {built} of {planned} tasks"
    # the full-build fallback of manifest_dag.scheduler.dag._task_scope never happened
    assert not _lines(logs, "building the full DAG instead of the task alone")
    planned = {m.group(1): int(m.group(4)) for line in _lines(logs, "E2E-PROBE") if (m := probe.search(line))}
    assert planned["synth_pg"] == SYNTH_MODELS and planned["shop_duckdb"] == _shop_plan_size(), planned


def test_the_demo_dag_built_every_relation_in_duckdb(deployment) -> None:
    """The full shop DAG on one DuckDB file: every model, seed and snapshot is there; tasks that
    ran at once took turns on the file (manifest-dag's writer lock) instead of failing."""
    manifest = json.loads(SHOP_MANIFEST.read_text())
    expected = {
        (n["schema"], n.get("alias") or n["name"])
        for n in manifest["nodes"].values()
        if n["resource_type"] in ("model", "seed", "snapshot") and n["config"].get("materialized") != "ephemeral"
    }
    assert len(expected) >= 20, expected
    missing = expected - deployment["duckdb"]
    assert not missing, f"missing in shop.duckdb: {sorted(missing)}"
    duck_logs = _dag_logs(deployment["logs"], "shop_duckdb")
    assert not _lines(duck_logs, "Could not set lock on file"), "a task hit DuckDB's own lock"
    duck = [t for t in deployment["tis"] if t["dag_id"] == "shop_duckdb"]
    assert peak_concurrency(duck) >= 2, "the DuckDB DAG never ran two tasks at once: the lock went untested"


def test_every_model_relation_exists_in_postgres(deployment) -> None:
    env: SchedulerEnv = deployment["env"]
    assert env.pg is not None
    found = {(s, t) for s, t in env.pg.rows(
        "select table_schema, table_name from information_schema.tables where table_schema in ('shop', 'synth')")}
    synth = {("synth", f"m{i:04d}") for i in range(SYNTH_MODELS)}
    assert synth <= found, f"missing: {sorted(synth - found)[:20]}"
    # the shop models (and seeds, snapshot) whose tasks ran: each one's relation exists
    shop_manifest = json.loads(SHOP_MANIFEST.read_text())
    ran = {t["task_id"] for t in deployment["tis"] if t["dag_id"] == "shop_pg"}
    expected = set()
    for node in shop_manifest["nodes"].values():
        if node["resource_type"] not in ("model", "seed", "snapshot") or node["config"].get("materialized") == "ephemeral":
            continue
        name = node["name"]
        if any(task_id == name or task_id.startswith(name + "_") or task_id.startswith(name + ".") for task_id in ran):
            expected.add(("shop", node.get("alias") or name))
    assert len(expected) >= 10, expected
    assert expected <= found, f"missing: {sorted(expected - found)}"


def test_both_secrets_reached_dbt(deployment) -> None:
    """The tables belong to the roles that logged in with each secret: dbt really used them."""
    env: SchedulerEnv = deployment["env"]
    owners = deployment["owners"]
    assert set(owners) == {("shop", env.warehouse_user), ("synth", SYNTH_ROLE), ("kill", env.warehouse_user)}, owners


def _owner_only(path: Path, top: Path) -> bool:
    """Whether no other user can reach ``path``: ``top`` is this user's alone (0700, so nothing
    below it can be entered by anyone else) and every folder from there down is this user's."""
    st = top.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return False
    folder = path.parent
    while folder != top:
        if folder.stat().st_uid != os.getuid():
            return False
        folder = folder.parent
    return True


def test_no_secret_left_in_logs_files_or_the_metadata_db(deployment) -> None:
    scan = deployment["scan"]
    # the scan sees a leak: both planted files were found, with every secret
    assert all(
        found == ["profile_token", "secret_var", "warehouse_password"] for found in scan["planted_found"].values()
    ), scan["planted_found"]
    assert all(scan["content_seen"].values()), scan["content_seen"]  # the DB text read is the real thing
    assert scan["areas"]["task_logs"] > 250 and scan["areas"]["workspace_files"] > 0, scan["areas"]
    assert scan["rows"]["rendered_task_instance_fields"] > 250, scan["rows"]
    env: SchedulerEnv = deployment["env"]
    # too big to read: only other users' files in /tmp may be (ours never are)
    assert not [f for f in scan["skipped"] if f.startswith(str(env.root))], scan["skipped"]
    # dbt's own files in the worker's private state tree may hold the secret var its project read
    # (a kept partial_parse.msgpack records the env vars the parse read; the slot's dbt.log holds
    # what a model printed, unmasked: dbt writes it): there, and only there
    state = env.venv_cache / ".state"
    dbt_kept = {
        p
        for p, found in scan["file_hits"].items()
        if found == ["secret_var"]
        and Path(p).is_relative_to(state)
        and (Path(p).name.startswith("partial_parse.msgpack") or Path(p).name == "dbt.log")
    }
    assert all(_owner_only(Path(p), state) for p in dbt_kept), dbt_kept
    leaks = {p: found for p, found in scan["file_hits"].items() if p not in dbt_kept}
    assert not leaks, f"secrets in files: {leaks}"
    assert not scan["db_hits"], f"secrets in the metadata DB: {scan['db_hits']}"


def test_a_secret_printed_by_dbt_is_masked_in_the_task_log_airflow_wrote(deployment) -> None:
    """One synth model prints its secret var (``ProjectConfig.secret_vars``) through dbt's ``log()``:
    dbt had the value (the line is there, and not the default), and the task log the real Airflow
    wrote shows it masked. The scan above finds the value in no task log, rendered field or XCom."""
    logs = _dag_logs(deployment["logs"], "synth_pg")
    loud = [p for p in logs if f"task_id={LOUD_MODEL}_run/" in str(p)]
    assert loud, [str(p) for p in logs][:5]
    lines = _lines(loud, "E2E-LOUD api_key=")
    assert lines, f"dbt printed no E2E-LOUD line in {loud}"
    assert all("E2E-LOUD api_key=***" in line for line in lines), lines
    assert not _lines(loud, "E2E-LOUD api_key=unset"), "dbt did not get the secret var"
    assert not _lines(logs, deployment["api_key"])


def test_no_profiles_yml_left_behind(deployment) -> None:
    """No task leaves its profiles.yml, not even the one whose worker was SIGKILLed: its private
    profile dir (``$TMPDIR/manifest-dag-profile-<pid>-*``, which its own clean-up never removed)
    was there just after the kill, and a later task's workspace removed it (manifest_dag/worker/workspace.py,
    ``sweep_orphaned_profile_dirs``; before that fix this failed with the killed task's file)."""
    left = deployment["scan"]["profiles_left"]
    assert not left, f"profiles.yml files left after the runs: {left}"
    kill = deployment["kill"]
    assert kill is not None and kill.profile_dirs_at_kill, "the killed task left no profile dir to sweep"
    assert not any(Path(p).exists() for p in kill.profile_dirs_at_kill)


def test_report_figures(deployment) -> None:
    """Print the figures the issues ask for (tasks run, concurrent peak, venv builds, parse ms,
    faults, secrets scanned)."""
    tis, logs, scan = deployment["tis"], deployment["logs"], deployment["scan"]
    parse_ms = parse_ms_figures(logs)
    assert parse_ms, "no dag_file_parse_ms in the task logs"
    figures: dict = {
        "tasks_run": len(tis),
        "tasks_run_per_dag": {d: len([t for t in tis if t["dag_id"] == d]) for d in DAG_IDS},
        "concurrent_peak": peak_concurrency(tis),
        "venv_builds": len(_lines(logs, "creating venv")),
        "tasks_waiting_for_a_build": len(_lines(logs, "another process is building it")),
        "duckdb_lock_waits": len(_lines(_dag_logs(logs, "shop_duckdb"), "waiting for another task's dbt run on the same DuckDB")),
        "task_scoped_parses": len(_lines(logs, "E2E-PROBE")),
        # tasks whose dbt could not reuse partial parsing (manifest-dag logs one line per task)
        "tasks_without_partial_parse": {
            d: len(_lines(_dag_logs(logs, d), "partial parse was not reused")) for d in DAG_IDS
        },
        "wall_seconds_trigger_to_done": round(deployment["elapsed"], 1),
    }
    for dag_id in DAG_IDS:
        values = sorted(parse_ms_figures(_dag_logs(logs, dag_id)))
        if values:
            figures[f"dag_file_parse_ms[{dag_id}]"] = {
                "n": len(values), "median": values[len(values) // 2], "p90": values[int(len(values) * 0.9)],
                "max": values[-1],
            }
    kill = deployment["kill"]
    kill_tries = [(t["try_number"], t["state"]) for t in deployment["history"] + tis if t["dag_id"] == "kill_pg"]
    figures["faults"] = {
        "injected": 1 if kill else 0,
        "survived": int(bool(kill) and deployment["states"].get("kill_pg") == "success"),
        "worker_killed_mid_task": kill.summary() if kill else deployment["kill_error"],
        "kill_pg_tries": kill_tries,
        # the retry's start against the killed try's dbt query, which ran on (warm or cold, dbt
        # runs in a session of its own): a retry starting before that query ended overlaps it
        "retry_started_seconds_after_kill": next(
            (round(t["start"] - kill.killed_at, 1) for t in tis if t["dag_id"] == "kill_pg" and t["start"]), None
        ) if kill else None,
    }
    figures["secrets_scanned"] = {
        "secrets": 3,
        "files": scan["files"], "megabytes": round(scan["bytes"] / 1e6, 1), "files_by_area": scan["areas"],
        "db_rows": scan["rows"], "leaks": len(scan["file_hits"]) + len(scan["db_hits"]),
        "profiles_yml_left": scan["profiles_left"],
        "profiles_yml_new_in_tmp_from_other_users": len(scan["profiles_not_ours"]), "seconds": scan["seconds"],
    }
    print("\nscheduler e2e figures: " + json.dumps(figures, indent=2, default=str))
