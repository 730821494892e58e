"""A task's parse builds only that task, identical to the same task in the full DAG."""

from __future__ import annotations

import logging
from pathlib import Path

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from manifest_dag import DbtDag, DbtTaskGroup, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.scheduler.plan_cache import cached_plan, clear_memory, render_key
from manifest_dag.scheduler.dag import plan_project
from tests.conftest import JAFFLE, SHARED

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
PROFILE = ProfileConfig(profile_name="p", target_name="prod", conn_id="warehouse", profile_args={"schema": "x"})


def build(path: Path, **render) -> DbtDag:
    return DbtDag(
        dag_id="scoped",
        project_config=ProjectConfig(manifest_path=path, project_dir="/srv/dbt", dbt_vars={"day": "{{ ds }}"}),
        profile_config=PROFILE,
        venv_config=VENV,
        render_config=RenderConfig(**render),
        operator_args={"retries": 2, "pool": "dbt_pool"},
        schedule=None,
        start_date=START,
        default_args={"owner": "data"},
    )


def in_context(monkeypatch: pytest.MonkeyPatch, dag_id: str | None, task_id: str | None) -> None:
    for var, value in (("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id), ("_AIRFLOW_PARSING_CONTEXT_TASK_ID", task_id)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)


def same_task(a, b) -> None:
    assert type(a) is type(b)
    assert a.task_id == b.task_id
    assert (a.task_group.group_id if a.task_group else None) == (b.task_group.group_id if b.task_group else None)
    for field in a.template_fields:
        assert getattr(a, field) == getattr(b, field), field
    assert a.dbt_args() == b.dbt_args()
    assert a.venv_config == b.venv_config and a.profile_config == b.profile_config
    for attr in ("retries", "pool", "owner", "doc_md", "manifest_path", "install_deps", "trigger_rule", "queue"):
        assert getattr(a, attr) == getattr(b, attr), attr
    assert [o.uri for o in a.outlets] == [o.uri for o in b.outlets]


@pytest.mark.parametrize("path", [JAFFLE, SHARED / "large" / "tuva" / "manifest.json.gz"], ids=["jaffle", "tuva"])
def test_every_task_built_alone_equals_the_full_build(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_context(monkeypatch, None, None)
    full = build(path, emit_assets=True)
    assert len(full.task_dict) > 10
    for task_id, task in full.task_dict.items():
        in_context(monkeypatch, "scoped", task_id)
        scoped = build(path, emit_assets=True)
        assert list(scoped.task_dict) == [task_id]
        same_task(scoped.task_dict[task_id], task)
        assert scoped.default_args == full.default_args and scoped.params == full.params


def test_other_dag_in_the_same_file_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    in_context(monkeypatch, "some_other_dag", "orders.run")
    assert not build(JAFFLE).task_dict


def test_unknown_task_falls_back_to_the_full_build(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    in_context(monkeypatch, "scoped", "renamed_model.run")
    with caplog.at_level(logging.WARNING):
        dag = build(JAFFLE)
    assert len(dag.task_dict) == 14
    assert "renamed_model.run is not in the plan" in caplog.text


def test_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    in_context(monkeypatch, "scoped", "orders.run")
    assert len(build(JAFFLE, task_scoped=False).task_dict) == 14
    monkeypatch.setenv("MANIFEST_DAG_TASK_SCOPED", "off")
    assert len(build(JAFFLE).task_dict) == 14


def test_task_group_in_a_users_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    def host() -> DAG:
        with DAG("host", schedule=None, start_date=START) as dag:
            start = EmptyOperator(task_id="start")
            group = DbtTaskGroup(group_id="shop", project_config=ProjectConfig(manifest_path=JAFFLE), venv_config=VENV)
            start >> group
        return dag

    in_context(monkeypatch, "host", "shop.orders.run")
    assert set(host().task_dict) == {"start", "shop.orders.run"}
    in_context(monkeypatch, "host", "start")
    assert set(host().task_dict) == {"start"}


# -- the plan cache ------------------------------------------------------------------------------
def test_plan_cache_levels_and_corruption(tmp_path: Path) -> None:
    config = RenderConfig()
    project = ProjectConfig(manifest_path=JAFFLE)
    calls = []

    def make():
        calls.append(1)
        return plan_project(project, config)

    clear_memory()
    first, src1 = cached_plan(JAFFLE, config, make, cache_dir=tmp_path)
    again, src2 = cached_plan(JAFFLE, config, make, cache_dir=tmp_path)
    assert (src1, src2) == ("built", "memory") and again is first
    clear_memory()
    from_disk, src3 = cached_plan(JAFFLE, config, make, cache_dir=tmp_path)
    assert src3 == "disk" and len(calls) == 1
    assert from_disk.plan == first.plan
    (entry,) = tmp_path.glob("*.plan")
    good = entry.read_bytes()

    # the last bytes are the last task's record: its task falls back to the whole plan, no rebuild
    blob = bytearray(good)
    blob[-10] ^= 0xFF
    entry.write_bytes(bytes(blob))
    clear_memory()
    last = first.plan.tasks[-1]
    planned, source = cached_plan(JAFFLE, config, make, cache_dir=tmp_path)
    assert source == "disk" and planned.task(last.task_id) == (last, first.plan.groups_of(last.task_id))
    assert len(calls) == 1

    # the whole plan's bytes: found when the plan is read, then rebuilt from the manifest and rewritten
    blob = bytearray(good)
    blob[len(good) // 3] ^= 0xFF  # well inside the plan part (the records come after it)
    entry.write_bytes(bytes(blob))
    clear_memory()
    planned, source = cached_plan(JAFFLE, config, make, cache_dir=tmp_path)
    assert source == "disk" and planned.plan == first.plan and len(calls) == 2
    assert entry.read_bytes() == good

    # the header (a length, the meta's checksum, the meta): the entry is not trusted at all
    for at in (12, 30, 100):
        blob = bytearray(good)
        blob[at] ^= 0xFF
        entry.write_bytes(bytes(blob))
        clear_memory()
        assert cached_plan(JAFFLE, config, make, cache_dir=tmp_path)[1] == "built", at
    for junk in (b"garbage", good[:100], b""):
        entry.write_bytes(junk)
        clear_memory()
        assert cached_plan(JAFFLE, config, make, cache_dir=tmp_path)[1] == "built"
    clear_memory()
    assert cached_plan(JAFFLE, config, make, cache_dir=tmp_path)[1] == "disk"


def test_a_cached_task_is_read_without_decoding_the_whole_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import manifest_dag.scheduler.plan_cache as cache

    config = RenderConfig()
    clear_memory()
    built, _ = cached_plan(JAFFLE, config, lambda: plan_project(ProjectConfig(manifest_path=JAFFLE), config), cache_dir=tmp_path)
    clear_memory()

    def no_whole_plan(self):
        raise AssertionError("decoded the whole plan")

    monkeypatch.setattr(cache._EntryReader, "plan", no_whole_plan)
    planned, source = cached_plan(JAFFLE, config, lambda: pytest.fail("rebuilt"), cache_dir=tmp_path)
    assert source == "disk"
    assert (planned.dbt_version, planned.adapter_type, planned.project_name) == (
        built.dbt_version, built.adapter_type, built.project_name)
    for spec in built.plan.tasks:
        assert spec.task_id in planned
        assert planned.task(spec.task_id) == (spec, built.plan.groups_of(spec.task_id))
    assert "no_such.run" not in planned


def test_task_specs_pickle_every_field() -> None:
    """``TaskSpec.__reduce__`` lists the fields by hand: a new field it forgets fails here."""
    import dataclasses
    import pickle

    from manifest_dag.scheduler.plan import GroupSpec, TaskSpec

    for cls in (TaskSpec, GroupSpec):
        values = {f.name: (f"v_{f.name}",) if "tuple" in str(f.type) else f"v_{f.name}" for f in dataclasses.fields(cls)}
        spec = cls(**values)
        assert pickle.loads(pickle.dumps(spec)) == spec
        assert all(getattr(pickle.loads(pickle.dumps(spec)), k) == v for k, v in values.items())


def test_changed_manifest_or_options_miss_the_cache(tmp_path: Path) -> None:
    copy = tmp_path / "manifest.json"
    copy.write_bytes(JAFFLE.read_bytes())
    project = ProjectConfig(manifest_path=copy)
    clear_memory()
    cached_plan(copy, RenderConfig(), lambda: plan_project(project, RenderConfig()), cache_dir=tmp_path / "c")
    assert render_key(RenderConfig()) != render_key(RenderConfig(test_behavior="build"))
    text = copy.read_text().replace("This table has basic information about a customer", "Changed description")
    copy.write_text(text)
    planned, source = cached_plan(copy, RenderConfig(), lambda: plan_project(project, RenderConfig()), cache_dir=tmp_path / "c")
    assert source == "built"
    assert any("Changed description" in (t.doc_md or "") for t in planned.plan.tasks)


def test_a_known_file_identity_skips_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import manifest_dag.scheduler.plan_cache as cache

    copy = tmp_path / "manifest.json"
    copy.write_bytes(JAFFLE.read_bytes())
    project = ProjectConfig(manifest_path=copy)
    clear_memory()
    cached_plan(copy, RenderConfig(), lambda: plan_project(project, RenderConfig()), cache_dir=tmp_path / "c")
    clear_memory()

    def no_hashing(path: Path) -> str:
        raise AssertionError("hashed the manifest again")

    monkeypatch.setattr(cache, "file_digest", no_hashing)
    assert cached_plan(copy, RenderConfig(), lambda: plan_project(project, RenderConfig()), cache_dir=tmp_path / "c")[1] == "disk"
    copy.write_bytes(JAFFLE.read_bytes() + b" ")  # a new identity: hashed (and here refused)
    clear_memory()
    with pytest.raises(AssertionError, match="hashed the manifest again"):
        cached_plan(copy, RenderConfig(), lambda: plan_project(project, RenderConfig()), cache_dir=tmp_path / "c")


def test_a_task_parse_with_a_warm_cache_loads_no_manifest_machinery(tmp_path: Path) -> None:
    """Airflow's runner parses the DAG file before every task: with a warm plan cache it must not
    pay for the manifest reader, the graph library or the venv machinery (only the worker's
    operator needs those, when it runs)."""
    import subprocess
    import sys

    code = f"""
import os, sys
os.environ["MANIFEST_DAG_PLAN_CACHE"] = {str(tmp_path)!r}
import airflow.sdk  # what Airflow itself loads is not ours (Airflow 3.0's SDK imports orjson)
airflows = set(sys.modules)
from manifest_dag import DbtDag, ProjectConfig, VenvConfig
def build():
    return DbtDag(dag_id="warm", project_config=ProjectConfig(manifest_path={str(JAFFLE)!r}),
                  venv_config=VenvConfig(py_requirements=["dbt-core"]), schedule=None)
if sys.argv[1] == "fill":
    build()
else:
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = "warm"
    os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = "orders.run"
    dag = build()
    assert list(dag.task_dict) == ["orders.run"], list(dag.task_dict)
    print([m for m in ("networkx", "orjson", "manifest_dag.scheduler.selection", "manifest_dag.scheduler.manifest",
                       "manifest_dag.scheduler.graph", "manifest_dag.worker.venv", "filelock")
           if m in sys.modules and m not in airflows])
"""
    subprocess.run([sys.executable, "-c", code, "fill"], check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", code, "task"], check=True, capture_output=True, text=True)
    assert out.stdout.splitlines()[-1] == "[]", out.stdout
