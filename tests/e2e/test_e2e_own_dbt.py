"""Issue 21 item 8 with real dbt: a dbt venv built outside manifest-dag (plain ``python -m venv``
and ``uv pip install``, no bytecode compiled), named by ``VenvConfig(existing_venv=...)``, runs
shop tasks through ``dag.test()`` cold and warm, with the same workspace, profile and partial
parsing, and is never written to."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from manifest_dag import ProfileConfig, VenvConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from tests.support.airflow_run import E2E_VENV_CACHE, migrate, run_dag_test
from tests.support.own_venv import own_dbt_venv, tree_listing

pytestmark = pytest.mark.e2e

DAG_FILE = '''
"""Airflow DAG over the shop project with a dbt venv the team built itself (manifest-dag e2e test)."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="own_dbt_shop",
    project_config=ProjectConfig(manifest_path="{manifest}", project_dir="{project}",
                                 env_vars={{"SHOP_DUCKDB_PATH": "{db}"}}, install_deps=True),
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(existing_venv="{venv}"),
    render_config=RenderConfig(select=["+stg_products"], test_behavior="after_each"),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''


def test_a_venv_built_outside_runs_shop_tasks_warm_and_cold_and_is_never_written(tmp_path: Path) -> None:
    own_venv = own_dbt_venv()
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = tmp_path / "shop"
    shutil.copytree(
        REPO / "fixtures" / "shop", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb")
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    db = tmp_path / "shop.duckdb"
    (dags / "own_dbt_dag.py").write_text(
        DAG_FILE.format(
            manifest=REPO / "fixtures" / "manifests" / "shop" / "manifest.json", project=project, db=db, venv=own_venv
        )
    )
    before = tree_listing(own_venv)
    version = next(own_venv.glob("lib/python*/site-packages/dbt_core-*.dist-info")).name[len("dbt_core-") : -len(".dist-info")]

    # warm: the DAG's tasks through dag.test(), one warm process of the team's venv
    log = tmp_path / "dag_test.log"
    result = run_dag_test(home, dags, "own_dbt_shop", log, MANIFEST_DAG_WARM_PROCESSES="1")
    text = log.read_text()
    states = {t: r["state"] for t, r in result["tasks"].items()}
    assert len(states) >= 3 and set(states.values()) == {"success"}, (states, text[-3000:])
    ran = re.findall(r"running: dbt .*\(dbt ([0-9.]+), dbt at (\S+)\)", text)
    assert len(ran) == len(states), (ran, states)
    assert set(ran) == {(version, str(own_venv / "bin" / "dbt"))}
    assert text.count("warm dbt: running in warm process") == len(states), text[-3000:]
    assert "warm dbt unavailable" not in text
    # the same workspace and partial parsing: the first task re-parses at most (the msgpack beside
    # the manifest was written for another DuckDB path); every later one reuses the project the warm
    # process of the team's venv parsed
    assert text.count("partial parse was not reused") <= 1
    assert text.count("warm dbt: reusing the project parsed in this process") == len(states) - 1, text[-3000:]

    # cold: a fresh dbt process of the same venv, in the same slot, reusing its partial parse
    lines: list[str] = []
    run_dbt(
        DbtInvocation(
            command_args=("seed", "--select", "raw_products"),
            project_dir=project,
            venv_spec=VenvConfig(existing_venv=own_venv).to_spec(),
            profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=project / "profiles.yml"),
            cache_dir=E2E_VENV_CACHE,
            env={"SHOP_DUCKDB_PATH": str(db)},
            install_deps=True,
            warm_processes=0,
        ),
        log=lines.append,
    )
    cold = "\n".join(lines)
    assert f"(dbt {version}, dbt at {own_venv / 'bin' / 'dbt'})" in cold
    assert "warm dbt" not in cold
    assert "partial parse: reusing this slot's copy" in cold
    assert "Partial parsing enabled, no changes found, skipping parsing" in cold, cold[-2000:]
    assert "1 of 1 OK loaded seed file" in cold

    assert tree_listing(own_venv) == before, "the venv brought along was modified"
