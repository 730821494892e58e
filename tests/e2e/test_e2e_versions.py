"""Every dbt and Airflow version we claim, end to end (issue 23 items 3 and 4; ``make test-matrix``).

``fixtures/compat`` is a small project every supported dbt version (1.8-1.11) parses. For each
version a ``DbtDag`` over it runs through ``dag.test()`` on a fresh DuckDB file, with warm dbt
processes and without, on the manifest and ``partial_parse.msgpack`` that version's ``dbt parse``
wrote in another folder (a deployment's shape: parsed in CI, run from a synced copy). Each run must
reuse the msgpack (dbt's own "Partial parsing enabled" line in the task logs, never "Unable to do
partial parsing") and end with the same nodes, statuses and tables as a plain ``dbt build`` of the
same project on its own fresh file. One more test runs two DAGs on two dbt versions at once.

These tests are marked ``matrix`` as well as ``e2e``: ``make test-matrix`` runs them (the dbt rows
in the main venv; the Airflow rows, ``test_dag_on_this_airflow``, in each matrix venv), so the
plain e2e run leaves them out. When ``MANIFEST_DAG_MATRIX_OUT`` names a file, each test appends
one JSON line of what it saw there, for the matrix table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from manifest_dag.worker.venv import VenvCache, VenvSpec
from tests.conftest import REPO
from tests.support.airflow_run import E2E_VENV_CACHE, migrate, run_dag_test

pytestmark = [pytest.mark.e2e, pytest.mark.matrix]

COMPAT = REPO / "fixtures" / "compat"
#: the dbt releases we support; 1.12 cannot install here (see docs/compatibility.md)
DBT_VERSIONS = ("1.8", "1.9", "1.10", "1.11")
#: every table the project builds, read back to compare with plain dbt build
TABLES = {
    "raw_customers": "select * from raw_customers order by id",
    "raw_orders": "select * from raw_orders order by id",
    "stg_customers": "select * from stg_customers order by id",
    "stg_orders": "select * from stg_orders order by id",
    "customer_revenue": "select * from customer_revenue order by customer_id",
    "country_revenue": "select * from country_revenue order by country",
    "big_paid_orders": "select * from big_paid_orders order by id",
    "orders_incremental": "select * from orders_incremental order by id",
    "orders_snapshot": "select id, status, dbt_valid_to from orders_snapshot order by id",
}
#: dbt's own words when it reuses a msgpack, and when it does not
REUSED = "Partial parsing enabled"
NOT_REUSED = "Unable to do partial parsing"

DAG_FILE = '''
"""Airflow DAG: fixtures/compat on dbt {dbt} (tests/e2e/test_e2e_versions.py)."""
import json
from pathlib import Path
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

def keep_results(target, context):
    """Each node dbt ran in this task and its status, from dbt's own run_results.json."""
    results = Path(target) / "run_results.json"
    if results.exists():
        with open({results_log!r}, "a") as fh:
            for r in json.loads(results.read_text())["results"]:
                fh.write(json.dumps([r["unique_id"], r["status"]]) + "\\n")

dag = DbtDag(
    dag_id={dag_id!r},
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r},
                                 env_vars={{"COMPAT_DUCKDB_PATH": {db!r}}}, plan_cache_dir={plans!r}),
    profile_config=ProfileConfig(profile_name="compat", profiles_yml_path={profiles!r}),
    venv_config=VenvConfig(py_requirements={reqs!r}, warm_processes={warm}),
    render_config=RenderConfig(test_behavior={behavior!r}),
    operator_args={{"artifacts_callback": keep_results}},
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''


def requirements(dbt: str) -> list[str]:
    return [f"dbt-core~={dbt}.0", f"dbt-duckdb~={dbt}.0"]


def dbt_venv(dbt: str):
    return VenvCache(E2E_VENV_CACHE, log=lambda _: None).ensure(VenvSpec(requirements=tuple(requirements(dbt))))


def copy_compat(dest: Path) -> Path:
    shutil.copytree(COMPAT, dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    return dest


def dbt(version: str, project: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COMPAT_DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run(
        [
            str(dbt_venv(version).executable("dbt")),
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=project,
    )


def parse_elsewhere(version: str, root: Path, db: Path) -> Path:
    """``dbt parse`` in a folder of its own (CI's checkout): the manifest, with the msgpack beside it.

    With the profile the DAG will use (``db``): dbt's msgpack holds a hash of the target's fields,
    so a parse for another DuckDB file is not reused (the task log says which field differs).
    """
    project = copy_compat(root / "parsed")
    done = dbt(version, project, db, "parse")
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = project / "target" / "manifest.json"
    assert (project / "target" / "partial_parse.msgpack").exists()
    return manifest


def plain_build(version: str, root: Path) -> tuple[dict[str, str], dict[str, list | None]]:
    project = copy_compat(root / "plain")
    db = root / "plain.duckdb"
    done = dbt(version, project, db, "build")
    assert done.returncode == 0, done.stdout[-3000:]
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    return {r["unique_id"]: r["status"] for r in results}, tables(version, db)


def tables(version: str, db: Path) -> dict[str, list | None]:
    """Each table's rows, read with the venv's duckdb (None: the table is missing)."""
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "out = {}\n"
        "for name, sql in json.loads(sys.argv[2]).items():\n"
        "    try: out[name] = con.execute(sql).fetchall()\n"
        "    except duckdb.Error: out[name] = None\n"
        "print(json.dumps(out, default=str))\n"
    )
    done = subprocess.run(
        [str(dbt_venv(version).python), "-c", script, str(db), json.dumps(TABLES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def run_compat_dag(version: str, root: Path, airflow_home: Path, *, warm: int, behavior: str, dag_id: str) -> dict:
    """``dag.test()`` of the compat project on dbt ``version`` from a fresh copy and DuckDB file,
    on the manifest and msgpack of a ``dbt parse`` in another folder."""
    db = root / f"{dag_id}.duckdb"
    manifest = parse_elsewhere(version, root / dag_id, db)
    project = copy_compat(root / f"{dag_id}_project")
    dags = root / f"{dag_id}_dags"
    dags.mkdir()
    results_log = root / f"{dag_id}_results.jsonl"
    (dags / f"{dag_id}.py").write_text(
        DAG_FILE.format(
            dbt=version,
            dag_id=dag_id,
            manifest=str(manifest),
            project=str(project),
            db=str(db),
            plans=str(root / "plans"),
            profiles=str(project / "profiles.yml"),
            reqs=requirements(version),
            warm=warm,
            behavior=behavior,
            results_log=str(results_log),
        )
    )
    log = root / f"{dag_id}.log"
    result = run_dag_test(airflow_home, dags, dag_id, log)
    text = log.read_text()
    nodes: dict[str, str] = {}
    if results_log.exists():
        for line in results_log.read_text().splitlines():
            unique_id, status = json.loads(line)
            nodes[unique_id] = status
    return {
        "written_by": json.loads(manifest.read_text())["metadata"]["dbt_version"],
        "state": result["state"],
        "tasks": {t: r["state"] for t, r in result["tasks"].items()},
        "nodes": nodes,
        "tables": tables(version, db),
        "log": text,
        "reused": len(re.findall(REUSED, text)),
        "not_reused": len(re.findall(NOT_REUSED, text)),
        "warm_tasks": len(re.findall(r"running in warm process \d+", text)),
        "kept_project": len(re.findall("reusing the project parsed in this process", text)),
    }


def summary(run: dict) -> dict:
    """What the matrix table shows of one DAG run."""
    return {
        "state": run["state"],
        "tasks": len(run["tasks"]),
        **{k: run[k] for k in ("reused", "not_reused", "warm_tasks", "kept_project")},
    }


def record(**facts: object) -> None:
    out = os.environ.get("MANIFEST_DAG_MATRIX_OUT")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps(facts) + "\n")


def assert_like_dbt_build(run: dict, statuses: dict[str, str], plain_tables: dict) -> None:
    assert run["state"] == "success", ({t: s for t, s in run["tasks"].items() if s != "success"}, run["log"][-4000:])
    assert run["nodes"] == statuses, {
        "only in the DAG": {k: v for k, v in run["nodes"].items() if statuses.get(k) != v},
        "only in dbt build": {k: v for k, v in statuses.items() if run["nodes"].get(k) != v},
    }
    assert run["tables"] == plain_tables


def assert_partial_parse_reused(run: dict, *, warm: bool) -> None:
    """Each task's dbt reused the msgpack (cold), or a warm process did once and kept the project."""
    assert run["not_reused"] == 0, run["log"][-4000:]
    if warm:
        assert run["warm_tasks"] >= 1, run["log"][-4000:]
        assert run["reused"] >= 1, run["log"][-4000:]  # the warm process's first parse
        assert run["reused"] + run["kept_project"] >= len(run["tasks"]), (run["reused"], run["kept_project"])
    else:
        assert run["warm_tasks"] == 0
        assert run["reused"] >= len(run["tasks"]), (run["reused"], len(run["tasks"]), run["log"][-4000:])


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    migrate(home)
    return home


@pytest.mark.parametrize("version", DBT_VERSIONS)
def test_each_dbt_version_runs_the_dag_like_dbt_build(version: str, airflow_home: Path, tmp_path: Path) -> None:
    """Warm and cold, partial parse reused, nodes, statuses and tables those of plain dbt build."""
    statuses, plain_tables = plain_build(version, tmp_path)
    assert set(statuses.values()) == {"success", "pass"}, statuses
    assert all(rows for rows in plain_tables.values()), plain_tables
    runs = {}
    for warm in (1, 0):
        mode = "warm" if warm else "cold"
        dag_id = f"compat_{version.replace('.', '_')}_{mode}"
        runs[mode] = run_compat_dag(version, tmp_path, airflow_home, warm=warm, behavior="build", dag_id=dag_id)
    written_by = runs["cold"]["written_by"]
    assert written_by.startswith(version + "."), written_by
    record(row=f"dbt {written_by}", kind="dbt", **{mode: summary(run) for mode, run in runs.items()})
    for mode, run in runs.items():
        assert_like_dbt_build(run, statuses, plain_tables)
        assert_partial_parse_reused(run, warm=mode == "warm")


def test_two_dbt_versions_at_once(airflow_home: Path, tmp_path: Path) -> None:
    """Two DAGs, dbt 1.9 and 1.11, at the same time: separate venvs, warm processes and parse state.

    Each ``dag.test()`` gets an Airflow home of its own (two processes writing one SQLite file
    would test SQLite's locking, not ours); the workers' venv cache and state tree are shared.
    """
    versions = ("1.9", "1.11")
    homes = {"1.9": airflow_home, "1.11": tmp_path / "airflow-1.11"}
    homes["1.11"].mkdir()
    migrate(homes["1.11"])
    plain = {v: plain_build(v, tmp_path / v) for v in versions}
    runs: dict[str, dict] = {}
    errors: list[BaseException] = []

    def go(version: str) -> None:
        try:
            runs[version] = run_compat_dag(
                version, tmp_path / version, homes[version], warm=1, behavior="build",
                dag_id=f"both_{version.replace('.', '_')}",
            )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    pids = {}
    for version in versions:
        run = runs[version]
        statuses, plain_tables = plain[version]
        assert_like_dbt_build(run, statuses, plain_tables)
        assert_partial_parse_reused(run, warm=True)
        found = set(re.findall(r"running in warm process (\d+)", run["log"]))
        assert found, run["log"][-3000:]
        pids[version] = found
        # each DAG's dbt is its own version (dbt prints it first in every invocation)
        assert re.search(rf"Running with dbt=({re.escape(version)}\.\d+)", run["log"]), run["log"][-3000:]
        other = next(v for v in versions if v != version)
        assert not re.search(rf"Running with dbt={re.escape(other)}\.", run["log"])
    assert not (pids["1.9"] & pids["1.11"]), pids  # no warm process served both
    record(row="dbt 1.9 + 1.11 at once", kind="both", state="success")


def test_dag_on_this_airflow(airflow_home: Path, tmp_path: Path) -> None:
    """One DAG on the Airflow and Python running this test (each matrix venv runs it), dbt 1.11, warm."""
    import airflow

    version = "1.11"
    statuses, plain_tables = plain_build(version, tmp_path)
    run = run_compat_dag(version, tmp_path, airflow_home, warm=1, behavior="build", dag_id="compat_airflow")
    record(
        row=f"Airflow {airflow.__version__}, Python {sys.version_info.major}.{sys.version_info.minor}",
        kind="airflow",
        warm=summary(run),
    )
    assert_like_dbt_build(run, statuses, plain_tables)
    assert_partial_parse_reused(run, warm=True)
