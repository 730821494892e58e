"""A manifest in S3 (moto's real S3 server on loopback) read by DbtDag on the DAG processor.

The store is a real server, the reads go through Airflow's ObjectStoragePath and the Amazon
provider's s3fs: what is counted here (GET requests in the server's own log) is what a bucket
would see.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest

from manifest_dag import DbtDag, ManifestError, ProjectConfig, VenvConfig
from manifest_dag.core.errors import ConfigError
from manifest_dag.scheduler.plan_cache import clear_memory
from tests.conftest import JAFFLE, REPO
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, MotoS3

SHOP = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
URL = "s3://dbt-artifacts/ci/main/manifest.json"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    with MotoS3(tmp_path) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MANIFEST_DAG_PLAN_CACHE", str(tmp_path / "plans"))
        server.bucket("dbt-artifacts")
        clear_memory()
        yield server
        server.resume()


def build(conn_id: str, url: str = URL) -> DbtDag:
    return DbtDag(
        dag_id="remote",
        project_config=ProjectConfig(manifest_path=url, manifest_conn_id=conn_id, project_dir="/srv/dbt"),
        venv_config=VENV,
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    )


def test_unchanged_object_is_not_downloaded_again_and_a_replaced_one_gives_the_new_plan(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3.put("dbt-artifacts", "ci/main/manifest.json", SHOP.read_bytes())
    first = build(s3.conn_id)
    shop_tasks = set(first.task_ids)
    assert any(t.startswith("stg_orders") for t in shop_tasks)
    downloads = s3.gets("manifest.json")
    assert downloads >= 1
    clear_memory()  # a fresh process: only the disk is left
    again = build(s3.conn_id)
    assert set(again.task_ids) == shop_tasks
    assert s3.gets("manifest.json") == downloads, "an unchanged object was downloaded again"

    # a task's parse (the task runner, before every task) checks the version only, downloads nothing
    clear_memory()
    task_id = sorted(shop_tasks)[0]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "remote")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", task_id)
    scoped = build(s3.conn_id)
    assert scoped.task_ids == [task_id]
    assert s3.gets("manifest.json") == downloads
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID")

    # dbt CI publishes a new manifest: the next parse has the new plan
    s3.put("dbt-artifacts", "ci/main/manifest.json", JAFFLE.read_bytes())
    with caplog.at_level(logging.INFO, logger="manifest_dag"):
        replaced = build(s3.conn_id)
    assert set(replaced.task_ids) != shop_tasks
    assert any(t.startswith("customers") for t in replaced.task_ids)  # jaffle's mart, not in the shop
    assert not any(t.startswith("customers") for t in shop_tasks)
    assert s3.gets("manifest.json") > downloads
    assert any("downloaded the manifest s3://dbt-artifacts/ci/main/manifest.json" in r.getMessage() for r in caplog.records)


def test_a_store_that_stops_answering_keeps_the_last_good_plan_within_the_deadline(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3.put("dbt-artifacts", "ci/main/manifest.json", SHOP.read_bytes())
    good = set(build(s3.conn_id).task_ids)
    clear_memory()
    monkeypatch.setenv("MANIFEST_DAG_OBJECT_TIMEOUT", "3")
    s3.pause()  # connections are accepted, nothing answers
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="manifest_dag"):
        kept = build(s3.conn_id)
    took = time.monotonic() - started
    assert set(kept.task_ids) == good
    assert took < 3 + 20, f"the parse took {took:.1f} s with a 3 s deadline"
    warning = next(r.getMessage() for r in caplog.records if "keeping the last good plan" in r.getMessage())
    assert URL in warning and "no answer within 3 s" in warning

    # a manifest never read before, on the same silent store: a clear error, in bounded time
    started = time.monotonic()
    with pytest.raises(ManifestError) as err:
        build(s3.conn_id, "s3://dbt-artifacts/ci/other/manifest.json")
    assert time.monotonic() - started < 3 + 20
    assert "s3://dbt-artifacts/ci/other/manifest.json cannot be read" in str(err.value)
    assert "No earlier copy" in str(err.value)
    s3.resume()
    for text in [str(err.value), *(r.getMessage() for r in caplog.records)]:
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_a_missing_object_is_an_error_naming_the_url_or_keeps_the_last_good_plan(
    s3: MotoS3, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ManifestError) as err:
        build(s3.conn_id)
    assert f"manifest {URL} does not exist" in str(err.value)

    s3.put("dbt-artifacts", "ci/main/manifest.json", SHOP.read_bytes())
    good = set(build(s3.conn_id).task_ids)
    s3.client().delete_object(Bucket="dbt-artifacts", Key="ci/main/manifest.json")
    clear_memory()
    with caplog.at_level(logging.WARNING, logger="manifest_dag"):
        assert set(build(s3.conn_id).task_ids) == good
    warning = next(r.getMessage() for r in caplog.records if "keeping the last good plan" in r.getMessage())
    assert f"cannot read the manifest {URL} (" in warning and "no such object" in warning


def test_the_local_copy_is_private(s3: MotoS3, tmp_path: Path) -> None:
    s3.put("dbt-artifacts", "ci/main/manifest.json", SHOP.read_bytes())
    build(s3.conn_id)
    copies = list((tmp_path / "plans" / "objects").rglob("manifest.json"))
    assert len(copies) == 1
    assert copies[0].read_bytes() == SHOP.read_bytes()
    assert copies[0].stat().st_mode & 0o077 == 0
    assert copies[0].parent.stat().st_mode & 0o077 == 0
    meta = copies[0].with_name("manifest.json.object.json").read_text()
    assert SECRET_KEY not in meta and ACCESS_KEY not in meta


def test_config_keeps_the_url_and_checks_the_conn_id() -> None:
    pc = ProjectConfig(manifest_path="s3://bucket/dbt/manifest.json", manifest_conn_id="aws_ci")
    assert pc.manifest_path == "s3://bucket/dbt/manifest.json"
    with pytest.raises(ConfigError, match="manifest_conn_id"):
        ProjectConfig(manifest_path="/srv/manifest.json", manifest_conn_id="aws_ci")
    with pytest.raises(ConfigError, match="must name an object"):
        ProjectConfig(manifest_path="s3://bucket")
    with pytest.raises(ConfigError) as err:
        ProjectConfig(manifest_path="s3://key:topsecret@bucket")
    assert "topsecret" not in str(err.value)
    assert os.fspath(ProjectConfig(manifest_path="/srv/m.json").manifest_path) == "/srv/m.json"


def test_a_scheme_without_its_provider_names_the_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANIFEST_DAG_PLAN_CACHE", str(tmp_path / "plans"))
    with pytest.raises(ManifestError) as err:
        build("gcp_ci", "gs://dbt-artifacts/ci/main/manifest.json")
    assert "gs://dbt-artifacts/ci/main/manifest.json" in str(err.value)
    assert "install apache-airflow-providers-google" in str(err.value)
