"""Per-node Airflow and dbt settings from a node's meta (issue 21 item 1), on manifests in code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from manifest_dag import ConfigError, DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.core.task_settings import TRIGGER_RULES, NodeSettingsError, parse_duration
from manifest_dag.scheduler import plan_cache
from manifest_dag.testing import plan_task
from manifest_dag.testing.builder import ManifestBuilder

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


def page_team(context: Any) -> None:
    """A callback the DAG file holds (the manifest only names it)."""


def note_retry(context: Any) -> None:
    """Another callback."""


def dag_of(manifest: Path, *, dbt_vars: dict | None = None, profile: ProfileConfig | None = None, **render) -> DbtDag:
    return DbtDag(
        dag_id="settings",
        project_config=ProjectConfig(
            manifest_path=manifest, project_dir="/srv/dbt", dbt_vars=dbt_vars or {}, plan_cache_dir=False
        ),
        profile_config=profile,
        venv_config=VENV,
        render_config=RenderConfig(**render),
        default_args={"retries": 5, "pool": "dag_pool"},
        schedule=None,
        start_date=START,
    )


def task(dag: DbtDag, name: str, command: str) -> Any:
    """The task running ``command`` for node ``name`` (found through the plan, whatever its id)."""
    for spec in dag.dbt_plan.tasks:
        if spec.command == command and any(uid.split(".")[2] == name for uid in spec.node_ids[:1]):
            return dag.task_dict[spec.task_id]
        if command == "test" and spec.command == "test" and spec.doc_md == f"Tests of `model.shop.{name}`":
            return dag.task_dict[spec.task_id]
    raise KeyError((name, command))


def shop(tmp_path: Path, **meta: Any) -> Path:
    """raw_orders (seed) -> orders (model, tested) -> revenue (model); ``meta`` per node name."""
    b = ManifestBuilder("shop")
    b.seed("raw_orders", meta=meta.get("raw_orders"))
    b.model("orders", refs=["raw_orders"], meta=meta.get("orders"), config=meta.get("orders_config"))
    b.test("not_null", on="orders", column="id", config=meta.get("orders_test"))
    b.test("unique", on="orders", column="id", config=meta.get("orders_test2"))
    b.model("revenue", refs=["orders"])
    return b.write(tmp_path)


def test_meta_sets_the_airflow_arguments_of_the_nodes_task(tmp_path: Path) -> None:
    manifest = shop(
        tmp_path,
        orders={
            "owner": "finance",
            "manifest_dag": {
                "pool": "warehouse_heavy",
                "pool_slots": 2,
                "queue": "big",
                "retries": 3,
                "retry_delay": "1m30s",
                "execution_timeout": 3600,
                "priority_weight": 9,
                "trigger_rule": "all_done",
                "weight_rule": "absolute",
            },
        },
    )
    dag = dag_of(manifest)
    run = task(dag, "orders", "run")
    assert (run.pool, run.pool_slots, run.queue, run.retries) == ("warehouse_heavy", 2, "big", 3)
    assert run.retry_delay == timedelta(seconds=90)
    assert run.execution_timeout == timedelta(hours=1)
    assert (run.priority_weight, run.trigger_rule, run.owner) == (9, "all_done", "finance")
    # a node without meta keeps the DAG's default_args
    other = task(dag, "revenue", "run")
    assert (other.pool, other.retries, other.trigger_rule) == ("dag_pool", 5, "all_success")
    # the tested node's Airflow settings reach its test task (as in cosmos), but not its dbt flags
    test = task(dag, "orders", "test")
    assert (test.pool, test.retries, test.owner) == ("warehouse_heavy", 3, "finance")
    assert dag.dbt_plan.task(task(dag, "orders", "run").task_id).settings["retry_delay"] == 90.0


def test_config_meta_and_owner(tmp_path: Path) -> None:
    """dbt 1.10+ keeps meta in config.meta; ``meta.owner`` gives the owner, ours wins over it."""
    manifest = shop(
        tmp_path,
        orders_config={"meta": {"owner": ["ana", "bo"], "manifest_dag": {"queue": "q2"}}},
        raw_orders={"owner": "ingest", "manifest_dag": {"owner": "platform"}},
    )
    dag = dag_of(manifest)
    assert task(dag, "orders", "run").owner == "ana, bo"
    assert task(dag, "orders", "run").queue == "q2"
    assert task(dag, "raw_orders", "seed").owner == "platform"


def test_cosmos_meta_form_is_read(tmp_path: Path) -> None:
    manifest = shop(
        tmp_path,
        orders={
            "cosmos": {
                "operator_kwargs": {
                    "pool": "expensive-pool",
                    "retries": 1,
                    "vars": {"region": "eu"},
                    "env": {"DBT_THREADS": 4},
                    "full_refresh": True,
                    "dbt_cmd_flags": ["--fail-fast"],
                },
                "profile_config": {
                    "target_name": "stage",
                    "profile_mapping": {"conn_id": "stage_db", "profile_args": {"schema": "stage"}},
                },
            }
        },
    )
    profile = ProfileConfig(profile_name="shop", profiles_yml_path="/srv/dbt/profiles.yml")
    dag = dag_of(manifest, dbt_vars={"day": "{{ ds }}"}, profile=profile)
    run = task(dag, "orders", "run")
    assert (run.pool, run.retries) == ("expensive-pool", 1)
    assert run.profile_config == ProfileConfig(
        profile_name="shop", target_name="stage", conn_id="stage_db", profile_args={"schema": "stage"}
    )
    planned = plan_task(
        run, connections={"stage_db": {"conn_type": "postgres", "host": "db", "login": "u", "schema": "shop"}}
    )
    assert planned.vars == {"day": "2024-01-01", "region": "eu"}  # the DAG's templated var rendered, the node's added
    assert planned.env["DBT_THREADS"] == "4"
    assert "--full-refresh" in planned.dbt_args and "--fail-fast" in planned.dbt_args
    assert task(dag, "raw_orders", "seed").profile_config == profile  # other nodes keep the DAG's profile


def test_manifest_values_are_never_rendered_by_jinja(tmp_path: Path) -> None:
    secret = "{{ conn.warehouse.password }}"
    manifest = shop(
        tmp_path,
        orders={
            "manifest_dag": {
                "dbt_vars": {"note": secret, "nested": {"x": "{{ var.value.token }}"}},
                "env": {"MARK": "{% raw %}x"},
                "dbt_flags": ["--vars-file-not-a-flag"] * 0 + ["--fail-fast"],
            }
        },
    )
    dag = dag_of(manifest, dbt_vars={"day": "{{ ds }}"})
    run = task(dag, "orders", "run")
    planned = plan_task(run)
    assert planned.vars == {"day": "2024-01-01", "note": secret, "nested": {"x": "{{ var.value.token }}"}}
    assert planned.env["MARK"] == "{% raw %}x"
    assert planned.rendered["dbt_vars"]["note"] == secret  # what Airflow stores as the rendered field


@pytest.mark.parametrize(
    ("meta", "key"),
    [
        ({"manifest_dag": {"retrys": 3}}, "meta.manifest_dag.retrys"),
        ({"manifest_dag": {"retries": "3"}}, "meta.manifest_dag.retries"),
        ({"manifest_dag": {"retries": -1}}, "meta.manifest_dag.retries"),
        ({"manifest_dag": {"pool": ""}}, "meta.manifest_dag.pool"),
        ({"manifest_dag": {"retry_delay": "soon"}}, "meta.manifest_dag.retry_delay"),
        ({"manifest_dag": {"trigger_rule": "whenever"}}, "meta.manifest_dag.trigger_rule"),
        ({"manifest_dag": {"full_refresh": "yes"}}, "meta.manifest_dag.full_refresh"),
        ({"manifest_dag": {"dbt_vars": ["a"]}}, "meta.manifest_dag.dbt_vars"),
        ({"manifest_dag": {"env": {"A": None}}}, "meta.manifest_dag.env.A"),
        ({"manifest_dag": {"dbt_flags": ["--select", "x"]}}, "meta.manifest_dag.dbt_flags"),
        ({"manifest_dag": {"on_failure_callback": "nobody"}}, "meta.manifest_dag.on_failure_callback"),
        ({"manifest_dag": {"profile": {"password": "x"}}}, "meta.manifest_dag.profile.password"),
        ({"manifest_dag": "pool_a"}, "meta.manifest_dag"),
        ({"owner": {"name": "ana"}}, "meta.owner"),
        ({"cosmos": {"operator_kwargs": {"image": "dbt:1"}}}, "meta.cosmos.operator_kwargs.image"),
        ({"cosmos": {"operator_kwargs": {"retries": "x"}}}, "meta.cosmos.operator_kwargs.retries"),
        ({"cosmos": {"other": {}}}, "meta.cosmos.other"),
    ],
)
def test_unknown_or_ill_typed_keys_fail_the_import_naming_node_and_key(tmp_path: Path, meta: dict, key: str) -> None:
    manifest = shop(tmp_path, orders=meta)
    with pytest.raises(NodeSettingsError) as caught:
        dag_of(manifest, callbacks={"page_team": page_team})
    assert isinstance(caught.value, ConfigError)
    assert caught.value.where == "model.shop.orders" and caught.value.key == key
    assert str(caught.value).startswith(f"model.shop.orders: {key} ")


def test_callbacks_are_named_in_meta_and_held_by_the_dag_file(tmp_path: Path) -> None:
    manifest = shop(
        tmp_path,
        orders={"manifest_dag": {"on_failure_callback": "page_team", "on_retry_callback": ["note", "page_team"]}},
    )
    dag = dag_of(manifest, callbacks={"page_team": page_team, "note": [note_retry]})
    run = task(dag, "orders", "run")
    assert list(run.on_failure_callback) == [page_team]
    assert list(run.on_retry_callback) == [note_retry, page_team]
    with pytest.raises(ConfigError, match="RenderConfig.callbacks: 'x' must be a callable"):
        RenderConfig(callbacks={"x": "page_team"})


def test_test_tasks_get_their_own_settings(tmp_path: Path) -> None:
    """Teams want tests not to retry: RenderConfig.test_task_args, then a test's own meta."""
    manifest = shop(
        tmp_path,
        orders={"manifest_dag": {"retries": 3, "pool": "heavy", "full_refresh": True}},
        orders_test={"meta": {"manifest_dag": {"queue": "tests"}}},
    )
    dag = dag_of(manifest, test_task_args={"retries": 0, "execution_timeout": "10m"})
    test = task(dag, "orders", "test")
    assert (test.retries, test.pool, test.queue) == (0, "heavy", "tests")
    assert test.execution_timeout == timedelta(minutes=10)
    assert task(dag, "orders", "run").retries == 3
    assert (
        "full_refresh" not in dag.dbt_plan.task(task(dag, "orders", "test").task_id).settings
    )  # the model's own command only
    # after_all: one test task, the same settings rules
    dag = dag_of(manifest, test_behavior="after_all", test_task_args={"retries": 0})
    assert (dag.task_dict["dbt_test"].retries, dag.task_dict["dbt_test"].queue) == (0, "tests")
    with pytest.raises(NodeSettingsError, match="RenderConfig.test_task_args: retries must be"):
        RenderConfig(test_task_args={"retries": "none"})


def test_tests_sharing_a_task_must_agree(tmp_path: Path) -> None:
    manifest = shop(
        tmp_path,
        orders_test={"meta": {"manifest_dag": {"retries": 1}}},
        orders_test2={"meta": {"manifest_dag": {"retries": 2}}},
    )
    with pytest.raises(NodeSettingsError, match=r"must agree") as caught:
        dag_of(manifest)
    assert caught.value.key == "retries" and caught.value.where.startswith("test.shop.")


def test_settings_reach_the_plan_cache(tmp_path: Path) -> None:
    manifest = shop(tmp_path, orders={"manifest_dag": {"retries": 4, "on_failure_callback": "page_team"}})
    rc = RenderConfig(callbacks={"page_team": page_team}, test_task_args={"retries": 0})
    cache = tmp_path / "plans"

    def build() -> Any:
        from manifest_dag.scheduler.project import plan_project

        planned = plan_project(manifest, rc)
        return planned.manifest, planned.plan

    plan_cache.clear_memory()
    _planned, source = plan_cache.cached_plan(manifest, rc, build, cache_dir=cache)
    assert source == "built"
    plan_cache.clear_memory()
    planned, source = plan_cache.cached_plan(manifest, rc, build, cache_dir=cache)
    assert source == "disk"
    spec, _group = planned.task("orders.run")  # one record, as a task's parse reads it
    assert dict(spec.settings) == {"retries": 4, "on_failure_callback": ("page_team",)}
    assert dict(planned.plan.task("orders.test").settings) == {
        "retries": 0,
        "on_failure_callback": ("page_team",),
    }
    # the callables do not key the plan (their names do); the test settings do
    same = RenderConfig(callbacks={"page_team": note_retry}, test_task_args={"retries": 0})
    assert plan_cache.render_key(same) == plan_cache.render_key(rc)
    assert plan_cache.render_key(RenderConfig(callbacks={"page_team": page_team})) != plan_cache.render_key(rc)


def test_durations_and_trigger_rules() -> None:
    from airflow.task.trigger_rule import TriggerRule

    assert TRIGGER_RULES == {t.value for t in TriggerRule}
    assert parse_duration("1h30m") == 5400 and parse_duration("2d") == 172800 and parse_duration(45) == 45
    assert parse_duration("90") == 90 and parse_duration("0.5s") == 0.5
    assert parse_duration("-1") is None and parse_duration(True) is None and parse_duration("m") is None
