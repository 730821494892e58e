"""A warm dbt process reuses the project it parsed, and never a stale one (real dbt, DuckDB).

Each step is one task's ``run_dbt`` on the same worker (one warm process), as a DAG's tasks
would run: the tables must be what a plain ``dbt build`` gives, and every kind of change to what
the parse read (a model's SQL, a macro, an installed package, ``dbt_project.yml``, a var, an env
var the project reads) must reach the very next task.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvCache, VenvSpec
from manifest_dag.worker.warm import stop_pools
from tests.e2e.test_e2e_warm import _private_cache
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS

pytestmark = pytest.mark.e2e
SPEC = VenvSpec(requirements=tuple(VENV_REQUIREMENTS))
REUSED = "reusing the project parsed in this process"
PARSED_AGAIN = "parsing again:"

FILES = {
    "dbt_project.yml": (
        "name: kept\nversion: '1.0.0'\nconfig-version: 2\nprofile: kept\n"
        "vars:\n  flavor: plain\nmodels:\n  kept:\n    +materialized: table\n"
    ),
    "profiles.yml": (
        "kept:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('KEPT_DB') }}\"\n      threads: 1\n"
    ),
    "seeds/people.csv": "id,name\n1,ann\n2,bob\n3,cy\n",
    "models/eph.sql": "{{ config(materialized='ephemeral') }}\nselect id, name from {{ ref('people') }}\n",
    "models/a.sql": "select id, upper(name) as name from {{ ref('eph') }}\n",
    "models/b.sql": (
        'select id, \'{{ var("flavor") }}\' as flavor, \'{{ env_var("KEPT_SUFFIX", "none") }}\' as suffix,\n'
        "  {{ shout() }} as loud, {{ pkg.pkg_one() }} as pkgv\nfrom {{ ref('eph') }}\n"
    ),
    "models/logs/c.sql": "select count(*) as n, max(name) as last from {{ ref('a') }}\n",
    "models/schema.yml": (
        "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n        data_tests: [not_null, unique]\n"
    ),
    "models/unit.yml": (
        "version: 2\nunit_tests:\n  - name: c_counts\n    model: c\n    given:\n      - input: ref('a')\n"
        "        rows:\n          - {id: 1, name: zed}\n    expect:\n      rows:\n        - {n: 1, last: zed}\n"
    ),
    "snapshots/snap.sql": (
        "{% snapshot snap %}\n{{ config(unique_key='id', strategy='check', check_cols='all', target_schema='main') }}\n"
        "select * from {{ ref('a') }}\n{% endsnapshot %}\n"
    ),
    "macros/shout.sql": "{% macro shout() %}'hey'{% endmacro %}\n",
    "dbt_packages/pkg/dbt_project.yml": "name: pkg\nversion: '1.0.0'\nconfig-version: 2\n",
    "dbt_packages/pkg/macros/one.sql": "{% macro pkg_one() %}1{% endmacro %}\n",
}


def write_project(root: Path) -> Path:
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


@pytest.fixture
def cache(tmp_path: Path):
    """A venv cache of this test's own (its venv a link to the shared one): its warm pool is out of
    reach of other sessions, which stop the shared cache's pools when they end."""
    cache = _private_cache(tmp_path)
    yield cache
    stop_pools(cache / ".state")


def task(cache: Path, project: Path, db: Path, *args: str, dbt_vars: dict | None = None, **env: str) -> list[str]:
    lines: list[str] = []
    run_dbt(
        DbtInvocation(
            command_args=args,
            project_dir=project,
            venv_spec=SPEC,
            profile_config=ProfileConfig(profile_name="kept", profiles_yml_path=project / "profiles.yml"),
            cache_dir=cache,
            env={"KEPT_DB": str(db), **env},
            dbt_vars=dbt_vars or {},
            warm_processes=1,
        ),
        log=lines.append,
    )
    return lines


def note(lines: list[str]) -> str:
    found = [line for line in lines if line.startswith("warm dbt: ") and ("reusing" in line or "pars" in line)]
    assert found, "\n".join(lines[-30:])
    return found[-1]


def query(db: Path, sql: str) -> list:
    venv = VenvCache(E2E_VENV_CACHE, log=lambda _: None).ensure(SPEC)
    out = subprocess.run(
        [
            str(venv.python),
            "-c",
            "import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall(), default=str))",
            str(db),
            sql,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def plain_dbt_build(project: Path, db: Path) -> None:
    venv = VenvCache(E2E_VENV_CACHE, log=lambda _: None).ensure(SPEC)
    copy = project.parent / "plain"
    shutil.copytree(project, copy, symlinks=True)
    env = {**os.environ, "KEPT_DB": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    subprocess.run(
        [str(venv.executable("dbt")), "build", "--project-dir", str(copy), "--profiles-dir", str(copy)],
        env=env,
        check=True,
        capture_output=True,
    )


TABLES = {"a": "select * from a order by id", "b": "select * from b order by id", "c": "select * from c"}


def test_tasks_reuse_the_parsed_project_and_build_what_dbt_build_builds(tmp_path: Path, cache: Path) -> None:
    project = write_project(tmp_path / "kept")
    db = tmp_path / "warm.duckdb"
    task(cache, project, db, "seed")
    steps = [
        ("run", "--select", "a"),
        ("run", "--select", "b"),
        ("run", "--select", "c"),
        ("test", "--select", "a"),
        ("test", "--select", "c"),  # a unit test: dbt builds its own manifest from the kept one
        ("test", "--select", "c"),
        ("snapshot",),
        ("build", "--select", "c"),
        ("build", "--select", "c"),
    ]
    for args in steps:
        lines = task(cache, project, db, *args)
        assert REUSED in note(lines), (args, lines[-20:])
    # b and a both inline the ephemeral model: the second compile of it must inject its CTE again
    reference = tmp_path / "plain.duckdb"
    plain_dbt_build(project, reference)
    for name, sql in TABLES.items():
        assert query(db, sql) == query(reference, sql), name
    assert query(db, "select * from c") == [[3, "CY"]]  # the model in models/logs/ is built


def test_every_change_the_parse_read_reaches_the_next_task(tmp_path: Path, cache: Path) -> None:
    project = write_project(tmp_path / "kept")
    db = tmp_path / "warm.duckdb"
    task(cache, project, db, "seed")
    task(cache, project, db, "run")
    assert REUSED in note(task(cache, project, db, "run", "--select", "b"))

    def b() -> list:
        return query(db, "select flavor, suffix, loud, pkgv from b where id = 1")[0]

    assert b() == ["plain", "none", "hey", 1]

    edit(project / "models" / "a.sql", "upper(name)", "lower(name) || '!'")
    lines = task(cache, project, db, "run", "--select", "a")
    assert PARSED_AGAIN in note(lines) and "models/a.sql" in note(lines)
    assert query(db, "select name from a where id = 1") == [["ann!"]]
    assert REUSED in note(task(cache, project, db, "run", "--select", "a"))

    lines = task(cache, project, db, "run", "--select", "b", KEPT_SUFFIX="x")
    assert "env var KEPT_SUFFIX changed" in note(lines)
    assert b() == ["plain", "x", "hey", 1]

    lines = task(cache, project, db, "run", "--select", "b", dbt_vars={"flavor": "spicy"})
    assert "--vars" in note(lines)
    assert b() == ["spicy", "none", "hey", 1]

    edit(project / "macros" / "shout.sql", "'hey'", "'ho'")
    assert "macros/shout.sql" in note(task(cache, project, db, "run", "--select", "b"))
    assert b() == ["plain", "none", "ho", 1]

    edit(project / "dbt_packages" / "pkg" / "macros" / "one.sql", "1", "2")
    assert "one.sql" in note(task(cache, project, db, "run", "--select", "b"))
    assert b() == ["plain", "none", "ho", 2]

    edit(project / "dbt_project.yml", "flavor: plain", "flavor: mild")
    assert "dbt_project.yml" in note(task(cache, project, db, "run", "--select", "b"))
    assert b() == ["mild", "none", "ho", 2]

    (project / "models" / "b.sql").unlink()
    lines = task(cache, project, db, "run")
    assert "removed models/b.sql" in note(lines)
    assert not any("model main.b " in line for line in lines), lines[-15:]
    assert REUSED in note(task(cache, project, db, "run", "--select", "a"))
