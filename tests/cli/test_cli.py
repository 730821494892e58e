"""The ``manifest-dag`` command, run in-process on the real fixtures; output content, not just exit codes."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from manifest_dag.cli import app as cli
from manifest_dag.core.config import ProjectConfig, RenderConfig
from manifest_dag.core.errors import CliError
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.manifest import load_manifest
from manifest_dag.scheduler.plan import plan_tasks
from manifest_dag.scheduler.selection import select_nodes
from manifest_dag.testing import ManifestBuilder
from tests.conftest import FIXTURES, JAFFLE, SHARED

SHOP = FIXTURES / "manifests" / "shop" / "manifest.json"
TUVA = SHARED / "large" / "tuva" / "manifest.json.gz"
V14 = SHARED / "versions" / "manifest_dbt-1.4.10.json"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (make test installs it)")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expected_plan(manifest: Path, **render: object):
    rc = RenderConfig(**render)  # type: ignore[arg-type]
    m = load_manifest(manifest)
    graph = DbtGraph(m)
    selected = select_nodes(m, select=rc.select, exclude=rc.exclude, selector=rc.selector, graph=graph)
    return plan_tasks(graph, selected, rc)


# -- help and errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        ([], ["inspect", "graph", "check", "venv", "demo"]),
        (["inspect"], ["--select", "--selector", "--test-behavior", "--json", "MANIFEST"]),
        (["graph"], ["--format", "--collapse", "--depth", "-o"]),
        (["check"], ["--py-requirements", "--exclude"]),
        (["venv"], ["build", "list", "prune"]),
        (["venv", "build"], ["--find-links", "--index-url", "--verify", "--cache-dir", "REQ"]),
        (["venv", "list"], ["--json", "--cache-dir"]),
        (["venv", "prune"], ["--older-than", "--dry-run"]),
        (["demo"], ["usage: manifest-dag demo"]),
    ],
)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], argv: list[str], expect: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: manifest-dag")
    for word in expect:
        assert word in out


def test_graph_help_states_the_real_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    from manifest_dag.cli import draw

    with pytest.raises(SystemExit):
        cli.main(["graph", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"Above {draw.AUTO_COLLAPSE_TASKS} tasks" in out
    assert f"folders above {draw.AUTO_COLLAPSE_TASKS} tasks" in out
    assert f"at most {draw.MAX_FOLDER_BOXES} boxes" in out


def test_usage_errors_exit_2_with_the_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["inspect", str(SHOP), "--test-behavior", "sometimes"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "manifest-dag: error: argument --test-behavior: invalid choice: 'sometimes'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "/no/such/manifest.json"], r"/no/such/manifest.json: manifest not found\. Run `dbt parse`"),
        (["inspect", str(SHOP), "--select", "tag:no_such_tag"], r"--select tag:no_such_tag selects no nodes"),
        (["graph", str(SHOP), "--select", "tag:"], r"'tag:' has nothing after"),
        (["inspect", str(SHOP), "--selector", "nope"], r"nope"),
        (["check", str(V14)], r"manifest schema v8 .*not supported"),
        (["graph", str(SHOP), "-f", "png"], r"give an output file with -o FILE.png"),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("manifest-dag: error: ")
    assert re.search(message, err), err
    assert "Traceback" not in err


# -- inspect --------------------------------------------------------------------------------------------
def test_inspect_shows_counts_nodes_and_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", SHOP)
    assert code == 0
    assert "project    shop (dbt 1.11." in out
    assert "manifest schema v12, adapter duckdb" in out
    counts = dict(re.findall(r"^  (\w+)\s+(\d+\s+\d+)$", out, re.M))
    assert counts["model"].split() == ["19", "19"]
    assert counts["seed"].split() == ["6", "6"]
    assert counts["analysis"].split() == ["1", "0"]
    # selected nodes, with the task that runs each or why it has none
    assert re.search(r"model\.shop\.stg_orders\s+model\s+stg_orders\.run$", out, re.M)
    assert re.search(r"model\.shop\.int_order_items_enriched\s+model\s+no task \(ephemeral\)", out, re.M)
    assert re.search(r"source\.shop\.shop_raw\.orders\s+source\s+no task \(source\)", out, re.M)
    plan = expected_plan(SHOP)
    assert f"Tasks ({len(plan.tasks)}) in {len(plan.groups)} task groups" in out
    assert re.search(
        r"^  stg_orders\.test\s+dbt test --select shop\.staging\.stg_orders --indirect-selection cautious\s+stg_orders\.run$",
        out,
        re.M,
    )
    for task in plan.tasks:
        assert re.search(rf"^  {re.escape(task.task_id)}\s", out, re.M), task.task_id


def test_inspect_json_equals_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", JAFFLE, "--json")
    assert code == 0
    report = json.loads(out)
    plan = expected_plan(JAFFLE)
    assert report["project"] == "jaffle_shop"
    assert report["counts"]["model"] == {"total": 5, "selected": 5}
    assert [t["task_id"] for t in report["tasks"]] == [t.task_id for t in plan.tasks]
    assert [tuple(t["upstream"]) for t in report["tasks"]] == [t.upstream for t in plan.tasks]
    assert [g["group_id"] for g in report["groups"]] == [g.group_id for g in plan.groups]
    orders = next(t for t in report["tasks"] if t["task_id"] == "orders.run")
    assert orders["dbt_args"] == ["run", "--select", "jaffle_shop.orders"]
    assert orders["group_id"] == "orders"


def test_inspect_selection_and_behaviour(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", SHOP, "--selector", "nightly_finance", "--test-behavior", "build", "--json")
    assert code == 0
    report = json.loads(out)
    plan = expected_plan(SHOP, selector="nightly_finance", test_behavior="build")
    assert [t["task_id"] for t in report["tasks"]] == [t.task_id for t in plan.tasks]
    assert report["groups"] == []
    assert {t["command"] for t in report["tasks"]} <= {"build", "test"}
    assert report["render_config"]["selector"] == "nightly_finance"
    selected = {n["unique_id"] for n in report["selected"]}
    assert "model.shop.fct_orders" in selected and "model.shop.stg_orders" not in selected


# -- graph ----------------------------------------------------------------------------------------------
def dot_graph(text: str) -> tuple[set[str], set[tuple[str, str]], int]:
    nodes = set(re.findall(r'^\s*"((?:[^"\\]|\\.)*)" \[', text, re.M))
    edges = set(re.findall(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"', text, re.M))
    return nodes, edges, len(re.findall(r"^\s*subgraph cluster_", text, re.M))


@pytest.mark.parametrize("manifest", [SHOP, JAFFLE], ids=["shop", "jaffle_shop"])
def test_graph_dot_nodes_are_the_tasks(capsys: pytest.CaptureFixture[str], tmp_path: Path, manifest: Path) -> None:
    out_file = tmp_path / "g.dot"
    code, _, err = run(capsys, "graph", manifest, "-o", out_file)
    assert code == 0
    plan = expected_plan(manifest)
    assert f"wrote {out_file} (dot, {len(plan.tasks)} tasks" in err
    text = out_file.read_text()
    assert text.startswith("digraph manifest_dag {") and "rankdir=LR" in text
    nodes, edges, clusters = dot_graph(text)
    assert nodes == {t.task_id for t in plan.tasks}
    assert edges == set(plan.edges())
    assert clusters == len(plan.groups)


@needs_dot
def test_graph_svg_is_valid_and_its_nodes_are_the_tasks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "jaffle.svg"
    code, _, _ = run(capsys, "graph", JAFFLE, "-o", out_file)  # format from the suffix
    assert code == 0
    root = ET.parse(out_file).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    groups = root.findall(".//svg:g", ns)
    titles = {cls: set() for cls in ("node", "cluster", "edge")}
    for g in groups:
        if g.get("class") in titles:
            titles[g.get("class")].add(g.find("svg:title", ns).text)
    plan = expected_plan(JAFFLE)
    assert titles["node"] == {t.task_id for t in plan.tasks}
    from manifest_dag.scheduler.dag import DbtDag

    dag = DbtDag(dag_id="jaffle", schedule=None, project_config=ProjectConfig(manifest_path=JAFFLE, plan_cache_dir=False))
    assert titles["node"] == set(dag.task_dict)  # the tasks Airflow gets
    assert {tuple(e.split("->")) for e in titles["edge"]} == {
        (t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids
    }
    from airflow.sdk import TaskGroup

    groups = [c for c in dag.task_group.children.values() if isinstance(c, TaskGroup)]
    assert len(titles["cluster"]) == len(plan.groups) == len(groups)
    assert {tuple(e.split("->")) for e in titles["edge"]} == set(plan.edges())
    # clusters are labelled with the model names
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"stg_orders", "orders", "customers", "run", "test"} <= texts


@needs_dot
def test_graph_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "shop.img"
    code, _, _ = run(capsys, "graph", SHOP, "--format", "png", "-o", out_file)
    assert code == 0
    data = out_file.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 100  # laid out left to right


def test_graph_mermaid_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "graph", JAFFLE, "--format", "mermaid")
    assert code == 0
    assert out.startswith("flowchart LR\n")
    plan = expected_plan(JAFFLE)
    assert out.count("  subgraph ") == len(plan.groups)
    assert len(re.findall(r"-->", out)) == len(list(plan.edges()))
    for t in plan.tasks:
        assert f'["{t.local_id}"]' in out or f'[("{t.local_id}")]' in out or t.task_id in out.replace("<br/>", "")


def test_graph_collapsed_by_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "graph", SHOP, "--collapse", "folder", "--depth", "2", "-f", "dot")
    assert code == 0
    nodes, edges, clusters = dot_graph(out)
    assert {"models/staging", "models/marts", "models/intermediate", "seeds", "shop_utils: models"} <= nodes
    counts = [int(n) for n in re.findall(r"\\n(\d+) tasks?", out)]
    assert sum(counts) == len(expected_plan(SHOP).tasks)
    assert ("models/staging", "models/intermediate") in edges
    assert all(a != b for a, b in edges)


def test_graph_of_a_large_project_collapses_by_itself(capsys: pytest.CaptureFixture[str]) -> None:
    if not TUVA.exists():
        pytest.skip(f"{TUVA} missing")
    code, out, _ = run(capsys, "graph", TUVA, "-f", "dot")
    assert code == 0
    nodes, edges, _ = dot_graph(out)
    plan = expected_plan(TUVA)
    assert len(plan.tasks) > 500
    assert 5 <= len(nodes) <= 40  # readable: a box per folder, not per task
    assert sum(int(n) for n in re.findall(r"\\n(\d+) tasks?", out)) == len(plan.tasks)
    assert f"{len(plan.tasks)} tasks in {len(nodes)} folders" in out


# -- check ----------------------------------------------------------------------------------------------
def test_check_passes_on_the_shop(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", SHOP, "--select", "tag:nightly")
    assert code == 0, err
    plan = expected_plan(SHOP, select=["tag:nightly"])
    assert re.search(r"^ok  manifest .*schema v12, dbt 1\.11\.\d+, 90 nodes, project 'shop'$", out, re.M)
    assert re.search(r"^ok  graph\s+\d+ dependencies, no cycle$", out, re.M)
    assert f"ok  plan       {len(plan.tasks)} tasks in {len(plan.groups)} task groups" in out
    assert f"'manifest_dag_check': {len(plan.tasks)} tasks" in out
    assert "workers will build: dbt-core==1.11." in out
    assert "check passed" in out


def test_check_fails_on_a_cycle(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = (
        ManifestBuilder("loop")
        .model("a", depends_on=["model.loop.b"])
        .model("b", refs=["a"])
        .write(tmp_path)
    )
    code, out, err = run(capsys, "check", path)
    assert code == 2
    assert "ok  manifest" in out and "ok  graph" not in out
    assert re.search(r"manifest-dag: error: .*the dbt graph has a cycle: model\.loop\.\w → model\.loop\.\w → ", err)


def test_check_fails_on_an_empty_selection(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", SHOP, "--select", "resource_type:exposure")
    assert code == 2
    assert "ok  select" in out
    assert "selects" in err and "none of which runs as a task" in err


def test_check_fails_naming_a_node_of_a_type_it_cannot_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A resource type this release does not know (a newer dbt's): `dbt build` may run it and the
    DAG would not, so check fails and names the node; a function (dbt 1.11) passes."""
    data = ManifestBuilder("new").function("f").model("a", refs=["f"]).model("b", depends_on=["widget.new.w"]).build()
    data["nodes"]["widget.new.w"] = {"resource_type": "widget", "name": "w", "package_name": "new", "fqn": ["new", "w"]}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    code, out, err = run(capsys, "check", tmp_path / "manifest.json", "--py-requirements", "dbt-core~=1.11.0")
    assert code == 2
    assert "ok  select" in out and "ok  plan" not in out
    assert "cannot run widget.new.w (resource type 'widget')" in err
    code, out, err = run(
        capsys, "check", tmp_path / "manifest.json", "--select", "a", "--py-requirements", "dbt-core~=1.11.0"
    )
    assert code == 0, err  # the unknown node is not needed by this selection
    assert "check passed" in out


# -- venv -----------------------------------------------------------------------------------------------
def test_venv_build_list_prune(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cache = tmp_path / "venvs"
    argv = ("venv", "build", "six", "--verify", "python -c 'import six'", "--cache-dir", cache)
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    key = re.search(r"^venv (\w{16}) ready at (\S+) \(built in [\d.]+ s\)$", out, re.M)
    assert key, out
    assert Path(key.group(2)) == cache / key.group(1)
    for step in ("[1/3 create]", "[2/3 install]", "[3/3 verify]"):
        assert step in err
    code, out, _ = run(capsys, *argv)
    assert code == 0 and f"venv {key.group(1)} ready at" in out and "(already built)" in out

    code, out, _ = run(capsys, "venv", "list", "--cache-dir", cache)
    assert code == 0
    assert f"venv cache {cache}: 1 venvs" in out
    assert re.search(rf"^  {key.group(1)}\s+[\d.]+ [KM]B\s+\d{{4}}-\d\d-\d\d \d\d:\d\d\s+ok\s+six$", out, re.M), out
    code, out, _ = run(capsys, "venv", "list", "--cache-dir", cache, "--json")
    (info,) = json.loads(out)
    assert info["key"] == key.group(1) and info["healthy"] and info["requirements"] == ["six"]

    code, out, _ = run(capsys, "venv", "prune", "--cache-dir", cache, "--older-than", "1")
    assert code == 0 and "removed 0 entries" in out
    code, out, _ = run(capsys, "venv", "prune", "--cache-dir", cache, "--older-than", "0", "--dry-run")
    assert "would remove 1 entry" in out and (cache / key.group(1)).is_dir()
    code, out, _ = run(capsys, "venv", "prune", "--cache-dir", cache, "--older-than", "0")
    assert f"removing {cache / key.group(1)}" in out and "removed 1 entry" in out
    assert not (cache / key.group(1)).exists()
    code, out, _ = run(capsys, "venv", "list", "--cache-dir", cache)
    assert out.strip() == f"no venvs in {cache}"


def test_venv_build_needs_requirements(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "venv", "build", "--cache-dir", tmp_path)
    assert code == 2 and "name the requirements" in err
    code, _, err = run(capsys, "venv", "build", "dbt-core>=", "--cache-dir", tmp_path)
    assert code == 2 and "manifest-dag: error: invalid requirement 'dbt-core>='" in err


def test_venv_build_from_a_manifest_pins_its_dbt(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    seen = []

    def ensure(self: object, spec: object) -> None:
        seen.append(spec)
        raise CliError("stop here")

    monkeypatch.setattr("manifest_dag.worker.venv.VenvCache.ensure", ensure)
    code, _, err = run(capsys, "venv", "build", "--manifest", SHOP, "--cache-dir", tmp_path)
    assert code == 2 and "stop here" in err
    (spec,) = seen
    assert spec.requirements[0].startswith("dbt-core==1.11.") and spec.requirements[1] == "dbt-duckdb~=1.11.0"
    assert spec.verify_command == ("dbt", "--version")


def test_demo_runs_the_demo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("manifest_dag.cli.demo.main", lambda: 7)
    assert cli.main(["demo"]) == 7


def test_project_config_is_what_the_cli_plans() -> None:
    """inspect/graph plan without Airflow; they must agree with what DbtDag builds (plan_project)."""
    from manifest_dag.scheduler.dag import plan_project

    rc = RenderConfig(select=["+fct_orders"], test_behavior="after_all")
    _, plan = plan_project(ProjectConfig(manifest_path=SHOP, plan_cache_dir=False), rc)
    assert plan == expected_plan(SHOP, select=["+fct_orders"], test_behavior="after_all")


def test_venv_build_from_dag_files(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from manifest_dag.worker.venv import Venv

    seen = []

    def ensure(self, spec):  # noqa: ANN001, ANN202
        seen.append((self.root, spec))
        return Venv(key="0" * 16, path=self.root / ("0" * 16), python=Path("python"), bin_dir=Path("bin"), built=False)

    monkeypatch.setattr("manifest_dag.worker.venv.VenvCache.ensure", ensure)
    monkeypatch.setenv("MANIFEST_DAG_DEMO_DIR", str(tmp_path))
    monkeypatch.delenv("MANIFEST_DAG_VENV_CACHE", raising=False)
    code, out, err = run(capsys, "venv", "build", "--dags", FIXTURES.parent / "examples" / "dags")
    assert code == 0, err
    # the example DAGs build one venv: the same requirements and cache dir (tmp_path/venvs, from the
    # DAGs); shop_own_dbt's dbt is the image's own (VenvConfig(existing_venv=...)): checked, not built
    brought = [spec for _, spec in seen if spec.existing_venv]
    assert [spec.existing_venv for spec in brought] == ["/opt/dbt-venv"]
    (root, spec), = [(root, spec) for root, spec in seen if not spec.existing_venv]
    assert root == tmp_path / "venvs"
    assert spec.requirements == ("dbt-core~=1.11.0", "dbt-duckdb~=1.11.0")
    assert out.count("(already built)") == 1

    code, _, err = run(capsys, "venv", "build", "--dags", tmp_path / "nothing-here")
    assert code == 2 and "no such file or folder" in err


QUEUED_DAGS = '''
"""Two dbt versions on two queues: an Airflow DAG file for the venv build --queue test."""
import pendulum
from airflow.sdk import DAG
from manifest_dag import VenvConfig
from manifest_dag.operators import DbtRunOperator

with DAG("queued", start_date=pendulum.datetime(2024, 1, 1), schedule=None):
    DbtRunOperator(task_id="old", project_dir="/p", venv_config=VenvConfig(
        py_requirements=["dbt-core~=1.10.0", "dbt-postgres~=1.10.0"], queue="dbt110", cache_dir={cache!r}))
    DbtRunOperator(task_id="new", project_dir="/p", venv_config=VenvConfig(
        py_requirements=["dbt-core~=1.11.0", "dbt-postgres~=1.10.0"], queue="dbt111", cache_dir={cache!r}))
    DbtRunOperator(task_id="plain", project_dir="/p", venv_config=VenvConfig(
        py_requirements=["dbt-core~=1.9.0", "dbt-postgres~=1.9.0"], cache_dir={cache!r}))
'''


def test_venv_build_for_the_queues_a_worker_listens_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--queue`` builds only the venvs of the tasks routed to those queues (VenvConfig.queue, or
    Airflow's default queue for the rest): what a worker listening on them will run."""
    from manifest_dag.worker.venv import Venv

    seen: list = []

    def ensure(self, spec):  # noqa: ANN001, ANN202
        seen.append(spec.requirements[0])
        return Venv(key="0" * 16, path=self.root / ("0" * 16), python=Path("python"), bin_dir=Path("bin"), built=False)

    monkeypatch.setattr("manifest_dag.worker.venv.VenvCache.ensure", ensure)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "queued_dag.py").write_text(QUEUED_DAGS.format(cache=str(tmp_path / "venvs")))
    for queues, expected in (
        (["dbt110"], ["dbt-core~=1.10.0"]),
        (["default", "dbt111"], ["dbt-core~=1.11.0", "dbt-core~=1.9.0"]),
        ([], ["dbt-core~=1.10.0", "dbt-core~=1.11.0", "dbt-core~=1.9.0"]),
    ):
        seen.clear()
        code, _, err = run(capsys, "venv", "build", "--dags", str(dags), *[f"--queue={q}" for q in queues])
        assert code == 0, err
        assert seen == expected, (queues, seen)
    code, _, err = run(capsys, "venv", "build", "--dags", str(dags), "--queue", "dbt19")
    assert code == 2 and "no dbt task there is routed to these queues" in err and "dbt110, dbt111, default" in err
    code, _, err = run(capsys, "venv", "build", "dbt-core", "--queue", "dbt110")
    assert code == 2 and "give --dags too" in err
