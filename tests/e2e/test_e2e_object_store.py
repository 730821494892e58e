"""A DAG whose manifest and partial_parse.msgpack are in S3, through `dag.test()` and real dbt.

The bucket is moto's real S3 server on loopback; the DAG file names the manifest by its
``s3://`` URL and a Connection (an ``AIRFLOW_CONN_*`` variable, as a deployment would give it).
The scheduler side reads the manifest from the bucket, the worker fetches the msgpack published
beside it and dbt reuses it: the task log says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.airflow_run import VENV_REQUIREMENTS, migrate, run_dag_test
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, MotoS3

pytestmark = pytest.mark.e2e

SHOP = REPO / "fixtures" / "shop"
ARTIFACTS = REPO / "fixtures" / "manifests" / "shop"

DAG_FILE = '''
"""Airflow DAG over the shop project with its manifest in S3 (manifest-dag e2e test)."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="shop_from_s3",
    project_config=ProjectConfig(manifest_path="s3://dbt-artifacts/shop/main/manifest.json",
                                 manifest_conn_id="{conn_id}", project_dir="{project}", install_deps=True),
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(select=["raw_products", "stg_products"], test_behavior="none"),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=1,
)
'''


def test_dag_with_its_manifest_and_msgpack_in_s3_runs_dbt_and_reuses_the_parse(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = tmp_path / "shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    dags = tmp_path / "dags"
    dags.mkdir()
    with MotoS3(tmp_path) as s3:
        s3.bucket("dbt-artifacts")
        # what dbt CI publishes after `dbt parse`: the manifest and the msgpack beside it
        for name in ("manifest.json", "partial_parse.msgpack"):
            s3.put("dbt-artifacts", f"shop/main/{name}", (ARTIFACTS / name).read_bytes())
        (dags / "shop_from_s3.py").write_text(DAG_FILE.format(conn_id=s3.conn_id, project=project, reqs=VENV_REQUIREMENTS))
        log = tmp_path / "dag_test.log"
        result = run_dag_test(home, dags, "shop_from_s3", log, MANIFEST_DAG_PLAN_CACHE=str(tmp_path / "plans"), **s3.env())
        text = log.read_text()
        assert result["state"] == "success", (result, text[-4000:])
        assert set(result["tasks"]) == {"raw_products_seed", "stg_products_run"}, result
        assert all(r["state"] == "success" for r in result["tasks"].values()), result
        assert s3.gets("shop/main/manifest.json") >= 1
    # the worker fetched the msgpack from the bucket and dbt reused it (paths moved to the workspace)
    assert "partial parse: fetched s3://dbt-artifacts/shop/main/partial_parse.msgpack" in text
    assert "partial parse: reusing s3://dbt-artifacts/shop/main/partial_parse.msgpack (dbt 1.11" in text, text[-4000:]
    assert "Unable to do partial parsing" not in text
    # the model really ran: dbt's own summary line for it
    assert "OK created sql view model main.stg_products" in text or "OK created sql table model main.stg_products" in text, text[-4000:]
    assert SECRET_KEY not in text and ACCESS_KEY not in text
