from __future__ import annotations

import re
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

from manifest_dag import (
    ConfigError,
    DbtDag,
    DbtTaskGroup,
    GraphError,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    SelectionError,
    TestBehavior,
    VenvConfig,
    load_manifest,
    select_nodes,
)
from manifest_dag.operators import DbtRunOperator, DbtSeedOperator, DbtTestOperator
from manifest_dag.scheduler.render import link
from tests.conftest import ALL_MANIFESTS, JAFFLE, manifest_id
from manifest_dag.testing import assert_dag_matches_manifest
from tests.support.edit import edited, uid

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


def make_dag(manifest: Path, **render) -> DbtDag:
    return DbtDag(
        dag_id="t",
        project_config=ProjectConfig(manifest_path=manifest, project_dir="/srv/dbt"),
        venv_config=VENV,
        render_config=RenderConfig(**render),
        schedule=None,
        start_date=START,
    )


# -- linear wiring ------------------------------------------------------------------------------------
def test_link_matches_set_downstream() -> None:
    """`link` must leave Airflow's bookkeeping exactly as `>>` does; fails if an upgrade changes it."""
    with DAG("a", schedule=None, start_date=START) as a:
        a1, a2, a3 = EmptyOperator(task_id="x"), EmptyOperator(task_id="y"), EmptyOperator(task_id="z")
        a1 >> a2 >> a3
        a1 >> a3
    with DAG("b", schedule=None, start_date=START) as b:
        b1, b2, b3 = EmptyOperator(task_id="x"), EmptyOperator(task_id="y"), EmptyOperator(task_id="z")
        link(b1, b2)
        link(b2, b3)
        link(b1, b3)
    for tid in "xyz":
        ta, tb = a.task_dict[tid], b.task_dict[tid]
        assert ta.upstream_task_ids == tb.upstream_task_ids
        assert ta.downstream_task_ids == tb.downstream_task_ids
        assert [t.task_id for t in ta.upstream_list] == [t.task_id for t in tb.upstream_list]
    assert [t.task_id for t in a.topological_sort()] == [t.task_id for t in b.topological_sort()]
    assert {t.task_id for t in b.roots} == {"x"} and {t.task_id for t in b.leaves} == {"z"}


# -- every real manifest ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ALL_MANIFESTS, ids=manifest_id)
def test_groups_and_order_match_the_manifest(path: Path) -> None:
    dag = make_dag(path)
    manifest = load_manifest(path)
    selected = select_nodes(manifest)  # everything, unless the project has a default selector
    models = [n for n in manifest.by_type("model") if not n.is_ephemeral and n.unique_id in selected]
    groups = [g for g in dag.task_group.children.values() if g.__class__.__name__ == "TaskGroup"]
    plan = dag.dbt_plan
    # a model with tests of its own gets a group (run, then test); one without, a plain task
    tested = {spec.group_id for spec in plan.tasks if spec.command == "test" and spec.group_id}
    assert len(groups) == len(plan.groups) == len(tested)
    assert {g.group_id for g in plan.groups} == tested
    runs = {spec.node_ids[0]: spec for spec in plan.tasks if spec.command == "run"}
    assert set(runs) == {m.unique_id for m in models}
    for uid, spec in runs.items():
        assert isinstance(dag.task_dict[spec.task_id], DbtRunOperator)
        group = plan.group_of(spec.task_id)
        assert (group is not None and group.node_id == uid) == (spec.group_id in tested)
        assert spec.task_id.endswith(".run") if group else spec.task_id.endswith("_run")
    assert_dag_matches_manifest(dag, manifest)
    # every selected test runs in exactly one task
    ran = [uid for spec in dag.dbt_plan.tasks if spec.command == "test" for uid in spec.node_ids]
    tests = [n.unique_id for n in manifest.nodes.values() if n.resource_type in ("test", "unit_test")]
    assert sorted(ran) == sorted(t for t in tests if t in selected)


def test_jaffle_shape_after_each() -> None:
    dag = make_dag(JAFFLE)
    assert set(dag.task_dict) == {
        "raw_customers_seed", "raw_orders_seed", "raw_payments_seed",
        "stg_customers.run", "stg_customers.test", "stg_orders.run", "stg_orders.test",
        "stg_payments.run", "stg_payments.test", "customers.run", "customers.test",
        "orders.run", "orders.test",
        "test_relationships_orders_customer_id__customer_id__ref_customers",
    }
    assert dag.task_dict["stg_orders.run"].upstream_task_ids == {"raw_orders_seed"}
    assert dag.task_dict["stg_orders.test"].upstream_task_ids == {"stg_orders.run"}
    assert dag.task_dict["orders.run"].upstream_task_ids == {"stg_orders.test", "stg_payments.test"}
    # the relationships test (orders → customers) waits for both models, outside both groups
    rel = dag.task_dict["test_relationships_orders_customer_id__customer_id__ref_customers"]
    assert rel.task_group.group_id is None
    assert rel.upstream_task_ids == {"orders.test", "customers.test"}
    assert isinstance(rel, DbtTestOperator)
    assert isinstance(dag.task_dict["raw_orders_seed"], DbtSeedOperator)
    test = dag.task_dict["orders.test"]
    assert test.dbt_args() == ["test", "--select", "jaffle_shop.orders", "--indirect-selection", "cautious"]
    assert dag.task_dict["orders.run"].dbt_args() == ["run", "--select", "jaffle_shop.orders"]


def test_after_all_build_and_none() -> None:
    after_all = make_dag(JAFFLE, test_behavior="after_all")
    assert "dbt_test" in after_all.task_dict
    assert after_all.task_dict["dbt_test"].upstream_task_ids == {"orders_run", "customers_run"}
    assert not after_all.dbt_plan.groups
    build = make_dag(JAFFLE, test_behavior=TestBehavior.BUILD)
    assert build.task_dict["orders_build"].dbt_args()[:3] == ["build", "--select", "jaffle_shop.orders"]
    assert build.task_dict["orders_build"].upstream_task_ids == {"stg_orders_build", "stg_payments_build"}
    assert "test_relationships_orders_customer_id__customer_id__ref_customers" in build.task_dict
    none = make_dag(JAFFLE, test_behavior="none")
    assert all(t.dbt_command != "test" for t in none.tasks)
    assert len(none.tasks) == 8
    for dag in (after_all, build, none):
        assert_dag_matches_manifest(dag, JAFFLE)


def test_task_docs_come_from_descriptions() -> None:
    dag = make_dag(JAFFLE)
    assert "This table has basic information about a customer" in dag.task_dict["customers.run"].doc_md
    assert "model.jaffle_shop.customers" in dag.task_dict["customers.run"].doc_md


def test_assets_are_opt_in() -> None:
    assert not make_dag(JAFFLE).task_dict["orders.run"].outlets
    dag = make_dag(JAFFLE, emit_assets=True)
    (asset,) = dag.task_dict["orders.run"].outlets
    node = load_manifest(JAFFLE).nodes[uid("orders")]
    assert asset.uri == f"duckdb://{node.database}/{node.schema}/orders"


# -- pass-through and structure --------------------------------------------------------------------
def test_ephemeral_models_pass_their_dependencies_through(tmp_path: Path) -> None:
    def ephemeral(m: dict) -> None:
        m["nodes"][uid("stg_orders")]["config"]["materialized"] = "ephemeral"

    path = edited(tmp_path, ephemeral)
    dag = make_dag(path)
    assert "stg_orders.run" not in dag.task_dict
    # orders depended on stg_orders → raw_orders: it now waits for the seed directly, and for the
    # ephemeral model's tests, which run on their own, after what the model waits for (as in
    # `dbt build`, a failing test of stg_orders skips orders)
    loose = [s for s in dag.dbt_plan.tasks if s.command == "test" and uid("stg_orders") in "".join(s.doc_md or "")]
    assert loose and all(s.upstream == ("raw_orders_seed",) for s in loose)
    assert dag.task_dict["orders.run"].upstream_task_ids == {
        "raw_orders_seed",
        "stg_payments.test",
        *(s.task_id for s in loose),
    }
    assert_dag_matches_manifest(dag, path)


def test_chain_through_unrendered_nodes_keeps_order(tmp_path: Path) -> None:
    """A → B → C with no task for B: C still runs after A (B is a package node left out)."""

    def to_package(m: dict) -> None:
        m["nodes"][uid("stg_orders")]["package_name"] = "some_package"

    path = edited(tmp_path, to_package)
    dag = make_dag(path, include_packages=False)
    assert "stg_orders.run" not in dag.task_dict
    assert "raw_orders_seed" in dag.task_dict["orders.run"].upstream_task_ids
    assert len(make_dag(path).dbt_plan.groups) == 5  # included by default


def test_cycle_is_an_error_that_names_it(tmp_path: Path) -> None:
    def cycle(m: dict) -> None:
        m["nodes"][uid("stg_orders")]["depends_on"]["nodes"].append(uid("orders"))

    with pytest.raises(GraphError) as err:
        make_dag(edited(tmp_path, cycle))
    message = str(err.value)
    assert uid("orders") in message and uid("stg_orders") in message and "→" in message


def test_self_loop_is_a_cycle(tmp_path: Path) -> None:
    def loop(m: dict) -> None:
        m["nodes"][uid("customers")]["depends_on"]["nodes"].append(uid("customers"))

    with pytest.raises(GraphError, match=re.escape(f"{uid('customers')} → {uid('customers')}")):
        make_dag(edited(tmp_path, loop))


def test_task_ids_are_sanitised_and_unique(tmp_path: Path) -> None:
    def clash(m: dict) -> None:
        # same model name in two packages, and a name with characters Airflow refuses
        node = dict(m["nodes"][uid("customers")])
        node["package_name"] = "other"
        node["unique_id"] = "model.other.customers"
        node["fqn"] = ["other", "customers"]
        node["depends_on"] = {"nodes": [], "macros": []}
        m["nodes"]["model.other.customers"] = node
        m["nodes"][uid("orders")]["name"] = "orders; rm -rf /"

    dag = make_dag(edited(tmp_path, clash))
    ids = list(dag.task_dict)
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", t) for t in ids)
    # the copy in package "other" has no tests: a plain task
    assert "jaffle_shop__customers.run" in ids and "other__customers_run" in ids
    assert "orders_rm_-rf.run" in ids
    # the UI shows the real name where the id had to change it
    groups = dag.task_group.get_task_group_dict()
    assert groups["orders_rm_-rf"].label == "orders; rm -rf /"
    assert groups["jaffle_shop__customers"].label == "jaffle_shop__customers"  # unchanged: the id
    assert dag.dbt_plan.task("orders_rm_-rf.run").display_name is None  # inside its group: "run"


def test_task_group_between_plain_tasks() -> None:
    with DAG("host", schedule=None, start_date=START) as dag:
        start = EmptyOperator(task_id="start")
        group = DbtTaskGroup(
            group_id="shop",
            project_config=ProjectConfig(manifest_path=JAFFLE, project_dir="/srv/dbt"),
            venv_config=VENV,
        )
        end = EmptyOperator(task_id="end")
        start >> group >> end
    assert "shop.orders.run" in dag.task_dict
    assert dag.task_dict["shop.orders.run"].upstream_task_ids == {"shop.stg_orders.test", "shop.stg_payments.test"}
    roots = {t for t in dag.task_dict if dag.task_dict[t].upstream_task_ids == {"start"}}
    assert roots == {"shop.raw_customers_seed", "shop.raw_orders_seed", "shop.raw_payments_seed"}
    # Airflow's group leaves: the model groups' tests feed the relationships test, which is last
    assert dag.task_dict["end"].upstream_task_ids == {
        "shop.test_relationships_orders_customer_id__customer_id__ref_customers",
    }
    assert_dag_matches_manifest(dag, JAFFLE, group_id="shop")


def test_operator_gets_configs_and_dag_kwargs_pass_through() -> None:
    profile = ProfileConfig(profile_name="jaffle_shop", target_name="dev", profiles_yml_path="/etc/dbt/profiles.yml")
    dag = DbtDag(
        dag_id="full",
        project_config=ProjectConfig(manifest_path=JAFFLE, project_dir="/srv/dbt", dbt_vars={"day": "{{ ds }}"}),
        profile_config=profile,
        venv_config=VENV,
        operator_args={"retries": 3, "pool": "dbt"},
        schedule="@daily",
        start_date=START,
        tags=["dbt"],
        max_active_tasks=4,
    )
    task = dag.task_dict["orders.run"]
    assert task.retries == 3 and task.pool == "dbt"
    assert task.profile_config is profile and task.venv_config is VENV
    assert task.dbt_vars == {"day": "{{ ds }}"} and "dbt_vars" in task.template_fields
    assert task.project_dir == "/srv/dbt"
    assert dag.tags == {"dbt"} and dag.max_active_tasks == 4


def test_default_venv_pins_the_dbt_that_wrote_the_manifest() -> None:
    dag = DbtDag(dag_id="d", project_config=ProjectConfig(manifest_path=JAFFLE), schedule=None, start_date=START)
    reqs = dag.task_dict["orders.run"].venv_config.py_requirements
    assert reqs == ("dbt-core==1.12.0", "dbt-duckdb~=1.12.0")


# -- config errors name the field -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ProjectConfig(manifest_path=None), "manifest_path"),
        (lambda: ProjectConfig(manifest_path=JAFFLE, dbt_vars=["x"]), "dbt_vars"),
        (lambda: ProjectConfig(manifest_path=JAFFLE, env_vars={"A": 1}), "env_vars"),
        (lambda: ProfileConfig(profile_name=""), "profile_name"),
        (lambda: ProfileConfig(profile_name="p", conn_id="c", profiles_yml_path="/x"), "conn_id"),
        (lambda: VenvConfig(py_requirements=[]), "py_requirements"),
        (lambda: VenvConfig(py_requirements=["dbt-core==="]), "dbt-core==="),
        (lambda: RenderConfig(test_behavior="sometimes"), "test_behavior"),
        (lambda: RenderConfig(select="tag:x", indirect_selection="lazy"), "indirect_selection"),
        (lambda: RenderConfig(select=[1]), "select"),
        (lambda: RenderConfig(emit_assets="yes"), "emit_assets"),
    ],
)
def test_config_errors_name_the_field(build, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        build()


def test_wrong_config_type_for_dag() -> None:
    with pytest.raises(ConfigError, match="render_config"):
        DbtDag(dag_id="x", project_config=ProjectConfig(manifest_path=JAFFLE), render_config={"select": []}, schedule=None)


def test_operator_args_may_not_override_the_renderer() -> None:
    with pytest.raises(ConfigError, match="task_id"):
        DbtDag(
            dag_id="x",
            project_config=ProjectConfig(manifest_path=JAFFLE),
            venv_config=VENV,
            operator_args={"task_id": "x"},
            schedule=None,
        )


def test_managed_dbt_flags_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="--target.*ProfileConfig.target_name"):
        DbtRunOperator(task_id="t", project_dir="/x", py_requirements=["dbt-core"], dbt_flags=["--target", "prod"])
    with pytest.raises(ConfigError, match="unknown dbt flag --frobnicate"):
        DbtRunOperator(task_id="t", project_dir="/x", py_requirements=["dbt-core"], dbt_flags=["--frobnicate"])
    op = DbtRunOperator(task_id="t", project_dir="/x", py_requirements=["dbt-core"], dbt_flags=["--threads", "4"], full_refresh=True)
    assert op.dbt_args() == ["run", "--full-refresh", "--threads", "4"]


def test_selection_that_renders_nothing_fails_unless_allowed(tmp_path: Path) -> None:
    path = edited(tmp_path, lambda m: None)
    with pytest.raises(SelectionError, match="selects no nodes"):
        make_dag(path, select=["tag:does_not_exist"])
    dag = make_dag(path, select=["tag:does_not_exist"], allow_empty=True)
    assert not dag.tasks


def test_build_mode_excludes_unselected_tests_even_when_none_is_selected() -> None:
    dag = make_dag(JAFFLE, test_behavior="build", select=["stg_orders"], exclude=["test_type:data"])
    args = dag.task_dict["stg_orders_build"].dbt_args()
    assert "--exclude" in args
    excluded = args[args.index("--exclude") + 1 : args.index("--indirect-selection")]
    assert len(excluded) == 3 and all(e.startswith("jaffle_shop.staging.") for e in excluded)


def test_operator_args_cannot_collide_with_per_task_arguments() -> None:
    for key in ("doc_md", "outlets", "indirect_selection"):
        with pytest.raises(ConfigError, match=key):
            DbtDag(dag_id="x", project_config=ProjectConfig(manifest_path=JAFFLE), venv_config=VENV,
                   operator_args={key: None}, schedule=None)


def test_a_single_select_string_is_one_selector() -> None:
    op = DbtRunOperator(task_id="t", project_dir="/x", py_requirements=["dbt-core"], select="orders", exclude="tag:x")
    assert op.dbt_args() == ["run", "--select", "orders", "--exclude", "tag:x"]


def test_venv_config_repr_masks_index_credentials() -> None:
    config = VenvConfig(py_requirements=["dbt-core"], index_url="https://user:hunter2@pypi.example/simple")
    assert "hunter2" not in repr(config) and "pypi.example" in repr(config)


def test_manifest_text_in_selectors_is_never_rendered_as_a_template(tmp_path: Path) -> None:
    """A folder ``x{{ 7 * 7 }}`` is a folder name: Airflow's real rendering keeps the braces."""
    from manifest_dag.testing import ManifestBuilder, plan_task

    manifest = (
        ManifestBuilder("shop")
        .model("m1", path="x{{ 7 * 7 }}/m1.sql")
        .model("m2", refs=["m1"], path="x{{ 7 * 7 }}/m2.sql")
        .test("not_null", on="m1", column="id")
        .test("unique", on="m1", column="id")
        .write(tmp_path)
    )
    dag = make_dag(manifest, select=["+m2", "test_name:not_null"])
    run = plan_task(dag.task_dict["m1.run"])
    assert run.argv[1:4] == ("run", "--select", "shop.x{{ 7 * 7 }}.m1")
    test = plan_task(dag.task_dict["m1.test"])
    # the test task's selector and its exclude of the unselected test both come from the manifest
    assert "shop.x{{ 7 * 7 }}.m1" in test.argv and not any("49" in a for a in test.argv)
    assert "select" not in dag.task_dict["m1.run"].template_fields
    assert "dbt_vars" in dag.task_dict["m1.run"].template_fields  # the DAG author's values still are


def test_dags_operators_and_configs_deep_copy_and_pickle(tmp_path: Path) -> None:
    """Airflow deep-copies and pickles DAGs, task groups and operators (dag.test() on 3.0 deep-copies
    the task groups, partial_subset copies the tasks); the frozen configs hold read-only mappings
    that must survive both (types.MappingProxyType does not)."""
    import copy
    import pickle

    from manifest_dag import SecretVar

    project = ProjectConfig(
        manifest_path=JAFFLE,
        project_dir="/srv/dbt",
        plan_cache_dir=False,
        dbt_vars={"day": "{{ ds }}", "nested": {"a": [1, 2]}},
        env_vars={"DBT_ENV": "prod"},
        secret_vars={"api_key": SecretVar(env_var="API_KEY")},
    )
    profile = ProfileConfig(profile_name="jaffle_shop", conn_id="warehouse", profile_args={"schema": "main"})
    render = RenderConfig(select=["+customers"], test_behavior="after_each")
    dag = DbtDag(
        dag_id="copies",
        project_config=project,
        profile_config=profile,
        venv_config=VENV,
        render_config=render,
        schedule=None,
        start_date=START,
    )
    from manifest_dag.scheduler.plan_cache import render_key

    for config in (project, profile, VENV):
        for again in (copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
            assert again == config and again is not config
    for again_rc in (copy.deepcopy(render), pickle.loads(pickle.dumps(render))):
        assert render_key(again_rc) == render_key(render)  # DbtNaming compares by identity: its key
    assert copy.deepcopy(project).dbt_vars["nested"] == {"a": [1, 2]}
    with pytest.raises(TypeError):
        project.dbt_vars["day"] = "x"  # type: ignore[index]  # still read-only

    op = dag.task_dict["customers.run"]
    for again in (copy.deepcopy(op), pickle.loads(pickle.dumps(op))):
        assert (again.task_id, again.select, again.dbt_vars, again.profile_config) == (
            op.task_id,
            op.select,
            op.dbt_vars,
            op.profile_config,
        )
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    for again in (copy.deepcopy(dag), pickle.loads(pickle.dumps(dag))):
        assert {(t.task_id, d) for t in again.tasks for d in t.downstream_task_ids} == edges

    sub = dag.partial_subset(task_ids=["customers.run"], include_upstream=True, include_downstream=False)
    upstream = {"customers.run", *dag.task_dict["customers.run"].get_flat_relative_ids(upstream=True)}
    assert set(sub.task_dict) == upstream and len(upstream) > 3
    assert sub.task_dict["customers.run"].profile_config == profile
