"""Per-run settings with real Airflow (``dag.test()`` with a run's conf), real dbt and DuckDB.

One incremental model appends a row per run: ``batch`` comes from a templated dbt var
(``ProjectConfig.dbt_vars``), ``mark`` from a templated env var (``ProjectConfig.env_vars``), both
from the run's ``params``; the ``DbtDag``'s ``operator_args`` make ``full_refresh`` the template
``{{ params.full_refresh }}``. Three runs: two append, the third, with ``full_refresh: true`` in
its conf, rebuilds the table from that run's row alone (issue 21 item 2); each run's compiled
SQL is in the task's rendered fields after the run.

A second DAG on the same project has the smaller knobs (issue 21 item 9): a macro run with
templated ``--args`` (``DbtRunOperationOperator``), with and without the worker's environment
(``append_env=False``), and a macro that fails with dbt's exit code 1, the task's
``skip_exit_code``: skipped, and its downstream task with it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvCache, VenvSpec
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS, migrate
from tests.support.dag_run import dag_test

pytestmark = pytest.mark.e2e

DAG_FILE = '''
"""An Airflow DAG of a one-model incremental project whose runs differ by their conf (manifest-dag e2e test)."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="run_flags",
    project_config=ProjectConfig(
        manifest_path="{manifest}",
        project_dir="{project}",
        dbt_vars={{"batch": "{{{{ params.batch }}}}"}},
        env_vars={{"RUNFLAGS_DB": "{db}", "RUN_MARK": "mark-{{{{ params.batch }}}}"}},
    ),
    profile_config=ProfileConfig(profile_name="runflags", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(test_behavior="none"),
    operator_args={{"full_refresh": "{{{{ params.full_refresh }}}}"}},
    params={{"batch": 0, "full_refresh": False}},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: runflags\nversion: '1.0'\nconfig-version: 2\nprofile: runflags\nmodel-paths: [models]\n"
    )
    (root / "profiles.yml").write_text(
        "runflags:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('RUNFLAGS_DB') }}\"\n      threads: 1\n"
    )
    (root / "models").mkdir()
    (root / "macros").mkdir()
    (root / "macros" / "knobs.sql").write_text(
        "{% macro note(batch) %}\n"
        "  {% do log('NOTE batch=' ~ batch ~ ' worker=' ~ env_var('WORKER_ONLY_SETTING', 'absent')"
        " ~ ' mark=' ~ env_var('RUN_MARK', 'none'), info=True) %}\n"
        "{% endmacro %}\n"
        "{% macro gate() %}\n  {{ exceptions.raise_compiler_error('GATE: nothing new to load') }}\n{% endmacro %}\n"
    )
    (root / "models" / "batches.sql").write_text(
        "{{ config(materialized='incremental') }}\n"
        "select cast({{ var('batch', 0) }} as integer) as batch, '{{ env_var('RUN_MARK', 'none') }}' as mark\n"
    )
    return root


def parse(project: Path, db: Path) -> Path:
    """``dbt parse`` with the e2e venv: the manifest the DAG is rendered from."""
    manifest = project.parent / "manifest.json"

    def keep(target: Path) -> None:
        manifest.write_bytes((target / "manifest.json").read_bytes())

    run_dbt(
        DbtInvocation(
            command_args=("parse",),
            project_dir=project,
            venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
            profile_config=ProfileConfig(profile_name="runflags", profiles_yml_path=project / "profiles.yml"),
            cache_dir=E2E_VENV_CACHE,
            env={"RUNFLAGS_DB": str(db)},
        ),
        log=lambda line: None,
        artifacts_callback=keep,
    )
    return manifest


def duckdb_rows(db: Path, sql: str) -> list[list]:
    """Rows read with the worker venv's own duckdb (the package never depends on it)."""
    venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS)))
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps([list(r) for r in con.execute(sys.argv[2]).fetchall()]))\n"
    )
    done = subprocess.run([str(venv.python), "-c", script, str(db), sql], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_templated_full_refresh_rebuilds_an_incremental_model(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = make_project(tmp_path / "runflags")
    db = tmp_path / "runflags.duckdb"
    manifest = parse(project, db)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "run_flags_dag.py").write_text(
        DAG_FILE.format(manifest=manifest, project=project, db=db, reqs=VENV_REQUIREMENTS)
    )
    seen: list[list[list]] = []
    for n, conf in enumerate(({"batch": 1}, {"batch": 2}, {"batch": 3, "full_refresh": True}), start=1):
        log = tmp_path / f"run{n}.log"
        result = dag_test(home, dags, "run_flags", log, conf)
        task = result["tasks"]["batches_run"]
        assert task["state"] == "success", f"run {n}: {result}; log: {log.read_text()[-3000:]}"
        text = log.read_text()
        assert ("--full-refresh" in text.split("running: dbt run", 1)[1].splitlines()[0]) is (n == 3), text[-3000:]
        assert task["rendered"]["full_refresh"] == str(conf.get("full_refresh", False))
        # set as dbt finished and stored again after execute (overwrite_rtif_after_execution)
        assert f"cast({conf['batch']} as integer) as batch" in task["rendered"]["compiled_sql"], task["rendered"]
        seen.append(duckdb_rows(db, "select batch, mark from main.batches order by batch"))
    assert seen == [
        [[1, "mark-1"]],
        [[1, "mark-1"], [2, "mark-2"]],  # incremental: appended
        [[3, "mark-3"]],  # --full-refresh: rebuilt from this run's row alone
    ]


KNOBS_DAG = '''
"""An Airflow DAG of run-operation tasks: templated args, append_env, skip_exit_code (manifest-dag e2e test)."""
import pendulum
from airflow.sdk import DAG
from manifest_dag import DbtRunOperationOperator, DbtRunOperator, ProfileConfig

common = dict(
    project_dir="{project}",
    py_requirements={reqs!r},
    profile_config=ProfileConfig(profile_name="runflags", profiles_yml_path="{project}/profiles.yml"),
    env={{"RUNFLAGS_DB": "{db}", "RUN_MARK": "m-{{{{ params.batch }}}}"}},
)
with DAG("knobs", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), params={{"batch": 5}}) as dag:
    DbtRunOperationOperator(task_id="note_min", macro_name="note", macro_args={{"batch": "{{{{ params.batch }}}}"}},
                            append_env=False, **common)
    DbtRunOperationOperator(task_id="note_all", macro_name="note", macro_args={{"batch": "{{{{ params.batch }}}}"}},
                            **common)
    gate = DbtRunOperationOperator(task_id="gate", macro_name="gate", skip_exit_code=1, **common)
    gate >> DbtRunOperator(task_id="after_gate", select=["batches"], **common)
'''


def test_run_operation_append_env_and_skip_exit_code(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = make_project(tmp_path / "runflags")
    dags = tmp_path / "dags"
    dags.mkdir()
    db = tmp_path / "knobs.duckdb"
    (dags / "knobs_dag.py").write_text(KNOBS_DAG.format(project=project, db=db, reqs=VENV_REQUIREMENTS))
    log = tmp_path / "knobs.log"
    result = dag_test(home, dags, "knobs", log, {"batch": 7}, WORKER_ONLY_SETTING="present")
    states = {task: info["state"] for task, info in result["tasks"].items()}
    text = log.read_text()
    assert states == {"note_min": "success", "note_all": "success", "gate": "skipped", "after_gate": "skipped"}, (
        f"{states}; log: {text[-4000:]}"
    )
    assert "NOTE batch=7 worker=absent mark=m-7" in text  # append_env=False: only what dbt needs, and env
    assert "NOTE batch=7 worker=present mark=m-7" in text
    assert 'running: dbt run-operation note --args {"batch": "7"}' in text
    assert "GATE: nothing new to load" in text and "skip_exit_code: skipped" in text
