"""Converters and skipping unchanged seeds (issue 21 item 5), on manifests in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TaskGroup

from manifest_dag import (
    ConfigError,
    DbtDag,
    DbtNodeView,
    DbtRunOperator,
    DbtSeedOperator,
    DefaultTask,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    VenvConfig,
)
from manifest_dag.scheduler import plan_cache
from manifest_dag.testing.builder import ManifestBuilder

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


def shop(tmp_path: Path) -> Path:
    """raw_orders (seed) -> orders (model, tested) -> revenue (model) -> weekly (exposure)."""
    b = ManifestBuilder("shop")
    b.seed("raw_orders")
    b.source("raw", "payments")
    b.model("orders", refs=["raw_orders"], sources=["raw.payments"])
    b.test("not_null", on="orders", column="id")
    b.model("revenue", refs=["orders"])
    b.exposure("weekly", refs=["revenue"], meta={"dashboard_id": 42})
    return b.write(tmp_path)


def dag_of(manifest: Path, *, cache: Path | bool = False, **render: Any) -> DbtDag:
    return DbtDag(
        dag_id="conv",
        project_config=ProjectConfig(manifest_path=manifest, project_dir="/srv/dbt", plan_cache_dir=cache),
        profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="/srv/dbt/profiles.yml"),
        venv_config=VENV,
        render_config=RenderConfig(**render),
        schedule=None,
        start_date=START,
    )


def ids(dag: DbtDag, task_id: str, side: str = "upstream") -> set[str]:
    return set(getattr(dag.task_dict[task_id], f"{side}_task_ids"))


class Dashboard(EmptyOperator):
    """A stand-in for a sensor or a refresh call: any operator."""

    def __init__(self, *, dashboard_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dashboard_id = dashboard_id


class AuditedRun(DbtRunOperator):
    """A team's own run operator, swapped in for one model."""


def test_an_exposure_becomes_a_task_after_what_it_reads(tmp_path: Path) -> None:
    seen: list[tuple[DbtNodeView, DefaultTask]] = []

    def refresh(node: DbtNodeView, default: DefaultTask) -> Dashboard:
        seen.append((node, default))
        return Dashboard(dashboard_id=node.meta["dashboard_id"], **default.airflow_kwargs)

    dag = dag_of(shop(tmp_path), node_converters={"exposure": refresh})
    [(node, default)] = seen
    assert (node.unique_id, node.resource_type, node.name) == ("exposure.shop.weekly", "exposure", "weekly")
    assert default.kind == "exposure" and default.command == "" and default.operator_class is EmptyOperator
    task = dag.task_dict[default.task_id]
    assert isinstance(task, Dashboard) and task.dashboard_id == 42
    revenue = next(
        t.task_id for t in dag.dbt_plan.tasks if t.command == "run" and t.node_ids == ("model.shop.revenue",)
    )
    assert ids(dag, default.task_id) == {revenue}
    with pytest.raises(AttributeError):
        node.name = "x"  # type: ignore[misc]  # a read-only view


def test_seeds_as_no_ops_and_a_swapped_operator_class(tmp_path: Path) -> None:
    calls: list[str] = []

    def noop(node: DbtNodeView, default: DefaultTask) -> Any:
        calls.append(node.unique_id)
        return default.build(EmptyOperator)

    dag = dag_of(
        shop(tmp_path),
        node_converters={"seed": noop, "model.shop.orders": lambda node, default: default.build(AuditedRun)},
    )
    seed = next(t for t in dag.tasks if t.task_id.startswith("raw_orders"))
    assert type(seed) is EmptyOperator and calls == ["seed.shop.raw_orders"]
    run = next(t for t in dag.tasks if isinstance(t, DbtRunOperator) and t.select == ["shop.orders"])
    assert type(run) is AuditedRun and run.profile_config.profile_name == "shop"
    assert seed.task_id in run.upstream_task_ids
    # the per-node converter is for the task that runs the node, not its test task
    assert type(dag.task_dict[next(iter(run.downstream_task_ids))]).__name__ == "DbtTestOperator"


def test_none_drops_a_task_and_its_dependents_wire_through(tmp_path: Path) -> None:
    dag = dag_of(shop(tmp_path), node_converters={"model.shop.orders": lambda node, default: None})
    plan = dag.dbt_plan
    orders_run = next(t.task_id for t in plan.tasks if t.command == "run" and t.node_ids == ("model.shop.orders",))
    revenue_run = next(t.task_id for t in plan.tasks if t.command == "run" and t.node_ids == ("model.shop.revenue",))
    orders_test = next(t.task_id for t in plan.tasks if t.command == "test")
    assert orders_run not in dag.task_dict
    seed = next(t.task_id for t in plan.tasks if t.command == "seed")
    assert ids(dag, orders_test) == {seed}  # the test waits for what the model waited for
    # revenue waited for orders' tests, which still run; chains of dropped tasks wire through too
    assert ids(dag, revenue_run) == {orders_test}
    dag = dag_of(
        shop(tmp_path),
        node_converters={"model.shop.orders": lambda n, d: None, "test": lambda n, d: None},
    )
    assert ids(dag, revenue_run) == {seed}


def test_a_converter_may_return_a_task_group(tmp_path: Path) -> None:
    def guarded(node: DbtNodeView, default: DefaultTask) -> TaskGroup:
        group = TaskGroup(
            group_id=f"{node.name}_guarded", parent_group=default.kwargs["task_group"], dag=default.kwargs["dag"]
        )
        check = EmptyOperator(task_id="check", task_group=group, dag=default.kwargs["dag"])
        load = default.build(task_id="load", task_group=group)
        check >> load
        return group

    dag = dag_of(shop(tmp_path), node_converters={"seed": guarded})
    assert ids(dag, "raw_orders_guarded.check") == set()
    assert ids(dag, "raw_orders_guarded.load") == {"raw_orders_guarded.check"}
    assert isinstance(dag.task_dict["raw_orders_guarded.load"], DbtSeedOperator)
    orders_run = next(
        t.task_id for t in dag.dbt_plan.tasks if t.command == "run" and t.node_ids == ("model.shop.orders",)
    )
    assert ids(dag, orders_run) == {"raw_orders_guarded.load"}


def test_converter_mistakes_fail_the_import(tmp_path: Path) -> None:
    manifest = shop(tmp_path)
    with pytest.raises(ConfigError, match=r"node_converters\['seed'\].*must return an operator"):
        dag_of(manifest, node_converters={"seed": lambda n, d: "a task"})
    with pytest.raises(ConfigError, match=r"outside the DAG; create it with \*\*default.airflow_kwargs"):
        dag_of(manifest, node_converters={"seed": lambda n, d: EmptyOperator(task_id="x")})
    with pytest.raises(ConfigError, match="RenderConfig.node_converters: 'seed' must be a callable"):
        RenderConfig(node_converters={"seed": "noop"})


def test_sources_get_tasks_only_with_a_converter(tmp_path: Path) -> None:
    manifest = shop(tmp_path)
    assert not any(t.node_ids == ("source.shop.raw.payments",) for t in dag_of(manifest).dbt_plan.tasks)
    dag = dag_of(manifest, node_converters={"source": lambda n, d: d.build()})
    [spec] = [t for t in dag.dbt_plan.tasks if t.node_ids == ("source.shop.raw.payments",)]
    assert type(dag.task_dict[spec.task_id]) is EmptyOperator and spec.kind == "source"
    orders_run = next(t for t in dag.dbt_plan.tasks if t.command == "run" and t.node_ids == ("model.shop.orders",))
    assert spec.task_id in orders_run.upstream


def test_a_task_built_alone_goes_through_its_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's task runner parses the DAG file for one task: the converter makes that task too."""
    manifest = shop(tmp_path)
    cache = tmp_path / "plans"
    converters = {"exposure": lambda n, d: Dashboard(dashboard_id=n.meta["dashboard_id"], **d.airflow_kwargs)}
    full = dag_of(manifest, cache=cache, node_converters=converters)
    exposure = next(t for t in full.dbt_plan.tasks if t.kind == "exposure")
    plan_cache.clear_memory()  # a fresh process: the plan (and the node view) from disk
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "conv")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", exposure.task_id)
    alone = dag_of(manifest, cache=cache, node_converters=converters)
    assert set(alone.task_dict) == {exposure.task_id}
    assert alone.task_dict[exposure.task_id].dashboard_id == 42
    # the plan keys on the converters' keys, never on their code
    assert plan_cache.render_key(RenderConfig(node_converters={"exposure": print})) == plan_cache.render_key(
        RenderConfig(node_converters=converters)
    )
    assert plan_cache.render_key(RenderConfig()) != plan_cache.render_key(RenderConfig(node_converters=converters))


# -- skipping unchanged seeds ----------------------------------------------------------------------------
def test_skip_unchanged_seeds_plan(tmp_path: Path) -> None:
    b = ManifestBuilder("shop")
    b.seed("raw_orders", config={"column_types": {"id": "integer"}})
    b.seed("raw_items")
    b.model("orders", refs=["raw_orders"])
    b.model("items", refs=["raw_items"], meta={"manifest_dag": {"trigger_rule": "all_done"}})
    b.test("not_null", on="raw_orders", column="id")
    manifest = b.write(tmp_path)
    dag = dag_of(manifest, skip_unchanged_seeds=True)
    plan = dag.dbt_plan
    seed = next(t for t in plan.tasks if t.command == "seed" and t.node_ids == ("seed.shop.raw_orders",))
    assert seed.settings["skip_unchanged"] is True and seed.settings["seed_files"] == ("seeds/raw_orders.csv",)
    task = dag.task_dict[seed.task_id]
    assert isinstance(task, DbtSeedOperator) and task.skip_unchanged and task.seed_files == ["seeds/raw_orders.csv"]
    # what follows a seed that may skip still runs when it skips (none_failed), unless meta says otherwise
    after = {t.task_id: dag.task_dict[t.task_id].trigger_rule for t in plan.tasks if t.upstream and t.command != "seed"}
    seed_test = next(t.task_id for t in plan.tasks if t.command == "test" and seed.task_id in t.upstream)
    assert after[seed_test] == "none_failed"
    items = next(t.task_id for t in plan.tasks if t.node_ids == ("model.shop.items",))
    assert after[items] == "all_done"
    orders = next(t.task_id for t in plan.tasks if t.node_ids == ("model.shop.orders",))
    assert after[orders] == "all_success"  # it waits for the seed's test task, which never skips itself
    # off by default, and never for dbt build (it runs the seed's tests too)
    for dag in (dag_of(manifest), dag_of(manifest, skip_unchanged_seeds=True, test_behavior="build")):
        assert not any("skip_unchanged" in (t.settings or {}) for t in dag.dbt_plan.tasks)
        assert not any((t.settings or {}).get("trigger_rule") == "none_failed" for t in dag.dbt_plan.tasks)


def test_seed_state_follows_the_csv_and_its_config(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "seeds").mkdir(parents=True)
    csv = project / "seeds" / "raw_orders.csv"
    csv.write_text("id\n1\n")

    def seed(config: str = "c1", **kw: Any) -> DbtSeedOperator:
        return DbtSeedOperator(
            task_id="s",
            project_dir=project,
            venv_config=VENV,
            skip_unchanged=True,
            seed_files=["seeds/raw_orders.csv"],
            seed_config=config,
            profile_config=ProfileConfig(profile_name="shop", **kw),
        )

    first = seed().seed_state()
    assert first is not None and seed().seed_state() == first
    assert seed(config="c2").seed_state() != first  # column types or the relation changed
    assert seed(target_name="prod").seed_state() != first  # another target: another table
    csv.write_text("id\n1\n2\n")
    assert seed().seed_state() != first
    csv.unlink()
    assert seed().seed_state() is None  # unreadable: it loads
    with pytest.raises(ConfigError, match="skip_unchanged needs seed_files"):
        DbtSeedOperator(task_id="s", project_dir=project, venv_config=VENV, skip_unchanged=True)
