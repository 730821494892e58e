"""Selection: dbt's own ``dbt ls`` answers, node for node, plus the errors and edge cases.

The differential cases are real dbt outputs stored beside the manifests:
``../shared/manifests/jaffle_shop_duckdb/dbt_ls.json`` and every
``fixtures/selection/<project>_dbt_ls.json`` (manifest at ``fixtures/manifests/<project>/``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from manifest_dag.core.errors import SelectionError
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.manifest import DbtNode, Manifest, load_manifest
from manifest_dag.scheduler.selection import LS_DEFAULT_RESOURCE_TYPES, select_nodes
from tests.conftest import FIXTURES, JAFFLE

JAFFLE_LS = JAFFLE.parent / "dbt_ls.json"
FIXTURE_LS = sorted((FIXTURES / "selection").glob("*_dbt_ls.json"))


@lru_cache(maxsize=None)
def _manifest(path: str) -> Manifest:
    return load_manifest(path)


@lru_cache(maxsize=None)
def _graph(path: str) -> DbtGraph:
    return DbtGraph(_manifest(path))


# -- dbt's answers ----------------------------------------------------------------------------
_FLAGS = {
    "--select": "select",
    "-s": "select",
    "--models": "select",
    "-m": "select",
    "--exclude": "exclude",
    "--selector": "selector",
    "--resource-type": "resource_types",
    "--resource-types": "resource_types",
    "--exclude-resource-type": "exclude_resource_types",
    "--indirect-selection": "indirect_selection",
}


def _cli_case(args: list[str]) -> dict[str, Any]:
    """``dbt ls`` argv (as lscases.py records it) → select_nodes keyword arguments."""
    case: dict[str, Any] = {"select": [], "exclude": [], "resource_types": []}
    key = None
    for arg in args:
        if arg in _FLAGS:
            key = _FLAGS[arg]
            continue
        assert key is not None, f"cannot read dbt ls args {args}"
        if key in ("selector", "indirect_selection"):
            case[key] = arg
        else:
            case.setdefault(key, []).append(arg)
    return case


def _jaffle_cases() -> list[Any]:
    data = json.loads(JAFFLE_LS.read_text())
    out = []
    for raw in data["cases"]:
        case = _cli_case(raw["args"])
        case["expected"] = raw.get("unique_ids")
        case["error"] = raw.get("error")
        out.append(pytest.param(str(JAFFLE), case, id=f"jaffle_shop_duckdb:{raw['name']}"))
    return out


def _fixture_cases() -> list[Any]:
    out = []
    for path in FIXTURE_LS:
        project = path.name[: -len("_dbt_ls.json")]
        manifest = FIXTURES / "manifests" / project / "manifest.json"
        data = json.loads(path.read_text())
        cases = data["cases"] if isinstance(data, dict) else data
        for i, case in enumerate(cases):
            name = case.get("name") or f"case{i}"
            out.append(pytest.param(str(manifest), case, id=f"{project}:{name}"))
    return out


def _kwargs(case: dict[str, Any]) -> dict[str, Any]:
    resource_types = list(case.get("resource_types") or ())
    excluded_types = set(case.get("exclude_resource_types") or ())
    if excluded_types:
        # --exclude-resource-type is not part of select_nodes: it removes types from the default.
        base = set(resource_types) or set(LS_DEFAULT_RESOURCE_TYPES)
        resource_types = sorted(base - excluded_types)
    return {
        "select": list(case.get("select") or ()),
        "exclude": list(case.get("exclude") or ()),
        "selector": case.get("selector"),
        "resource_types": resource_types,
        "indirect_selection": case.get("indirect_selection") or "eager",
    }


#: Messages of the SelectionErrors raised for terms that are malformed but that dbt only answers
#: with "no nodes selected" (it warns and lists nothing).
_MALFORMED = ("nothing after", "names no node", "graph operator", "empty term", "needs a config key")


def _check(manifest_path: str, case: dict[str, Any]) -> None:
    manifest = _manifest(manifest_path)
    kwargs = _kwargs(case)
    if case.get("error"):
        with pytest.raises(SelectionError):
            select_nodes(manifest, **kwargs, graph=_graph(manifest_path))
        return
    expected = case.get("expected", case.get("unique_ids"))
    assert expected is not None, f"case has neither an answer nor an error: {case}"
    try:
        got = select_nodes(manifest, **kwargs, graph=_graph(manifest_path))
    except SelectionError as exc:
        # Deliberate: a malformed term dbt lets through selects nothing in dbt either.
        assert expected == [] and any(m in str(exc) for m in _MALFORMED), exc
        return
    missing = sorted(set(expected) - got)
    extra = sorted(got - set(expected))
    assert not missing and not extra, f"missing {missing}\nextra {extra}"
    # Without a prebuilt graph the answer is the same.
    assert select_nodes(manifest, **kwargs) == got


@pytest.mark.parametrize(("manifest_path", "case"), _jaffle_cases())
def test_jaffle_matches_dbt_ls(manifest_path: str, case: dict[str, Any]) -> None:
    _check(manifest_path, case)


@pytest.mark.parametrize(("manifest_path", "case"), _fixture_cases())
def test_fixture_projects_match_dbt_ls(manifest_path: str, case: dict[str, Any]) -> None:
    _check(manifest_path, case)


def test_jaffle_answers_are_all_there() -> None:
    assert len(_jaffle_cases()) == 34


# -- errors: one per kind, each naming the culprit ----------------------------------------------
@pytest.fixture(scope="module")
def jaffle() -> Manifest:
    return _manifest(str(JAFFLE))


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"select": ["colour:blue"]}, "colour"),
        ({"select": ["tag:"]}, "tag:"),
        ({"select": ["1+"]}, "1+"),
        ({"select": ["++orders"]}, "++orders"),
        ({"select": ["orders++"]}, "orders++"),
        ({"select": ["@orders+"]}, "@orders+"),
        ({"select": ["@@orders"]}, "@@orders"),
        ({"select": ["+"]}, "+"),
        ({"select": ["orders,,customers"]}, "orders,,customers"),
        ({"select": ["orders,"]}, "orders,"),
        ({"select": ["config:table"]}, "config:table"),
        ({"select": ["tag.x:nightly"]}, "tag.x:nightly"),
        ({"select": ["state:modified"]}, "state:modified"),
        ({"select": ["result:error"]}, "result:error"),
        ({"select": ["source:a.b.c.d"]}, "source:a.b.c.d"),
        ({"select": ["exposure:a.b.c"]}, "exposure:a.b.c"),
        ({"select": ["resource_type:table"]}, "resource_type:table"),
        ({"select": ["test_type:fancy"]}, "test_type:fancy"),
        ({"select": ["version:newest"]}, "version:newest"),
        ({"select": ["path:/abs/models"]}, "path:/abs/models"),
        ({"select": ["selector:nope"]}, "nope"),
        ({"exclude": ["tag:"]}, "tag:"),
        ({"selector": "no_such_selector"}, "no_such_selector"),
        ({"indirect_selection": "greedy"}, "greedy"),
        ({"resource_types": ["table"]}, "table"),
        ({"select": [3]}, "3"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_errors_name_the_culprit(jaffle: Manifest, kwargs: dict[str, Any], culprit: str) -> None:
    with pytest.raises(SelectionError) as info:
        select_nodes(jaffle, **kwargs)
    assert culprit in str(info.value)


def test_selector_with_select_ignores_select_as_dbt_does_and_says_so(
    jaffle: Manifest, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = _synthetic(selectors={"s": {"name": "s", "definition": "a"}})
    with caplog.at_level("WARNING"):
        assert select_nodes(manifest, select=["b"], selector="s") == select_nodes(manifest, selector="s")
    assert "ignores select=['b']" in caplog.text


def test_valid_but_empty_is_not_an_error(jaffle: Manifest) -> None:
    assert select_nodes(jaffle, ["no_such_model"]) == frozenset()
    assert select_nodes(jaffle, ["tag:nope", "source:nope", "path:nowhere"]) == frozenset()
    assert select_nodes(jaffle, ["orders"], exclude=["*"]) == frozenset()


def test_string_arguments_are_accepted(jaffle: Manifest) -> None:
    assert select_nodes(jaffle, "orders customers") == select_nodes(jaffle, ["orders", "customers"])
    assert select_nodes(jaffle, "orders", resource_types="model") == {"model.jaffle_shop.orders"}


def test_result_is_a_frozenset_of_manifest_ids(jaffle: Manifest) -> None:
    got = select_nodes(jaffle, ["+customers"])
    assert isinstance(got, frozenset)
    assert got <= set(jaffle.nodes)


# -- a small synthetic project for what the real fixtures do not show --------------------------
def _node(uid: str, **kw: Any) -> DbtNode:
    resource_type, package, *rest = uid.split(".")
    name = kw.pop("name", rest[0])
    defaults: dict[str, Any] = {
        "unique_id": uid,
        "resource_type": resource_type,
        "name": name,
        "package_name": package,
        "fqn": (package, *rest),
        "original_file_path": f"models/{name}.sql",
        "path": f"{name}.sql",
        "depends_on": (),
    }
    defaults.update(kw)
    return DbtNode(**defaults)


def _synthetic(selectors: dict[str, Any] | None = None, dbt_version: str = "1.11.0") -> Manifest:
    nodes = [
        _node("model.p.a", config={"materialized": "view", "meta": {"owner": "x", "n": 6}}),
        _node("model.p.b", depends_on=("model.p.a",), tags=("t1",),
              config={"materialized": "table", "tags": ["t1"], "contains_pii": True}),
        _node("model.p.c", depends_on=("model.p.b",), original_file_path="models/sub/c.sql",
              fqn=("p", "sub", "c")),
        _node("model.p.dim.v1", name="dim", version="1", latest_version="2",
              fqn=("p", "dim", "v1"), depends_on=("model.p.a",)),
        _node("model.p.dim.v2", name="dim", version="2", latest_version="2",
              fqn=("p", "dim", "v2"), depends_on=("model.p.a",)),
        _node("model.p.dim.v3", name="dim", version="3", latest_version="2",
              fqn=("p", "dim", "v3"), depends_on=("model.p.a",)),
        _node("model.q.pk", original_file_path="models/pk.sql"),
        _node("test.p.t_ab", resource_type="test", test_name="relationships",
              depends_on=("model.p.a", "model.p.b"), original_file_path="models/schema.yml",
              config={"severity": "ERROR", "materialized": "test"}),
        _node("test.p.t_c", resource_type="test", test_name="unique",
              depends_on=("model.p.c",), original_file_path="models/sub/schema.yml"),
        _node("test.p.singular", resource_type="test", depends_on=("model.p.b",),
              original_file_path="tests/singular.sql"),
        _node("unit_test.p.b.ut", name="ut", fqn=("p", "unit", "b", "ut"), depends_on=("model.p.b",),
              original_file_path="models/schema.yml"),
        _node("analysis.p.an", depends_on=("model.p.c",), original_file_path="analyses/an.sql"),
    ]
    return Manifest(
        path=Path("synthetic/manifest.json"),
        schema_version=12,
        dbt_version=dbt_version,
        project_name="p",
        adapter_type=None,
        nodes={n.unique_id: n for n in nodes},
        selectors=selectors or {},
    )


@pytest.fixture(scope="module")
def syn() -> Manifest:
    return _synthetic()


def _sel(manifest: Manifest, *select: str, **kw: Any) -> set[str]:
    return {uid.split(".", 1)[1] for uid in select_nodes(manifest, list(select), **kw)}


def test_versioned_model_names(syn: Manifest) -> None:
    models = {"resource_types": ["model"]}
    assert _sel(syn, "dim", **models) == {"p.dim.v1", "p.dim.v2", "p.dim.v3"}
    assert _sel(syn, "dim.v2", **models) == {"p.dim.v2"}
    assert _sel(syn, "dim_v3", **models) == {"p.dim.v3"}
    assert _sel(syn, "version:latest") == {"p.dim.v2"}
    assert _sel(syn, "version:old") == {"p.dim.v1"}
    assert _sel(syn, "version:prerelease") == {"p.dim.v3"}
    assert "p.a" in _sel(syn, "version:none") and "p.dim.v1" not in _sel(syn, "version:none")


def test_fqn_forms(syn: Manifest) -> None:
    m = {"resource_types": ["model"]}
    assert _sel(syn, "p.sub.c", **m) == {"p.c"}
    assert _sel(syn, "sub.c", **m) == {"p.c"}
    assert _sel(syn, "sub", **m) == {"p.c"}
    assert _sel(syn, "p.c", **m) == set()  # a dotted name is a prefix of the fqn, not a suffix
    assert _sel(syn, "q", **m) == {"q.pk"}
    assert _sel(syn, "q.pk", **m) == {"q.pk"}
    assert _sel(syn, "p.d*", **m) == {"p.dim.v1", "p.dim.v2", "p.dim.v3"}
    # a wildcard part is matched against the whole rest of the fqn (with or without package)
    assert _sel(syn, "[ab]", **m) == {"p.a", "p.b"}
    assert _sel(syn, "p.[ab]", **m) == {"p.a", "p.b"}
    assert _sel(syn, "?", **m) == {"p.a", "p.b"}
    assert _sel(syn, "d*", **m) == {"p.dim.v1", "p.dim.v2", "p.dim.v3"}  # '*' spans dots


def test_default_method_guessing(syn: Manifest) -> None:
    assert _sel(syn, "models/sub", resource_types=["model"]) == {"p.c"}
    assert _sel(syn, "c.sql", resource_types=["model"]) == {"p.c"}


def test_path_never_reaches_into_package_folders(syn: Manifest) -> None:
    assert _sel(syn, "path:models/sub") == {"p.c", "p.t_c"}
    assert _sel(syn, "path:models/sub/") == {"p.c", "p.t_c"}
    assert _sel(syn, "path:models/**/*.yml") == {"p.t_ab", "p.b.ut", "p.t_c"}  # ** spans 0+ folders
    assert _sel(syn, "path:models/*/*.yml") == {"p.t_c"}
    assert _sel(syn, "path:dbt_packages/q") == set()
    assert "q.pk" not in _sel(syn, "path:models")  # its own models/pk.sql is not the root's


def test_config_values_may_hold_operator_characters(syn: Manifest) -> None:
    assert _sel(syn, "config.meta.owner:team@example.com") == set()


def test_config_comparisons(syn: Manifest) -> None:
    assert _sel(syn, "config.meta.owner:x", resource_types=["model"]) == {"p.a"}
    assert _sel(syn, "config.meta.owner:x", resource_types=["test"]) == {"p.t_ab"}  # eager
    assert _sel(syn, "config.meta.n:6") == set()  # dbt compares the string with the value
    assert _sel(syn, "config.contains_pii:true", resource_types=["model"]) == {"p.b"}
    assert _sel(syn, "config.contains_pii:TRUE", resource_types=["model"]) == {"p.b"}
    assert _sel(syn, "config.tags:t1", resource_types=["model"]) == {"p.b"}
    assert _sel(syn, "config.severity:error") == {"p.t_ab"}  # severity: case-insensitive


def test_test_methods(syn: Manifest) -> None:
    assert _sel(syn, "test_type:generic") == {"p.t_ab", "p.t_c"}
    assert _sel(syn, "test_type:singular") == {"p.singular"}
    assert _sel(syn, "test_type:data") == {"p.t_ab", "p.t_c", "p.singular"}
    assert _sel(syn, "test_type:unit") == {"p.b.ut"}
    assert _sel(syn, "test_name:rel*") == {"p.t_ab"}


def test_indirect_selection_modes(syn: Manifest) -> None:
    assert _sel(syn, "b") == {"p.b", "p.t_ab", "p.singular", "p.b.ut"}
    assert _sel(syn, "b", indirect_selection="cautious") == {"p.b", "p.singular", "p.b.ut"}
    # buildable: a's relationship test comes along because a is upstream of b
    assert _sel(syn, "b", indirect_selection="buildable") == {"p.b", "p.t_ab", "p.singular", "p.b.ut"}
    assert _sel(syn, "b", indirect_selection="empty") == {"p.b"}
    # cautious across a union: both parents of t_ab are selected by different terms
    assert "p.t_ab" in _sel(syn, "a", "b", indirect_selection="cautious")
    # excluding a model excludes its tests, eagerly, whatever the mode
    assert _sel(syn, "a+", exclude=["b"], indirect_selection="cautious", resource_types=["test"]) == {"p.t_c"}


def test_graph_operators(syn: Manifest) -> None:
    m = {"resource_types": ["model"]}
    assert _sel(syn, "+c", **m) == {"p.a", "p.b", "p.c"}
    assert _sel(syn, "1+c", **m) == {"p.b", "p.c"}
    assert _sel(syn, "0+c", **m) == {"p.c"}
    assert _sel(syn, "a+1", **m) == {"p.a", "p.b", "p.dim.v1", "p.dim.v2", "p.dim.v3"}
    assert _sel(syn, "@b", **m) == {"p.a", "p.b", "p.c"}
    assert _sel(syn, "@+c", **m) == {"p.a", "p.b", "p.c"}
    assert _sel(syn, "c+", resource_types=["analysis"]) == {"p.an"}


def test_analyses_are_listed_only_when_asked(syn: Manifest) -> None:
    assert "p.an" not in _sel(syn)
    assert "p.an" in _sel(syn, resource_types=["all"])
    assert _sel(syn, "resource_type:analysis", resource_types=["analysis"]) == {"p.an"}


_SELECTORS = {
    "base": {"name": "base", "definition": {"method": "fqn", "value": "b", "parents": True}},
    "cli": {"name": "cli", "definition": "+b"},
    "u": {
        "name": "u",
        "default": True,
        "definition": {
            "union": [
                {"method": "selector", "value": "base"},
                "c",
                {"exclude": [{"method": "tag", "value": "t1"}]},
            ]
        },
    },
    "i": {"name": "i", "definition": {"intersection": [{"tag": "t1"}, {"method": "resource_type", "value": "model"}]}},
    "kids": {"name": "kids", "definition": {"method": "fqn", "value": "a", "children": True, "children_depth": 1,
                                            "indirect_selection": "empty"}},
    "loop": {"name": "loop", "definition": {"method": "selector", "value": "loop"}},
    "bad": {"name": "bad", "definition": {"union": [{"exclude": ["a"]}, {"exclude": ["b"]}]}},
}


@pytest.fixture(scope="module")
def yml() -> Manifest:
    return _synthetic(_SELECTORS)


def test_yaml_selectors(yml: Manifest) -> None:
    m = {"resource_types": ["model"]}
    assert _sel(yml, selector="base", **m) == {"p.a", "p.b"}
    assert _sel(yml, selector="cli", **m) == {"p.a", "p.b"}
    assert _sel(yml, selector="u", **m) == {"p.a", "p.c"}
    assert _sel(yml, selector="i", **m) == {"p.b"}
    # the children operator walks into tests too; indirect_selection: empty adds no others
    assert _sel(yml, selector="kids") == {"p.a", "p.b", "p.t_ab", "p.dim.v1", "p.dim.v2", "p.dim.v3"}
    # 'selector:' inside --select arrives only in dbt 1.12; dbt 1.11 refuses it, and so do we
    with pytest.raises(SelectionError, match="selector=") as info:
        select_nodes(yml, ["selector:base"])
    assert "'selector:base'" in str(info.value)


def test_default_selector_applies_only_without_arguments(yml: Manifest) -> None:
    m = {"resource_types": ["model"]}
    assert _sel(yml, **m) == {"p.a", "p.c"}
    assert _sel(yml, "dim", **m) == {"p.dim.v1", "p.dim.v2", "p.dim.v3"}
    assert "p.b" in _sel(yml, exclude=["c"], **m)


def test_yaml_selector_errors(yml: Manifest) -> None:
    with pytest.raises(SelectionError, match="loop"):
        select_nodes(yml, selector="loop")
    with pytest.raises(SelectionError, match="only one 'exclude'"):
        select_nodes(yml, selector="bad")
    two_defaults = _synthetic({"x": {"name": "x", "default": True, "definition": "a"},
                               "y": {"name": "y", "default": True, "definition": "b"}})
    with pytest.raises(SelectionError, match="x, y"):
        select_nodes(two_defaults)


def test_graph_argument_is_used(jaffle: Manifest) -> None:
    graph = _graph(str(JAFFLE))
    assert select_nodes(jaffle, ["@stg_orders"], graph=graph) == select_nodes(jaffle, ["@stg_orders"])


@pytest.mark.parametrize(
    ("dbt_version", "nested_match"),
    [("1.10.5", False), ("1.11.15", False), ("1.11.16", True), ("1.12.0", False), ("1.13.0", True)],
)
def test_bare_wildcard_follows_the_manifests_dbt_version(dbt_version: str, nested_match: bool) -> None:
    """dbt 1.11.16 matches ``c*`` against names in sub-folders; dbt 1.12.0 did not (real answers)."""
    nested = {"p.c"} if nested_match else set()
    manifest = _synthetic(dbt_version=dbt_version)
    assert _sel(manifest, "c*", resource_types=["model"]) == nested
    assert _sel(manifest, "*.c", resource_types=["model"]) == {"p.c"}  # the explicit form works in all
