"""The warm server's kept manifest, without dbt: subgraph cutting, compile-state restore, and
when a kept project is reused or dropped (dbt's modules replaced by small stand-ins that record
what dbt would be asked; the real dbt path is in tests/e2e/test_e2e_warm.py)."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import networkx as nx

from manifest_dag.worker.in_venv.manifest_reuse import Kept, ManifestReuse, fast_subset


def _spec_subset(graph: nx.DiGraph, selected: set[str]) -> set[tuple[str, str]]:
    """dbt's documented rule: u→v for selected u != v when a path joins them through unselected nodes."""
    edges = set()
    for u in selected:
        for v in selected:
            if u == v:
                continue
            allowed = (set(graph) - selected) | {u, v}
            if nx.has_path(graph.subgraph(allowed), u, v):
                edges.add((u, v))
    return edges


def test_the_walked_subset_is_dbts_subset_on_random_graphs() -> None:
    rng = random.Random(3)
    for trial in range(60):
        n = rng.randint(2, 40)
        graph = nx.DiGraph()
        graph.add_nodes_from((f"n{i}", {"i": i}) for i in range(n))
        for j in range(1, n):
            for i in rng.sample(range(j), k=min(j, rng.randint(0, 3))):
                graph.add_edge(f"n{i}", f"n{j}", edge_type=rng.choice([None, "parent_test"]))
        selected = set(rng.sample(list(graph), k=rng.randint(1, n)))
        got = fast_subset(graph, selected, nx.DiGraph)
        assert set(got) == selected, trial
        assert set(got.edges) == _spec_subset(graph, selected), trial
        for u, v in got.edges:  # a direct edge keeps its data (dbt's test edges are typed)
            assert got.edges[u, v] == (graph.edges[u, v] if graph.has_edge(u, v) else {})
            assert got.nodes[u] == graph.nodes[u]


class _Node:
    def __init__(self) -> None:
        self.compiled = False
        self.compiled_code: str | None = None
        self.extra_ctes_injected = False
        self.extra_ctes: list[str] = []


def test_restore_puts_back_the_compile_state_the_parse_left() -> None:
    nodes = {"model.p.a": _Node(), "model.p.b": _Node()}
    kept = Kept(SimpleNamespace(nodes=nodes), SimpleNamespace())
    a = nodes["model.p.a"]
    a.compiled, a.compiled_code, a.extra_ctes_injected = True, "with __dbt__cte__x as (...) select 1", True
    a.extra_ctes.append("cte")
    kept.restore()
    assert (a.compiled, a.compiled_code, a.extra_ctes_injected, a.extra_ctes) == (False, None, False, [])
    a.extra_ctes.append("again")  # the restored list is a fresh one, not the snapshot itself
    kept.restore()
    assert a.extra_ctes == []


class _FakeDbt:
    """dbt's three patched functions, counting how often the slow ones really run."""

    def __init__(self) -> None:
        self.parses = 0
        self.links = 0
        test = self

        def parse_manifest(runtime_config: Any, *args: Any) -> Any:
            test.parses += 1
            return SimpleNamespace(nodes={"model.p.a": _Node()}, env_vars={"SUFFIX": "x"})

        class Compiler:
            def initialize(self) -> None:
                pass

            def compile(self, manifest: Any, write: bool = True, add_test_edges: bool = False) -> Any:
                test.links += 1
                return ("graph", add_test_edges)

        class Graph:
            def __init__(self, graph: Any) -> None:
                self.graph = graph

            def get_subset_graph(self, selected: Any) -> Any:
                return "dbt's own"

        self.requires = SimpleNamespace(parse_manifest=parse_manifest)
        self.Compiler = Compiler
        self.Graph = Graph

    def invoke(self, reuse: ManifestReuse, args: list[str], root: Path, env: dict[str, str]) -> Any:
        """One invocation as the server runs it: before, dbt (parse unless given a manifest), after."""
        argv = [*args, "--project-dir", str(root), "--profiles-dir", str(root), "--target-path", str(root / "target")]
        manifest = reuse.before(argv, str(root), env)
        if manifest is None:
            manifest = self.requires.parse_manifest(SimpleNamespace(project_env_vars={}, profile_env_vars={}))
        flavour = argv[0] == "build"
        self.Compiler().compile(manifest, add_test_edges=flavour)
        reuse.after(env, None)
        return argv


def _reuse(tmp_path: Path) -> tuple[ManifestReuse, _FakeDbt, list[str], Path]:
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\n")
    (root / "models" / "a.sql").write_text("select 1\n")
    (root / "profiles.yml").write_text("p: {}\n")
    notes: list[str] = []
    reuse = ManifestReuse(note=notes.append)
    fake = _FakeDbt()
    reuse._patch(fake.requires, fake.Compiler, fake.Graph)
    reuse.enabled = True
    return reuse, fake, notes, root


def test_an_unchanged_project_is_parsed_and_linked_once(tmp_path: Path) -> None:
    reuse, fake, notes, root = _reuse(tmp_path)
    env = {"SUFFIX": "x"}
    for model in ("a", "b", "c"):
        fake.invoke(reuse, ["run", "--select", model], root, env)
    assert (fake.parses, fake.links) == (1, 1)
    assert "first task" in notes[0] and all("reusing the project" in n for n in notes[1:])
    fake.invoke(reuse, ["build", "--select", "a"], root, env)  # with test edges: linked once more
    fake.invoke(reuse, ["build", "--select", "b"], root, env)
    assert (fake.parses, fake.links) == (1, 2)


def test_node_commands_cache_only_the_selected_schemas_unless_told(tmp_path: Path) -> None:
    reuse, fake, _, root = _reuse(tmp_path)
    assert "--cache-selected-only" in fake.invoke(reuse, ["run", "--select", "a"], root, {})
    assert "--cache-selected-only" not in fake.invoke(reuse, ["run", "--no-cache-selected-only"], root, {})
    assert "--cache-selected-only" not in fake.invoke(reuse, ["run"], root, {"DBT_CACHE_SELECTED_ONLY": "false"})
    assert "--cache-selected-only" not in fake.invoke(reuse, ["compile"], root, {})


def test_a_change_to_what_the_parse_read_drops_the_kept_project_saying_why(tmp_path: Path) -> None:
    reuse, fake, notes, root = _reuse(tmp_path)
    env = {"SUFFIX": "x"}
    fake.invoke(reuse, ["run"], root, env)
    (root / "models" / "a.sql").write_text("select 2\n")
    fake.invoke(reuse, ["run"], root, env)
    assert fake.parses == 2 and "parsing again: project files changed models/a.sql" in notes[-1]
    fake.invoke(reuse, ["run"], root, {"SUFFIX": "y"})  # an env var the parse read
    assert fake.parses == 3 and "env var SUFFIX changed" in notes[-1]
    fake.invoke(reuse, ["run", "--vars", "{a: 1}"], root, {"SUFFIX": "y"})
    assert fake.parses == 4 and "--vars" in notes[-1]
    fake.invoke(reuse, ["run", "--vars", "{a: 1}"], root, {"SUFFIX": "y"})
    assert fake.parses == 4


def test_commands_and_options_that_must_parse_do_and_keep_the_kept_project(tmp_path: Path) -> None:
    reuse, fake, _, root = _reuse(tmp_path)
    fake.invoke(reuse, ["run"], root, {})
    for args, env in (
        (["parse"], {}),
        (["run", "--defer", "--state", "x"], {}),
        (["run", "--no-partial-parse"], {}),
        (["run"], {"DBT_PARTIAL_PARSE": "false"}),
        (["run"], {"DBT_DEFER": "1"}),
    ):
        before = fake.parses
        fake.invoke(reuse, args, root, env)
        assert fake.parses == before + 1, (args, env)
    fake.invoke(reuse, ["run"], root, {})
    assert fake.parses == 6  # the kept project still serves


def test_an_invocation_that_raised_drops_what_it_ran_on(tmp_path: Path) -> None:
    reuse, fake, notes, root = _reuse(tmp_path)
    fake.invoke(reuse, ["run"], root, {})
    argv = ["run", "--project-dir", str(root), "--profiles-dir", str(root), "--target-path", str(root / "target")]
    assert reuse.before(argv, str(root), {}) is not None
    reuse.after({}, RuntimeError("boom"))
    assert reuse.kept is None and "dbt raised RuntimeError" in notes[-1]


def test_a_dbt_without_the_hooks_says_so_once_and_parses(tmp_path: Path) -> None:
    notes: list[str] = []
    reuse = ManifestReuse(note=notes.append)
    reuse.install(wanted=False)
    assert not reuse.enabled
    assert reuse.before(["run"], str(tmp_path), {}) is None
    assert reuse.before(["run"], str(tmp_path), {}) is None
    assert len(notes) == 1 and "MANIFEST_DAG_WARM_KEEP_PROJECT" in notes[0]
    reuse = ManifestReuse(note=notes.append)
    reuse.install()  # this environment has no dbt at all
    assert not reuse.enabled and reuse.why_off and "ModuleNotFoundError" in reuse.why_off


def test_the_switch_is_read_from_the_environment(monkeypatch: Any) -> None:
    from manifest_dag.worker.warm import WarmSettings

    assert WarmSettings.from_env(1).keep_project
    monkeypatch.setenv("MANIFEST_DAG_WARM_KEEP_PROJECT", "off")
    assert not WarmSettings.from_env(1).keep_project
