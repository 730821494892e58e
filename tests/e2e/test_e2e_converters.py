"""Converters and skipping unchanged seeds with real Airflow (``dag.test()``), real dbt and DuckDB.

Issue 21 item 5. A ``DbtDag`` over a seed ``codes``, a model ``labels`` reading it and an exposure
``report`` on the model. ``RenderConfig(node_converters={"exposure": ...})`` makes the exposure a
``PythonOperator`` (exposures get no task otherwise); ``skip_unchanged_seeds=True`` lets the seed
task skip itself. Three runs: the first loads the seed; the second, with the CSV unchanged, skips
it while ``labels`` and the exposure's task still run; the third, after a row is added to the
CSV, loads it again (DuckDB holds the new row).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifest_dag.testing.builder import ManifestBuilder
from tests.e2e.test_e2e_run_flags import duckdb_rows
from tests.support.airflow_run import VENV_REQUIREMENTS, migrate
from tests.support.dag_run import dag_test_runs

pytestmark = pytest.mark.e2e

DAG_FILE = '''
"""An Airflow DAG with a converted exposure and a seed that skips itself when unchanged (manifest-dag e2e test)."""
import json
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

MARKS = Path("{marks}")


def mark(node_id, **context):
    with MARKS.open("a") as fh:
        fh.write(json.dumps({{"node": node_id, "run_id": context["run_id"]}}) + "\\n")


def exposure_task(node, default):
    """The exposure's own task: here it notes its run; in real life it refreshes the dashboard."""
    return PythonOperator(python_callable=mark, op_args=[node.unique_id], **default.airflow_kwargs)


dag = DbtDag(
    dag_id="converters",
    project_config=ProjectConfig(manifest_path="{manifest}", project_dir="{project}", env_vars={{"CONV_DB": "{db}"}}),
    profile_config=ProfileConfig(profile_name="conv", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(
        test_behavior="none", skip_unchanged_seeds=True, node_converters={{"exposure": exposure_task}}
    ),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''


def make_project(root: Path) -> tuple[Path, Path]:
    """The dbt project, and its manifest made in code (what `dbt parse` would write for it)."""
    (root / "seeds").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: conv\nversion: '1.0'\nconfig-version: 2\nprofile: conv\nmodel-paths: [models]\nseed-paths: [seeds]\n"
    )
    (root / "profiles.yml").write_text(
        "conv:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('CONV_DB') }}\"\n      threads: 1\n"
    )
    (root / "seeds" / "codes.csv").write_text("id,label\n1,one\n2,two\n")
    (root / "models" / "labels.sql").write_text(
        "{{ config(materialized='table') }}\nselect * from {{ ref('codes') }}\n"
    )
    (root / "models" / "exposures.yml").write_text(
        "version: 2\nexposures:\n  - name: report\n    type: dashboard\n    owner: {name: ana}\n"
        "    depends_on: [ref('labels')]\n"
    )
    builder = ManifestBuilder("conv").seed("codes").model("labels", refs=["codes"], materialized="table")
    builder.exposure("report", refs=["labels"])
    return root, builder.write(root.parent / "manifest")


def test_a_converted_exposure_runs_and_an_unchanged_seed_is_skipped(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project, manifest = make_project(tmp_path / "conv")
    db = tmp_path / "conv.duckdb"
    marks = tmp_path / "marks.jsonl"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "converters_dag.py").write_text(
        DAG_FILE.format(manifest=manifest, project=project, db=db, marks=marks, reqs=VENV_REQUIREMENTS)
    )
    csv = project / "seeds" / "codes.csv"
    log = tmp_path / "runs.log"
    # three runs in one process: loaded; unchanged, so skipped; a row added, so loaded again
    runs = dag_test_runs(
        home, dags, "converters", log, [{}, {}, {"write": {str(csv): "id,label\n1,one\n2,two\n3,three\n"}}]
    )
    text = log.read_text()
    logs = text.split("=== manifest-dag e2e: run ")[1:]
    assert len(runs) == len(logs) == 3, text[-4000:]
    for n, (result, run_log) in enumerate(zip(runs, logs, strict=True), start=1):
        states = {task: info["state"] for task, info in result["tasks"].items()}
        assert states == {
            "codes_seed": "skipped" if n == 2 else "success",
            "labels_run": "success",
            "report_exposure": "success",
        }, f"run {n}: {states}; log: {run_log[-4000:]}"
        if n == 2:
            assert "seed unchanged since its last successful load (seeds/codes.csv" in run_log
            assert "running: dbt seed" not in run_log  # dbt never started for the seed
        else:
            assert "running: dbt seed" in run_log
    marked = [json.loads(line) for line in marks.read_text().splitlines()]
    assert [m["node"] for m in marked] == ["exposure.conv.report"] * 3  # the converter's task ran each time
    assert len({m["run_id"] for m in marked}) == 3
    assert duckdb_rows(db, "select count(*) from main.labels") == [[3]]  # re-seeded after the CSV changed
