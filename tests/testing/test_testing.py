"""manifest_dag.testing: ManifestBuilder against real manifests, the DAG assertions, the dry run."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import orjson
import pendulum
import pytest

from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig, load_manifest
from manifest_dag.testing import (
    DbtImportBlocked,
    ManifestBuilder,
    assert_dag_matches_manifest,
    assert_matches_golden,
    block_dbt,
    dag_shape,
    plan_task,
)
from tests.conftest import JAFFLE, LARGE_MANIFESTS, OWN_MANIFESTS, VERSION_MANIFESTS

START = pendulum.datetime(2024, 1, 1, tz="UTC")
VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
SHOP = next(p for p in OWN_MANIFESTS if p.parent.name == "shop")
TUVA = next(p for p in LARGE_MANIFESTS if p.name == "manifest.json.gz" and "tuva" in str(p))


def _raw(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return orjson.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)


def make_dag(manifest: Path, dag_id: str = "t", **render: Any) -> DbtDag:
    return DbtDag(
        dag_id=dag_id,
        project_config=ProjectConfig(manifest_path=manifest, project_dir="/srv/dbt"),
        venv_config=VENV,
        render_config=RenderConfig(**render),
        schedule=None,
        start_date=START,
    )


# -- a scenario with every kind of node ------------------------------------------------------------
def every_kind(schema_version: int = 12) -> ManifestBuilder:
    b = (
        ManifestBuilder("shop", schema_version=schema_version)
        .seed("raw_orders", tags=["raw"], columns={"id": "the order"})
        .model("stg_orders", refs=["raw_orders"], path="staging/stg_orders.sql", columns=["id", "customer_id"])
        .model("customers", refs=["stg_orders"], group="finance", access="public")
        .model("orders", refs=["stg_orders", "customers"], materialized="table", tags=["nightly"], meta={"owner": "x"})
        .model("legacy", refs=["orders"], enabled=False)
        .test("not_null", on="orders", column="id")
        .test("relationships", on=["orders", "customers"], column="customer_id", kwargs={"field": "id"})
        .singular_test("assert_totals", refs=["orders"])
        .selector("nightly", {"method": "tag", "value": "nightly"}, default=True)
    )
    if schema_version >= 12:
        (
            b.source("raw", "payments", freshness=True)
            .model("stg_payments", sources=["raw.payments"])
            .snapshot("orders_snapshot", refs=["orders"])
            .exposure("dashboard", refs=["orders"])
            .unit_test("orders_is_right", model="orders")
            .model("dim", versions=[1, 2], refs=["customers"])
        )
    return b


def _kinds(data: dict[str, Any], what: str = "keys") -> dict[tuple[str, str, str], set[str]]:
    """(collection, resource_type, generic|'') -> field names (or config field names)."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for collection in ("nodes", "sources", "exposures", "unit_tests", "disabled"):
        for entry in (data.get(collection) or {}).values():
            node = entry[0] if collection == "disabled" else entry
            if node["resource_type"] == "analysis":
                continue
            key = (collection, node["resource_type"], "generic" if "test_metadata" in node else "")
            if what == "keys":
                out.setdefault(key, set()).update(node)
            elif what == "config":
                out.setdefault(key, set()).update(node.get("config", {}))
            elif what == "columns":
                for column in (node.get("columns") or {}).values():
                    out.setdefault(key, set()).update(column)
    return out


def _real_kinds(paths: list[Path], what: str) -> dict[tuple[str, str, str], set[str]]:
    merged: dict[tuple[str, str, str], set[str]] = {}
    for path in paths:
        for key, fields in _kinds(_raw(path), what).items():
            merged.setdefault(key, set()).update(fields)
    return merged


@pytest.mark.parametrize("what", ["keys", "config", "columns"])
def test_v12_node_fields_match_real_manifests(what: str) -> None:
    """Same field names per kind of node as dbt 1.11 / 1.12 write (jaffle_shop and the shop fixture)."""
    built = _kinds(every_kind().build(), what)
    # node fields: the same in 1.11 and 1.12; config and column fields: as dbt 1.11 writes them
    real = _real_kinds([JAFFLE, SHOP] if what == "keys" else [SHOP], what)
    assert built, "the scenario wrote nothing"
    for kind, fields in built.items():
        if kind not in real:
            continue  # e.g. no real manifest has columns on that kind
        assert fields == real[kind], f"{kind}: missing {sorted(real[kind] - fields)}, extra {sorted(fields - real[kind])}"
    if what == "keys":
        assert set(built) <= set(real), f"kinds no real manifest has: {sorted(set(built) - set(real))}"


@pytest.mark.parametrize(("schema_version", "dbt"), [(9, "1.5."), (10, "1.6."), (11, "1.7."), (12, "1.12.")])
def test_node_metadata_and_top_level_fields_match_each_schema(tmp_path: Path, schema_version: int, dbt: str) -> None:
    real_path = next(p for p in VERSION_MANIFESTS if p.name.startswith(f"manifest_dbt-{dbt}"))
    real = _raw(real_path)
    built = every_kind(schema_version).build()
    assert set(built) == set(real), f"top level: {sorted(set(built) ^ set(real))}"
    assert set(built["metadata"]) == set(real["metadata"]), sorted(set(built["metadata"]) ^ set(real["metadata"]))
    real_kinds = _kinds(real)
    for kind, fields in _kinds(built).items():
        if kind in real_kinds:
            assert fields == real_kinds[kind], f"v{schema_version} {kind}: {sorted(fields ^ real_kinds[kind])}"
    path = every_kind(schema_version).write(tmp_path)
    manifest = load_manifest(path)
    assert manifest.schema_version == schema_version
    assert manifest.project_name == "shop"
    assert_dag_matches_manifest(make_dag(path), manifest)


def test_builder_output_loads(tmp_path: Path) -> None:
    manifest = every_kind().load(tmp_path)
    nodes = manifest.nodes
    assert manifest.disabled == {"model.shop.legacy"}
    assert nodes["model.shop.orders"].depends_on == ("model.shop.stg_orders", "model.shop.customers")
    assert nodes["model.shop.customers"].group == "finance" and nodes["model.shop.customers"].access == "public"
    assert nodes["model.shop.stg_orders"].fqn == ("shop", "staging", "stg_orders")
    assert nodes["model.shop.dim.v2"].version == "2" and nodes["model.shop.dim.v2"].latest_version == "2"
    rel = next(n for n in nodes.values() if n.test_name == "relationships")
    # as dbt writes it: the other node first, the one the test is attached to last
    assert rel.depends_on == ("model.shop.customers", "model.shop.orders") and rel.attached_node == "model.shop.orders"
    assert nodes["source.shop.raw.payments"].has_freshness
    assert manifest.selectors["nightly"]["default"] is True
    assert nodes["unit_test.shop.orders.orders_is_right"].depends_on == ("model.shop.orders",)


def test_builder_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="not declared"):
        ManifestBuilder().model("a", refs=["nope"]).build()
    with pytest.raises(ValueError, match="declared twice"):
        ManifestBuilder().model("a").model("a")
    with pytest.raises(ValueError, match="v9-v12"):
        ManifestBuilder(schema_version=8)


# -- the builder can say what real manifests say ---------------------------------------------------
def rebuild(path: Path) -> ManifestBuilder:
    """The builder calls that describe a real manifest (no analyses), by name, as a user writes them."""
    raw = _raw(path)
    meta = raw["metadata"]
    project = meta.get("project_name")
    b = ManifestBuilder(project, dbt_version=meta["dbt_version"], adapter_type=meta.get("adapter_type"))
    everything = {**raw["nodes"], **raw["sources"], **raw["exposures"], **raw.get("unit_tests", {})}
    everything.update({u: e[0] for u, e in raw.get("disabled", {}).items()})

    def ref(uid: str) -> str | tuple[str, Any]:
        n = everything[uid]
        if n["resource_type"] == "source":
            return f"source:{n['source_name']}.{n['name']}"
        name = n["name"] if n["package_name"] == project else f"{n['package_name']}.{n['name']}"
        return (n["name"], n["version"]) if n.get("version") is not None else name

    def parents(n: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        refs, sources = [], []
        for uid in dict.fromkeys(n.get("depends_on", {}).get("nodes", [])):
            target = ref(uid)
            (sources if isinstance(target, str) and target.startswith("source:") else refs).append(target)
        return refs, [s.removeprefix("source:") for s in sources]

    def rel(n: dict[str, Any], folder: str) -> str:
        return n["original_file_path"].split("/", 1)[1] if n["original_file_path"].startswith(folder + "/") else n["original_file_path"]

    for uid, n in everything.items():
        kind, enabled = n["resource_type"], n.get("config", {}).get("enabled", True) and uid not in raw.get("disabled", {})
        common = {"package": n["package_name"], "tags": n.get("tags", []), "enabled": enabled}
        refs, sources = parents(n) if enabled else ([], [])
        if kind == "model":
            b.model(
                n["name"], refs=refs, sources=sources, path=rel(n, "models"), config=n["config"], meta=n.get("meta"),
                materialized=n["config"]["materialized"], version=n.get("version"),
                latest_version=n.get("latest_version"), access=n.get("access") or "protected",
                group=n.get("group"), **common,
            )
        elif kind == "seed":
            b.seed(
                n["name"], path=rel(n, "seeds"), config=n["config"],
                database=n.get("database"), schema=n.get("schema"), alias=n.get("alias"), **common,
            )
        elif kind == "snapshot":
            b.snapshot(n["name"], refs=refs, sources=sources, path=rel(n, "snapshots"), config=n["config"], **common)
        elif kind == "test" and "test_metadata" in n:
            on = [ref(n["attached_node"])] if n.get("attached_node") else []
            on += [r for r in [*refs, *(f"source:{s}" for s in sources)] if r not in on]
            b.test(
                n["test_metadata"]["name"], on=on,
                column=n.get("column_name"), name=n["name"], namespace=n["test_metadata"].get("namespace"),
                yaml_path=n["original_file_path"], config=n["config"], depends_on=None if on else [], **common,
            )
        elif kind == "test":
            b.singular_test(n["name"], refs=refs, sources=sources, path=rel(n, "tests"), config=n["config"], **common)
        elif kind == "source":
            fresh = n.get("freshness") or {}
            has = any((fresh.get(k) or {}).get("count") is not None for k in ("warn_after", "error_after"))
            b.source(
                n["source_name"], n["name"], identifier=n.get("identifier"), freshness=fresh if has else False,
                loaded_at_field=n.get("loaded_at_field"), path=n["original_file_path"],
                database=n.get("database"), schema=n.get("schema"), **common,  # where it reads: a seed's table?
            )
        elif kind == "exposure":
            b.exposure(n["name"], refs=refs, sources=sources, path=n["path"], **common)
        elif kind == "unit_test":
            b.unit_test(n["name"], model=refs[0] if refs else n["model"])
    for name, entry in (raw.get("selectors") or {}).items():
        b.selector(name, entry["definition"], description=entry.get("description", ""), default=entry.get("default") is True)
    return b


# Real fragments: jaffle_shop (a multi-parent relationships test), the shop fixture (an ephemeral
# model, a dbt package, a disabled model, versions, sources with tests, snapshots, YAML selectors)
# and Tuva (ephemeral chains 37 deep), each under several render configs.
SCENARIOS = [
    (JAFFLE, {}),
    (JAFFLE, {"test_behavior": "build"}),
    (SHOP, {}),
    (SHOP, {"include_packages": False, "test_behavior": "after_all"}),
    (SHOP, {"source_rendering": "freshness"}),
    (SHOP, {"selector": "nightly_finance"}),
    (SHOP, {"selector": "no_pii"}),
    (SHOP, {"select": ["+fct_orders"], "exclude": ["package:shop_utils"]}),
    (TUVA, {"select": ["+tag:cms_hcc"]}),
]


@pytest.mark.parametrize(("path", "render"), SCENARIOS, ids=lambda v: v.parent.name if isinstance(v, Path) else str(v))
def test_builder_scenarios_render_like_real_manifests(tmp_path: Path, path: Path, render: dict[str, Any]) -> None:
    built = rebuild(path).write(tmp_path)
    try:
        real_dag = make_dag(path, **render)
    except Exception as exc:  # the fixture moved on (another selector set): nothing to compare
        pytest.skip(f"{path}: {exc}")
    assert len(real_dag.tasks) > 1
    assert dag_shape(make_dag(built, **render)) == dag_shape(real_dag)


# -- assert_dag_matches_manifest ---------------------------------------------------------------------
def small(tmp_path: Path) -> Path:
    return (
        ManifestBuilder("shop")
        .seed("raw_orders")
        .model("stg_orders", refs=["raw_orders"], materialized="ephemeral")
        .model("orders", refs=["stg_orders"], tags=["nightly"])
        .model("customers", refs=["raw_orders"], tags=["daily"])
        .model("report", refs=["orders", "customers"], tags=["nightly"])
        .test("not_null", on="orders", column="id")
        .test("relationships", on=["report", "customers"], column="customer_id")
        .write(tmp_path)
    )


@pytest.mark.parametrize("behavior", ["after_each", "after_all", "build", "none"])
def test_matching_dag_passes(tmp_path: Path, behavior: str) -> None:
    path = small(tmp_path)
    assert_dag_matches_manifest(make_dag(path, test_behavior=behavior), path)
    assert_dag_matches_manifest(make_dag(path, select=["tag:nightly"]), path, select=["tag:nightly"])


def test_changed_selection_names_missing_and_extra_tasks(tmp_path: Path) -> None:
    path = small(tmp_path)
    dag = make_dag(path, select=["tag:daily"])
    with pytest.raises(AssertionError) as err:
        assert_dag_matches_manifest(dag, path, select=["tag:nightly"])
    message = str(err.value)
    # orders is missing altogether; customers (no tests of its own) is a plain task too many
    assert "missing tasks" in message and "- task for orders  (model.shop.orders)" in message
    assert "extra tasks" in message and "+ task customers_run for customers  (model.shop.customers)" in message
    assert "select=['tag:nightly']" in message


def test_wrong_ordering_is_named_with_the_path_through_unrendered_nodes(tmp_path: Path) -> None:
    path = small(tmp_path)
    dag = make_dag(path)
    dag.task_dict["orders.run"].upstream_task_ids.discard("raw_orders_seed")
    dag.task_dict["raw_orders_seed"].downstream_task_ids.discard("orders.run")
    with pytest.raises(AssertionError) as err:
        assert_dag_matches_manifest(dag, path)
    message = str(err.value)
    assert "wrong orderings" in message
    assert "- raw_orders → orders: orders depends on raw_orders via stg_orders, but the DAG can start it first" in message
    # and a wait dbt does not ask for
    from manifest_dag.scheduler.render import link

    dag = make_dag(path)
    link(dag.task_dict["customers_run"], dag.task_dict["orders.run"])
    with pytest.raises(AssertionError) as err:
        assert_dag_matches_manifest(dag, path)
    assert "+ customers → orders: the DAG waits, but orders does not depend on customers" in str(err.value)


def test_a_task_whose_selection_runs_another_node_is_named(tmp_path: Path) -> None:
    path = small(tmp_path)
    dag = make_dag(path)
    dag.task_dict["orders.run"].select = ["shop.customers"]
    with pytest.raises(AssertionError) as err:
        assert_dag_matches_manifest(dag, path)
    assert "! orders.run: dbt run --select shop.customers also runs customers; does not run orders" in str(err.value)
    assert_dag_matches_manifest(dag, path, check_commands=False)


def test_task_group_in_a_host_dag(tmp_path: Path) -> None:
    from airflow.sdk import DAG

    from manifest_dag import DbtTaskGroup

    path = small(tmp_path)
    with DAG("host", schedule=None, start_date=START) as dag:
        DbtTaskGroup(group_id="dbt", project_config=ProjectConfig(manifest_path=path, project_dir="/x"), venv_config=VENV)
    assert_dag_matches_manifest(dag, path)
    assert_dag_matches_manifest(dag, load_manifest(path), group_id="dbt")
    with pytest.raises(AssertionError, match="no DbtTaskGroup 'other'"):
        assert_dag_matches_manifest(dag, path, group_id="other")


@pytest.mark.parametrize("path", [JAFFLE, SHOP], ids=lambda p: p.parent.name)
def test_real_manifests_match(path: Path) -> None:
    assert_dag_matches_manifest(make_dag(path), path)


# -- golden files --------------------------------------------------------------------------------------
def test_dag_shape_golden(tmp_path: Path) -> None:
    dag = make_dag(small(tmp_path), dag_id="small")
    assert_matches_golden(dag_shape(dag), Path(__file__).parent / "golden" / "small_dag.txt")


def test_golden_mismatch_is_a_unified_diff(tmp_path: Path) -> None:
    golden = tmp_path / "g.txt"
    golden.write_text("a\nb\n")
    with pytest.raises(AssertionError) as err:
        assert_matches_golden("a\nc\n", golden, update=False)
    assert "-b\n+c" in str(err.value) and "@@" in str(err.value)
    assert_matches_golden("a\nc\n", golden, update=True)
    assert golden.read_text() == "a\nc\n"
    with pytest.raises(AssertionError, match="--manifest-dag-update-golden"):
        assert_matches_golden("x", tmp_path / "missing.txt", update=False)


# -- no dbt ----------------------------------------------------------------------------------------------
def test_block_dbt_names_the_import_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tt_outer_mod.py").write_text("import tt_inner_mod\n")
    (tmp_path / "tt_inner_mod.py").write_text("def load():\n    import dbt.adapters.factory\n\nload()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with block_dbt() as guard:
        with pytest.raises(DbtImportBlocked) as err:
            import tt_outer_mod  # noqa: F401
    message = str(err.value)
    assert "tt_outer_mod (" in message and "tt_inner_mod (" in message and "load() at" in message
    assert message.index("tt_outer_mod") < message.index("tt_inner_mod") < message.index("import dbt")
    assert [a.name for a in guard.attempts] == ["dbt"]  # the parent package is looked up first
    sys.modules.pop("tt_outer_mod", None)
    sys.modules.pop("tt_inner_mod", None)
    assert guard not in sys.meta_path


def test_block_dbt_hides_and_restores_loaded_modules() -> None:
    marker = object()
    sys.modules["dbt"] = marker  # type: ignore[assignment]
    try:
        with block_dbt():
            with pytest.raises(ImportError, match="blocked"):
                import dbt  # noqa: F401
        assert sys.modules["dbt"] is marker
    finally:
        sys.modules.pop("dbt", None)


# -- plan_task ------------------------------------------------------------------------------------------
def test_plan_task_renders_templates_for_a_logical_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_TEAM", "data")  # what {{ var.value.team }} reads in a test
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE",
        '{"conn_type": "postgres", "host": "db", "login": "dbt", "password": "s3cret-pw", "schema": "analytics", '
        '"extra": "{\\"schema\\": \\"marts\\"}"}',  # a string: Airflow 3.0 reads no other
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    dag = DbtDag(
        dag_id="planned",
        project_config=ProjectConfig(
            manifest_path=small(tmp_path),
            project_dir=project,
            dbt_vars={
                "day": "{{ ds }}", "region": "{{ params.region }}", "api_token": "tok-123",
                "next_day": "{{ macros.ds_add(ds, 1) }}", "team": "{{ var.value.team }}", "db": "{{ conn.warehouse.host }}",
            },
            env_vars={"RUN_DAY": "{{ ds_nodash }}", "DB_PASSWORD": "hunter22"},
        ),
        profile_config=ProfileConfig(profile_name="shop", target_name="prod", conn_id="warehouse"),
        venv_config=VENV,
        schedule="@daily",
        start_date=START,
        params={"region": "eu"},
    )
    plan = plan_task(dag.task_dict["orders.run"], logical_date=pendulum.datetime(2024, 3, 5, tz="UTC"), params={"region": "us"})
    assert plan.dbt_args == ("run", "--select", "shop.orders")
    assert plan.vars == {
        "day": "2024-03-05", "region": "us", "api_token": "***", "next_day": "2024-03-06", "team": "data", "db": "db",
    }
    assert plan.env["RUN_DAY"] == "20240305" and plan.env["DB_PASSWORD"] == "***"
    assert "MANIFEST_DAG_WAREHOUSE_PASSWORD" in plan.env_names and plan.env["MANIFEST_DAG_WAREHOUSE_PASSWORD"] == "***"
    assert "s3cret-pw" not in str(plan) and "hunter22" not in str(plan) and "tok-123" not in str(plan)
    assert "env_var('MANIFEST_DAG_WAREHOUSE_PASSWORD')" in plan.profiles_yml
    assert plan.requirements == ("dbt-core~=1.11.0", "dbt-duckdb~=1.11.0") and len(plan.venv_key) == 16
    argv = plan.argv
    assert argv[:4] == ("<venv>/bin/dbt", "run", "--select", "shop.orders")
    # the profile's own default target and the project's profile: no --profile / --target
    assert "--target" not in argv and "--profile" not in argv
    assert argv[argv.index("--profiles-dir") + 1] == "<profiles-dir>"
    assert argv[argv.index("--vars") + 1] == (
        '{"api_token":"***","day":"2024-03-05","db":"db","next_day":"2024-03-06","region":"us","team":"data"}'
    )
    # the DAG's own task is untouched
    assert dag.task_dict["orders.run"].dbt_vars["day"] == "{{ ds }}"
    # default params and logical date: the DAG's
    default = plan_task(dag.task_dict["orders.run"])
    assert default.vars["region"] == "eu" and default.vars["day"] == "2024-01-01"


def test_plan_task_argv_is_what_run_dbt_runs(tmp_path: Path) -> None:
    """Guard against drift: run_dbt with a fake venv and invoker gets the same argv."""
    from manifest_dag.worker.run import run_dbt

    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: shop\nprofile: other\n")
    profiles = tmp_path / "profiles.yml"
    profiles.write_text("shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: x.duckdb}\n")
    dag = DbtDag(
        dag_id="drift",
        project_config=ProjectConfig(manifest_path=small(tmp_path), project_dir=project, dbt_vars={"d": "{{ ds }}"}),
        profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=profiles),
        venv_config=VenvConfig(py_requirements=["dbt-core~=1.11.0"], cache_dir=tmp_path / "venvs"),
        schedule=None,
        start_date=START,
    )
    task = dag.task_dict["orders.test"]
    plan = plan_task(task, logical_date=pendulum.datetime(2024, 2, 2, tz="UTC"))

    class FakeVenv:
        key = "fake"
        external = False
        path = tmp_path / "venv"

        def executable(self, name: str) -> Path:
            return self.path / "bin" / name

        def environ(self) -> dict[str, str]:
            return {}

    class FakeCache:
        root = tmp_path / "cache"
        state_dir = root / ".state"
        state_note = None
        prepared_dir = None

        def ensure(self, spec: Any) -> FakeVenv:
            return FakeVenv()

    seen: list[list[str]] = []

    class FakeInvoker:
        def invoke(self, argv: Any, *, cwd: Path, env: Any, on_line: Any) -> int:
            seen.append(list(argv))
            # a test task that ran no test fails (issue 19): report the one it ran
            target = Path(argv[argv.index("--target-path") + 1])
            target.mkdir(parents=True, exist_ok=True)
            result = {"unique_id": "test.shop.t", "status": "pass", "message": None, "execution_time": 0.0}
            (target / "run_results.json").write_bytes(orjson.dumps({"results": [result]}))
            return 0

        def kill(self) -> None:
            pass

    rendered = task.prepare_for_execution()
    rendered.dbt_vars = {"d": "2024-02-02"}
    run_dbt(rendered.invocation(), log=lambda line: None, invoker=FakeInvoker(), venv_cache=FakeCache())
    (argv,) = seen
    workspace = argv[argv.index("--project-dir") + 1]
    normalised = [
        a.replace(str(FakeVenv.path), "<venv>").replace(workspace, "<workspace>/project") for a in argv
    ]
    profiles_dir = normalised[normalised.index("--profiles-dir") + 1]
    normalised[normalised.index("--profiles-dir") + 1] = "<profiles-dir>"
    assert profiles_dir
    assert tuple(normalised) == plan.argv
    assert "--profile" in plan.argv  # dbt_project.yml names another profile


# -- the module's surface ------------------------------------------------------------------------------
def test_testing_surface_is_locked() -> None:
    import manifest_dag.testing as testing

    assert sorted(testing.__all__) == [
        "BlockedImport", "DbtImportBlocked", "ManifestBuilder", "NoDbt", "TaskPlan",
        "assert_dag_matches_manifest", "assert_matches_golden", "block_dbt", "dag_shape",
        "load_dag_bag", "plan_task",
    ]
    assert all(hasattr(testing, name) for name in testing.__all__)


def test_plugin_and_testing_import_neither_airflow_nor_dbt() -> None:
    """pytest loads the plugin in every project that installs manifest-dag: it must stay light."""
    import json
    import subprocess

    probe = (
        "import json, sys\nimport manifest_dag.testing.plugin, manifest_dag.testing\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'dbt'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
