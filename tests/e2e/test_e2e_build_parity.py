"""The DAG does what ``dbt build`` does (issue 23), with real Airflow (``dag.test()``), dbt and DuckDB.

Each test writes a small dbt project, parses it with the cached dbt 1.11 venv, runs a ``DbtDag``
over it through ``dag.test()`` on a fresh DuckDB file, and runs a plain ``dbt build`` on another
fresh file: the nodes' outcomes and the tables must agree.

- a function (UDF) is created before the model that calls it (only ``dbt build`` creates one);
- a failing relationships test skips the model downstream of both its parents, as dbt does;
- a source naming a seed's table is read after the seed is loaded (on a fresh database).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from manifest_dag.worker.venv import VenvCache, VenvSpec
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS, migrate, run_dag_test

pytestmark = pytest.mark.e2e
SPEC = VenvSpec(requirements=tuple(VENV_REQUIREMENTS))

PROFILES = (
    "{name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
    "      path: \"{{{{ env_var('E2E_DB') }}}}\"\n      threads: 1\n"
)

DAG_FILE = '''
"""Airflow DAG: a DbtDag over a small project written by tests/e2e/test_e2e_build_parity.py."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id={dag_id!r},
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r},
                                 env_vars={{"E2E_DB": {db!r}}}, plan_cache_dir={plan_cache!r}),
    profile_config=ProfileConfig(profile_name={profile!r}, profiles_yml_path={profiles!r}),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(**{render!r}),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    migrate(home)
    return home


def venv_python_and_dbt() -> tuple[Path, Path]:
    venv = VenvCache(E2E_VENV_CACHE, log=lambda _: None).ensure(SPEC)
    return venv.python, venv.executable("dbt")


def write_project(root: Path, name: str, files: dict[str, str]) -> Path:
    files = {
        "dbt_project.yml": f"name: {name}\nversion: '1.0.0'\nconfig-version: 2\nprofile: {name}\n",
        "profiles.yml": PROFILES.format(name=name),
        **files,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def dbt(project: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    _python, exe = venv_python_and_dbt()
    env = {**os.environ, "E2E_DB": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run(
        [str(exe), *args, "--project-dir", str(project), "--profiles-dir", str(project)],
        env=env,
        capture_output=True,
        text=True,
        cwd=project,
    )


def parse(project: Path, tmp_path: Path) -> Path:
    """``dbt parse`` as a deployment would (no database touched): the manifest the DAG reads."""
    done = dbt(project, tmp_path / "parse.duckdb", "parse")
    assert done.returncode == 0, done.stdout[-3000:]
    return project / "target" / "manifest.json"


def plain_dbt_build(project: Path, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """``dbt build`` of a copy of the project on a fresh DuckDB file: each node's status, and the file."""
    copy = tmp_path / "plain"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("target", "logs"))
    db = tmp_path / "plain.duckdb"
    dbt(copy, db, "build")
    results = json.loads((copy / "target" / "run_results.json").read_text())
    return {r["unique_id"]: r["status"] for r in results["results"]}, db


def run_dag(
    airflow_home: Path, tmp_path: Path, project: Path, manifest: Path, dag_id: str, **render: object
) -> tuple[dict[str, str], Path, str]:
    """``dag.test()`` of a DbtDag over ``project`` on a fresh DuckDB file: task states, the file, the log."""
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    db = tmp_path / "dag.duckdb"
    (dags / f"{dag_id}.py").write_text(
        DAG_FILE.format(
            dag_id=dag_id,
            manifest=str(manifest),
            project=str(project),
            db=str(db),
            plan_cache=str(tmp_path / "plans"),
            profile=project.name,
            profiles=str(project / "profiles.yml"),
            reqs=VENV_REQUIREMENTS,
            render=render,
        )
    )
    log = tmp_path / "dag_test.log"
    result = run_dag_test(airflow_home, dags, dag_id, log)
    return {t: r["state"] for t, r in result["tasks"].items()}, db, log.read_text()


def query(db: Path, sql: str) -> list | None:
    """Rows of ``sql`` read with the venv's duckdb; None when it fails (a missing table)."""
    python, _dbt = venv_python_and_dbt()
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "try: print(json.dumps(con.execute(sys.argv[2]).fetchall(), default=str))\n"
        "except duckdb.Error: print('null')\n"
    )
    done = subprocess.run([str(python), "-c", script, str(db), sql], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# -- 1. a function is built before what calls it -------------------------------------------------------
UDF_FILES = {
    # dbt's default function SQL is not DuckDB's; a DuckDB macro is its scalar function
    "macros/duckdb_functions.sql": (
        "{% macro duckdb__scalar_function_sql(target_relation) %}\n"
        "create or replace macro {{ target_relation.render() }}(\n"
        '{%- for arg in model.arguments -%}{{ arg.name }}{{ ", " if not loop.last }}{%- endfor -%}\n'
        ") as ({{ model.compiled_code }})\n"
        "{% endmacro %}\n"
    ),
    "functions/is_positive_int.sql": "regexp_full_match(a_string, '[0-9]+')\n",
    "functions/schema.yml": (
        "functions:\n  - name: is_positive_int\n    description: a string of digits\n"
        "    arguments:\n      - name: a_string\n        data_type: varchar\n"
        "    returns:\n      data_type: boolean\n"
    ),
    "seeds/raw_values.csv": "v\n42\n-1\nabc\n7\n",
    "models/checked.sql": (
        "{{ config(materialized='table') }}\n"
        "select v, {{ function('is_positive_int') }}(v) as ok from {{ ref('raw_values') }}\n"
    ),
}


def test_a_function_is_created_before_the_model_that_calls_it(airflow_home: Path, tmp_path: Path) -> None:
    project = write_project(tmp_path / "udf", "udf", UDF_FILES)
    manifest = parse(project, tmp_path)
    assert "function.udf.is_positive_int" in json.loads(manifest.read_text())["functions"]

    states, db, log = run_dag(airflow_home, tmp_path, project, manifest, "udf_dag")
    assert states == {"raw_values_seed": "success", "is_positive_int_build": "success", "checked_run": "success"}, log[
        -4000:
    ]
    rows = query(db, "select v, ok from checked order by v")
    assert rows == [["-1", False], ["42", True], ["7", True], ["abc", False]]

    statuses, plain_db = plain_dbt_build(project, tmp_path)
    assert statuses == {
        "seed.udf.raw_values": "success",
        "function.udf.is_positive_int": "success",
        "model.udf.checked": "success",
    }
    assert query(plain_db, "select v, ok from checked order by v") == rows


# -- 2. a failing relationships test skips what dbt build skips ------------------------------------------
ORPHAN_FILES = {
    "seeds/raw_customers.csv": "id,name\n1,ann\n2,bob\n",
    "seeds/raw_orders.csv": "id,customer_id,amount\n10,1,5\n11,2,7\n12,99,9\n",  # 99: an orphan row
    "models/customers.sql": "select * from {{ ref('raw_customers') }}\n",
    "models/orders.sql": "select * from {{ ref('raw_orders') }}\n",
    "models/customer_summary.sql": (
        "{{ config(materialized='table') }}\n"
        "select c.id, c.name, count(o.id) as orders, sum(o.amount) as amount\n"
        "from {{ ref('customers') }} c join {{ ref('orders') }} o on o.customer_id = c.id group by 1, 2\n"
    ),
    "models/only_customers.sql": "select count(*) as n from {{ ref('customers') }}\n",
    "models/schema.yml": (
        "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: customer_id\n        data_tests:\n"
        "          - relationships:\n              arguments:\n                to: ref('customers')\n"
        "                field: id\n"
    ),
}


@pytest.mark.parametrize("behavior", ["after_each", "build"])
def test_a_failing_relationships_test_skips_the_model_below_both_parents(
    airflow_home: Path, tmp_path: Path, behavior: str
) -> None:
    project = write_project(tmp_path / "orphan", "orphan", ORPHAN_FILES)
    manifest = parse(project, tmp_path)
    statuses, plain_db = plain_dbt_build(project, tmp_path)
    rel = next(u for u in statuses if u.startswith("test.orphan.relationships_orders_customer_id"))
    assert statuses[rel] == "fail" and statuses["model.orphan.customer_summary"] == "skipped", statuses
    assert statuses["model.orphan.only_customers"] == "success"
    assert query(plain_db, "select count(*) from customer_summary") is None  # never built

    states, db, log = run_dag(airflow_home, tmp_path, project, manifest, f"orphan_{behavior}", test_behavior=behavior)
    (test_task,) = [t for t in states if t.startswith("test_relationships")]
    summary, only = (
        ("customer_summary_run", "only_customers_run")
        if behavior == "after_each"
        else ("customer_summary_build", "only_customers_build")
    )
    assert states[test_task] == "failed", log[-4000:]
    assert states[summary] == "upstream_failed", states  # dbt build: SKIP
    assert states[only] == "success", states  # below one parent only: dbt runs it too
    assert query(db, "select count(*) from customer_summary") is None  # the orphan never reached it
    assert query(db, "select count(*) from orders") == query(plain_db, "select count(*) from orders") == [[3]]


# -- 5. a source naming a seed's table is read after the seed, on a fresh database ------------------------
SEEDED_SOURCE_FILES = {
    "seeds/raw_customers.csv": "id,name\n1,ann\n2,bob\n",
    "seeds/raw_orders.csv": "id,customer_id,amount\n10,1,5\n11,2,7\n12,1,9\n",
    "models/sources.yml": (
        "version: 2\nsources:\n  - name: raw\n    schema: main\n    tables:\n"
        "      - name: raw_customers\n      - name: raw_orders\n        identifier: RAW_ORDERS\n"
    ),
    "models/customers.sql": "select * from {{ source('raw', 'raw_customers') }}\n",
    "models/orders.sql": (
        "select o.id, o.amount, c.name from {{ source('raw', 'raw_orders') }} o\n"
        "join {{ ref('customers') }} c on c.id = o.customer_id\n"
    ),
}


def test_a_source_over_a_seed_is_read_after_the_seed_on_a_fresh_database(airflow_home: Path, tmp_path: Path) -> None:
    from manifest_dag import RenderConfig
    from manifest_dag.scheduler.project import plan_project

    project = write_project(tmp_path / "alt", "alt", SEEDED_SOURCE_FILES)
    manifest = parse(project, tmp_path)
    statuses, _plain_db = plain_dbt_build(project, tmp_path)
    # dbt does not order them: on one thread it reads the source before the seed is loaded
    assert statuses["model.alt.customers"] == "error" and statuses["model.alt.orders"] == "skipped", statuses

    plan = plan_project(manifest, RenderConfig()).plan
    assert "raw_customers_seed" in plan.task("customers_run").upstream
    assert "raw_orders_seed" in plan.task("orders_run").upstream  # RAW_ORDERS: DuckDB ignores case

    states, db, log = run_dag(airflow_home, tmp_path, project, manifest, "alt_dag")
    assert set(states.values()) == {"success"}, (states, log[-4000:])
    assert "source raw.raw_customers names the table of seed raw_customers" in log  # the DAG processor says so
    assert query(db, "select name, sum(amount) from orders group by 1 order by 1") == [["ann", 14], ["bob", 7]]


# -- differential: every fixture project, node by node, against dbt build on a fresh database ----------
#: the repo's fixture dbt projects (fixtures/README.md) and the env var their profile reads the DuckDB path from
FIXTURE_PROJECTS = {
    "compat": "COMPAT_DUCKDB_PATH",
    "shop_default_selector": "SHOP_DEFAULT_SELECTOR_DUCKDB_PATH",
    "shop": "SHOP_DUCKDB_PATH",
}

FIXTURE_DAG_FILE = '''
"""Airflow DAG: the fixture project {name} (tests/e2e/test_e2e_build_parity.py, differential test)."""
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
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r}, install_deps=True,
                                 env_vars={{{env_var!r}: {db!r}}}, plan_cache_dir={plans!r}),
    profile_config=ProfileConfig(profile_name={name!r}, profiles_yml_path={profiles!r}),
    venv_config=VenvConfig(py_requirements={reqs!r}, warm_processes=1),
    render_config=RenderConfig(test_behavior={behavior!r}),
    operator_args={{"artifacts_callback": keep_results}},
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''


def fixture_dbt(project: Path, env_var: str, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    _python, exe = venv_python_and_dbt()
    env = {**os.environ, env_var: str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(
        [str(exe), *args, "--project-dir", str(project), "--profiles-dir", str(project)],
        env=env, capture_output=True, text=True, cwd=project,
    )  # fmt: skip
    return done


def copy_fixture(name: str, dest: Path) -> Path:
    source = Path(__file__).resolve().parents[2] / "fixtures" / name
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb", "*.duckdb.wal")
    shutil.copytree(source, dest, ignore=ignore)
    return dest


def ran(results: list[dict]) -> dict[str, str]:
    """The nodes dbt ran and their statuses; an exposure's no-op is dbt naming it, not running it."""
    return {r["unique_id"]: r["status"] for r in results if r["status"] != "no-op"}


@pytest.mark.parametrize("behavior", ["build"])
@pytest.mark.parametrize("name", list(FIXTURE_PROJECTS))
def test_the_dag_runs_what_dbt_build_runs_on_each_fixture_project(
    airflow_home: Path, tmp_path: Path, name: str, behavior: str
) -> None:
    """Differential: the nodes the DAG's tasks ran and their statuses are those of ``dbt build``."""
    env_var = FIXTURE_PROJECTS[name]
    parsed = copy_fixture(name, tmp_path / "parsed" / name)
    # parsed as a deployment would: with the DAG's profile (its DuckDB file), so the msgpack is reused
    assert fixture_dbt(parsed, env_var, tmp_path / "dag.duckdb", "deps").returncode == 0
    done = fixture_dbt(parsed, env_var, tmp_path / "dag.duckdb", "parse")
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = parsed / "target" / "manifest.json"

    plain = copy_fixture(name, tmp_path / "plain" / name)
    assert fixture_dbt(plain, env_var, tmp_path / "plain.duckdb", "deps").returncode == 0
    fixture_dbt(plain, env_var, tmp_path / "plain.duckdb", "build")
    expected = ran(json.loads((plain / "target" / "run_results.json").read_text())["results"])
    assert expected, "plain dbt build ran nothing"

    project = copy_fixture(name, tmp_path / "dag" / name)
    dags = tmp_path / "dags"
    dags.mkdir()
    dag_id = f"parity_{name}_{behavior}"
    results_log = tmp_path / "dag_results.jsonl"
    (dags / f"{dag_id}.py").write_text(
        FIXTURE_DAG_FILE.format(
            name=name, dag_id=dag_id, manifest=str(manifest), project=str(project), env_var=env_var,
            db=str(tmp_path / "dag.duckdb"), plans=str(tmp_path / "plans"), profiles=str(project / "profiles.yml"),
            reqs=VENV_REQUIREMENTS, behavior=behavior, results_log=str(results_log),
        )
    )  # fmt: skip
    log = tmp_path / "dag_test.log"
    result = run_dag_test(airflow_home, dags, dag_id, log)
    got: dict[str, str] = {}
    for line in results_log.read_text().splitlines() if results_log.exists() else []:
        unique_id, status = json.loads(line)
        assert unique_id not in got, f"{unique_id} ran twice"
        got[unique_id] = status
    assert got == expected, {
        "DAG only or different": {k: v for k, v in got.items() if expected.get(k) != v},
        "dbt build only or different": {k: v for k, v in expected.items() if got.get(k) != v},
        "task states": {t: r["state"] for t, r in result["tasks"].items() if r["state"] != "success"},
        "log": str(log),
    }
