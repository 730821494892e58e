"""Plan cache entries shared through S3 (moto's real S3 server on loopback) between machines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest

import manifest_dag.scheduler.dag as dag_module
from manifest_dag import DbtDag, ProjectConfig, VenvConfig
from manifest_dag.scheduler.plan_cache import clear_memory
from tests.conftest import REPO
from tests.support.moto_s3 import MotoS3

SHOP = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
STATE = "s3://fleet-state/manifest-dag"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    with MotoS3(tmp_path) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MANIFEST_DAG_SHARED_STATE_KEY", "fleet-secret")
        server.bucket("fleet-state")
        clear_memory()
        yield server


def build(s3: MotoS3, cache: Path) -> DbtDag:
    return DbtDag(
        dag_id="shared_plans",
        project_config=ProjectConfig(
            manifest_path=SHOP, plan_cache_dir=cache, shared_state_url=STATE, shared_state_conn_id=s3.conn_id
        ),
        venv_config=VENV,
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    )


def no_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("planned again although the fleet had the plan")

    monkeypatch.setattr(dag_module, "_plan_project", refuse)


def shared_objects(s3: MotoS3) -> list[str]:
    found = s3.client().list_objects_v2(Bucket="fleet-state", Prefix="manifest-dag/plans/").get("Contents", [])
    return [o["Key"] for o in found]


def test_a_plan_built_on_one_machine_is_used_by_another(
    s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first = build(s3, tmp_path / "machine-a")
    assert len(shared_objects(s3)) == 1
    clear_memory()
    no_planning(monkeypatch)
    with caplog.at_level(logging.INFO, logger="manifest_dag"):
        second = build(s3, tmp_path / "machine-b")  # an empty local cache
    assert second.task_ids == first.task_ids
    assert any("using the plan shared at s3://fleet-state/manifest-dag/plans/" in r.getMessage() for r in caplog.records)
    local = list((tmp_path / "machine-b").glob("*.plan"))
    assert len(local) == 1 and local[0].stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("damage", ["truncated", "other key"])
def test_a_damaged_or_foreign_shared_plan_is_ignored_and_planned_again(
    s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    first = build(s3, tmp_path / "machine-a")
    (key,) = shared_objects(s3)
    blob = s3.client().get_object(Bucket="fleet-state", Key=key)["Body"].read()
    if damage == "truncated":  # what a store showing a half-written object would hand out
        s3.put("fleet-state", key, blob[: len(blob) // 2])
    else:  # written by someone without the fleet's key
        monkeypatch.setenv("MANIFEST_DAG_SHARED_STATE_KEY", "someone-else")
        clear_memory()
        build(s3, tmp_path / "machine-x")
        monkeypatch.setenv("MANIFEST_DAG_SHARED_STATE_KEY", "fleet-secret")
    clear_memory()
    with caplog.at_level(logging.WARNING, logger="manifest_dag"):
        second = build(s3, tmp_path / "machine-b")
    assert second.task_ids == first.task_ids  # planned here, from the manifest
    warning = next(r.getMessage() for r in caplog.records if "ignoring the shared plan" in r.getMessage())
    assert ("truncated" in warning) if damage == "truncated" else ("tag mismatch" in warning)


def test_without_the_fleet_key_plans_are_not_shared(s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANIFEST_DAG_SHARED_STATE_KEY")
    build(s3, tmp_path / "machine-a")
    assert shared_objects(s3) == []
