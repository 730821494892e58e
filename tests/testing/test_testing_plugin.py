"""The pytest plugin (installed through the ``pytest11`` entry point), tested with pytester."""

from __future__ import annotations

import pytest

# Loaded here, not first inside an in-process pytester run: pytester drops the modules a run
# imported, and Airflow's DAG processing half-removed breaks importlib.metadata for later runs
# (and a re-imported manifest_dag module no longer pickles its own classes).
import manifest_dag.scheduler.dag  # noqa: F401
import manifest_dag.testing  # noqa: F401
from manifest_dag.core.airflow_compat import dag_bag_class

dag_bag_class()

from tests.conftest import SHARED

pytest_plugins = ["pytester"]

#: other plugins off in the inner runs: each in-process run would import hypothesis afresh (3 s)
_QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*_QUIET, *args)

_DAG_HEADER = """
import pendulum
from manifest_dag import DbtDag, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.testing import ManifestBuilder

VENV = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])


def build(path, select):
    return DbtDag(
        dag_id="shop",
        project_config=ProjectConfig(manifest_path=path, project_dir="/srv/dbt"),
        venv_config=VENV,
        render_config=RenderConfig(select=select),
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    )


def scenario(builder):
    return (
        builder("shop")
        .seed("raw_orders")
        .model("orders", refs=["raw_orders"], tags=["nightly"])
        .model("customers", refs=["raw_orders"], tags=["daily"])
        .model("report", refs=["orders", "customers"], tags=["nightly"])
        .write()
    )
"""


def test_plugin_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--manifest-dag-update-golden*", "*manifest_dag_dags_folder*"])
    pytester.makepyfile("def test_m(request):\n    assert request.config.pluginmanager.has_plugin('manifest_dag')\n")
    run(pytester).assert_outcomes(passed=1)


def test_dag_file_importing_dbt_fails_dag_bag_and_no_dbt_with_the_chain(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmanifest_dag_dags_folder = dags\n")
    dags = pytester.mkdir("dags")
    (dags / "good_dag.py").write_text(
        "import pendulum\nfrom airflow.sdk import DAG\n"
        "dag = DAG('good', schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC'))\n"
    )
    (dags / "uses_dbt.py").write_text("from airflow.sdk import DAG\nimport ptx_dag_helpers\n")
    pytester.makepyfile(ptx_dag_helpers="import os\nimport dbt.cli.main\n")
    pytester.syspathinsert()
    pytester.makepyfile(
        test_dags="""
import pytest

def test_dags_load(dag_bag):
    dag_bag()

@pytest.mark.no_dbt
def test_marker():
    import ptx_dag_helpers  # noqa: F401

def test_fixture(no_dbt):
    with pytest.raises(ImportError, match="blocked"):
        import dbt  # noqa: F401
    assert [a.name for a in no_dbt.attempts] == ["dbt"]

def test_good_folder(dag_bag, pytestconfig):
    import pathlib, shutil
    folder = pathlib.Path(str(pytestconfig.rootpath)) / "only_good"
    folder.mkdir(exist_ok=True)
    shutil.copy(pathlib.Path(str(pytestconfig.rootpath)) / "dags" / "good_dag.py", folder)
    assert "good" in dag_bag(folder).dag_ids
"""
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    # dag_bag: the failing file, its full traceback, and the chain that reached dbt
    result.stdout.fnmatch_lines(
        [
            "*1 of the DAG files under *dags failed to import:*",
            "--- *dags/uses_dbt.py",
            "*DbtImportBlocked: dbt is blocked here*uses_dbt.py:2 → ptx_dag_helpers (*ptx_dag_helpers.py:2) → import dbt*",
        ]
    )
    assert "good_dag.py" not in out.split("test_marker")[0].split("failed to import")[1].split("\n\n")[0]
    # the marker: the test function → the helper module → dbt
    result.stdout.fnmatch_lines(
        ["E *DbtImportBlocked: *: test_marker() at test_dags.py:8 → ptx_dag_helpers (ptx_dag_helpers.py:2) → import dbt. *"]
    )


def test_changed_selection_fails_with_missing_and_extra_tasks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_selection=_DAG_HEADER
        + """
from manifest_dag.testing import assert_dag_matches_manifest


def test_nightly(manifest_builder):
    path = scenario(manifest_builder)
    # the DAG file's selection changed from tag:nightly to tag:daily
    assert_dag_matches_manifest(build(path, ["tag:daily"]), path, select=["tag:nightly"])


def test_unchanged(manifest_builder):
    path = scenario(manifest_builder)
    assert_dag_matches_manifest(build(path, ["tag:nightly"]), path, select=["tag:nightly"])
"""
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*DAG 'shop' does not match *manifest.json (select=?'tag:nightly'?):",
            "*missing tasks (selected, but not in the DAG):",
            "*- task for orders  (model.shop.orders)",
            "*- task for report  (model.shop.report)",
            "*extra tasks (in the DAG, but not selected):",
            "*+ task customers_run for customers  (model.shop.customers)",
        ]
    )


def test_golden_file_mismatch_shows_a_unified_diff_and_the_option_rewrites_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_shape=_DAG_HEADER
        + """
from manifest_dag.testing import dag_shape


def test_shape(manifest_builder, golden):
    golden(dag_shape(build(scenario(manifest_builder), ["tag:nightly"])), "shop.txt")
"""
    )
    golden = pytester.mkdir("golden") / "shop.txt"
    golden.write_text("dag shop\ngroups (0):\ntasks (1):\n  orders_run: DbtRunOperator dbt run --select shop.orders\n")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*does not match golden file *shop.txt:",
            "*--- *shop.txt (golden)",
            "*+++ actual",
            "@@ *",
            "-tasks (1):",
            "+tasks (2):",
            "+  report_run: DbtRunOperator dbt run --select shop.report",
            "*--manifest-dag-update-golden*",
        ]
    )
    run(pytester, "--manifest-dag-update-golden").assert_outcomes(passed=1)
    assert "  report_run: " in golden.read_text() and "orders_run >> report_run" in golden.read_text()
    run(pytester).assert_outcomes(passed=1)


def test_shared_manifest_and_manifest_builder_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\nmanifest_dag_manifests_folder = {SHARED}\n")
    pytester.makepyfile(
        """
def test_shared(shared_manifest):
    manifest = shared_manifest("jaffle_shop_duckdb/manifest.json")
    assert manifest.project_name == "jaffle_shop"
    assert shared_manifest("jaffle_shop_duckdb/manifest.json") is manifest

def test_builder(manifest_builder, tmp_path):
    path = manifest_builder("p").model("a").write()
    assert path == tmp_path / "manifest.json"
    assert "model.p.a" in manifest_builder("p").model("a").load().nodes
"""
    )
    run(pytester).assert_outcomes(passed=2)
