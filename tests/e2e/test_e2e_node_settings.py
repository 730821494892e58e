"""Per-node Airflow settings from dbt meta with real Airflow (``dag.test()``), real dbt and DuckDB.

Issue 21 item 1. A ``DbtDag`` over a three-model project whose meta sets its tasks' arguments:

- ``steady`` (``meta.manifest_dag``): pool, queue, priority weight and two retries, seen on its task
  instance; its test task gets ``RenderConfig(test_task_args={"retries": 0})``: no retries;
- ``flaky`` reads a CSV that does not exist on the first try: it fails, its ``on_retry_callback``
  (a name in meta, the callable in ``RenderConfig.callbacks``) writes the file, and the retry that
  its meta allows succeeds;
- ``broken`` (cosmos's ``meta.cosmos.operator_kwargs`` form) fails every time: tried twice, then failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvSpec
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS, migrate
from tests.support.dag_run import dag_test

pytestmark = pytest.mark.e2e

DAG_FILE = '''
"""An Airflow DAG whose dbt models set their own task arguments in meta (manifest-dag e2e test)."""
from pathlib import Path

import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

FLAKY = Path("{flaky}")


def make_the_file(context):
    """Named in flaky's meta as its on_retry_callback: the retry then finds its input."""
    FLAKY.write_text("id\\n1\\n2\\n")
    Path("{calls}").open("a").write(context["ti"].task_id + "\\n")


dag = DbtDag(
    dag_id="node_settings",
    project_config=ProjectConfig(
        manifest_path="{manifest}", project_dir="{project}", env_vars={{"NODESET_DB": "{db}", "FLAKY_FILE": str(FLAKY)}}
    ),
    profile_config=ProfileConfig(profile_name="runflags", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(test_task_args={{"retries": 0}}, callbacks={{"make_the_file": make_the_file}}),
    default_args={{"retries": 0}},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: nodeset\nversion: '1.0'\nconfig-version: 2\nprofile: runflags\nmodel-paths: [models]\n"
    )
    (root / "profiles.yml").write_text(
        "runflags:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('NODESET_DB') }}\"\n      threads: 1\n"
    )
    models = root / "models"
    models.mkdir()
    (models / "steady.sql").write_text("{{ config(materialized='table') }}\nselect 1 as id\n")
    (models / "flaky.sql").write_text(
        "{{ config(materialized='table') }}\nselect * from read_csv_auto('{{ env_var(\"FLAKY_FILE\", \"no_file.csv\") }}')\n"
    )
    (models / "broken.sql").write_text("select * from a_table_nobody_made\n")
    (models / "schema.yml").write_text(
        "version: 2\nmodels:\n"
        "  - name: steady\n"
        "    config:\n"
        "      meta:\n"
        "        owner: finance\n"
        "        manifest_dag: {retries: 2, pool: steady_pool, queue: steady_queue, priority_weight: 7, weight_rule: absolute}\n"
        "    columns:\n      - name: id\n        data_tests: [not_null]\n"
        "  - name: flaky\n"
        "    config:\n"
        "      meta:\n"
        "        manifest_dag: {retries: 1, retry_delay: 0, on_retry_callback: make_the_file}\n"
        "  - name: broken\n"
        "    config:\n"
        "      meta:\n"
        "        cosmos: {operator_kwargs: {retries: 1, retry_delay: 0}}\n"
    )
    return root


def parse(project: Path, db: Path) -> Path:
    """``dbt parse`` with the e2e venv: the manifest the DAG is rendered from."""
    manifest = project.parent / "manifest.json"
    lines: list[str] = []
    run_dbt(
        DbtInvocation(
            command_args=("parse",),
            project_dir=project,
            venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
            profile_config=ProfileConfig(profile_name="runflags", profiles_yml_path=project / "profiles.yml"),
            cache_dir=E2E_VENV_CACHE,
            env={"NODESET_DB": str(db)},
        ),
        log=lines.append,
        artifacts_callback=lambda target: manifest.write_bytes((target / "manifest.json").read_bytes()),
    )
    assert manifest.exists(), "\n".join(lines)
    return manifest


def test_meta_settings_reach_the_task_instances_and_retries(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = make_project(tmp_path / "nodeset")
    db = tmp_path / "nodeset.duckdb"
    manifest = parse(project, db)
    dags = tmp_path / "dags"
    dags.mkdir()
    calls = tmp_path / "calls.txt"
    (dags / "node_settings_dag.py").write_text(
        DAG_FILE.format(
            manifest=manifest, project=project, db=db, flaky=tmp_path / "flaky.csv", calls=calls, reqs=VENV_REQUIREMENTS
        )
    )
    log = tmp_path / "run.log"
    result = dag_test(home, dags, "node_settings", log)
    tasks = result["tasks"]
    states = {task: info["state"] for task, info in tasks.items()}
    text = log.read_text()
    assert states == {
        "steady.run": "success",
        "steady.test": "success",
        "flaky_run": "success",
        "broken_run": "failed",
    } or states == {
        "steady.run": "success",
        "steady.test": "success",
        "flaky.run": "success",
        "broken.run": "failed",
    }, f"{states}; log: {text[-4000:]}"
    flaky = tasks.get("flaky_run") or tasks["flaky.run"]
    broken = tasks.get("broken_run") or tasks["broken.run"]
    steady, steady_test = tasks["steady.run"], tasks["steady.test"]
    # the settings are on the task instances Airflow ran
    assert (steady["pool"], steady["queue"], steady["priority_weight"], steady["max_tries"]) == (
        "steady_pool",
        "steady_queue",
        7,
        2,
    ), steady
    assert steady["try_number"] == 1  # it passed at once
    assert steady_test["max_tries"] == 0 and steady_test["pool"] == "steady_pool"  # no retries for tests
    # the flaky model failed once, its callback ran, and the retry its meta allows succeeded
    assert (flaky["try_number"], flaky["max_tries"]) == (2, 1), flaky
    assert calls.read_text().split() == [flaky_id(tasks)]
    assert flaky["xcom"]["statuses"]["ERROR"] == 0 and flaky["xcom"]["statuses"]["TOTAL"] == 1, flaky["xcom"]
    # the cosmos-form model was tried twice, then failed; dbt really ran both times
    assert (broken["try_number"], broken["max_tries"]) == (2, 1), broken
    assert text.count("a_table_nobody_made") >= 2


def flaky_id(tasks: dict) -> str:
    return "flaky_run" if "flaky_run" in tasks else "flaky.run"
