"""Laws that dbt's selection obeys, checked with generated expressions over real manifests.

The differential tests pin exact answers on small projects; these check, on bigger real ones
(Tuva, jaffle_shop and our own fixture projects), that graph operators only ever add nodes, that
spaces and commas behave as set union and intersection, and that an exclusion always wins.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.manifest import Manifest, load_manifest
from manifest_dag.scheduler.selection import select_nodes
from tests.conftest import FIXTURES, JAFFLE, SHARED, manifest_id

TUVA = SHARED / "large" / "tuva" / "manifest.json.gz"
MANIFESTS = [p for p in (JAFFLE, TUVA, *sorted((FIXTURES / "manifests").glob("*/manifest.json"))) if p.exists()]

SETTINGS = settings(
    max_examples=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
MODES = st.sampled_from(["eager", "cautious", "buildable", "empty"])


@lru_cache(maxsize=None)
def _load(path: Path) -> tuple[Manifest, DbtGraph, tuple[str, ...]]:
    manifest = load_manifest(path)
    return manifest, DbtGraph(manifest), _atoms(manifest)


def _atoms(manifest: Manifest) -> tuple[str, ...]:
    """Selection terms without graph operators that make sense for this manifest."""
    nodes = sorted(manifest.nodes.values(), key=lambda n: n.unique_id)
    names = sorted({n.name for n in nodes if n.resource_type in ("model", "seed", "snapshot")})
    tags = sorted({t for n in nodes for t in n.tags})
    packages = sorted({n.package_name for n in nodes})
    materialized = sorted({m for n in nodes if isinstance(m := n.config.get("materialized"), str)})
    folders = sorted(
        {
            n.original_file_path.rsplit("/", 1)[0]
            for n in nodes
            if n.package_name == manifest.project_name and "/" in n.original_file_path
        }
    )
    sources = sorted({f"source:{n.source_name}" for n in nodes if n.resource_type == "source"})
    step = max(1, len(names) // 60)  # a spread of names, not all of Tuva's 700 models
    return tuple(
        names[::step]
        + [f"tag:{t}" for t in tags[:40]]
        + [f"package:{p}" for p in packages]
        + [f"config.materialized:{m}" for m in materialized]
        + [f"path:{f}" for f in folders[:40]]
        + sources[:20]
        + ["resource_type:model", "resource_type:seed", "test_type:generic", "test_type:singular",
           "no_such_node", "*"]
    )


@pytest.fixture(params=MANIFESTS, ids=manifest_id, scope="module")
def project(request: pytest.FixtureRequest) -> tuple[Manifest, DbtGraph, tuple[str, ...]]:
    return _load(request.param)


def _select(project, select, exclude=(), mode="eager") -> frozenset[str]:  # type: ignore[no-untyped-def]
    manifest, graph, _ = project
    return select_nodes(manifest, list(select), list(exclude), indirect_selection=mode, graph=graph)


def _atom(project) -> st.SearchStrategy[str]:  # type: ignore[no-untyped-def]
    return st.sampled_from(project[2])


def _term(project) -> st.SearchStrategy[str]:  # type: ignore[no-untyped-def]
    ops = st.sampled_from(["{}", "+{}", "{}+", "1+{}", "{}+1", "+{}+", "@{}", "2+{}+2"])
    return st.builds(lambda op, a: op.format(a), ops, _atom(project))


@SETTINGS
@given(data=st.data(), mode=MODES)
def test_graph_operators_only_add(project, data, mode) -> None:  # type: ignore[no-untyped-def]
    x = data.draw(_atom(project))
    plain = _select(project, [x], mode=mode)
    down1, down = _select(project, [f"{x}+1"], mode=mode), _select(project, [f"{x}+"], mode=mode)
    up1, up = _select(project, [f"1+{x}"], mode=mode), _select(project, [f"+{x}"], mode=mode)
    at = _select(project, [f"@{x}"], mode=mode)
    both = _select(project, [f"+{x}+"], mode=mode)
    assert plain <= down1 <= down <= at
    assert plain <= up1 <= up <= both
    assert down <= both
    assert _select(project, [f"0+{x}+0"], mode=mode) == plain


@SETTINGS
@given(data=st.data(), mode=MODES)
def test_union_laws(project, data, mode) -> None:  # type: ignore[no-untyped-def]
    a, b, c = (data.draw(_term(project)) for _ in range(3))
    ab = _select(project, [f"{a} {b}"], mode=mode)
    assert ab == _select(project, [f"{b} {a}"], mode=mode) == _select(project, [b, a], mode=mode)
    assert _select(project, [f"{a} {b}", c], mode=mode) == _select(project, [a, f"{b} {c}"], mode=mode)
    assert _select(project, [f"{a} {a}"], mode=mode) == _select(project, [a], mode=mode)
    # eager/empty keep no tests aside, so a union is exactly the union of the parts
    if mode in ("eager", "empty"):
        assert ab == _select(project, [a], mode=mode) | _select(project, [b], mode=mode)
    else:
        assert ab >= _select(project, [a], mode=mode) | _select(project, [b], mode=mode)
        assert _plain(project, ab) == _plain(project, _select(project, [a], mode=mode) | _select(project, [b], mode=mode))


@SETTINGS
@given(data=st.data(), mode=MODES)
def test_intersection_laws(project, data, mode) -> None:  # type: ignore[no-untyped-def]
    a, b, c = (data.draw(_term(project)) for _ in range(3))
    sa, sb, sc = (_select(project, [t], mode=mode) for t in (a, b, c))
    ab = _select(project, [f"{a},{b}"], mode=mode)
    assert ab == _select(project, [f"{b},{a}"], mode=mode)
    assert _select(project, [f"{a},{a}"], mode=mode) == sa
    abc = _select(project, [f"{a},{b},{c}"], mode=mode)
    assert abc == _select(project, [f"{c},{b},{a}"], mode=mode)
    if mode in ("eager", "empty"):
        assert ab == sa & sb
        assert abc == ab & sc == sa & _select(project, [f"{b},{c}"], mode=mode)
        # absorption both ways: a ∪ (a ∩ b) = a and a ∩ (a ∪ b) = a
        assert _select(project, [f"{a} {a},{b}"], mode=mode) == sa
        assert sa & _select(project, [f"{a} {b}"], mode=mode) == sa
        # distributivity of the string forms
        assert _select(project, [f"{a},{b} {a},{c}"], mode=mode) == sa & (sb | sc)
    else:
        # cautious/buildable may take back tests held aside; the other nodes intersect exactly
        assert _plain(project, ab) == _plain(project, sa) & _plain(project, sb)


def _plain(project, ids: frozenset[str]) -> set[str]:  # type: ignore[no-untyped-def]
    return {u for u in ids if not _is_test(project, u)}


def _is_test(project, uid: str) -> bool:  # type: ignore[no-untyped-def]
    return project[0].nodes[uid].resource_type in ("test", "unit_test")


@SETTINGS
@given(data=st.data(), mode=MODES)
def test_exclusion_wins(project, data, mode) -> None:  # type: ignore[no-untyped-def]
    x, y = data.draw(_term(project)), data.draw(_term(project))
    got = _select(project, [x], [y], mode=mode)
    assert got <= _select(project, [x], mode=mode)
    # exclusions are eager whatever the mode: the excluded nodes and every test touching them
    assert not got & _select(project, [y], mode="eager")
    assert not _select(project, [x], [x], mode=mode)


@SETTINGS
@given(data=st.data(), mode=MODES)
def test_results_are_manifest_ids(project, data, mode) -> None:  # type: ignore[no-untyped-def]
    terms = data.draw(st.lists(_term(project), min_size=0, max_size=3))
    got = _select(project, terms, mode=mode)
    assert isinstance(got, frozenset)
    assert got <= project[0].nodes.keys()


def test_everything_is_the_whole_listable_manifest(project) -> None:  # type: ignore[no-untyped-def]
    manifest = project[0]
    listable = {u for u, n in manifest.nodes.items() if n.resource_type != "analysis" and n.resource_type != "operation"}
    if manifest.selectors and any(
        isinstance(s, dict) and s.get("default") is True for s in manifest.selectors.values()
    ):
        pytest.skip("a default selector decides what a bare dbt ls lists")
    assert _select(project, []) == listable
