"""The demo shop project through real Airflow (`dag.test()`), real dbt and real DuckDB."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS, migrate, run_dag_test
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SEEDS = REPO / "fixtures" / "shop" / "seeds"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    migrate(home)
    return home


def csv_rows(name: str) -> int:
    return len((SEEDS / f"{name}.csv").read_text().strip().splitlines()) - 1


def duckdb_counts(db: Path, tables: list[str]) -> dict[str, int | None]:
    """Row counts read with the worker venv's own duckdb (the package never depends on it)."""
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS)))
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "out = {}\n"
        "for t in json.loads(sys.argv[2]):\n"
        "    try: out[t] = con.execute(f'select count(*) from main.{t}').fetchone()[0]\n"
        "    except Exception: out[t] = None\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(venv.python), "-c", script, str(db), json.dumps(tables)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_shop_dag_builds_every_model_on_duckdb(airflow_home: Path, tmp_path: Path) -> None:
    result = run_dag_test(
        airflow_home, REPO / "examples" / "dags", "shop", tmp_path / "dag_test.log", MANIFEST_DAG_DEMO_DIR=str(tmp_path)
    )
    failed = {t: r["state"] for t, r in result["tasks"].items() if r["state"] != "success"}
    assert not failed, f"tasks not successful: {failed}; log: {tmp_path / 'dag_test.log'}"
    assert result["state"] == "success"
    assert len(result["tasks"]) > 40
    counts = duckdb_counts(
        tmp_path / "shop.duckdb",
        ["raw_orders", "raw_customers", "stg_orders", "stg_customers", "stg_payments", "int_orders_with_totals",
         "fct_orders", "dim_products", "customer_segments", "fct_revenue_monthly"],
    )
    assert counts["raw_orders"] == counts["stg_orders"] == csv_rows("raw_orders")
    assert counts["raw_customers"] == counts["stg_customers"] == csv_rows("raw_customers")
    assert counts["stg_payments"] == csv_rows("raw_payments")
    assert counts["dim_products"] == csv_rows("raw_products")
    for table in ("int_orders_with_totals", "fct_orders", "customer_segments", "fct_revenue_monthly"):
        assert counts[table], f"{table} is missing or empty: {counts}"


DAG_FILE = '''
"""Airflow DAG over a copy of the shop project with one broken model (manifest-dag e2e test)."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="broken_shop",
    project_config=ProjectConfig(manifest_path="{manifest}", project_dir="{project}",
                                 env_vars={{"SHOP_DUCKDB_PATH": "{db}"}}, install_deps=True),
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(exclude=["source:*"], test_behavior="none"),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''


def test_broken_model_fails_alone_and_independent_branches_finish(airflow_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "shop"
    shutil.copytree(REPO / "fixtures" / "shop", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    (project / "models" / "staging" / "stg_products.sql").write_text("select * from no_such_table_anywhere\n")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "broken_dag.py").write_text(
        DAG_FILE.format(
            manifest=REPO / "fixtures" / "manifests" / "shop" / "manifest.json",
            project=project,
            db=tmp_path / "shop.duckdb",
            reqs=VENV_REQUIREMENTS,
        )
    )
    log = tmp_path / "dag_test.log"
    result = run_dag_test(airflow_home, dags, "broken_shop", log)
    tasks = {t: r["state"] for t, r in result["tasks"].items()}
    assert tasks["stg_products_run"] == "failed"
    assert result["state"] == "failed"
    # downstream of the broken model never ran
    for downstream in ("int_orders_with_totals_run", "fct_orders_run", "fct_revenue_monthly_run"):
        assert tasks[downstream] == "upstream_failed", tasks
    # an independent branch completed
    for independent in ("stg_payments_run", "fct_payments_daily_run", "dim_products_run", "stg_orders_run"):
        assert tasks[independent] == "success", tasks
    text = log.read_text()
    failure = text[text.index("DbtRunError"):][:3000]
    assert "model.shop.stg_products" in failure
    assert "no_such_table_anywhere" in failure


STANDALONE = '''
"""Airflow DAG of manifest-dag operators used on their own, without DbtDag (e2e test)."""
import json
from pathlib import Path
import pendulum
from airflow.sdk import DAG
from manifest_dag import DbtRunOperator, DbtSeedOperator, ProfileConfig

def keep_args(target, context):
    args = json.loads((Path(target) / "run_results.json").read_text())["args"]
    Path("{out}").write_text(json.dumps({{"vars": args.get("vars"), "ds": context["ds"]}}))

common = dict(
    project_dir="{project}",
    py_requirements={reqs!r},
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="{project}/profiles.yml"),
    env={{"SHOP_DUCKDB_PATH": "{{{{ params.db }}}}"}},
    install_deps=True,
)
with DAG("standalone", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         params={{"db": "{db}"}}) as dag:
    seed = DbtSeedOperator(task_id="seed_products", select=["raw_products"], **common)
    run = DbtRunOperator(task_id="stg_products", select="stg_products", dbt_vars={{"run_day": "{{{{ ds }}}}"}},
                         artifacts_callback=keep_args, **common)
    seed >> run
'''


def test_operators_work_alone_with_templated_env_and_vars(airflow_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "shop"
    shutil.copytree(REPO / "fixtures" / "shop", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    dags = tmp_path / "dags"
    dags.mkdir()
    out = tmp_path / "args.json"
    db = tmp_path / "templated.duckdb"
    (dags / "standalone_dag.py").write_text(
        STANDALONE.format(project=project, reqs=VENV_REQUIREMENTS, out=out, db=db)
    )
    result = run_dag_test(airflow_home, dags, "standalone", tmp_path / "dag_test.log")
    assert {t: r["state"] for t, r in result["tasks"].items()} == {"seed_products": "success", "stg_products": "success"}
    assert db.exists(), "the templated env var did not reach dbt's profile"
    seen = json.loads(out.read_text())
    assert seen["vars"] == {"run_day": seen["ds"]}
    assert duckdb_counts(db, ["stg_products"]) == {"stg_products": csv_rows("raw_products")}
