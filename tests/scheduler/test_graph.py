"""``DbtGraph``: the edges, the walks, the cycle check and the order through nodes without tasks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from manifest_dag import GraphError, load_manifest
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.manifest import Manifest
from manifest_dag.testing import ManifestBuilder
from tests.conftest import JAFFLE, OWN_MANIFESTS, REPO, manifest_id

P = "model.shop."


def shop(tmp_path: Path) -> Manifest:
    """raw (seed) → stg → mid → top, stg → side, plus a test on top and a disabled model on top."""
    return (
        ManifestBuilder("shop")
        .seed("raw")
        .model("stg", refs=["raw"])
        .model("mid", refs=["stg"])
        .model("side", refs=["stg"])
        .model("top", refs=["mid", "side"])
        .test("not_null", on="top", column="id")
        .model("off", refs=["top"], enabled=False)
        .load(tmp_path)
    )


def test_parents_and_children_follow_depends_on(tmp_path: Path) -> None:
    graph = DbtGraph(shop(tmp_path))
    assert list(graph.parents(P + "top")) == [P + "mid", P + "side"]
    assert list(graph.parents("seed.shop.raw")) == []
    assert set(graph.children(P + "stg")) == {P + "mid", P + "side"}
    (test,) = [u for u in graph.nodes if u.startswith("test.")]
    assert list(graph.children(P + "top")) == [test]
    assert graph.test_parents(test) == (P + "top",)


def test_ancestors_and_descendants_with_and_without_depth(tmp_path: Path) -> None:
    graph = DbtGraph(shop(tmp_path))
    assert graph.ancestors(P + "top", depth=1) == {P + "mid", P + "side"}
    assert graph.ancestors(P + "top", depth=2) == {P + "mid", P + "side", P + "stg"}
    assert graph.ancestors(P + "top") == {P + "mid", P + "side", P + "stg", "seed.shop.raw"}
    assert graph.descendants("seed.shop.raw", depth=1) == {P + "stg"}
    assert graph.descendants(P + "stg", depth=1) == {P + "mid", P + "side"}
    assert graph.descendants(P + "top", depth=0) == set()
    assert P + "top" not in graph.ancestors(P + "top")


@pytest.mark.parametrize("path", [JAFFLE, *OWN_MANIFESTS], ids=manifest_id)
def test_unbounded_walks_agree_with_depth_limited_ones(path: Path) -> None:
    """networkx answers the unbounded walks, our own BFS the bounded ones: same sets."""
    graph = DbtGraph(load_manifest(path))
    for uid in list(graph.nodes)[:40]:
        assert graph.ancestors(uid) == graph.ancestors(uid, depth=len(graph))
        assert graph.descendants(uid) == graph.descendants(uid, depth=len(graph))


@pytest.mark.parametrize("path", [JAFFLE, *OWN_MANIFESTS], ids=manifest_id)
def test_topological_order_puts_every_parent_first(path: Path) -> None:
    graph = DbtGraph(load_manifest(path))
    order = graph.topological_order()
    position = {uid: i for i, uid in enumerate(order)}
    assert set(position) >= set(graph.nodes)
    for uid in graph.nodes:
        for parent in graph.parents(uid):
            assert position[parent] < position[uid], (parent, uid)


def test_the_networkx_graph_has_the_same_edges(tmp_path: Path) -> None:
    graph = DbtGraph(shop(tmp_path))
    edges = {(p, u) for u in graph.nodes for p in graph.parents(u)}
    assert set(graph.graph.edges) == edges
    assert set(graph.graph.nodes) == set(graph.nodes)


def test_a_cycle_is_refused_naming_its_nodes(tmp_path: Path) -> None:
    manifest = (
        ManifestBuilder("cyc")
        .model("a", depends_on=["model.cyc.c"])
        .model("b", refs=["a"])
        .model("c", refs=["b"])
        .model("free")
        .load(tmp_path)
    )
    with pytest.raises(GraphError, match="cycle") as info:
        DbtGraph(manifest)
    message = str(info.value)
    assert str(manifest.path) in message
    for name in ("model.cyc.a", "model.cyc.b", "model.cyc.c"):
        assert name in message
    assert "model.cyc.free" not in message


def test_disabled_nodes_are_left_out(tmp_path: Path) -> None:
    graph = DbtGraph(shop(tmp_path))
    assert P + "off" not in graph
    assert P + "off" not in graph.topological_order()
    assert P + "off" not in graph.descendants(P + "top")
    assert len(graph) == len(graph.nodes) == 6


def test_nearest_rendered_looks_through_nodes_without_tasks(tmp_path: Path) -> None:
    graph = DbtGraph(shop(tmp_path))
    # stg and mid get no task: top waits for raw (through stg, mid) and side; side waits for raw
    waits = graph.nearest_rendered({"seed.shop.raw", P + "side", P + "top"})
    assert waits[P + "top"] == {"seed.shop.raw", P + "side"}
    assert waits[P + "side"] == {"seed.shop.raw"}
    assert waits[P + "mid"] == {"seed.shop.raw"}
    assert waits["seed.shop.raw"] == set()
    # everything rendered: exactly the direct parents
    everything = graph.nearest_rendered(graph.nodes)
    for uid in graph.nodes:
        assert everything[uid] == set(graph.parents(uid))
    # nothing rendered: nobody waits for anything
    assert all(not w for w in graph.nearest_rendered(()).values())


def test_nearest_rendered_on_a_chain_with_a_gap(tmp_path: Path) -> None:
    """A → B → C with no task for B: C waits for A."""
    graph = DbtGraph(ManifestBuilder("p").model("a").model("b", refs=["a"]).model("c", refs=["b"]).load(tmp_path))
    waits = graph.nearest_rendered(["model.p.a", "model.p.c"])
    assert waits["model.p.c"] == {"model.p.a"}


def test_networkx_is_imported_only_when_asked_for() -> None:
    script = f"""
import sys
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.manifest import load_manifest
graph = DbtGraph(load_manifest({str(JAFFLE)!r}))
uid = graph.topological_order()[-1]
graph.ancestors(uid, depth=2)
graph.nearest_rendered(graph.nodes)
assert "networkx" not in sys.modules, "networkx loaded before it was asked for"
graph.graph
assert "networkx" in sys.modules
"""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
